package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/internal/testbed/topology"
)

// Issue 8 §1: hosts whose underlay is configured by router advertisements
// (radvd in a router netns, SLAAC address, RA default route, nothing
// static) keep their default route while the daemon starts, pods are added
// and the daemon restarts: `ip -6 monitor route` never shows it deleted.
// Every write of 1 to all/forwarding deletes RA default routes on links
// whose accept_ra is not 2; on c8681c8 the daemon's first start did so.
func TestRAUnderlayKeepsDefaultRoute(t *testing.T) {
	t.Parallel()
	b := testbed.NewRealHosts(t, testbed.RealOptions{Hosts: 2, RA: true})
	b.PutConfig(testbed.ConfigJSON(true))
	mons := make([]*testbed.Monitor, len(b.Hosts))
	for i, h := range b.Hosts {
		mons[i] = h.StartMonitor("ip", "-6", "monitor", "route")
	}
	b.StartDaemons(readyTimeout, nil)
	var cs []*testbed.Container
	for _, h := range b.Hosts {
		cs = append(cs, h.AddContainer())
	}
	meshPing(t, targets(cs, false))
	meshPing(t, targets(cs, true))
	for _, h := range b.Hosts {
		if code := h.Daemon().Stop(); code != 0 {
			t.Fatalf("vxlan6d on %s exited %d on SIGTERM", h.Name, code)
		}
		h.StartDaemon().WaitReady(readyTimeout)
		cs = append(cs, h.AddContainer())
	}
	meshPing(t, targets(cs, false))
	meshPing(t, targets(cs, true))

	for i, h := range b.Hosts {
		out := mons[i].Stop()
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "Deleted") && strings.Contains(line, "default") {
				t.Errorf("%s: RA default route deleted: %q", h.Name, line)
			}
		}
		if _, err := h.RADefaultRoute(); err != nil {
			t.Error(err)
		}
		st, _, err := h.SLAACAddrs()
		if err != nil || !st.Equal(h.Addr1) {
			t.Errorf("%s: SLAAC address now %v (%v), was %s", h.Name, st, err, h.Addr1)
		}
		// The VTEP is the SLAAC address (the only global one).
		if l, err := h.VXLANLocal(); err != nil || !l.Equal(h.Addr1) {
			t.Errorf("%s: VTEP %v (%v), want the SLAAC address %s", h.Name, l, err, h.Addr1)
		}
		// Only the uplink was raised to 2; container-facing links not.
		if v := strings.TrimSpace(h.MustExec("sysctl", "-n", "net.ipv6.conf."+testbed.Uplink+".accept_ra")); v != "2" {
			t.Errorf("%s: %s accept_ra %s, want 2", h.Name, testbed.Uplink, v)
		}
		if v := strings.TrimSpace(h.MustExec("sysctl", "-n", "net.ipv6.conf."+h.Bridge+".accept_ra")); v != "0" {
			t.Errorf("%s: bridge %s accept_ra %s, want 0", h.Name, h.Bridge, v)
		}
	}
}

// An uplink whose only global addresses are a SLAAC address and a privacy
// (temporary) one: the daemon tunnels from the stable SLAAC address, which
// outlives the temporary one, and pods reach across hosts.
func TestRAUnderlayPrivacyAddressesPicksSLAAC(t *testing.T) {
	t.Parallel()
	b := testbed.NewRealHosts(t, testbed.RealOptions{Hosts: 2, RA: true, TempAddr: true})
	b.PutIPv6Config()
	b.StartDaemons(readyTimeout, nil)
	var cs []*testbed.Container
	for _, h := range b.Hosts {
		if h.Addr2 == nil {
			t.Fatalf("%s has no temporary address", h.Name)
		}
		if l, err := h.VXLANLocal(); err != nil || !l.Equal(h.Addr1) {
			t.Errorf("%s: VTEP %v (%v), want the SLAAC address %s, not the temporary %s", h.Name, l, err, h.Addr1, h.Addr2)
		}
		if ls, err := h.ListedAddrs(); err == nil {
			t.Logf("%s lists %v", h.Name, ls)
		}
		cs = append(cs, h.AddContainer())
	}
	meshPing(t, targets(cs, false))
	// An IPv6-only network turns on IPv6 forwarding only.
	for _, h := range b.Hosts {
		if v := strings.TrimSpace(h.MustExec("sysctl", "-n", "net.ipv4.ip_forward")); v != "0" {
			t.Errorf("%s: IPv4 forwarding %s for an IPv6-only network, want 0", h.Name, v)
		}
	}
}

// Issue 8 §5: both hosts drop forwarded traffic (FORWARD policy DROP in
// ip6tables and iptables, as Docker and firewalld leave it). With
// --forward-rules=false no pod traffic crosses hosts; with the default the
// daemon's VXLAN6-FWD chain lets it through, both families, and puts it back
// on the next resync after a firewall reload removed it.
func TestForwardDropFirewall(t *testing.T) {
	t.Parallel()
	b := testbed.NewRealHosts(t, testbed.RealOptions{Hosts: 2, ForwardDrop: true})
	b.PutConfig(testbed.ConfigJSON(true))
	b.StartDaemons(readyTimeout, func(*testbed.Host) []string { return []string{"--forward-rules=false"} })
	var cs []*testbed.Container
	for _, h := range b.Hosts {
		cs = append(cs, h.AddContainer())
	}
	forwardDropOpens(t, b, cs, 5, "FORWARD DROP", "-j VXLAN6-FWD", []string{"ip6tables", "iptables"}, "--resync-interval", "2s")
	// A firewall reload drops our rules; the next resync puts them back.
	h := b.Hosts[0]
	h.MustExec("ip6tables", "-D", "FORWARD", "-j", "VXLAN6-FWD")
	h.MustExec("ip6tables", "-F", "VXLAN6-FWD")
	err := testbed.Eventually(30*time.Second, 200*time.Millisecond, func() error {
		if out := h.MustExec("ip6tables", "-S"); !strings.Contains(out, "-A FORWARD -j VXLAN6-FWD") ||
			!strings.Contains(out, "-A VXLAN6-FWD -s "+testbed.IPv6Network+" -j ACCEPT") {
			return fmt.Errorf("rules not restored:\n%s", out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	meshPing(t, targets(cs, false))
}

// The underlay link is deleted and created again (same name and MAC, as a
// re-plugged NIC): forwarding is on, so the new link ignores RAs. The
// daemon's periodic resync raises its accept_ra again; once a router
// solicitation (here: the link going down and up; on a real network the
// next periodic RA does the same) is answered, the SLAAC address, the RA
// default route, the VXLAN device and pod traffic are back.
func TestRAUnderlayRecreated(t *testing.T) {
	t.Parallel()
	b := testbed.NewRealHosts(t, testbed.RealOptions{Hosts: 2, RA: true})
	b.PutIPv6Config()
	b.StartDaemons(readyTimeout, func(*testbed.Host) []string { return []string{"--resync-interval", "1s"} })
	var cs []*testbed.Container
	for _, h := range b.Hosts {
		cs = append(cs, h.AddContainer())
	}
	meshPing(t, targets(cs, false))

	h := b.Hosts[0]
	// Same MAC, so the same EUI-64 SLAAC address, so the same VTEP.
	out := h.MustExec("ip", "-o", "link", "show", "dev", testbed.Uplink)
	f := strings.Fields(out[strings.Index(out, "link/ether"):])
	hw := f[1]
	port := topology.SwitchPort(h.ID)
	h.MustExec("ip", "link", "del", testbed.Uplink)
	b.MustExec(b.Switch, "ip", "link", "add", port, "type", "veth", "peer", "name", testbed.Uplink, "netns", h.Name)
	b.MustExec(b.Switch, "ip", "link", "set", port, "master", topology.SwitchBridge, "up")
	h.MustExec("ip", "link", "set", testbed.Uplink, "address", hw)
	h.MustExec("ip", "link", "set", testbed.Uplink, "up")
	accept := func() string {
		return strings.TrimSpace(h.MustExec("sysctl", "-n", "net.ipv6.conf."+testbed.Uplink+".accept_ra"))
	}
	err := testbed.Eventually(30*time.Second, 200*time.Millisecond, func() error {
		if v := accept(); v != "2" {
			return fmt.Errorf("recreated %s: accept_ra %s, want 2", testbed.Uplink, v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Solicit an RA now instead of waiting for radvd's next one.
	h.MustExec("ip", "link", "set", testbed.Uplink, "down")
	h.MustExec("ip", "link", "set", testbed.Uplink, "up")
	err = testbed.Eventually(60*time.Second, 200*time.Millisecond, func() error {
		if _, err := h.RADefaultRoute(); err != nil {
			return err
		}
		st, _, err := h.SLAACAddrs()
		if err != nil {
			return err
		}
		if !st.Equal(h.Addr1) {
			return fmt.Errorf("SLAAC address %s, was %s", st, h.Addr1)
		}
		if l, err := h.VXLANLocal(); err != nil || !l.Equal(h.Addr1) {
			return fmt.Errorf("VXLAN device local %v (%v), want %s", l, err, h.Addr1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	meshPing(t, targets(cs, false))
}

// forwardDropOpens is what TestForwardDropFirewall and
// TestForwardDropLegacyFirewall share: with the daemons running
// --forward-rules=false under a FORWARD DROP (what), cs[0] reaches cs[1] in
// neither family; restarted with the default (and args), every pod reaches
// every other in both, and FORWARD in each of bins holds jump.
func forwardDropOpens(t *testing.T, b *testbed.Bed, cs []*testbed.Container, count int, what, jump string, bins []string, args ...string) {
	t.Helper()
	for _, dst := range []net.IP{cs[1].IPv6, cs[1].IPv4} {
		if out, err := cs[0].Ping(dst, count); err == nil {
			t.Fatalf("with --forward-rules=false and %s, %s reached %s:\n%s", what, cs[0].Name, dst, out)
		}
	}
	for _, h := range b.Hosts {
		h.Daemon().Stop()
		h.StartDaemon(args...).WaitReady(readyTimeout)
	}
	meshPing(t, targets(cs, false))
	meshPing(t, targets(cs, true))
	for _, h := range b.Hosts {
		for _, bin := range bins {
			if out := h.MustExec(bin, "-S", "FORWARD"); !strings.Contains(out, jump) {
				t.Errorf("%s: %s FORWARD has no jump to VXLAN6-FWD:\n%s", h.Name, bin, out)
			}
		}
	}
}
