package e2e

// Leases as the daemon handles them: etcd down at start, invalid configs,
// join races, hostile records, lost leases, resyncs, overlapping leases.

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/vxlan"
)

// TestStartsBeforeEtcd: a daemon started while etcd is down says so, retries,
// and becomes ready once etcd is up.
func TestStartsBeforeEtcd(t *testing.T) {
	t.Parallel()
	b := testbed.NewConfigured(t, testbed.Options{Hosts: 1}, false)
	b.StopEtcd()
	d := b.Hosts[0].StartDaemon()
	if err := d.WaitLog("etcd unreachable, retrying", readyTimeout); err != nil {
		t.Fatal(err)
	}
	b.StartEtcd()
	d.WaitReady(readyTimeout)
}

// TestInvalidConfigWaits: a daemon facing an invalid config in etcd says so
// and waits, writing nothing, and starts once the config is fixed.
func TestInvalidConfigWaits(t *testing.T) {
	t.Parallel()
	b := testbed.New(t, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	b.PutConfig(`{"EnableIPv6":true,"IPv6Network":"fd10:244::/48","IPv6SubnetLen":47}`)
	d := h.StartDaemon()
	if err := d.WaitLog("invalid network config", readyTimeout); err != nil {
		t.Fatal(err)
	}
	for _, k := range b.Keys() {
		if strings.HasPrefix(k, b.Registry().LeasesPrefix()) {
			t.Errorf("wrote %s with an invalid config", k)
		}
	}
	b.PutIPv6Config()
	d.WaitReady(40 * time.Second)
}

// fakeLease writes a lease the way a daemon would, for a VTEP that exists
// nowhere, through the lease package (one etcd transaction).
func fakeLease(t *testing.T, b *testbed.Bed, vtep string, ttl time.Duration) *lease.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg := b.Registry()
	cfg, err := reg.GetConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ip := net.ParseIP(vtep)
	l, err := reg.Acquire(ctx, cfg, lease.Attrs{VTEP: ip, VtepMAC: vxlan.MACFor(ip), NodeName: "fake-" + vtep}, ttl)
	if err != nil {
		t.Fatalf("fake lease %s: %v", vtep, err)
	}
	return l
}

// TestJoinRaceOneSubnetLeft: two daemons start at once with one subnet
// left; exactly one gets it, the other says why.
func TestJoinRaceOneSubnetLeft(t *testing.T) {
	t.Parallel()
	b := testbed.New(t, testbed.Options{Hosts: 2})
	b.PutConfig(`{"EnableIPv6":true,"IPv6Network":"fd10:244::/62","IPv6SubnetLen":64,"Backend":{"Type":"vxlan"}}`)
	for i := 1; i <= 3; i++ {
		fakeLease(t, b, fmt.Sprintf("2001:db8:99::%d", i), time.Hour)
	}
	h1, h2 := b.Hosts[0], b.Hosts[1]
	d1, d2 := h1.StartDaemon(), h2.StartDaemon()
	var winner, loser *testbed.Daemon
	if err := testbed.Eventually(readyTimeout, 100*time.Millisecond, func() error {
		r1, r2 := strings.Contains(d1.Log(), testbed.ReadyMsg), strings.Contains(d2.Log(), testbed.ReadyMsg)
		switch {
		case r1 && r2:
			t.Fatal("both daemons got a subnet out of one")
		case r1:
			winner, loser = d1, d2
		case r2:
			winner, loser = d2, d1
		default:
			return fmt.Errorf("nobody ready yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := loser.WaitLog("no free", 15*time.Second); err != nil {
		t.Fatalf("the loser does not say why: %v", err)
	}
	time.Sleep(2 * time.Second)
	if strings.Contains(loser.Log(), testbed.ReadyMsg) {
		t.Fatal("the loser became ready too")
	}
	if loser.Exited() || winner.Exited() {
		t.Errorf("a daemon exited: winner %v loser %v", winner.ExitErr(), loser.ExitErr())
	}
	if n := len(b.Leases()); n != 4 {
		t.Errorf("%d leases, want 4", n)
	}
	if _, err := loser.Host.SubnetConfig(); err == nil {
		t.Errorf("the loser wrote a subnet file")
	}
	for _, line := range strings.Split(loser.Log(), "\n") {
		if strings.Contains(line, "no free") {
			t.Logf("loser says: %s", line)
			break
		}
	}
}

// TestHostileLeasesIgnored: records that are not JSON, claim our VTEP,
// overlap a real peer, reuse its MAC, lie outside the network or have an
// IPv4 VTEP are never programmed and crash nothing, on the watch path and on
// the full-resync path (restart); `vxlan6d leases` still lists the real ones.
func TestHostileLeasesIgnored(t *testing.T) {
	t.Parallel()
	b := testbed.NewConfigured(t, testbed.Options{Hosts: 2}, false)
	startAll(t, b, nil)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	sf1, _ := h1.SubnetConfig()
	sf2, _ := h2.SubnetConfig()
	mac2 := vxlan.MACFor(sf2.VTEP).String()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := b.Registry().LeasesPrefix()
	hostile := map[string]string{
		p + "2001:db8:99::a": `{not json`,
		p + "2001:db8:99::b": fmt.Sprintf(`{"VTEP":%q,"IPv6Subnet":"fd10:244:0:77::/64","VtepMAC":"02:00:00:00:00:0b","NodeName":"liar"}`, sf1.VTEP),
		p + "2001:db8:99::c": `{"VTEP":"2001:db8:99::c","IPv6Subnet":"fd99:1::/64","VtepMAC":"02:00:00:00:00:0c","NodeName":"outside"}`,
		p + "2001:db8:99::d": fmt.Sprintf(`{"VTEP":"2001:db8:99::d","IPv6Subnet":%q,"VtepMAC":"02:00:00:00:00:0d","NodeName":"overlap"}`, sf2.Subnets.V6),
		p + "2001:db8:99::e": fmt.Sprintf(`{"VTEP":"2001:db8:99::e","IPv6Subnet":"fd10:244:0:78::/64","VtepMAC":%q,"NodeName":"mac-thief"}`, mac2),
		p + "192.0.2.1":      `{"VTEP":"192.0.2.1","IPv6Subnet":"fd10:244:0:79::/64","VtepMAC":"02:00:00:00:00:0f","NodeName":"v4"}`,
		p + "2001:db8:99::f": `{"VTEP":"2001:db8:99::f","IPv6Subnet":"fd10:244:0:80::/60","VtepMAC":"02:00:00:00:00:10","NodeName":"too-big"}`,
	}
	keys := make([]string, 0, len(hostile))
	for k := range hostile {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := b.Client().Put(ctx, k, hostile[k]); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		time.Sleep(time.Second) // let the watch deliver everything
		for _, h := range []*testbed.Host{h1, h2} {
			if h.Daemon().Exited() {
				t.Fatalf("%s: daemon died %s: %v", when, h.Name, h.Daemon().ExitErr())
			}
		}
		fdb, err := h1.FDB()
		if err != nil {
			t.Fatal(err)
		}
		rs, _ := h1.Routes()
		if len(fdb) != 1 || !net.ParseIP(fdb[0].Dst).Equal(sf2.VTEP) || len(rs) != 1 || rs[0] != sf2.Subnets.V6.String() {
			t.Errorf("%s: %s programs more than its one real peer: fdb %v routes %v", when, h1.Name, fdb, rs)
		}
		fdb, _ = h2.FDB()
		rs, _ = h2.Routes()
		if len(fdb) != 1 || !net.ParseIP(fdb[0].Dst).Equal(sf1.VTEP) || len(rs) != 1 || rs[0] != sf1.Subnets.V6.String() {
			t.Errorf("%s: %s programs more than its one real peer: fdb %v routes %v", when, h2.Name, fdb, rs)
		}
		c1.MustPing(t, c2.IPv6)
	}
	check("after watch events")
	// The operator's view: `vxlan6d leases` lists the real leases, says it
	// skipped invalid records, and is not stopped by them.
	out, errOut, code := h1.Run(60*time.Second, nil, append([]string{"leases"}, b.EtcdFlags()...)...)
	if code != 0 || !strings.Contains(out, sf1.VTEP.String()) || !strings.Contains(out, sf2.VTEP.String()) ||
		!strings.Contains(errOut, "invalid lease record(s) skipped") {
		t.Errorf("vxlan6d leases with hostile records: exit %d, want 0, both real leases and the skipped count:\n%s%s", code, out, errOut)
	}
	h1.Daemon().Stop()
	h1.StartDaemon()
	h1.Daemon().WaitReady(readyTimeout)
	check("after a restart (full list)")
	if !regexp.MustCompile(`(?i)(skipping lease record|lease ignored)`).MatchString(h1.Daemon().Log()) {
		t.Errorf("no warning about the hostile records in the log")
	}
}

// TestLeaseLostIsReacquired: a revoked lease is re-acquired with the same
// subnet (the daemon never exits over it, unlike flannel); if its subnet was
// taken meanwhile, the daemon takes another and rewrites its subnet file.
func TestLeaseLostIsReacquired(t *testing.T) {
	t.Parallel()
	b := testbed.NewConfigured(t, testbed.Options{Hosts: 2}, false)
	startAll(t, b, nil)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	sf1, _ := h1.SubnetConfig()
	l := b.LeaseFor(sf1.VTEP)
	if l == nil || l.EtcdLease == 0 {
		t.Fatalf("lease of %s: %+v", sf1.VTEP, l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := b.Client().Revoke(ctx, l.EtcdLease); err != nil {
		t.Fatal(err)
	}
	if err := testbed.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		nl := b.LeaseFor(sf1.VTEP)
		if nl == nil || nl.EtcdLease == l.EtcdLease {
			return fmt.Errorf("not re-acquired yet")
		}
		if nl.Subnets.V6.String() != sf1.Subnets.V6.String() {
			return fmt.Errorf("re-acquired %s, want the same %s", nl.Subnets.V6, sf1.Subnets.V6)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h2.WaitRoute(t, sf1.Subnets.V6, true, testbed.PeerTimeout)

	// Now steal the subnet in the same transaction that deletes the lease.
	l = b.LeaseFor(sf1.VTEP)
	thief := &lease.Lease{VTEP: net.ParseIP("2001:db8:99::77"), VtepMAC: vxlan.MACFor(net.ParseIP("2001:db8:99::77")), Subnets: ipnet.Subnets{V6: sf1.Subnets.V6}, NodeName: "thief"}
	v, err := lease.MarshalRecord(thief)
	if err != nil {
		t.Fatal(err)
	}
	reg := b.Registry()
	if _, err := b.Client().Txn(ctx).Then(
		clientv3.OpDelete(reg.LeaseKey(sf1.VTEP)),
		clientv3.OpPut(reg.LeaseKey(thief.VTEP), string(v)),
	).Commit(); err != nil {
		t.Fatal(err)
	}
	if err := testbed.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		sf, err := h1.SubnetConfig()
		if err != nil {
			return err
		}
		if sf.Subnets.V6.String() == sf1.Subnets.V6.String() {
			return fmt.Errorf("subnet file still has the stolen %s", sf.Subnets.V6)
		}
		if nl := b.LeaseFor(sf1.VTEP); nl == nil || nl.Subnets.V6.String() != sf.Subnets.V6.String() {
			return fmt.Errorf("lease %v does not match the subnet file's %s", nl, sf.Subnets.V6)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if h1.Daemon().Exited() {
		t.Fatalf("daemon exited over a lost lease: %v", h1.Daemon().ExitErr())
	}
	sf, _ := h1.SubnetConfig()
	h2.WaitRoute(t, sf.Subnets.V6, true, testbed.PeerTimeout)
	// The thief's record, skipped while it overlapped h1's own subnet, is
	// a valid peer once h1 moved off that subnet.
	h1.WaitRoute(t, sf1.Subnets.V6, true, testbed.PeerTimeout)
	h1.WaitFDB(t, thief.VTEP, true)
}

// TestPeriodicResyncHeals: with a short --resync-interval the daemon puts
// back a peer's route and fdb entry and the vxlan device itself after they
// were deleted by hand, and a resync during an etcd outage removes nothing.
func TestPeriodicResyncHeals(t *testing.T) {
	t.Parallel()
	b := testbed.NewConfigured(t, testbed.Options{Hosts: 2}, false)
	startAll(t, b, map[int][]string{0: {"--resync-interval", "2s"}})
	h1, h2 := b.Hosts[0], b.Hosts[1]
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	c1.MustPing(t, c2.IPv6)
	sf2, err := h2.SubnetConfig()
	if err != nil {
		t.Fatal(err)
	}
	h1.WaitFDB(t, sf2.VTEP, true)
	h1.WaitRoute(t, sf2.Subnets.V6, true, testbed.PeerTimeout)
	const healTimeout = 20 * time.Second // a few 2s intervals, with slack for a loaded machine

	t.Run("entries deleted by hand", func(t *testing.T) {
		fdb, err := h1.FDB()
		if err != nil {
			t.Fatal(err)
		}
		var mac string
		for _, e := range fdb {
			if ip := net.ParseIP(e.Dst); ip != nil && ip.Equal(sf2.VTEP) {
				mac = e.MAC
			}
		}
		if mac == "" {
			t.Fatalf("%s: no fdb entry to %s in %v", h1.Name, sf2.VTEP, fdb)
		}
		dp0, err := h1.DataPath()
		if err != nil {
			t.Fatal(err)
		}
		// The daemon is held while the entries go, so that a resync (every
		// 2 s) cannot put them back before the test saw them gone.
		pid := h1.Daemon().PID()
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		h1.MustExec("ip", "-6", "route", "del", sf2.Subnets.V6.String(), "dev", testbed.Device)
		// The peer's gateway is its subnet's network address, resolved by a permanent neighbour.
		h1.MustExec("ip", "-6", "neigh", "del", sf2.Subnets.V6.IP.String(), "dev", testbed.Device)
		h1.MustExec(testbed.BridgeCmd, "fdb", "del", mac, "dev", testbed.Device, "dst", sf2.VTEP.String())
		hasRoute, _ := h1.HasRoute(sf2.Subnets.V6)
		hasFDB, _ := h1.HasFDBDst(sf2.VTEP)
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if hasRoute {
			t.Fatalf("route to %s still there after deleting it", sf2.Subnets.V6)
		}
		if hasFDB {
			t.Fatalf("fdb entry to %s still there after deleting it", sf2.VTEP)
		}
		h1.WaitRoute(t, sf2.Subnets.V6, true, healTimeout)
		h1.WaitFDB(t, sf2.VTEP, true)
		if err := testbed.Eventually(healTimeout, 100*time.Millisecond, func() error {
			if dp, err := h1.DataPath(); err != nil || dp != dp0 {
				return fmt.Errorf("data path not restored (%v):\nbefore:\n%s\nnow:\n%s", err, dp0, dp)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		c1.MustPing(t, c2.IPv6)
		c2.MustPing(t, c1.IPv6)
		// The heal above was a resync that reused the device: its offloads
		// are logged once per device, not on every resync.
		if n := strings.Count(h1.Daemon().Log(), "vxlan device offloads"); n != 1 {
			t.Errorf("offloads logged %d times for one device, want once", n)
		}
	})

	t.Run("device deleted by hand", func(t *testing.T) {
		h1.MustExec("ip", "link", "del", testbed.Device)
		if err := h1.Daemon().WaitLog("vxlan device was gone and has been recreated", healTimeout); err != nil {
			t.Fatal(err)
		}
		h1.WaitRoute(t, sf2.Subnets.V6, true, healTimeout)
		h1.WaitFDB(t, sf2.VTEP, true)
		if _, err := h1.SubnetConfig(); err != nil {
			t.Fatalf("subnet file after the device came back: %v", err)
		}
		c1.MustPing(t, c2.IPv6)
		c2.MustPing(t, c1.IPv6)
	})

	t.Run("etcd outage", func(t *testing.T) {
		dp1, err := h1.DataPath()
		if err != nil {
			t.Fatal(err)
		}
		b.StopEtcd()
		defer b.StartEtcd()
		if err := h1.Daemon().WaitLog("periodic resync: cannot list leases", healTimeout); err != nil {
			t.Fatal(err)
		}
		// One more interval: a resync that follows a failed one must not flush either.
		time.Sleep(3 * time.Second)
		if dp, _ := h1.DataPath(); dp != dp1 {
			t.Errorf("data path changed during the etcd outage:\nbefore:\n%s\nafter:\n%s", dp1, dp)
		}
		c1.MustPing(t, c2.IPv6)
		b.StartEtcd()
		// Back to normal: hand-deleted entries heal again once etcd answers.
		h1.MustExec("ip", "-6", "route", "del", sf2.Subnets.V6.String(), "dev", testbed.Device)
		h1.WaitRoute(t, sf2.Subnets.V6, true, 45*time.Second)
		c1.MustPing(t, c2.IPv6)
	})
	if h1.Daemon().Exited() {
		t.Fatalf("daemon on %s exited: %v", h1.Name, h1.Daemon().ExitErr())
	}
}

// TestOlderLeaseTakesOverSubnet covers 1b8cd1d: when an older lease (lower
// CreateRevision) is rewritten onto a newer lease's subnet, the watch sends
// Added(older) before Removed(newer), because the earlier-created lease wins
// the overlap. The daemon must program the older one then, not refuse it
// for overlapping the newer one still programmed (which left neither routed
// until the next resync). The resync interval is long so only the watch path
// can pass this.
func TestOlderLeaseTakesOverSubnet(t *testing.T) {
	t.Parallel()
	b := testbed.NewConfigured(t, testbed.Options{Hosts: 1}, false)
	startAll(t, b, map[int][]string{0: {"--resync-interval", "10m"}})
	h1 := b.Hosts[0]
	sf1, err := h1.SubnetConfig()
	if err != nil {
		t.Fatal(err)
	}
	var subnets []*net.IPNet
	for _, s := range []string{"fd10:244:0:a1::/64", "fd10:244:0:b1::/64", "fd10:244:0:c1::/64"} {
		_, n, _ := net.ParseCIDR(s)
		if n.String() != sf1.Subnets.V6.String() {
			subnets = append(subnets, n)
		}
	}
	mk := func(vtep string, subnet *net.IPNet) *lease.Lease {
		ip := net.ParseIP(vtep)
		return &lease.Lease{VTEP: ip, VtepMAC: vxlan.MACFor(ip), Subnets: ipnet.Subnets{V6: subnet}, NodeName: "fake-" + vtep}
	}
	a, bl := mk("2001:db8:99::a1", subnets[0]), mk("2001:db8:99::b1", subnets[1])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reg := b.Registry()
	put := func(l *lease.Lease) {
		t.Helper()
		v, err := lease.MarshalRecord(l)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Client().Put(ctx, reg.LeaseKey(l.VTEP), string(v)); err != nil {
			t.Fatal(err)
		}
	}
	// A first: its key's CreateRevision is the older one.
	put(a)
	put(bl)
	for _, l := range []*lease.Lease{a, bl} {
		h1.WaitRoute(t, l.Subnets.V6, true, testbed.PeerTimeout)
		h1.WaitFDB(t, l.VTEP, true)
	}

	// Same key, so A keeps its CreateRevision and wins B's subnet.
	oldA := a.Subnets.V6
	a.Subnets.V6 = bl.Subnets.V6
	put(a)
	h1.WaitFDB(t, bl.VTEP, false)
	h1.WaitRoute(t, oldA, false, testbed.PeerTimeout)
	h1.WaitRoute(t, a.Subnets.V6, true, testbed.PeerTimeout)
	h1.WaitFDB(t, a.VTEP, true)
	// The route goes through a permanent neighbour for the subnet's
	// gateway; it must resolve to A's MAC, whose fdb entry tunnels to A.
	gw := a.Subnets.V6.IP.String()
	h1.WaitPresent(t, fmt.Sprintf("neighbour %s with A's MAC %s", gw, a.VtepMAC), true, testbed.PeerTimeout, func() (bool, error) {
		out, err := h1.Exec("ip", "-6", "neigh", "show", gw, "dev", testbed.Device, "nud", "permanent")
		if err != nil {
			return false, err
		}
		return strings.Contains(out, "lladdr "+a.VtepMAC.String()), nil
	})
	fdb, err := h1.FDB()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fdb {
		if e.MAC == a.VtepMAC.String() && !net.ParseIP(e.Dst).Equal(a.VTEP) {
			t.Errorf("%s: fdb entry for A's MAC %s tunnels to %s, want %s", h1.Name, e.MAC, e.Dst, a.VTEP)
		}
	}
	if rs, _ := h1.Routes(); len(rs) != 1 || rs[0] != a.Subnets.V6.String() {
		t.Errorf("%s: routes %v, want only %s", h1.Name, rs, a.Subnets.V6)
	}
	if h1.Daemon().Exited() {
		t.Fatalf("daemon on %s exited: %v", h1.Name, h1.Daemon().ExitErr())
	}
}
