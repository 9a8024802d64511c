package e2e

// Choosing and moving the VTEP: the two-address trap, annotation moves,
// a move etcd refuses, a VTEP renamed while the daemon was down.

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/overlay/lease"
)

// TestTwoAddressTrap is the bug vxlan6 exists for: an uplink with two global
// IPv6 addresses, the operator names the one the kernel does NOT list first
// (by flag, by --iface <address>, by annotation), in both address orders.
// The vxlan link's local, the lease key and a peer's fdb must all use it.
func TestTwoAddressTrap(t *testing.T) {
	t.Parallel()
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
				if v := h1.VTEP(t); !v.Equal(want) {
					t.Errorf("subnet file VTEP %s, want %s", v, want)
				}
				h2.WaitFDB(t, want, true)
				if has, _ := h2.HasFDBDst(other); has {
					t.Errorf("peer %s tunnels to the unnamed address %s", h2.Name, other)
				}
				if !strings.Contains(h1.Daemon().Log(), "operatorChosen=true") {
					t.Errorf("the log does not say the VTEP was the operator's choice")
				}
				if metrics {
					// client_golang writes labels sorted by name.
					wantLine := fmt.Sprintf(`vxlan6d_vtep_info{address=%q,interface=%q,local=%q,operator_chosen="true",source="flag --public-ipv6"`, want.String(), testbed.Uplink, want.String())
					// h2's fdb (waited for above) says h2 knows h1, not
					// that h1 has counted h2 yet: wait for the gauge.
					var out string
					if err := testbed.Eventually(testbed.PeerTimeout, 100*time.Millisecond, func() (err error) {
						if out, err = h1.Exec("curl", "-sf", "http://[::1]:9473/metrics"); err != nil {
							return err
						}
						if !strings.Contains(out, wantLine) || !strings.Contains(out, "vxlan6d_peers 1") {
							return fmt.Errorf("metrics lack %s / peers 1:\n%s", wantLine, out)
						}
						return nil
					}); err != nil {
						t.Errorf("metrics: %v", err)
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
	t.Parallel()
	b := testbed.NewConfigured(t, testbed.Options{Hosts: 2}, false)
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
	h2.WaitFDB(t, from, true)
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	c1.MustPing(t, c2.IPv6)

	h1.Annotate(lease.AnnotationPublicIPv6Flannel + "=" + to.String())
	if err := testbed.Eventually(testbed.PeerTimeout, 100*time.Millisecond, func() error {
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
	if err := testbed.Eventually(testbed.PeerTimeout, 100*time.Millisecond, func() error {
		after := b.LeaseFor(to)
		if after == nil || b.LeaseFor(from) != nil {
			return fmt.Errorf("lease not re-keyed from %s to %s: %v", from, to, b.Leases())
		}
		if after.Subnets.V6.String() != before.Subnets.V6.String() {
			return fmt.Errorf("subnet changed on move: %s -> %s", before.Subnets.V6, after.Subnets.V6)
		}
		if v := h1.VTEP(t); !v.Equal(to) {
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
	peer.WaitFDB(t, to, true)
	peer.WaitFDB(t, from, false)
	moved.MustPing(t, other.IPv6)
	other.MustPing(t, moved.IPv6)
}

// TestFailedMoveKeepsPeers: the annotation names a new VTEP but etcd refuses
// writes (NOSPACE alarm), so the lease cannot be re-keyed. Until it can, the
// data path must stay as it is (peers still tunnel to the old VTEP and MAC),
// and the move completes once etcd accepts writes again.
func TestFailedMoveKeepsPeers(t *testing.T) {
	t.Parallel()
	b := testbed.NewConfigured(t, testbed.Options{Hosts: 2}, false)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	from, to := h1.NotFirst(), h1.FirstListed()
	h1.Annotate(lease.AnnotationPublicIPv6 + "=" + from.String())
	startAll(t, b, nil)
	sf2, _ := h2.SubnetConfig()
	h1.WaitRoute(t, sf2.Subnets.V6, true, testbed.PeerTimeout)
	h2.WaitFDB(t, from, true)
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	c1.MustPing(t, c2.IPv6)
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
	c1.MustPing(t, c2.IPv6)
	c2.MustPing(t, c1.IPv6)

	alarm(pb.AlarmRequest_DEACTIVATE)
	if err := testbed.Eventually(60*time.Second, 200*time.Millisecond, func() error {
		if b.LeaseFor(to) == nil || b.LeaseFor(from) != nil {
			return fmt.Errorf("lease not re-keyed from %s to %s: %v", from, to, b.Leases())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h2.WaitFDB(t, to, true)
	// The daemon re-keys the lease first and then recreates its device
	// with the new local, so the device may briefly be gone here.
	if err := testbed.Eventually(testbed.PeerTimeout, 100*time.Millisecond, func() error {
		if local, err := h1.VXLANLocal(); err != nil || !local.Equal(to) {
			return fmt.Errorf("local %s after the move (%v), want %s", local, err, to)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	h1.WaitRoute(t, sf2.Subnets.V6, true, testbed.PeerTimeout)
	c1.MustPing(t, c2.IPv6)
	c2.MustPing(t, c1.IPv6)
}

// TestVTEPChangedWhileStopped: the operator names another VTEP while the
// daemon is down. On start it moves this node's lease (found under the
// previous subnet file's VTEP) instead of leaving it to expire: the subnet
// stays, so the running container keeps a working address, and the peer
// drops the old VTEP at once.
func TestVTEPChangedWhileStopped(t *testing.T) {
	t.Parallel()
	b := testbed.NewConfigured(t, testbed.Options{Hosts: 2}, false)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	from, to := h1.NotFirst(), h1.FirstListed()
	startAll(t, b, map[int][]string{0: {"--public-ipv6", from.String()}})
	before := b.LeaseFor(from)
	if before == nil {
		t.Fatalf("no lease for %s: %v", from, b.Leases())
	}
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	c1.MustPing(t, c2.IPv6)

	if code := h1.Daemon().Stop(); code != 0 {
		t.Fatalf("daemon exit code on SIGTERM: %d", code)
	}
	h1.StartDaemon("--public-ipv6", to.String())
	h1.Daemon().WaitReady(readyTimeout)
	after := b.LeaseFor(to)
	if after == nil || b.LeaseFor(from) != nil {
		t.Fatalf("lease not moved from %s to %s at start: %v", from, to, b.Leases())
	}
	if after.Subnets.V6.String() != before.Subnets.V6.String() || after.NodeName != h1.Name {
		t.Fatalf("moved lease %+v, want subnet %s of node %s", after, before.Subnets.V6, h1.Name)
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
	t.Parallel()
	b := testbed.NewConfigured(t, testbed.Options{Hosts: 2}, false)
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
	if still == nil || still.NodeName != h1.Name || still.Subnets.V6.String() != theirs.Subnets.V6.String() || still.ModRevision != theirs.ModRevision {
		t.Fatalf("%s's lease was touched: before %+v, now %+v", h1.Name, theirs, still)
	}
	sf2, err := h2.SubnetConfig()
	if err != nil {
		t.Fatal(err)
	}
	if sf2.Subnets.V6.String() == sf1.Subnets.V6.String() || sf2.VTEP.Equal(sf1.VTEP) {
		t.Fatalf("%s took %s's subnet or VTEP: %s %s", h2.Name, h1.Name, sf2.Subnets.V6, sf2.VTEP)
	}
}
