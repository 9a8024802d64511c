package masq

import (
	"slices"
	"testing"
)

// SplitRule turns -S lines back into the arguments that made them: the
// daemon's chain package replays its rules with it.
func TestSplitRule(t *testing.T) {
	for line, want := range map[string][]string{
		`-A VXLAN6-FWD -s fd00::/48 -j ACCEPT`:                                           {"-A", "VXLAN6-FWD", "-s", "fd00::/48", "-j", "ACCEPT"},
		`-A VXLAN6-EGRESS -m comment --comment "vxlan6 pod egress masquerade" -j RETURN`: {"-A", "VXLAN6-EGRESS", "-m", "comment", "--comment", "vxlan6 pod egress masquerade", "-j", "RETURN"},
		`-A X -m comment --comment "say \"hi\" \\o/" -j ACCEPT`:                          {"-A", "X", "-m", "comment", "--comment", `say "hi" \o/`, "-j", "ACCEPT"},
		`  -A  X   -j   ACCEPT  `:                                                        {"-A", "X", "-j", "ACCEPT"},
		``:                                                                               nil,
	} {
		if got := SplitRule(line); !slices.Equal(got, want) {
			t.Errorf("SplitRule(%q) = %q, want %q", line, got, want)
		}
	}
}
