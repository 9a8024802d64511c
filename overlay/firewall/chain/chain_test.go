package chain

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// In a throwaway netns: Ensure creates the chain (a quoted comment
// survives the -S round trip), a second Ensure runs nothing, and Remove
// takes out the chain and every jump to it, also one an operator
// duplicated.
func TestEnsureAndRemove(t *testing.T) {
	testutil.RequireRoot(t)
	c := Chain{Table: "filter", Name: "VXLAN6-TEST", From: "FORWARD"}
	rules := []string{`-A VXLAN6-TEST -s fd10:244::/48 -m comment --comment "two words" -j ACCEPT`}
	err := testutil.NewNS(t).Do(func(ns.NetNS) error {
		list := func() []string {
			t.Helper()
			lines, err := c.List("ip6tables")
			if err != nil {
				t.Fatal(err)
			}
			return lines
		}
		if changed, err := c.Ensure("ip6tables", list(), rules); err != nil || !changed {
			t.Fatalf("first Ensure: %v %v", changed, err)
		}
		lines := list()
		if !slices.Contains(lines, rules[0]) || !slices.Contains(lines, "-A FORWARD -j VXLAN6-TEST") {
			t.Fatalf("after Ensure:\n%s", strings.Join(lines, "\n"))
		}
		if changed, err := c.Ensure("ip6tables", lines, rules); err != nil || changed {
			t.Errorf("second Ensure: %v %v", changed, err)
		}
		if _, err := c.Run("ip6tables", "-A", "FORWARD", "-j", c.Name); err != nil {
			t.Fatal(err)
		}
		if changed, err := c.Remove("ip6tables", list()); err != nil || !changed {
			t.Errorf("Remove: %v %v", changed, err)
		}
		if lines := list(); slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, c.Name) }) {
			t.Errorf("Remove left:\n%s", strings.Join(lines, "\n"))
		}
		if changed, err := c.Remove("ip6tables", list()); err != nil || changed {
			t.Errorf("second Remove: %v %v", changed, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// LegacyLoaded sees a legacy table only once something created it (here a
// listing, which is why callers that only look ask it first).
func TestLegacyLoaded(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("iptables-legacy"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("iptables-legacy not installed (.ci/deps.sh installs iptables)")
		}
		t.Skip("iptables-legacy not installed")
	}
	err := testutil.NewNS(t).Do(func(ns.NetNS) error {
		if LegacyLoaded(false, "nat") {
			t.Fatal("legacy nat table in a fresh netns")
		}
		if _, err := (Chain{Table: "nat"}).List("iptables-legacy"); err != nil {
			return err
		}
		if !LegacyLoaded(false, "nat") || LegacyLoaded(true, "nat") {
			t.Errorf("after listing IPv4 legacy nat: v4 %v v6 %v, want true false", LegacyLoaded(false, "nat"), LegacyLoaded(true, "nat"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
