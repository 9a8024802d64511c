// Package e2e holds the end-to-end tests of vxlan6: several hosts as network
// namespaces on an IPv6-only underlay (internal/testbed), the real vxlan6d
// binary on each, the embedded etcd, containers attached by the real vxlan6
// plugin (through libcni, cnitool, Podman and containerd/nerdctl). They need
// root and skip without it.
package e2e

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/internal/testbed/topology"
	"github.com/vxlan6/vxlan6/overlay/lease"
)

// TestIPv6MeshJoinAndVTEPs: three IPv6-only hosts, each naming its VTEP a
// different way, two containers each, full mesh; then a fourth host (VTEP
// autodetected) joins and is reachable from every container within seconds,
// and a fifth (--iface <name>) joins too: every host routes to every other,
// all containers reach each other, and the underlay carries no IPv4.
func TestIPv6MeshJoinAndVTEPs(t *testing.T) {
	t.Parallel()
	b := newBed(t, 3, false)
	h1, h2, h3 := b.Hosts[0], b.Hosts[1], b.Hosts[2]

	// The annotation is written before h3's daemon starts, through the CLI
	// an operator would use.
	h3.Annotate(lease.AnnotationPublicIPv6 + "=" + h3.Addr2.String())
	how := map[*testbed.Host]string{h1: "--public-ipv6", h2: "--iface <address>", h3: "annotation"}
	b.StartDaemons(readyTimeout, func(h *testbed.Host) []string {
		switch h {
		case h1:
			return []string{"--public-ipv6", h.Addr2.String()}
		case h2:
			return []string{"--iface", h.Addr2.String()}
		}
		return nil
	})
	for _, h := range b.Hosts {
		// Addr2 is neither the lowest nor the first listed address (see
		// newBed): only the operator's choice can have picked it.
		checkVTEP(t, b, h, h.Addr2, how[h])
	}

	var cs []*testbed.Container
	for _, h := range b.Hosts {
		cs = append(cs, h.AddContainer(), h.AddContainer())
	}
	meshPing(t, targets(cs, false))

	// A fourth host joins, VTEP autodetected.
	h4 := b.AddHost()
	start := time.Now()
	h4.StartDaemon()
	h4.Daemon().WaitReady(readyTimeout)
	ready := time.Since(start)
	// Autodetection: the default-route interface's lowest usable address.
	checkVTEP(t, b, h4, h4.Addr1, "autodetected")
	c4 := h4.AddContainer()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var fails []string
	var slowest time.Duration
	// timed: the figure is how long the others took to reach the newcomer.
	reach := func(src string, dst net.IP, timed bool) {
		defer wg.Done()
		err := waitReach(src, dst, meshTimeout)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			fails = append(fails, fmt.Sprintf("%s -> %s: %v", src, dst, err))
		}
		if timed {
			slowest = max(slowest, time.Since(start))
		}
	}
	for _, c := range cs {
		wg.Add(2)
		go reach(c.Name, c4.IPv6, true)
		go reach(c4.Name, c.IPv6, false)
	}
	wg.Wait()
	if len(fails) > 0 {
		t.Fatalf("the 4th host is not reachable:\n  %s", strings.Join(fails, "\n  "))
	}
	t.Logf("figure: 4th host ready %.2fs after its daemon started; its container reachable from all %d containers %.2fs after start",
		ready.Seconds(), len(cs), slowest.Seconds())

	// A fifth host names its uplink by name: the lowest usable address there.
	h5 := b.AddHost()
	h5.StartDaemon("--iface", testbed.Uplink)
	h5.Daemon().WaitReady(readyTimeout)
	checkVTEP(t, b, h5, h5.Addr1, "--iface <name>")
	c5 := h5.AddContainer()
	for _, h := range b.Hosts {
		if err := testbed.Eventually(testbed.PeerTimeout, 100*time.Millisecond, func() error {
			rs, err := h.Routes()
			if err != nil {
				return err
			}
			if len(rs) != len(b.Hosts)-1 {
				return fmt.Errorf("%s routes %v, want %d peers", h.Name, rs, len(b.Hosts)-1)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	meshPing(t, targets(append(cs, c4, c5), false))
	// No IPv4 anywhere on the underlay.
	for _, h := range b.Hosts {
		if out := h.MustExec("ip", "-4", "addr", "show", "dev", testbed.Uplink); strings.TrimSpace(out) != "" {
			t.Errorf("%s uplink has IPv4: %s", h.Name, out)
		}
	}
}

// checkVTEP asserts the VTEP in the subnet file, the vxlan device's local
// address and the lease key are all want.
func checkVTEP(t *testing.T, b *testbed.Bed, h *testbed.Host, want net.IP, how string) {
	t.Helper()
	cfg := h.WaitSubnetFile(readyTimeout)
	if !cfg.VTEP.Equal(want) {
		t.Errorf("%s (%s): subnet file VTEP %s, want %s", h.Name, how, cfg.VTEP, want)
	}
	local, err := h.VXLANLocal()
	if err != nil {
		t.Fatal(err)
	}
	if !local.Equal(want) {
		t.Errorf("%s (%s): %s local %s, want %s", h.Name, how, testbed.Device, local, want)
	}
	if l := b.LeaseFor(want); l == nil {
		t.Errorf("%s (%s): no lease keyed by %s in etcd", h.Name, how, want)
	}
	t.Logf("%s: VTEP %s (%s)", h.Name, want, how)
}

// TestDualStack: IPv4 and IPv6 pods over the IPv6-only underlay, both
// families reachable across hosts; the subnet file's MTU is the device's, so
// full-size DF packets of both families cross.
func TestDualStack(t *testing.T) {
	t.Parallel()
	b := newBed(t, 3, true)
	b.StartDaemons(readyTimeout, nil)
	var cs []*testbed.Container
	for _, h := range b.Hosts {
		c := h.AddContainer()
		if c.IPv4 == nil {
			t.Fatalf("dual-stack container %s on %s got no IPv4 address", c.Name, h.Name)
		}
		cs = append(cs, c)
	}
	sf, err := b.Hosts[0].SubnetConfig()
	if err != nil || sf.Subnets.V4 == nil {
		t.Fatalf("subnet file lacks IPv4: %v %+v", err, sf)
	}
	t.Run("IPv6", func(t *testing.T) { meshPing(t, targets(cs, false)) })
	t.Run("IPv4", func(t *testing.T) { meshPing(t, targets(cs, true)) })
	// The underlay stays IPv6-only: no IPv4 address on any uplink.
	for _, h := range b.Hosts {
		if out := h.MustExec("ip", "-4", "-o", "addr", "show", "dev", testbed.Uplink); strings.TrimSpace(out) != "" {
			t.Errorf("%s: IPv4 on the underlay: %s", h.Name, out)
		}
	}
	// The subnet file's MTU is exactly the device's, so a full-size packet
	// with DF crosses the overlay (flannel advertised 20 bytes too many).
	out := b.Hosts[0].MustExec("ip", "-o", "link", "show", "dev", testbed.Device)
	if !strings.Contains(out, fmt.Sprintf(" mtu %d ", sf.MTU)) {
		t.Fatalf("subnet file MTU %d, device: %s", sf.MTU, out)
	}
	c1, c2 := cs[0], cs[1]
	for _, c := range []struct {
		dst     net.IP
		payload int // MTU minus IP and ICMP headers
	}{{c2.IPv6, sf.MTU - 48}, {c2.IPv4, sf.MTU - 28}} {
		fam := "-6"
		if c.dst.To4() != nil {
			fam = "-4"
		}
		if out, err := c1.Exec("ping", fam, "-n", "-q", "-c", "2", "-W", "2", "-M", "do", "-s", fmt.Sprint(c.payload), c.dst.String()); err != nil {
			t.Errorf("full-size (%d) DF ping to %s: %v\n%s", c.payload, c.dst, err, out)
		}
	}
}

// TestMTU: a DF ping of exactly the advertised MTU crosses hosts; one byte
// more fails at the sender (EMSGSIZE), and nothing on the way fragments.
func TestMTU(t *testing.T) {
	t.Parallel()
	b := newBed(t, 2, true)
	b.StartDaemons(readyTimeout, nil)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	cfg := h1.WaitSubnetFile(readyTimeout)
	mtu := cfg.MTU
	uplink := linkMTU(t, h1.Name, testbed.Uplink)
	if mtu > uplink-70 {
		t.Errorf("advertised MTU %d leaves less than the 70 bytes VXLAN over IPv6 needs under the underlay's %d", mtu, uplink)
	}
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	if got := linkMTU(t, c1.Name, "eth0"); got != mtu {
		t.Errorf("container %s eth0 MTU %d, want the advertised %d", c1.Name, got, mtu)
	}
	if got := linkMTU(t, h1.Name, testbed.Device); got != mtu {
		t.Errorf("%s MTU %d on %s, want the advertised %d", testbed.Device, got, h1.Name, mtu)
	}
	if err := waitReach(c1.Name, c2.IPv6, meshTimeout); err != nil {
		t.Fatal(err)
	}
	if err := waitReach(c1.Name, c2.IPv4, meshTimeout); err != nil {
		t.Fatal(err)
	}
	for _, fam := range []struct {
		name   string
		flag   string
		dst    net.IP
		header int // IP + ICMP header bytes
	}{
		{"IPv6", "-6", c2.IPv6, 40 + 8},
		{"IPv4", "-4", c2.IPv4, 20 + 8},
	} {
		t.Run(fam.name, func(t *testing.T) {
			// Fragments created anywhere on the way (container, sending host's
			// tunnel) or reassembled at the receiving host would show here.
			watch := []struct{ ns, key string }{
				{c1.Name, "Ip6FragCreates"}, {h1.Name, "Ip6FragCreates"}, {h2.Name, "Ip6ReasmReqds"},
			}
			before := make([]int64, len(watch))
			for i, w := range watch {
				before[i] = snmp6(t, w.ns, w.key)
			}
			size := mtu - fam.header
			ping := func(size int) (string, error) {
				return testbed.ExecTimeout(20*time.Second, c1.Name, "ping", fam.flag, "-n", "-c", "3", "-i", "0.2", "-W", "2",
					"-M", "do", "-s", fmt.Sprint(size), fam.dst.String())
			}
			if out, err := ping(size); err != nil {
				t.Errorf("DF ping with %d-byte payload (a %d-byte packet = MTU) failed: %v\n%s", size, mtu, err, out)
			}
			out, err := ping(size + 1)
			if err == nil {
				t.Errorf("DF ping with %d-byte payload (MTU+1) succeeded: something fragmented or the MTU is larger than advertised\n%s", size+1, out)
			}
			for i, w := range watch {
				if after := snmp6(t, w.ns, w.key); after != before[i] {
					t.Errorf("%s %s went %d -> %d: the underlay fragmented overlay packets", w.ns, w.key, before[i], after)
				}
			}
			t.Logf("MTU %d: %d-byte DF ping passes; %d bytes rejected at the sender (%s)", mtu, size, size+1, firstLine(out))
		})
	}
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "too long") || strings.Contains(l, "mtu") {
			return strings.TrimSpace(l)
		}
	}
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i > 0 {
		return s[:i]
	}
	return s
}

// TestDaemonRestartUnderTraffic: a clean restart (SIGTERM, exit 0) on one host
// and a crash (SIGKILL) + restart on the other while containers ping across
// them: no echo is lost, the subnet stays, and both hosts' data paths are the
// same afterwards.
func TestDaemonRestartUnderTraffic(t *testing.T) {
	t.Parallel()
	b := newBed(t, 2, false)
	b.StartDaemons(readyTimeout, nil)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	if err := waitReach(c1.Name, c2.IPv6, meshTimeout); err != nil {
		t.Fatal(err)
	}
	sf1, err := h1.SubnetConfig()
	if err != nil {
		t.Fatal(err)
	}
	dp1, err := h1.DataPath()
	if err != nil {
		t.Fatal(err)
	}
	dp2, err := h2.DataPath()
	if err != nil {
		t.Fatal(err)
	}
	tr := c1.StartPing(c2.IPv6, 50) // 10 s at 5/s
	tr2 := c2.StartPing(c1.IPv6, 50)
	time.Sleep(time.Second)

	if code := h1.Daemon().Stop(); code != 0 {
		t.Errorf("vxlan6d on %s exited %d on SIGTERM", h1.Name, code)
	}
	time.Sleep(time.Second)
	h1.StartDaemon().WaitReady(readyTimeout)

	h2.Daemon().Kill()
	time.Sleep(time.Second)
	h2.StartDaemon().WaitReady(readyTimeout)

	for _, x := range []*testbed.Traffic{tr, tr2} {
		if out, err := x.Wait(); err != nil || !strings.Contains(out, " 0% packet loss") {
			t.Errorf("echoes lost while daemons restarted: %v\n%s", err, out)
		} else {
			t.Logf("no loss: %s", lossLine(out))
		}
	}
	if sf, err := h1.SubnetConfig(); err != nil || sf.Subnets.V6.String() != sf1.Subnets.V6.String() {
		t.Errorf("subnet changed across restart: %s -> %v (%v)", sf1.Subnets.V6, sf, err)
	}
	for _, c := range []struct {
		h      *testbed.Host
		before string
	}{{h1, dp1}, {h2, dp2}} {
		after, err := c.h.DataPath()
		if err != nil {
			t.Fatal(err)
		}
		if after != c.before {
			t.Errorf("%s data path changed across restarts:\nbefore:\n%s\nafter:\n%s", c.h.Name, c.before, after)
		}
	}
}

func lossLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "packet loss") {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(out)
}

// TestEtcdOutageUnderTraffic: etcd goes away for longer than a renewal
// period while containers ping across hosts: no echo is lost, the data path
// stays as it is, the daemons keep running, and once etcd is back they see a
// host that joins (routes on both, reachable both ways).
func TestEtcdOutageUnderTraffic(t *testing.T) {
	t.Parallel()
	b := newBed(t, 3, false)
	h1, h2, h3 := b.Hosts[0], b.Hosts[1], b.Hosts[2]
	ttl := 6 * time.Second
	flags := []string{"--lease-ttl", ttl.String()}
	for _, h := range []*testbed.Host{h1, h2} {
		h.StartDaemon(flags...)
	}
	for _, h := range []*testbed.Host{h1, h2} {
		h.Daemon().WaitReady(readyTimeout)
	}
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	if err := waitReach(c1.Name, c2.IPv6, meshTimeout); err != nil {
		t.Fatal(err)
	}
	dp1, err := h1.DataPath()
	if err != nil {
		t.Fatal(err)
	}
	outage := 2 * ttl / 3 // longer than a renewal period, shorter than the TTL
	tr := c1.StartPing(c2.IPv6, int((outage+4*time.Second)/(200*time.Millisecond)))
	time.Sleep(time.Second)
	b.StopEtcd()
	t.Logf("etcd stopped for %s", outage)
	time.Sleep(outage)
	if dp, _ := h1.DataPath(); dp != dp1 {
		t.Errorf("data path changed while etcd was away:\nbefore:\n%s\nafter:\n%s", dp1, dp)
	}
	for _, h := range []*testbed.Host{h1, h2} {
		if h.Daemon().Exited() {
			t.Errorf("vxlan6d on %s exited while etcd was away: %v", h.Name, h.Daemon().ExitErr())
		}
	}
	b.StartEtcd()
	if out, err := tr.Wait(); err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Errorf("echoes lost while etcd was away: %v\n%s", err, out)
	} else {
		t.Logf("no loss: %s", lossLine(out))
	}
	// The daemons watch again: a host that joins now reaches the others.
	h3.StartDaemon(flags...)
	h3.Daemon().WaitReady(readyTimeout)
	sf3 := h3.WaitSubnetFile(readyTimeout)
	h1.WaitRoute(t, sf3.Subnets.V6, true, 45*time.Second)
	h2.WaitRoute(t, sf3.Subnets.V6, true, 45*time.Second)
	c3 := h3.AddContainer()
	for _, c := range []*testbed.Container{c1, c2} {
		if err := waitReach(c.Name, c3.IPv6, meshTimeout); err != nil {
			t.Errorf("after etcd came back: %v", err)
		}
	}
	c3.MustPing(t, c1.IPv6)
	// And the old leases survived the outage.
	for _, h := range []*testbed.Host{h1, h2} {
		cfg := h.WaitSubnetFile(readyTimeout)
		if b.LeaseFor(cfg.VTEP) == nil {
			t.Errorf("%s: lease for VTEP %s gone after the outage", h.Name, cfg.VTEP)
		}
	}
}

// TestHostRemovedRoutesExpire: a host vanishes (daemon killed, uplink cut);
// after the lease TTL its fdb entry, routes and lease are gone from the
// others, while traffic between the survivors never stops. When it comes
// back it gets the same subnet (the hint of its subnet file) and the others
// route to it again.
func TestHostRemovedRoutesExpire(t *testing.T) {
	t.Parallel()
	b := newBed(t, 3, false)
	ttl := 4 * time.Second
	b.StartDaemons(readyTimeout, func(*testbed.Host) []string { return []string{"--lease-ttl", ttl.String()} })
	h1, h2, h3 := b.Hosts[0], b.Hosts[1], b.Hosts[2]
	c1, c2, c3 := h1.AddContainer(), h2.AddContainer(), h3.AddContainer()
	meshPing(t, targets([]*testbed.Container{c1, c2, c3}, false))
	cfg3 := h3.WaitSubnetFile(readyTimeout)
	for _, h := range []*testbed.Host{h1, h2} {
		if ok, err := h.HasRoute(cfg3.Subnets.V6); err != nil || !ok {
			t.Fatalf("%s has no route to %s before the removal (%v)", h.Name, cfg3.Subnets.V6, err)
		}
	}

	tr := c1.StartPing(c2.IPv6, int((ttl+8*time.Second)/(200*time.Millisecond)))
	// Power cut: no graceful anything.
	h3.Daemon().Kill()
	b.MustExec(b.Switch, "ip", "link", "set", topology.SwitchPort(h3.ID), "down")
	gone := time.Now()
	limit := ttl + 15*time.Second
	var wg sync.WaitGroup
	for _, h := range []*testbed.Host{h1, h2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := testbed.Eventually(limit, 100*time.Millisecond, func() error {
				r, err := h.HasRoute(cfg3.Subnets.V6)
				if err != nil {
					return err
				}
				f, err := h.HasFDBDst(cfg3.VTEP)
				if err != nil {
					return err
				}
				if r || f {
					return fmt.Errorf("%s still has route=%v fdb=%v for removed %s", h.Name, r, f, h3.Name)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
				return
			}
			t.Logf("figure: %s dropped %s's route and fdb %.1fs after it vanished (lease TTL %s)", h.Name, h3.Name, time.Since(gone).Seconds(), ttl)
		}()
	}
	wg.Wait()
	if l := b.LeaseFor(cfg3.VTEP); l != nil {
		t.Errorf("lease of removed %s still listed: %+v", h3.Name, *l)
	}
	if out, err := tr.Wait(); err != nil {
		t.Errorf("survivors lost echoes while %s went away: %v\n%s", h3.Name, err, out)
	}

	b.MustExec(b.Switch, "ip", "link", "set", topology.SwitchPort(h3.ID), "up")
	h3.StartDaemon("--lease-ttl", ttl.String()).WaitReady(readyTimeout)
	if sf, err := h3.SubnetConfig(); err != nil || sf.Subnets.V6.String() != cfg3.Subnets.V6.String() {
		t.Errorf("subnet after expiry and restart %v (%v), want %s", sf, err, cfg3.Subnets.V6)
	}
	for _, h := range []*testbed.Host{h1, h2} {
		h.WaitRoute(t, cfg3.Subnets.V6, true, testbed.PeerTimeout)
	}
}
