package egress

import (
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

func save(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "-w", "5", "-t", "nat", "-S").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -S: %v %s", bin, err, out)
	}
	return string(out)
}

// TestEnsureIdempotentAndHeals: in a throwaway netns, Ensure writes the
// chain and the jump for both families, changes nothing the second time,
// repairs a flushed chain and a removed jump, follows a network change, and
// Remove leaves nothing behind.
func TestEnsureIdempotentAndHeals(t *testing.T) {
	testutil.RequireRoot(t)
	_, n6, _ := net.ParseCIDR("fd10:244::/48")
	_, n4, _ := net.ParseCIDR("10.244.0.0/16")
	err := testutil.NewNS(t).Do(func(ns.NetNS) error {
		if changed, err := Ensure([]*net.IPNet{n6, n4}); err != nil || !changed {
			t.Fatalf("first Ensure: %v %v", changed, err)
		}
		for bin, src := range map[string]string{"ip6tables": "fd10:244::/48", "iptables": "10.244.0.0/16"} {
			out := save(t, bin)
			for _, want := range []string{jump, "-A " + Chain + " -s " + src + " -d " + src, "-s " + src + ` -m comment --comment "` + comment + `" -j MASQUERADE`} {
				if !strings.Contains(out, want) {
					t.Errorf("%s lacks %q:\n%s", bin, want, out)
				}
			}
		}
		if changed, err := Ensure([]*net.IPNet{n6, n4}); err != nil || changed {
			t.Errorf("second Ensure changed %v: %v", changed, err)
		}
		exec.Command("ip6tables", "-t", "nat", "-F", Chain).Run()
		exec.Command("iptables", "-t", "nat", "-D", "POSTROUTING", "-j", Chain).Run()
		if changed, err := Ensure([]*net.IPNet{n6, n4}); err != nil || !changed {
			t.Errorf("Ensure after a flush: %v %v", changed, err)
		}
		if out := save(t, "ip6tables"); !strings.Contains(out, "MASQUERADE") {
			t.Errorf("flushed chain not repaired:\n%s", out)
		}
		if out := save(t, "iptables"); !strings.Contains(out, jump) {
			t.Errorf("jump not repaired:\n%s", out)
		}
		// IPv4 turned off: its chain goes.
		if _, err := Ensure([]*net.IPNet{n6}); err != nil {
			t.Fatal(err)
		}
		if out := save(t, "iptables"); strings.Contains(out, Chain) {
			t.Errorf("IPv4 chain left after IPv4 went:\n%s", out)
		}
		if changed, err := Remove(); err != nil || !changed {
			t.Errorf("Remove: %v %v", changed, err)
		}
		if out := save(t, "ip6tables"); strings.Contains(out, Chain) {
			t.Errorf("Remove left:\n%s", out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
