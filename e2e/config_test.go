package e2e

// Network config changes while the daemons run (<prefix>/config is
// watched): a new VNI or UDP port is followed live; new networks or a new
// MTU are refused until a restart; only devices vxlan6d marked as its own
// are ever removed.

import (
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
)

// configWith is the default IPv6-only config with the given VNI, port, MTU
// (0: derived) and IPv6 network.
func configWith(vni, port, mtu int, network string) string {
	data, _ := json.Marshal(map[string]any{
		"EnableIPv6": true, "IPv6Network": network, "IPv6SubnetLen": testbed.IPv6SubnetLen,
		"Backend": map[string]any{"Type": "vxlan", "VNI": vni, "Port": port, "MTU": mtu},
	})
	return string(data)
}

// reachBoth waits until c1 and c2 reach each other and returns how long
// that took from start.
func reachBoth(t *testing.T, c1, c2 *testbed.Container, start time.Time) time.Duration {
	t.Helper()
	for _, p := range [][2]*testbed.Container{{c1, c2}, {c2, c1}} {
		if err := waitReach(p[0].Name, p[1].IPv6, meshTimeout); err != nil {
			t.Fatal(err)
		}
	}
	return time.Since(start)
}

// waitDevice waits until h has VXLAN device name with the given local and
// port, marked as vxlan6d's.
func waitDevice(t *testing.T, h *testbed.Host, name string, local net.IP, port int) {
	t.Helper()
	if err := testbed.Eventually(testbed.PeerTimeout, 100*time.Millisecond, func() error {
		l, err := h.Link(name)
		if err != nil {
			return err
		}
		if l == nil || l.Kind != "vxlan" || !l.Local.Equal(local) || l.Port != port || l.Alias != "vxlan6d" {
			return fmt.Errorf("%s: %s is %+v, want a vxlan device, local %s, port %d, alias vxlan6d", h.Name, name, l, local, port)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestConfigChangesWhileRunning: a new MTU or network is refused (error
// naming old and new, not ready, data path kept); a new VNI, then a new
// port, is followed on both hosts (new device, same VTEP, peers moved, the
// old marked device and its routes gone, an unmarked one kept); a VNI
// changed while the daemons were stopped leaves no old marked device after
// their start, and takes our routes off an unmarked one.
func TestConfigChangesWhileRunning(t *testing.T) {
	t.Parallel()
	const net6, port = testbed.IPv6Network, testbed.Port
	b := testbed.NewConfigured(t, testbed.Options{Hosts: 2}, false)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	h1.StartDaemon("--healthz-addr", healthAddr)
	h2.StartDaemon()
	h1.Daemon().WaitReady(readyTimeout)
	h2.Daemon().WaitReady(readyTimeout)
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	reachBoth(t, c1, c2, time.Now())
	sf1, sf2 := h1.WaitSubnetFile(readyTimeout), h2.WaitSubnetFile(readyTimeout)

	t.Run("MTU, networks and FastPath wait for a restart", func(t *testing.T) {
		dp1, err := h1.DataPath()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ cfg, names string }{
			{configWith(testbed.VNI, port, 1300, net6), "Backend.MTU 0 -> 1300"},
			{configWith(testbed.VNI, port, 0, "fd10:245::/48"), "IPv6Network " + net6 + " -> fd10:245::/48"},
			{testbed.ConfigJSONFastPath(false, "decap"), "Backend.FastPath auto -> decap"},
		} {
			b.PutConfig(c.cfg)
			if err := h1.Daemon().WaitLog(c.names, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			if code, _ := probe(h1, "/healthz"); code != 503 {
				t.Errorf("healthz %d while the config in etcd is not the one in use, want 503", code)
			}
			if dp, _ := h1.DataPath(); dp != dp1 {
				t.Errorf("data path changed on a refused config change:\nbefore:\n%s\nafter:\n%s", dp1, dp)
			}
			c1.MustPing(t, c2.IPv6)
		}
		b.PutConfig(configWith(testbed.VNI, port, 0, net6))
		if err := testbed.Eventually(20*time.Second, 200*time.Millisecond, func() error {
			if code, _ := probe(h1, "/healthz"); code != 200 {
				return fmt.Errorf("healthz %d after the config was put back, want 200", code)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	})

	t.Run("VNI and port followed live", func(t *testing.T) {
		// h2's device is marked as the operator's: it must stay.
		h2.MustExec("ip", "link", "set", "dev", testbed.Device, "alias", "operator")
		start := time.Now()
		b.PutConfig(configWith(2, port, 0, net6))
		waitDevice(t, h1, "vxlan6.2", sf1.VTEP, port)
		waitDevice(t, h2, "vxlan6.2", sf2.VTEP, port)
		took := reachBoth(t, c1, c2, start)
		h1.WaitPresent(t, "old device "+testbed.Device, false, testbed.PeerTimeout, func() (bool, error) {
			l, err := h1.Link(testbed.Device)
			return l != nil, err
		})
		if l, _ := h2.Link(testbed.Device); l == nil || l.Alias != "operator" {
			t.Errorf("%s: the unmarked %s was removed or changed: %+v", h2.Name, testbed.Device, l)
		}
		for _, c := range []struct {
			h    *testbed.Host
			peer *net.IPNet
		}{{h1, sf2.Subnets.V6}, {h2, sf1.Subnets.V6}} {
			if rs, err := c.h.RoutesVia("vxlan6.2"); err != nil || len(rs) != 1 || rs[0] != c.peer.String() {
				t.Errorf("%s: routes via vxlan6.2 %v (%v), want only the peer's %s", c.h.Name, rs, err, c.peer)
			}
		}
		if rs, _ := h2.RoutesVia(testbed.Device); len(rs) != 0 {
			t.Errorf("%s: routes still through the old %s: %v", h2.Name, testbed.Device, rs)
		}
		if sf := h1.WaitSubnetFile(readyTimeout); !sf.VTEP.Equal(sf1.VTEP) || sf.Subnets.V6.String() != sf1.Subnets.V6.String() {
			t.Errorf("subnet file changed with the VNI: %+v, was %+v", sf, sf1)
		}
		t.Logf("figure: VNI 1 -> 2: pods on both hosts reach each other %.2fs after the config write", took.Seconds())

		start = time.Now()
		b.PutConfig(configWith(2, 4789, 0, net6))
		waitDevice(t, h1, "vxlan6.2", sf1.VTEP, 4789)
		waitDevice(t, h2, "vxlan6.2", sf2.VTEP, 4789)
		took = reachBoth(t, c1, c2, start)
		t.Logf("figure: port 8472 -> 4789: pods reach each other again %.2fs after the config write", took.Seconds())
		for _, h := range []*testbed.Host{h1, h2} {
			if h.Daemon().Exited() {
				t.Fatalf("vxlan6d on %s exited: %v", h.Name, h.Daemon().ExitErr())
			}
		}
	})

	t.Run("VNI changed while stopped", func(t *testing.T) {
		// h1's vxlan6.2 is vxlan6d's; h2's is marked as the operator's.
		h2.MustExec("ip", "link", "set", "dev", "vxlan6.2", "alias", "operator")
		for _, h := range []*testbed.Host{h1, h2} {
			if code := h.Daemon().Stop(); code != 0 {
				t.Errorf("%s: exit code on SIGTERM: %d", h.Name, code)
			}
		}
		b.PutConfig(configWith(3, 4789, 0, net6))
		h1.StartDaemon()
		h2.StartDaemon()
		h1.Daemon().WaitReady(readyTimeout)
		h2.Daemon().WaitReady(readyTimeout)
		waitDevice(t, h1, "vxlan6.3", sf1.VTEP, 4789)
		waitDevice(t, h2, "vxlan6.3", sf2.VTEP, 4789)
		if l, _ := h1.Link("vxlan6.2"); l != nil {
			t.Errorf("%s: the old vxlan6.2 stayed after a restart with VNI 3: %+v", h1.Name, l)
		}
		if l, _ := h2.Link("vxlan6.2"); l == nil || l.Alias != "operator" {
			t.Errorf("%s: the unmarked vxlan6.2 was removed or changed: %+v", h2.Name, l)
		}
		if rs, _ := h2.RoutesVia("vxlan6.2"); len(rs) != 0 {
			t.Errorf("%s: our routes still on the unmarked vxlan6.2: %v", h2.Name, rs)
		}
		if rs, _ := h2.RoutesVia("vxlan6.3"); len(rs) != 1 || rs[0] != sf1.Subnets.V6.String() {
			t.Errorf("%s: routes via vxlan6.3 %v, want only %s", h2.Name, rs, sf1.Subnets.V6)
		}
		reachBoth(t, c1, c2, time.Now())
	})
}
