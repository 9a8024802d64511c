package lease

import (
	"context"
	"sync"
	"testing"
	"time"
)

// keepAlive runs KeepAlive in the background and returns a channel of the
// leases passed to onChange; it stops with the test.
func keepAlive(t *testing.T, v *env, cfg *Config, a Attrs, l *Lease, ttl time.Duration) <-chan *Lease {
	ctx, cancel := context.WithCancel(v.ctx)
	changes := make(chan *Lease, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		v.r.KeepAlive(ctx, cfg, a, l, ttl, func(nl *Lease) { changes <- nl })
	}()
	t.Cleanup(func() {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("KeepAlive did not return within 5s of its context ending")
		}
	})
	return changes
}

func waitChange(t *testing.T, ch <-chan *Lease, what string) *Lease {
	t.Helper()
	select {
	case l := <-ch:
		return l
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: onChange not called within 20s", what)
	}
	return nil
}

func TestKeepAliveRenews(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgV6)
	a := attrs("2001:db8:1::1", 1)
	l := mustAcquire(t, v, cfg, a, 2*time.Second)
	changes := keepAlive(t, v, cfg, a, l, 2*time.Second)
	time.Sleep(5 * time.Second)
	resp, err := v.cli.Get(v.ctx, v.r.LeaseKey(a.VTEP))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("lease key gone after 5s with a 2s TTL under KeepAlive: %v %v", resp, err)
	}
	if resp.Kvs[0].ModRevision != l.ModRevision {
		t.Fatalf("KeepAlive rewrote the key (mod revision %d, was %d) although nothing was lost", resp.Kvs[0].ModRevision, l.ModRevision)
	}
	select {
	case nl := <-changes:
		t.Fatalf("onChange called (%+v) although the lease was never lost", nl)
	default:
	}
}

func TestKeepAliveReacquires(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgDual)
	mustAcquire(t, v, cfg, attrs("2001:db8:1::9", 9), time.Minute) // a neighbour with index 0
	a := attrs("2001:db8:1::1", 1)
	l := mustAcquire(t, v, cfg, a, time.Minute)
	changes := keepAlive(t, v, cfg, a, l, time.Minute)
	key := v.r.LeaseKey(a.VTEP)

	// Deleted key (an operator or a hostile tool): same subnets come back.
	if _, err := v.cli.Delete(v.ctx, key); err != nil {
		t.Fatal(err)
	}
	nl := waitChange(t, changes, "after key deletion")
	wantSubnet(t, "v6 after delete", nl.Subnets.V6, l.Subnets.V6.String())
	wantSubnet(t, "v4 after delete", nl.Subnets.V4, l.Subnets.V4.String())
	if nl.EtcdLease == 0 || nl.EtcdLease == l.EtcdLease {
		t.Fatalf("re-acquired lease bound to %x; want a fresh etcd lease", nl.EtcdLease)
	}

	// Revoked etcd lease (what flannel answers with "Shutting down daemon").
	if _, err := v.cli.Revoke(v.ctx, nl.EtcdLease); err != nil {
		t.Fatal(err)
	}
	nl2 := waitChange(t, changes, "after revoke")
	wantSubnet(t, "v6 after revoke", nl2.Subnets.V6, l.Subnets.V6.String())
	resp, err := v.cli.Get(v.ctx, key)
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease != int64(nl2.EtcdLease) {
		t.Fatalf("after revoke the key is %v (err %v); want it bound to %x", resp, err, nl2.EtcdLease)
	}

	// Overwritten by an operator without etcd lease: that is a reservation
	// now; re-acquired as one, with our MAC and node name written back.
	v.put(key, rec(a.VTEP.String(), l.Subnets.V6.String(), l.Subnets.V4.String(), 77))
	nl3 := waitChange(t, changes, "after overwrite")
	wantSubnet(t, "v6 after overwrite", nl3.Subnets.V6, l.Subnets.V6.String())
	if nl3.VtepMAC.String() != a.VtepMAC.String() || !nl3.Reserved || nl3.EtcdLease != 0 {
		t.Fatalf("after overwrite: MAC %s reserved %v lease %x; want our MAC and a reservation", nl3.VtepMAC, nl3.Reserved, nl3.EtcdLease)
	}
	// The operator moves the reservation to another subnet: picked up.
	v.put(key, rec(a.VTEP.String(), "fd10:244:0:42::/64", "10.244.42.0/24", 77))
	nl4 := waitChange(t, changes, "after the reservation changed")
	wantSubnet(t, "v6 after reservation change", nl4.Subnets.V6, "fd10:244:0:42::/64")
	wantSubnet(t, "v4 after reservation change", nl4.Subnets.V4, "10.244.42.0/24")
	// The operator drops the reservation: back to a TTL lease, same subnets.
	if _, err := v.cli.Delete(v.ctx, key); err != nil {
		t.Fatal(err)
	}
	nl5 := waitChange(t, changes, "after the reservation was deleted")
	wantSubnet(t, "v6 after reservation deleted", nl5.Subnets.V6, "fd10:244:0:42::/64")
	if nl5.Reserved || nl5.EtcdLease == 0 {
		t.Fatalf("after the reservation was deleted: reserved %v lease %x; want a TTL lease", nl5.Reserved, nl5.EtcdLease)
	}
}

func TestKeepAliveSubnetTakenMeanwhile(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgV6)
	a := attrs("2001:db8:1::1", 1)
	l := mustAcquire(t, v, cfg, a, time.Minute)
	// Our key vanishes and someone else's record grabs the subnet before we
	// notice: we must come back with another subnet, not share it.
	_, err := v.cli.Txn(v.ctx).Then(
		opDelete(v.r.LeaseKey(a.VTEP)),
		opPut(v.r.LeasesPrefix()+"2001:db8:1::2", rec("2001:db8:1::2", l.Subnets.V6.String(), "", 2)),
	).Commit()
	if err != nil {
		t.Fatal(err)
	}
	changes := keepAlive(t, v, cfg, a, l, time.Minute)
	nl := waitChange(t, changes, "after the subnet was taken")
	if nl.Subnets.V6.String() == l.Subnets.V6.String() {
		t.Fatalf("re-acquired %s, which another lease holds", nl.Subnets.V6)
	}
}
