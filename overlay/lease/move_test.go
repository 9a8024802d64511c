package lease

import (
	"testing"
	"time"
)

func TestMove(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgDual)
	mustAcquire(t, v, cfg, attrs("2001:db8:1::9", 9), time.Minute)
	a := attrs("2001:db8:1::1", 1)
	l := mustAcquire(t, v, cfg, a, time.Minute)
	b := attrs("2001:db8:2::1", 1)
	nl, err := v.r.Move(v.ctx, cfg, l, b, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	wantSubnet(t, "v6 after move", nl.Subnets.V6, l.Subnets.V6.String())
	wantSubnet(t, "v4 after move", nl.Subnets.V4, l.Subnets.V4.String())
	if !nl.VTEP.Equal(b.VTEP) || nl.EtcdLease == 0 || nl.EtcdLease == l.EtcdLease {
		t.Fatalf("moved lease %+v; want VTEP %s on a fresh etcd lease", nl, b.VTEP)
	}
	snap := v.list(cfg)
	if got := vteps(snap.Leases); got != "2001:db8:1::9 2001:db8:2::1" {
		t.Fatalf("after move List = %s; want the old key gone and the new one present", got)
	}
	// Both changes came in one revision, so no watcher ever sees two owners.
	resp, err := v.cli.Get(v.ctx, v.r.LeaseKey(b.VTEP))
	if err != nil || resp.Kvs[0].ModRevision != nl.ModRevision {
		t.Fatalf("new key: %v %v", resp, err)
	}

	// Moving onto a VTEP with a reservation: the reservation wins.
	v.reserve("2001:db8:3::1", "fd10:244:0:77::/64", "10.244.77.0/24")
	c := attrs("2001:db8:3::1", 1)
	nl2, err := v.r.Move(v.ctx, cfg, nl, c, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	wantSubnet(t, "v6 onto reservation", nl2.Subnets.V6, "fd10:244:0:77::/64")
	if !nl2.Reserved {
		t.Fatal("moved onto a reservation but the lease is not Reserved")
	}
	snap = v.list(cfg)
	if got := vteps(snap.Leases); got != "2001:db8:1::9 2001:db8:3::1" {
		t.Fatalf("after move onto reservation List = %s", got)
	}

	// Moving to the same VTEP is a plain re-acquire.
	nl3, err := v.r.Move(v.ctx, cfg, nl2, c, time.Minute)
	if err != nil || nl3.Subnets.V6.String() != nl2.Subnets.V6.String() {
		t.Fatalf("move to the same VTEP: %+v %v", nl3, err)
	}
}
