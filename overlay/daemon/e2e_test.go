package daemon_test

// End-to-end tests of vxlan6d: real daemons (the built binary) in network
// namespaces on an IPv6-only underlay (internal/testbed), the embedded etcd,
// containers attached by the real vxlan6 plugin. Each needs root.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/vxlan"
)

const (
	readyTimeout = 30 * time.Second
	peerTimeout  = 15 * time.Second
)

func newBed(t *testing.T, hosts int, dual bool) *testbed.Bed {
	t.Helper()
	b := testbed.New(t, testbed.Options{Hosts: hosts})
	b.PutConfig(testbed.ConfigJSON(dual))
	return b
}

// startAll starts a daemon on every host and waits until each is ready;
// extra holds per-host flags by 0-based host index (may be nil).
func startAll(t *testing.T, b *testbed.Bed, extra map[int][]string) {
	t.Helper()
	b.StartDaemons(readyTimeout, func(h *testbed.Host) []string { return extra[h.ID-1] })
}

// vtepOf is the VTEP a host's daemon wrote into its subnet file.
func vtepOf(t *testing.T, h *testbed.Host) net.IP {
	t.Helper()
	c, err := h.SubnetConfig()
	if err != nil {
		t.Fatal(err)
	}
	return c.VTEP
}

func waitFDB(t *testing.T, h *testbed.Host, vtep net.IP, want bool) {
	t.Helper()
	waitPresent(t, h, fmt.Sprintf("fdb entry to %s", vtep), want, peerTimeout, func() (bool, error) { return h.HasFDBDst(vtep) })
}

func waitRoute(t *testing.T, h *testbed.Host, subnet *net.IPNet, want bool, timeout time.Duration) {
	t.Helper()
	waitPresent(t, h, fmt.Sprintf("route to %s", subnet), want, timeout, func() (bool, error) { return h.HasRoute(subnet) })
}

// waitPresent waits until has reports want for what on h, or fails the test.
func waitPresent(t *testing.T, h *testbed.Host, what string, want bool, timeout time.Duration, has func() (bool, error)) {
	t.Helper()
	err := testbed.Eventually(timeout, 50*time.Millisecond, func() error {
		got, err := has()
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s: %s present=%v, want %v", h.Name, what, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mustPing(t *testing.T, c *testbed.Container, dst net.IP) {
	t.Helper()
	if out, err := c.Ping(dst, 3); err != nil {
		t.Fatalf("ping %s from %s (%s): %v\n%s", dst, c.Name, c.Host.Name, err, out)
	}
}

// TestTwoAddressTrap is the bug vxlan6 exists for: an uplink with two global
// IPv6 addresses, the operator names the one the kernel does NOT list first
// (by flag, by --iface <address>, by annotation), in both address orders.
// The vxlan link's local, the lease key and a peer's fdb must all use it.
func TestTwoAddressTrap(t *testing.T) {
	for _, reverse := range []bool{false, true} {
		for _, how := range []string{"flag", "iface-address", "annotation"} {
			t.Run(fmt.Sprintf("%s/reverse=%v", how, reverse), func(t *testing.T) {
				b := testbed.New(t, testbed.Options{Hosts: 2, ReverseAddrOrder: reverse})
				b.PutIPv6Config()
				h1, h2 := b.Hosts[0], b.Hosts[1]
				want, other := h1.NotFirst(), h1.FirstListed()
				listed, err := h1.ListedAddrs()
				if err != nil {
					t.Fatal(err)
				}
				if len(listed) != 2 || !listed[0].Equal(other) {
					t.Fatalf("the kernel lists %v; the test assumes %s first", listed, other)
				}
				var args []string
				metrics := how == "flag" && !reverse
				switch how {
				case "flag":
					args = []string{"--public-ipv6", want.String()}
				case "iface-address":
					args = []string{"--iface", want.String()}
				case "annotation":
					h1.Annotate(lease.AnnotationPublicIPv6 + "=" + want.String())
				}
				if metrics {
					args = append(args, "--metrics-addr", "[::1]:9473", "--healthz-addr", "[::1]:9473")
				}
				h1.StartDaemon(args...)
				h2.StartDaemon()
				h1.Daemon().WaitReady(readyTimeout)
				h2.Daemon().WaitReady(readyTimeout)

				local, err := h1.VXLANLocal()
				if err != nil {
					t.Fatal(err)
				}
				if !local.Equal(want) {
					t.Fatalf("%s local is %s, want the named %s", testbed.Device, local, want)
				}
				l := b.LeaseFor(want)
				if l == nil {
					t.Fatalf("no lease keyed by %s; leases: %v", want, b.Leases())
				}
				if l.NodeName != h1.Name {
					t.Errorf("lease of %s belongs to %q, want %q", want, l.NodeName, h1.Name)
				}
				if b.LeaseFor(other) != nil {
					t.Errorf("a lease is keyed by the unnamed address %s", other)
				}
				if v := vtepOf(t, h1); !v.Equal(want) {
					t.Errorf("subnet file VTEP %s, want %s", v, want)
				}
				waitFDB(t, h2, want, true)
				if has, _ := h2.HasFDBDst(other); has {
					t.Errorf("peer %s tunnels to the unnamed address %s", h2.Name, other)
				}
				if !strings.Contains(h1.Daemon().Log(), "operatorChosen=true") {
					t.Errorf("the log does not say the VTEP was the operator's choice")
				}
				if metrics {
					out, err := h1.Exec("curl", "-sf", "http://[::1]:9473/metrics")
					if err != nil {
						t.Fatalf("metrics: %v", err)
					}
					wantLine := fmt.Sprintf(`vxlan6d_vtep_info{address=%q,local=%q,source="flag --public-ipv6"`, want.String(), want.String())
					if !strings.Contains(out, wantLine) || !strings.Contains(out, "vxlan6d_peers 1") {
						t.Errorf("metrics lack %s / peers 1:\n%s", wantLine, out)
					}
					if out, err := h1.Exec("curl", "-sf", "http://[::1]:9473/healthz"); err != nil || !strings.Contains(out, "ok") {
						t.Errorf("healthz: %v %s", err, out)
					}
				}
			})
		}
	}
}

// TestAnnotationMovesVTEP: changing the public-ipv6 annotation of a running
// node moves its VTEP: new local, lease re-keyed with the same subnet, the
// peer's fdb follows.
func TestAnnotationMovesVTEP(t *testing.T) {
	b := newBed(t, 2, false)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	from, to := h1.NotFirst(), h1.FirstListed()
	h1.Annotate(lease.AnnotationPublicIPv6Flannel + "=" + from.String())
	startAll(t, b, nil)
	if local, _ := h1.VXLANLocal(); !local.Equal(from) {
		t.Fatalf("local %s, want %s from the flannel-alias annotation", local, from)
	}
	before := b.LeaseFor(from)
	if before == nil {
		t.Fatal("no lease for the annotated VTEP")
	}
	waitFDB(t, h2, from, true)
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	mustPing(t, c1, c2.IPv6)

	h1.Annotate(lease.AnnotationPublicIPv6Flannel + "=" + to.String())
	if err := testbed.Eventually(peerTimeout, 100*time.Millisecond, func() error {
		local, err := h1.VXLANLocal()
		if err != nil {
			return err
		}
		if !local.Equal(to) {
			return fmt.Errorf("local still %s", local)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := testbed.Eventually(peerTimeout, 100*time.Millisecond, func() error {
		after := b.LeaseFor(to)
		if after == nil || b.LeaseFor(from) != nil {
			return fmt.Errorf("lease not re-keyed from %s to %s: %v", from, to, b.Leases())
		}
		if after.IPv6Subnet.String() != before.IPv6Subnet.String() {
			return fmt.Errorf("subnet changed on move: %s -> %s", before.IPv6Subnet, after.IPv6Subnet)
		}
		if v := vtepOf(t, h1); !v.Equal(to) {
			return fmt.Errorf("subnet file VTEP %s", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	peerFollowsMove(t, h2, from, to, c1, c2)
}

// peerFollowsMove waits until peer tunnels to the moved host's new VTEP
// only, then checks the containers on both reach each other.
func peerFollowsMove(t *testing.T, peer *testbed.Host, from, to net.IP, moved, other *testbed.Container) {
	t.Helper()
	waitFDB(t, peer, to, true)
	waitFDB(t, peer, from, false)
	mustPing(t, moved, other.IPv6)
	mustPing(t, other, moved.IPv6)
}

// TestFailedMoveKeepsPeers: the annotation names a new VTEP but etcd refuses
// writes (NOSPACE alarm), so the lease cannot be re-keyed. Until it can, the
// data path must stay as it is (peers still tunnel to the old VTEP and MAC),
// and the move completes once etcd accepts writes again.
func TestFailedMoveKeepsPeers(t *testing.T) {
	b := newBed(t, 2, false)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	from, to := h1.NotFirst(), h1.FirstListed()
	h1.Annotate(lease.AnnotationPublicIPv6 + "=" + from.String())
	startAll(t, b, nil)
	sf2, _ := h2.SubnetConfig()
	waitRoute(t, h1, sf2.SubnetV6, true, peerTimeout)
	waitFDB(t, h2, from, true)
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	mustPing(t, c1, c2.IPv6)
	dp1, _ := h1.DataPath()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	members, err := b.Client().MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	alarm := func(action pb.AlarmRequest_AlarmAction) {
		t.Helper()
		mc := pb.NewMaintenanceClient(b.Client().ActiveConnection())
		if _, err := mc.Alarm(ctx, &pb.AlarmRequest{Action: action, MemberID: members.Members[0].ID, Alarm: pb.AlarmType_NOSPACE}); err != nil {
			t.Fatal(err)
		}
	}
	// Hold the daemon while the annotation changes and etcd stops taking
	// writes, so that it sees the change only once the move must fail.
	d1 := h1.Daemon()
	if err := syscall.Kill(d1.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	h1.Annotate(lease.AnnotationPublicIPv6 + "=" + to.String())
	alarm(pb.AlarmRequest_ACTIVATE)
	if err := syscall.Kill(d1.PID(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := d1.WaitLog("move lease failed", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if local, _ := h1.VXLANLocal(); !local.Equal(from) {
		t.Errorf("local %s while the lease could not move, want still %s", local, from)
	}
	if dp, _ := h1.DataPath(); dp != dp1 {
		t.Errorf("data path changed while the lease could not move:\nbefore:\n%s\nafter:\n%s", dp1, dp)
	}
	mustPing(t, c1, c2.IPv6)
	mustPing(t, c2, c1.IPv6)

	alarm(pb.AlarmRequest_DEACTIVATE)
	if err := testbed.Eventually(60*time.Second, 200*time.Millisecond, func() error {
		if b.LeaseFor(to) == nil || b.LeaseFor(from) != nil {
			return fmt.Errorf("lease not re-keyed from %s to %s: %v", from, to, b.Leases())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFDB(t, h2, to, true)
	// The daemon re-keys the lease first and then recreates its device
	// with the new local, so the device may briefly be gone here.
	if err := testbed.Eventually(peerTimeout, 100*time.Millisecond, func() error {
		if local, err := h1.VXLANLocal(); err != nil || !local.Equal(to) {
			return fmt.Errorf("local %s after the move (%v), want %s", local, err, to)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	waitRoute(t, h1, sf2.SubnetV6, true, peerTimeout)
	mustPing(t, c1, c2.IPv6)
	mustPing(t, c2, c1.IPv6)
}

// TestPingAcrossHosts: three hosts on an IPv6-only underlay, containers made
// by the plugin reach each other across hosts (full mesh), and a fourth host
// that joins later is reachable too.
func TestPingAcrossHosts(t *testing.T) {
	b := newBed(t, 3, false)
	// Mix the ways of naming the VTEP: flag, autodetect, --iface name.
	startAll(t, b, map[int][]string{0: {"--public-ipv6", b.Hosts[0].NotFirst().String()}, 2: {"--iface", testbed.Uplink}})
	var cs []*testbed.Container
	for _, h := range b.Hosts {
		cs = append(cs, h.AddContainer())
	}
	cs = append(cs, b.Hosts[0].AddContainer()) // two on host 1
	h4 := b.AddHost()
	h4.StartDaemon()
	h4.Daemon().WaitReady(readyTimeout)
	cs = append(cs, h4.AddContainer())
	for _, h := range b.Hosts {
		if err := testbed.Eventually(peerTimeout, 100*time.Millisecond, func() error {
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
	for _, a := range cs {
		for _, z := range cs {
			if a != z {
				mustPing(t, a, z.IPv6)
			}
		}
	}
	// No IPv4 anywhere on the underlay.
	for _, h := range b.Hosts {
		if out := h.MustExec("ip", "-4", "addr", "show", "dev", testbed.Uplink); strings.TrimSpace(out) != "" {
			t.Errorf("%s uplink has IPv4: %s", h.Name, out)
		}
	}
}

// TestDualStackPing: IPv4 and IPv6 pod traffic over the one IPv6 underlay device.
func TestDualStackPing(t *testing.T) {
	b := newBed(t, 2, true)
	startAll(t, b, nil)
	c1, c2 := b.Hosts[0].AddContainer(), b.Hosts[1].AddContainer()
	if c1.IPv4 == nil || c2.IPv4 == nil {
		t.Fatalf("dual-stack containers without IPv4: %v %v", c1.IPv4, c2.IPv4)
	}
	sf, err := b.Hosts[0].SubnetConfig()
	if err != nil || sf.SubnetV4 == nil {
		t.Fatalf("subnet file lacks IPv4: %v %+v", err, sf)
	}
	for _, pair := range [][2]*testbed.Container{{c1, c2}, {c2, c1}} {
		mustPing(t, pair[0], pair[1].IPv6)
		mustPing(t, pair[0], pair[1].IPv4)
	}
	// The subnet file's MTU is exactly the device's, so a full-size packet
	// with DF crosses the overlay (flannel advertised 20 bytes too many).
	out := b.Hosts[0].MustExec("ip", "-o", "link", "show", "dev", testbed.Device)
	if !strings.Contains(out, fmt.Sprintf(" mtu %d ", sf.MTU)) {
		t.Fatalf("subnet file MTU %d, device: %s", sf.MTU, out)
	}
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

// TestRestartKeepsTraffic: restarting a daemon under traffic loses nothing,
// keeps the subnet, and leaves every peer entry as it was.
func TestRestartKeepsTraffic(t *testing.T) {
	b := newBed(t, 2, false)
	startAll(t, b, nil)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	mustPing(t, c1, c2.IPv6)
	sf1, _ := h1.SubnetConfig()
	dp1, err := h1.DataPath()
	if err != nil {
		t.Fatal(err)
	}
	dp2, _ := h2.DataPath()

	tr := c1.StartPing(c2.IPv6, 25) // 5 s
	time.Sleep(time.Second)
	if code := h1.Daemon().Stop(); code != 0 {
		t.Errorf("daemon exit code on SIGTERM: %d", code)
	}
	h1.StartDaemon()
	h1.Daemon().WaitReady(readyTimeout)
	if out, perr := tr.Wait(); perr != nil || !strings.Contains(out, " 0% packet loss") {
		t.Errorf("ping across the restart lost packets: %v\n%s", perr, out)
	}
	sf1b, _ := h1.SubnetConfig()
	if sf1b.SubnetV6.String() != sf1.SubnetV6.String() {
		t.Errorf("subnet changed across restart: %s -> %s", sf1.SubnetV6, sf1b.SubnetV6)
	}
	if dp, _ := h1.DataPath(); dp != dp1 {
		t.Errorf("restarted host's peers changed:\nbefore:\n%s\nafter:\n%s", dp1, dp)
	}
	if dp, _ := h2.DataPath(); dp != dp2 {
		t.Errorf("peer host's entries changed:\nbefore:\n%s\nafter:\n%s", dp2, dp)
	}
}

// TestEtcdOutageKeepsTraffic: while etcd is away the data path stays as it
// is and traffic flows; once it is back the daemons resync and see a new node.
func TestEtcdOutageKeepsTraffic(t *testing.T) {
	b := newBed(t, 2, false)
	startAll(t, b, nil)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	mustPing(t, c1, c2.IPv6)
	dp1, _ := h1.DataPath()

	tr := c1.StartPing(c2.IPv6, 30) // 6 s
	time.Sleep(500 * time.Millisecond)
	b.StopEtcd()
	time.Sleep(4 * time.Second)
	if dp, _ := h1.DataPath(); dp != dp1 {
		t.Errorf("data path changed while etcd was away:\nbefore:\n%s\nafter:\n%s", dp1, dp)
	}
	b.StartEtcd()
	if out, perr := tr.Wait(); perr != nil || !strings.Contains(out, " 0% packet loss") {
		t.Errorf("ping during the etcd outage lost packets: %v\n%s", perr, out)
	}
	for _, h := range b.Hosts {
		if h.Daemon().Exited() {
			t.Fatalf("daemon on %s exited during the outage: %v", h.Name, h.Daemon().ExitErr())
		}
	}
	// The watches work again: a new node shows up on both.
	h3 := b.AddHost()
	h3.StartDaemon()
	h3.Daemon().WaitReady(readyTimeout)
	sf3, _ := h3.SubnetConfig()
	waitRoute(t, h1, sf3.SubnetV6, true, 45*time.Second)
	waitRoute(t, h2, sf3.SubnetV6, true, 45*time.Second)
	mustPing(t, h3.AddContainer(), c1.IPv6)
}

// TestStartsBeforeEtcd: a daemon started while etcd is down says so, retries,
// and becomes ready once etcd is up.
func TestStartsBeforeEtcd(t *testing.T) {
	b := newBed(t, 1, false)
	b.StopEtcd()
	d := b.Hosts[0].StartDaemon()
	if err := d.WaitLog("etcd unreachable, retrying", readyTimeout); err != nil {
		t.Fatal(err)
	}
	b.StartEtcd()
	d.WaitReady(readyTimeout)
}

// TestDeadDaemonLeaseExpires: a daemon killed with a short TTL loses its
// lease, and its peer drops its routes and fdb entry.
func TestDeadDaemonLeaseExpires(t *testing.T) {
	b := newBed(t, 2, false)
	startAll(t, b, map[int][]string{0: {"--lease-ttl", "3s"}, 1: {"--lease-ttl", "3s"}})
	h1, h2 := b.Hosts[0], b.Hosts[1]
	sf1, _ := h1.SubnetConfig()
	waitRoute(t, h2, sf1.SubnetV6, true, peerTimeout)
	h1.Daemon().Kill()
	start := time.Now()
	waitRoute(t, h2, sf1.SubnetV6, false, 30*time.Second)
	waitFDB(t, h2, sf1.VTEP, false)
	t.Logf("peer dropped the dead node's route %s after its kill", time.Since(start).Round(100*time.Millisecond))
	if b.LeaseFor(sf1.VTEP) != nil {
		t.Errorf("dead node's lease still in etcd")
	}
	// It comes back with the same subnet (hint from its subnet file).
	h1.StartDaemon("--lease-ttl", "3s")
	h1.Daemon().WaitReady(readyTimeout)
	if sf, _ := h1.SubnetConfig(); sf.SubnetV6.String() != sf1.SubnetV6.String() {
		t.Errorf("subnet after expiry and restart %s, want %s", sf.SubnetV6, sf1.SubnetV6)
	}
	waitRoute(t, h2, sf1.SubnetV6, true, peerTimeout)
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
// the full-resync path (restart).
func TestHostileLeasesIgnored(t *testing.T) {
	b := newBed(t, 2, false)
	startAll(t, b, nil)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	sf1, _ := h1.SubnetConfig()
	sf2, _ := h2.SubnetConfig()
	mac2 := vxlan.MACFor(sf2.VTEP).String()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := b.Prefix + "/leases/"
	hostile := map[string]string{
		p + "2001:db8:99::a": `{not json`,
		p + "2001:db8:99::b": fmt.Sprintf(`{"VTEP":%q,"IPv6Subnet":"fd10:244:0:77::/64","VtepMAC":"02:00:00:00:00:0b","NodeName":"liar"}`, sf1.VTEP),
		p + "2001:db8:99::c": `{"VTEP":"2001:db8:99::c","IPv6Subnet":"fd99:1::/64","VtepMAC":"02:00:00:00:00:0c","NodeName":"outside"}`,
		p + "2001:db8:99::d": fmt.Sprintf(`{"VTEP":"2001:db8:99::d","IPv6Subnet":%q,"VtepMAC":"02:00:00:00:00:0d","NodeName":"overlap"}`, sf2.SubnetV6),
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
		if len(fdb) != 1 || !net.ParseIP(fdb[0].Dst).Equal(sf2.VTEP) || len(rs) != 1 || rs[0] != sf2.SubnetV6.String() {
			t.Errorf("%s: %s programs more than its one real peer: fdb %v routes %v", when, h1.Name, fdb, rs)
		}
		fdb, _ = h2.FDB()
		rs, _ = h2.Routes()
		if len(fdb) != 1 || !net.ParseIP(fdb[0].Dst).Equal(sf1.VTEP) || len(rs) != 1 || rs[0] != sf1.SubnetV6.String() {
			t.Errorf("%s: %s programs more than its one real peer: fdb %v routes %v", when, h2.Name, fdb, rs)
		}
		mustPing(t, c1, c2.IPv6)
	}
	check("after watch events")
	h1.Daemon().Stop()
	h1.StartDaemon()
	h1.Daemon().WaitReady(readyTimeout)
	check("after a restart (full list)")
	if !regexp.MustCompile(`(?i)(skipping lease record|lease ignored)`).MatchString(h1.Daemon().Log()) {
		t.Errorf("no warning about the hostile records in the log")
	}
}

// TestBadChoicesWriteNothing: invalid VTEP choices (flag, --iface address,
// annotation), bad flags and a bad config are clear errors and leave no
// lease in etcd.
func TestBadChoicesWriteNothing(t *testing.T) {
	b := testbed.New(t, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	run := func(env []string, args ...string) (string, int) {
		t.Helper()
		full := append([]string{"run"}, append(h.DaemonArgs(), args...)...)
		_, errOut, code := h.Run(30*time.Second, env, full...)
		return errOut, code
	}

	// A bad config is refused before it reaches etcd.
	bad := filepath.Join(b.Dir, "bad.json")
	os.WriteFile(bad, []byte(`{"EnableIPv6":true,"IPv6Network":"fd10:244::/48","IPv6SubnetLen":40}`), 0o644)
	_, errOut, code := h.Run(20*time.Second, nil, append([]string{"config", "put", bad}, b.EtcdFlags()...)...)
	if code != 1 || !strings.Contains(errOut, "IPv6SubnetLen") {
		t.Errorf("config put of a bad config: exit %d, %q (want 1 naming IPv6SubnetLen)", code, errOut)
	}
	if keys := b.Keys(); len(keys) != 0 {
		t.Fatalf("bad config reached etcd: %v", keys)
	}
	good := filepath.Join(b.Dir, "good.json")
	os.WriteFile(good, []byte(testbed.ConfigJSON(false)), 0o644)
	if out, errOut, code := h.Run(20*time.Second, nil, append([]string{"config", "put", good}, b.EtcdFlags()...)...); code != 0 {
		t.Fatalf("config put: %d %s %s", code, out, errOut)
	}
	if out, _, code := h.Run(20*time.Second, nil, append([]string{"config", "get"}, b.EtcdFlags()...)...); code != 0 || !strings.Contains(out, testbed.IPv6Network) {
		t.Errorf("config get: %d %q", code, out)
	}

	for _, c := range []struct {
		name  string
		env   []string
		args  []string
		code  int
		names string
	}{
		{"link-local", nil, []string{"--public-ipv6", "fe80::1"}, 1, "fe80::1"},
		{"not owned", nil, []string{"--public-ipv6", "2001:db8:77::1"}, 1, "2001:db8:77::1"},
		{"malformed", nil, []string{"--public-ipv6", "2001:db8::zz"}, 1, "2001:db8::zz"},
		{"ipv4 as ipv6", nil, []string{"--public-ipv6", "192.0.2.1"}, 1, "192.0.2.1"},
		{"iface address not owned", nil, []string{"--iface", "2001:db8:77::5"}, 1, "2001:db8:77::5"},
		{"unknown flag", nil, []string{"--publik-ipv6", "x"}, 2, "--publik-ipv6"},
		{"bad ttl", nil, []string{"--lease-ttl", "five"}, 2, "--lease-ttl"},
		{"bad ttl env", []string{"VXLAN6D_LEASE_TTL=five"}, nil, 2, "VXLAN6D_LEASE_TTL"},
	} {
		errOut, code := run(c.env, c.args...)
		if code != c.code || !strings.Contains(errOut, c.names) {
			t.Errorf("%s: exit %d, want %d naming %q; stderr:\n%s", c.name, code, c.code, c.names, errOut)
		}
	}
	// An unusable annotation stops the daemon the same way.
	h.Annotate(lease.AnnotationPublicIPv6 + "=2001:db8:77::9")
	if errOut, code := run(nil); code != 1 || !strings.Contains(errOut, "2001:db8:77::9") {
		t.Errorf("bad annotation: exit %d, stderr:\n%s", code, errOut)
	}
	for _, k := range b.Keys() {
		if strings.Contains(k, "/leases/") {
			t.Errorf("a failed start wrote %s", k)
		}
	}
	// A flag wins over the bad annotation.
	h.StartDaemon("--public-ipv6", h.NotFirst().String())
	h.Daemon().WaitReady(readyTimeout)
	if local, _ := h.VXLANLocal(); !local.Equal(h.NotFirst()) {
		t.Errorf("local %s, want the flag's %s", local, h.NotFirst())
	}
}

// TestInvalidConfigWaits: a daemon facing an invalid config in etcd says so
// and waits, writing nothing, and starts once the config is fixed.
func TestInvalidConfigWaits(t *testing.T) {
	b := testbed.New(t, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	b.PutConfig(`{"EnableIPv6":true,"IPv6Network":"fd10:244::/48","IPv6SubnetLen":47}`)
	d := h.StartDaemon()
	if err := d.WaitLog("invalid network config", readyTimeout); err != nil {
		t.Fatal(err)
	}
	for _, k := range b.Keys() {
		if strings.Contains(k, "/leases/") {
			t.Errorf("wrote %s with an invalid config", k)
		}
	}
	b.PutIPv6Config()
	d.WaitReady(40 * time.Second)
}

// TestAdminCLI: leases table and annotation removal.
func TestAdminCLI(t *testing.T) {
	b := newBed(t, 2, false)
	startAll(t, b, map[int][]string{0: {"--public-ipv6", b.Hosts[0].NotFirst().String()}})
	h1 := b.Hosts[0]
	out, errOut, code := h1.Run(20*time.Second, nil, append([]string{"leases"}, b.EtcdFlags()...)...)
	if code != 0 {
		t.Fatalf("leases: %d %s", code, errOut)
	}
	for _, h := range b.Hosts {
		sf, _ := h.SubnetConfig()
		for _, want := range []string{h.Name, sf.VTEP.String(), sf.SubnetV6.String(), vxlan.MACFor(sf.VTEP).String()} {
			if !strings.Contains(out, want) {
				t.Errorf("leases table lacks %q:\n%s", want, out)
			}
		}
	}
	if !regexp.MustCompile(`\b[1-5]m[0-9]+s\b|\b5m0s\b|\b[0-9]+s\b`).MatchString(out) {
		t.Errorf("leases table shows no TTL:\n%s", out)
	}
	t.Logf("vxlan6d leases:\n%s", out)
	for _, args := range [][]string{{"annotate", "n9", "team=blue", "vxlan6.io/public-ipv6=2001:db8:1::5"}, {"annotate", "n9", "team-"}} {
		if _, errOut, code := h1.Run(20*time.Second, nil, append(args, b.EtcdFlags()...)...); code != 0 {
			t.Fatalf("%v: %d %s", args, code, errOut)
		}
	}
	ann, err := b.Registry().NodeAnnotations(context.Background(), "n9")
	if err != nil || ann["team"] != "" || ann[lease.AnnotationPublicIPv6] != "2001:db8:1::5" {
		t.Errorf("annotations %v %v", ann, err)
	}
	if _, _, code := h1.Run(20*time.Second, nil, append([]string{"annotate", "n9", lease.AnnotationPublicIPv6 + "=10.0.0.1"}, b.EtcdFlags()...)...); code != 1 {
		t.Errorf("an IPv4 public-ipv6 annotation was accepted (exit %d)", code)
	}
}

// TestEtcdSubcommand: `vxlan6d etcd` serves until SIGTERM, and the admin
// commands work against it (no root needed).
func TestEtcdSubcommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary: skipped with -short")
	}
	bin := testutil.Binary(t, "vxlan6d")
	dir := t.TempDir()
	sock := "unix://" + filepath.Join(dir, "etcd.sock")
	cmd := exec.Command(bin, "etcd", "--data-dir", filepath.Join(dir, "data"), "--listen-client-urls", sock)
	var logb strings.Builder
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	conf := filepath.Join(dir, "net.json")
	os.WriteFile(conf, []byte(testbed.ConfigJSON(true)), 0o644)
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, append(args, "--etcd-endpoints", sock)...).CombinedOutput()
		return string(out), err
	}
	if err := testbed.Eventually(20*time.Second, 200*time.Millisecond, func() error {
		out, err := run("config", "put", conf)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}); err != nil {
		t.Fatalf("config put against vxlan6d etcd: %v\n%s", err, logb.String())
	}
	out, err := run("config", "get")
	if err != nil || !strings.Contains(out, testbed.IPv4Network) {
		t.Fatalf("config get: %v %s", err, out)
	}
	if out, err := run("leases"); err != nil || !strings.Contains(out, "VTEP") {
		t.Errorf("leases on an empty cluster: %v %s", err, out)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Errorf("vxlan6d etcd exit after SIGTERM: %v\n%s", err, logb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("vxlan6d etcd ignored SIGTERM")
	}
}

// TestLeaseLostIsReacquired: a revoked lease is re-acquired with the same
// subnet (the daemon never exits over it, unlike flannel); if its subnet was
// taken meanwhile, the daemon takes another and rewrites its subnet file.
func TestLeaseLostIsReacquired(t *testing.T) {
	b := newBed(t, 2, false)
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
		if nl.IPv6Subnet.String() != sf1.SubnetV6.String() {
			return fmt.Errorf("re-acquired %s, want the same %s", nl.IPv6Subnet, sf1.SubnetV6)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, h2, sf1.SubnetV6, true, peerTimeout)

	// Now steal the subnet in the same transaction that deletes the lease.
	l = b.LeaseFor(sf1.VTEP)
	thief := &lease.Lease{VTEP: net.ParseIP("2001:db8:99::77"), VtepMAC: vxlan.MACFor(net.ParseIP("2001:db8:99::77")), IPv6Subnet: sf1.SubnetV6, NodeName: "thief"}
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
		if sf.SubnetV6.String() == sf1.SubnetV6.String() {
			return fmt.Errorf("subnet file still has the stolen %s", sf.SubnetV6)
		}
		if nl := b.LeaseFor(sf1.VTEP); nl == nil || nl.IPv6Subnet.String() != sf.SubnetV6.String() {
			return fmt.Errorf("lease %v does not match the subnet file's %s", nl, sf.SubnetV6)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if h1.Daemon().Exited() {
		t.Fatalf("daemon exited over a lost lease: %v", h1.Daemon().ExitErr())
	}
	sf, _ := h1.SubnetConfig()
	waitRoute(t, h2, sf.SubnetV6, true, peerTimeout)
	// The thief's record, skipped while it overlapped h1's own subnet, is
	// a valid peer once h1 moved off that subnet.
	waitRoute(t, h1, sf1.SubnetV6, true, peerTimeout)
	waitFDB(t, h1, thief.VTEP, true)
}

// TestPeriodicResyncHeals: with a short --resync-interval the daemon puts
// back a peer's route and fdb entry and the vxlan device itself after they
// were deleted by hand, and a resync during an etcd outage removes nothing.
func TestPeriodicResyncHeals(t *testing.T) {
	b := newBed(t, 2, false)
	startAll(t, b, map[int][]string{0: {"--resync-interval", "2s"}})
	h1, h2 := b.Hosts[0], b.Hosts[1]
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	mustPing(t, c1, c2.IPv6)
	sf2, err := h2.SubnetConfig()
	if err != nil {
		t.Fatal(err)
	}
	waitFDB(t, h1, sf2.VTEP, true)
	waitRoute(t, h1, sf2.SubnetV6, true, peerTimeout)
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
		h1.MustExec("ip", "-6", "route", "del", sf2.SubnetV6.String(), "dev", testbed.Device)
		// The peer's gateway is its subnet's network address, resolved by a permanent neighbour.
		h1.MustExec("ip", "-6", "neigh", "del", sf2.SubnetV6.IP.String(), "dev", testbed.Device)
		h1.MustExec(testbed.BridgeCmd, "fdb", "del", mac, "dev", testbed.Device, "dst", sf2.VTEP.String())
		if has, _ := h1.HasRoute(sf2.SubnetV6); has {
			t.Fatalf("route to %s still there after deleting it", sf2.SubnetV6)
		}
		if has, _ := h1.HasFDBDst(sf2.VTEP); has {
			t.Fatalf("fdb entry to %s still there after deleting it", sf2.VTEP)
		}
		waitRoute(t, h1, sf2.SubnetV6, true, healTimeout)
		waitFDB(t, h1, sf2.VTEP, true)
		if err := testbed.Eventually(healTimeout, 100*time.Millisecond, func() error {
			if dp, err := h1.DataPath(); err != nil || dp != dp0 {
				return fmt.Errorf("data path not restored (%v):\nbefore:\n%s\nnow:\n%s", err, dp0, dp)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		mustPing(t, c1, c2.IPv6)
		mustPing(t, c2, c1.IPv6)
	})

	t.Run("device deleted by hand", func(t *testing.T) {
		h1.MustExec("ip", "link", "del", testbed.Device)
		if err := h1.Daemon().WaitLog("vxlan device was gone and has been recreated", healTimeout); err != nil {
			t.Fatal(err)
		}
		waitRoute(t, h1, sf2.SubnetV6, true, healTimeout)
		waitFDB(t, h1, sf2.VTEP, true)
		if _, err := h1.SubnetConfig(); err != nil {
			t.Fatalf("subnet file after the device came back: %v", err)
		}
		mustPing(t, c1, c2.IPv6)
		mustPing(t, c2, c1.IPv6)
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
		mustPing(t, c1, c2.IPv6)
		b.StartEtcd()
		// Back to normal: hand-deleted entries heal again once etcd answers.
		h1.MustExec("ip", "-6", "route", "del", sf2.SubnetV6.String(), "dev", testbed.Device)
		waitRoute(t, h1, sf2.SubnetV6, true, 45*time.Second)
		mustPing(t, c1, c2.IPv6)
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
	b := newBed(t, 1, false)
	startAll(t, b, map[int][]string{0: {"--resync-interval", "10m"}})
	h1 := b.Hosts[0]
	sf1, err := h1.SubnetConfig()
	if err != nil {
		t.Fatal(err)
	}
	var subnets []*net.IPNet
	for _, s := range []string{"fd10:244:0:a1::/64", "fd10:244:0:b1::/64", "fd10:244:0:c1::/64"} {
		_, n, _ := net.ParseCIDR(s)
		if n.String() != sf1.SubnetV6.String() {
			subnets = append(subnets, n)
		}
	}
	mk := func(vtep string, subnet *net.IPNet) *lease.Lease {
		ip := net.ParseIP(vtep)
		return &lease.Lease{VTEP: ip, VtepMAC: vxlan.MACFor(ip), IPv6Subnet: subnet, NodeName: "fake-" + vtep}
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
		waitRoute(t, h1, l.IPv6Subnet, true, peerTimeout)
		waitFDB(t, h1, l.VTEP, true)
	}

	// Same key, so A keeps its CreateRevision and wins B's subnet.
	oldA := a.IPv6Subnet
	a.IPv6Subnet = bl.IPv6Subnet
	put(a)
	waitFDB(t, h1, bl.VTEP, false)
	waitRoute(t, h1, oldA, false, peerTimeout)
	waitRoute(t, h1, a.IPv6Subnet, true, peerTimeout)
	waitFDB(t, h1, a.VTEP, true)
	// The route goes through a permanent neighbour for the subnet's
	// gateway; it must resolve to A's MAC, whose fdb entry tunnels to A.
	gw := a.IPv6Subnet.IP.String()
	waitPresent(t, h1, fmt.Sprintf("neighbour %s with A's MAC %s", gw, a.VtepMAC), true, peerTimeout, func() (bool, error) {
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
	if rs, _ := h1.Routes(); len(rs) != 1 || rs[0] != a.IPv6Subnet.String() {
		t.Errorf("%s: routes %v, want only %s", h1.Name, rs, a.IPv6Subnet)
	}
	if h1.Daemon().Exited() {
		t.Fatalf("daemon on %s exited: %v", h1.Name, h1.Daemon().ExitErr())
	}
}

// TestVTEPChangedWhileStopped: the operator names another VTEP while the
// daemon is down. On start it moves this node's lease (found under the
// previous subnet file's VTEP) instead of leaving it to expire: the subnet
// stays, so the running container keeps a working address, and the peer
// drops the old VTEP at once.
func TestVTEPChangedWhileStopped(t *testing.T) {
	b := newBed(t, 2, false)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	from, to := h1.NotFirst(), h1.FirstListed()
	startAll(t, b, map[int][]string{0: {"--public-ipv6", from.String()}})
	before := b.LeaseFor(from)
	if before == nil {
		t.Fatalf("no lease for %s: %v", from, b.Leases())
	}
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	mustPing(t, c1, c2.IPv6)

	if code := h1.Daemon().Stop(); code != 0 {
		t.Fatalf("daemon exit code on SIGTERM: %d", code)
	}
	h1.StartDaemon("--public-ipv6", to.String())
	h1.Daemon().WaitReady(readyTimeout)
	after := b.LeaseFor(to)
	if after == nil || b.LeaseFor(from) != nil {
		t.Fatalf("lease not moved from %s to %s at start: %v", from, to, b.Leases())
	}
	if after.IPv6Subnet.String() != before.IPv6Subnet.String() || after.NodeName != h1.Name {
		t.Fatalf("moved lease %+v, want subnet %s of node %s", after, before.IPv6Subnet, h1.Name)
	}
	if err := h1.Daemon().WaitLog("VTEP changed while stopped", time.Second); err != nil {
		t.Fatal(err)
	}
	if local, _ := h1.VXLANLocal(); !local.Equal(to) {
		t.Fatalf("vxlan local %s, want %s", local, to)
	}
	peerFollowsMove(t, h2, from, to, c1, c2)
}

// TestForeignLeaseAtPreviousVTEPKept: a subnet file copied from another
// host names that host's VTEP; a daemon starting with it must not move (or
// otherwise touch) the other node's lease, and gets a subnet of its own.
func TestForeignLeaseAtPreviousVTEPKept(t *testing.T) {
	b := newBed(t, 2, false)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	h1.StartDaemon()
	h1.Daemon().WaitReady(readyTimeout)
	sf1, err := h1.SubnetConfig()
	if err != nil {
		t.Fatal(err)
	}
	theirs := b.LeaseFor(sf1.VTEP)
	if theirs == nil {
		t.Fatalf("no lease for %s", sf1.VTEP)
	}
	raw, err := os.ReadFile(h1.SubnetFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h2.SubnetFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	h2.StartDaemon()
	h2.Daemon().WaitReady(readyTimeout)
	if err := h2.Daemon().WaitLog("not this node's; leaving it", time.Second); err != nil {
		t.Fatal(err)
	}
	still := b.LeaseFor(sf1.VTEP)
	if still == nil || still.NodeName != h1.Name || still.IPv6Subnet.String() != theirs.IPv6Subnet.String() || still.ModRevision != theirs.ModRevision {
		t.Fatalf("%s's lease was touched: before %+v, now %+v", h1.Name, theirs, still)
	}
	sf2, err := h2.SubnetConfig()
	if err != nil {
		t.Fatal(err)
	}
	if sf2.SubnetV6.String() == sf1.SubnetV6.String() || sf2.VTEP.Equal(sf1.VTEP) {
		t.Fatalf("%s took %s's subnet or VTEP: %s %s", h2.Name, h1.Name, sf2.SubnetV6, sf2.VTEP)
	}
}
