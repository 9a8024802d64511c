package e2e

import (
	"strings"
	"testing"

	"github.com/vxlan6/vxlan6/internal/testbed"
)

// TestForwardDropLegacyFirewall: the drop is in iptables-legacy (an older
// host, or one whose firewall still uses the legacy backend) while the
// nft backend accepts. A packet must pass both, so the daemon's accept
// rules belong in the legacy tables: pods reach each other across hosts in
// both families, and the nft backend, which drops nothing, is left alone.
func TestForwardDropLegacyFirewall(t *testing.T) {
	t.Parallel()
	b := testbed.NewRealHosts(t, testbed.RealOptions{Hosts: 2})
	for _, h := range b.Hosts {
		h.MustExec("ip6tables-legacy", "-P", "FORWARD", "DROP")
		h.MustExec("iptables-legacy", "-P", "FORWARD", "DROP")
	}
	b.PutConfig(testbed.ConfigJSON(true))
	var cs []*testbed.Container
	for _, h := range b.Hosts {
		h.StartDaemon("--forward-rules=false").WaitReady(readyTimeout)
		cs = append(cs, h.AddContainer())
	}
	// The legacy drop really drops without the rules; with them all crosses.
	forwardDropOpens(t, b, cs, 3, "a legacy FORWARD DROP", "-A FORWARD -j VXLAN6-FWD", []string{"ip6tables-legacy", "iptables-legacy"})
	for _, h := range b.Hosts {
		for _, bin := range []string{"ip6tables-nft", "iptables-nft"} {
			if out := h.MustExec(bin, "-S"); strings.Contains(out, "VXLAN6-FWD") {
				t.Errorf("%s: %s drops nothing but got VXLAN6-FWD:\n%s", h.Name, bin, out)
			}
		}
	}
}
