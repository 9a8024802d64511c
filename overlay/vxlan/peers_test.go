package vxlan

import (
	"fmt"
	"maps"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/internal/testutil"
)

// tables is the device's peer state as the kernel reports it, in strings so
// that test failures read like `ip` output.
type tables struct {
	fdb    map[string]string // MAC → dst VTEP (peer-looking entries only)
	neigh  map[string]string // IP → MAC (permanent only)
	routes map[string]string // dst → gw (RouteProtocol only)
}

func readTables(t *testing.T, n ns.NetNS, dev *Device) tables {
	t.Helper()
	tb := tables{fdb: map[string]string{}, neigh: map[string]string{}, routes: map[string]string{}}
	do(t, n, func() error {
		fdb, err := netlink.NeighList(dev.Index, unix.AF_BRIDGE)
		if err != nil {
			return err
		}
		for _, e := range fdb {
			if e.IP != nil && !isZeroMAC(e.HardwareAddr) && e.HardwareAddr[0]&1 == 0 {
				if old, dup := tb.fdb[e.HardwareAddr.String()]; dup {
					t.Errorf("fdb %v has two dsts: %s and %v", e.HardwareAddr, old, e.IP)
				}
				tb.fdb[e.HardwareAddr.String()] = e.IP.String()
			}
		}
		for _, fam := range []int{unix.AF_INET6, unix.AF_INET} {
			ns, err := netlink.NeighList(dev.Index, fam)
			if err != nil {
				return err
			}
			for _, e := range ns {
				if e.State&netlink.NUD_PERMANENT != 0 {
					tb.neigh[e.IP.String()] = e.HardwareAddr.String()
				}
			}
			rs, err := netlink.RouteListFiltered(fam, &netlink.Route{LinkIndex: dev.Index, Protocol: RouteProtocol},
				netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
			if err != nil {
				return err
			}
			for _, r := range rs {
				if r.Flags&int(netlink.FLAG_ONLINK) == 0 {
					t.Errorf("route %v lacks onlink", r.Dst)
				}
				if old, dup := tb.routes[r.Dst.String()]; dup {
					t.Errorf("two routes to %v: via %s and via %v", r.Dst, old, r.Gw)
				}
				tb.routes[r.Dst.String()] = r.Gw.String()
			}
		}
		return nil
	})
	return tb
}

func expectTables(peers ...Peer) tables {
	tb := tables{fdb: map[string]string{}, neigh: map[string]string{}, routes: map[string]string{}}
	for _, p := range peers {
		tb.fdb[p.MAC.String()] = p.VTEP.String()
		for _, s := range []*net.IPNet{p.Subnets.V6, p.Subnets.V4} {
			if s != nil {
				tb.neigh[s.IP.String()] = p.MAC.String()
				tb.routes[s.String()] = s.IP.String()
			}
		}
	}
	return tb
}

func checkTables(t *testing.T, n ns.NetNS, dev *Device, peers ...Peer) {
	t.Helper()
	got, want := readTables(t, n, dev), expectTables(peers...)
	for _, c := range []struct {
		what      string
		got, want map[string]string
	}{{"fdb", got.fdb, want.fdb}, {"neighbours", got.neigh, want.neigh}, {"routes", got.routes, want.routes}} {
		if !maps.Equal(c.got, c.want) {
			t.Errorf("%s:\n got  %v\n want %v", c.what, c.got, c.want)
		}
	}
}

// testPeer i (< 40000): VTEP 2001:db8:2::i, subnets fd10:244:0:i::/64 and
// 10.(100+i/256).(i%256).0/24.
func testPeer(t testing.TB, i int, dual bool) Peer {
	vtep := net.ParseIP(fmt.Sprintf("2001:db8:2::%x", i))
	p := Peer{VTEP: vtep, MAC: MACFor(vtep), Subnets: ipnet.Subnets{V6: testutil.MustCIDR(fmt.Sprintf("fd10:244:%x:%x::/64", i>>16, i&0xffff))}}
	if dual {
		p.Subnets.V4 = testutil.MustCIDR(fmt.Sprintf("10.%d.%d.0/24", 100+i>>8, i&0xff))
	}
	return p
}

// watcher records route and neighbour notifications of one namespace that
// concern one device.
type watcher struct {
	routes chan netlink.RouteUpdate
	neighs chan netlink.NeighUpdate
	done   chan struct{}
	index  int
}

func watch(t *testing.T, n ns.NetNS, index int) *watcher {
	t.Helper()
	h, err := netns.GetFromPath(n.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	w := &watcher{routes: make(chan netlink.RouteUpdate, 1000), neighs: make(chan netlink.NeighUpdate, 1000),
		done: make(chan struct{}), index: index}
	if err := netlink.RouteSubscribeAt(h, w.routes, w.done); err != nil {
		t.Fatal(err)
	}
	if err := netlink.NeighSubscribeAt(h, w.neighs, w.done); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.stop)
	return w
}

func (w *watcher) stop() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
}

// events collects what arrives within d.
func (w *watcher) events(d time.Duration) []string {
	var out []string
	deadline := time.After(d)
	for {
		select {
		case u := <-w.routes:
			if u.LinkIndex == w.index {
				out = append(out, fmt.Sprintf("route type %d %v via %v proto %d", u.Type, u.Dst, u.Gw, u.Protocol))
			}
		case u := <-w.neighs:
			if u.LinkIndex == w.index {
				out = append(out, fmt.Sprintf("neigh type %d family %d %v lladdr %v state %#x", u.Type, u.Family, u.IP, u.HardwareAddr, u.State))
			}
		case <-deadline:
			return out
		}
	}
}

// foreign puts entries on the device that are not ours and must survive
// every Reconcile: an operator's route, a learned neighbour and the kind of
// all-zeros default fdb entry a vxlan with a remote gets.
func foreign(t *testing.T, n ns.NetNS, dev *Device) []string {
	t.Helper()
	cmds := [][]string{
		{"ip", "-6", "route", "add", "fd99::/64", "dev", dev.Name, "proto", "static"},
		{"ip", "-6", "neigh", "add", "fd99::5", "lladdr", "02:00:00:00:99:05", "dev", dev.Name, "nud", "reachable"},
		{bridgeCmd(t), "fdb", "append", "00:00:00:00:00:00", "dev", dev.Name, "dst", "2001:db8:99::1", "self", "permanent"},
	}
	for _, c := range cmds {
		if out, err := nsenter(n, c...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	return []string{"fd99::/64", "fd99::5", "00:00:00:00:00:00 dst 2001:db8:99::1", "fe80::/64"}
}

// bridgeCmd is iproute2's bridge: a CNI "bridge" plugin may come first in PATH.
func bridgeCmd(t *testing.T) string {
	for _, p := range []string{"/usr/sbin/bridge", "/sbin/bridge"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("iproute2 bridge command not found")
	return ""
}

func checkForeign(t *testing.T, n ns.NetNS, dev *Device, want []string) {
	t.Helper()
	var all strings.Builder
	for _, c := range [][]string{
		{"ip", "-6", "route", "show", "dev", dev.Name},
		{"ip", "-6", "neigh", "show", "dev", dev.Name},
		{bridgeCmd(t), "fdb", "show", "dev", dev.Name},
	} {
		out, err := nsenter(n, c...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
		all.Write(out)
	}
	for _, w := range want {
		if !strings.Contains(all.String(), w) {
			t.Errorf("foreign entry %q removed; device has:\n%s", w, all.String())
		}
	}
}

func deviceIn(t *testing.T, dual bool) (ns.NetNS, *Device, DeviceConfig) {
	t.Helper()
	n, ul := underlayNS(t, 1500)
	cfg := DeviceConfig{VNI: 1, Port: 8472, Local: net.ParseIP("2001:db8:f::1"), UnderlayIndex: ul}
	return n, ensureIn(t, n, cfg), cfg
}

func TestReconcile(t *testing.T) {
	testutil.RequireRoot(t)
	for _, dual := range []bool{false, true} {
		t.Run(fmt.Sprintf("dual=%v", dual), func(t *testing.T) {
			n, dev, cfg := deviceIn(t, dual)
			keep := foreign(t, n, dev)
			p1, p2, p3 := testPeer(t, 1, dual), testPeer(t, 2, dual), testPeer(t, 3, dual)

			if err := dev.Reconcile([]Peer{p1, p2, p3}); err != nil {
				t.Fatal(err)
			}
			checkTables(t, n, dev, p1, p2, p3)
			checkForeign(t, n, dev, keep)

			// A daemon restart: a fresh Device over the same kernel state,
			// the same peers in another order. Nothing may be rewritten.
			w := watch(t, n, dev.Index)
			restarted := ensureIn(t, n, cfg)
			if restarted.Index != dev.Index {
				t.Fatalf("restart recreated the device")
			}
			if err := restarted.Reconcile([]Peer{testPeer(t, 3, dual), testPeer(t, 1, dual), testPeer(t, 2, dual)}); err != nil {
				t.Fatal(err)
			}
			if ev := w.events(300 * time.Millisecond); len(ev) > 0 {
				t.Fatalf("unchanged peers were rewritten:\n%s", strings.Join(ev, "\n"))
			}
			checkTables(t, n, dev, p1, p2, p3)

			// Tampered state is repaired: a wrong gateway, a lost
			// neighbour, a second route of ours with another metric, a stale
			// fdb entry of an unknown MAC.
			for _, c := range [][]string{
				{"ip", "-6", "route", "replace", p1.Subnets.V6.String(), "via", "fd10:244:0:99::", "dev", dev.Name, "onlink", "proto", "118"},
				{"ip", "-6", "neigh", "del", p2.Subnets.V6.IP.String(), "dev", dev.Name},
				{"ip", "-6", "route", "add", p3.Subnets.V6.String(), "via", p3.Subnets.V6.IP.String(), "dev", dev.Name, "onlink", "proto", "118", "metric", "7"},
				{bridgeCmd(t), "fdb", "add", "02:00:00:00:00:99", "dev", dev.Name, "dst", "2001:db8:2::99", "self", "permanent"},
			} {
				if out, err := nsenter(n, c...).CombinedOutput(); err != nil {
					t.Fatalf("%v: %v\n%s", c, err, out)
				}
			}
			if err := restarted.Reconcile([]Peer{p1, p2, p3}); err != nil {
				t.Fatal(err)
			}
			checkTables(t, n, dev, p1, p2, p3)
			w.events(100 * time.Millisecond) // drain

			// p2 gone, p3's MAC changed, p1 moved to another VTEP (so a
			// new MAC too), p4 new.
			p3b := p3
			p3b.MAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x33}
			p1b := p1
			p1b.VTEP = net.ParseIP("2001:db8:2::101")
			p1b.MAC = MACFor(p1b.VTEP)
			p4 := testPeer(t, 4, dual)
			if err := restarted.Reconcile([]Peer{p1b, p3b, p4}); err != nil {
				t.Fatal(err)
			}
			checkTables(t, n, dev, p1b, p3b, p4)
			checkForeign(t, n, dev, keep)
			// The subscription works: that change was seen.
			if ev := w.events(200 * time.Millisecond); len(ev) == 0 {
				t.Fatal("watcher saw no events for a real change")
			}

			if err := restarted.Reconcile(nil); err != nil {
				t.Fatal(err)
			}
			checkTables(t, n, dev)
			checkForeign(t, n, dev, keep)
		})
	}
}

func TestReconcileRejectsBadSet(t *testing.T) {
	testutil.RequireRoot(t)
	n, dev, _ := deviceIn(t, true)
	p1, p2 := testPeer(t, 1, true), testPeer(t, 2, true)
	if err := dev.Reconcile([]Peer{p1, p2}); err != nil {
		t.Fatal(err)
	}
	sameSubnet := testPeer(t, 3, true)
	sameSubnet.Subnets.V6 = p1.Subnets.V6
	sameMAC := testPeer(t, 3, true)
	sameMAC.MAC = p2.MAC
	own := testPeer(t, 3, true)
	own.VTEP = dev.Local
	noSubnet := testPeer(t, 3, true)
	noSubnet.Subnets.V6 = nil
	v4as6 := testPeer(t, 3, true)
	v4as6.Subnets.V6 = testutil.MustCIDR("10.9.0.0/24")
	for _, tc := range []struct {
		name string
		bad  Peer
		want string
	}{
		{"shared subnet", sameSubnet, "share a subnet"},
		{"shared MAC", sameMAC, "share a MAC"},
		{"own VTEP", own, "own VTEP"},
		{"no IPv6 subnet", noSubnet, "no IPv6 subnet"},
		{"IPv4 as IPv6 subnet", v4as6, "10.9.0.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := dev.Reconcile([]Peer{p1, p2, tc.bad})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dev.Name) {
				t.Fatalf("err = %v, want mention of %q and %s", err, tc.want, dev.Name)
			}
			checkTables(t, n, dev, p1, p2)
		})
	}
}

func TestAddRemovePeer(t *testing.T) {
	testutil.RequireRoot(t)
	n, dev, _ := deviceIn(t, true)
	p1, p2 := testPeer(t, 1, true), testPeer(t, 2, true)
	for _, p := range []Peer{p1, p1, p2} { // twice: idempotent
		if err := dev.AddPeer(p); err != nil {
			t.Fatal(err)
		}
	}
	checkTables(t, n, dev, p1, p2)

	// Same VTEP, new MAC: the old MAC's fdb entry must not linger.
	p1m := p1
	p1m.MAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	if err := dev.AddPeer(p1m); err != nil {
		t.Fatal(err)
	}
	checkTables(t, n, dev, p1m, p2)

	// p1's subnets move to a new VTEP (node changed its address) before the
	// old lease is removed; removing the old one then must keep the route.
	moved := p1m
	moved.VTEP = net.ParseIP("2001:db8:2::aa")
	moved.MAC = MACFor(moved.VTEP)
	if err := dev.AddPeer(moved); err != nil {
		t.Fatal(err)
	}
	checkTables(t, n, dev, moved, p2)
	if err := dev.RemovePeer(p1m); err != nil {
		t.Fatal(err)
	}
	checkTables(t, n, dev, moved, p2)

	// Dual-stack peer drops its IPv4 subnet.
	p2v6 := p2
	p2v6.Subnets.V4 = nil
	if err := dev.AddPeer(p2v6); err != nil {
		t.Fatal(err)
	}
	checkTables(t, n, dev, moved, p2v6)

	for _, p := range []Peer{moved, p2v6, p2v6} { // twice: missing is fine
		if err := dev.RemovePeer(p); err != nil {
			t.Fatal(err)
		}
	}
	checkTables(t, n, dev)

	own := p1
	own.VTEP = dev.Local
	if err := dev.AddPeer(own); err == nil || !strings.Contains(err.Error(), "own local address") {
		t.Fatalf("AddPeer(own VTEP) = %v", err)
	}
	bad := p1
	bad.MAC = nil
	if err := dev.AddPeer(bad); err == nil || !strings.Contains(err.Error(), p1.VTEP.String()) {
		t.Fatalf("AddPeer(no MAC) = %v", err)
	}
	checkTables(t, n, dev)
}
