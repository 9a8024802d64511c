package subnetfile

import (
	"bytes"
	"strings"
	"testing"
)

// The held-by mark round-trips, stays out of files that do not need it (so
// older plugins read new files and new plugins old files as before), and
// cannot carry anything a shell would act on.
func TestHeldByMark(t *testing.T) {
	base := "VXLAN6_NETWORK_V6=fd10:244::/48\nVXLAN6_SUBNET_V6=fd10:244:0:1::/64\nVXLAN6_MTU=1430\n"
	c, err := Parse([]byte(base))
	if err != nil || c.Held() {
		t.Fatalf("file without the mark: %+v, %v", c, err)
	}
	if bytes.Contains(c.Marshal(), []byte(KeyHeldBy)) {
		t.Fatalf("unmarked config writes %s:\n%s", KeyHeldBy, c.Marshal())
	}
	c.HeldBy = SafeHeldBy("node-b@2001:db8:1::3")
	again, err := Parse(c.Marshal())
	if err != nil || !again.Held() || again.HeldBy != "node-b@2001:db8:1::3" {
		t.Fatalf("round trip: %+v, %v\n%s", again, err, c.Marshal())
	}
	for in, want := range map[string]string{
		"a b;$(reboot)`x`\n":     "a_b___reboot__x__",
		"x\"'":                   "x__",
		strings.Repeat("n", 400): strings.Repeat("n", maxHeldBy),
	} {
		if got := SafeHeldBy(in); got != want {
			t.Errorf("SafeHeldBy(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := Parse([]byte(base + KeyHeldBy + "=a$(b)\n")); err == nil || !strings.Contains(err.Error(), KeyHeldBy) {
		t.Errorf("unsafe held-by value accepted: %v", err)
	}
	c.HeldBy = "a b"
	if err := Write(t.TempDir()+"/s.env", c); err == nil {
		t.Error("Write accepted an unsafe held-by value")
	}
}
