package lease

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func rec(vtep, s6, s4 string, mac int) string {
	r := fmt.Sprintf(`{"VTEP":%q,"IPv6Subnet":%q,"VtepMAC":"02:00:00:00:01:%02x","NodeName":"n%d"`, vtep, s6, mac, mac)
	if s4 != "" {
		r += fmt.Sprintf(`,"Subnet":%q`, s4)
	}
	return r + "}"
}

func vteps(ls []Lease) string {
	var s []string
	for _, l := range ls {
		s = append(s, l.VTEP.String())
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

// hostile writes one valid lease and a collection of records every reader
// must skip; it returns how many it wrote to be skipped.
func hostile(v *env) int {
	p := v.r.LeasesPrefix()
	v.put(p+"2001:db8::1", rec("2001:db8::1", "fd10:244::/64", "", 1))                // valid
	v.put(p+"2001:db8::2", `{"VTEP":"2001:db8::2",`)                                  // not JSON
	v.put(p+"2001:db8::3", rec("2001:db8::3", "fd10:999::/64", "", 3))                // outside the network
	v.put(p+"2001:db8::4", rec("2001:db8::4", "fd10:244::/64", "", 4))                // overlaps ::1 (created later)
	v.put(p+"2001:db8::5", rec("2001:db8::99", "fd10:244:0:5::/64", "", 5))           // key does not match VTEP
	v.put(p+"2001:db8::6", rec("2001:db8::6", "fd10:244:0:6::/60", "", 6))            // wrong length
	v.put(p+"2001:db8::7", rec("2001:db8::7", "", "", 7))                             // no IPv6 subnet
	v.put(p+"2001:DB8::8", rec("2001:DB8::8", "fd10:244:0:8::/64", "", 8))            // non-canonical key
	v.put(p+"10.1.1.1", rec("10.1.1.1", "fd10:244:0:9::/64", "", 9))                  // IPv4 VTEP
	v.put(p+"2001:db8::a", `{"VTEP":"2001:db8::a","IPv6Subnet":"fd10:244:0:a::/64"}`) // no MAC
	v.put(p+"fe80::b", rec("fe80::b", "fd10:244:0:b::/64", "", 11))                   // link-local VTEP
	v.put(p+"2001:db8::c", rec("2001:db8::c", "fd10:244:0:c::1/64", "", 12))          // host bits
	return 11
}

func TestListSkipsInvalid(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgV6)
	skipped := hostile(v)
	// IPv4 part of a record in an IPv6-only network: only that part is ignored.
	v.put(v.r.LeasesPrefix()+"2001:db8::d", rec("2001:db8::d", "fd10:244:0:d::/64", "10.244.1.0/24", 13))
	snap := v.list(cfg)
	if got := vteps(snap.Leases); got != "2001:db8::1 2001:db8::d" {
		t.Fatalf("List = %s; want only 2001:db8::1 and 2001:db8::d", got)
	}
	if snap.Skipped != skipped {
		t.Fatalf("Skipped = %d, want %d", snap.Skipped, skipped)
	}
	for _, l := range snap.Leases {
		if l.Subnets.V4 != nil {
			t.Fatalf("lease %s kept IPv4 subnet %s in an IPv6-only network", l.VTEP, l.Subnets.V4)
		}
		if !l.Reserved || l.ModRevision == 0 || l.VtepMAC == nil {
			t.Fatalf("lease %+v: want Reserved (no etcd lease), a ModRevision and a MAC", l)
		}
	}
	// Dual-stack: an IPv4 subnet outside the IPv4 network invalidates the record,
	// an IPv4 overlap too; a record without IPv4 subnet is fine.
	v2 := newEnv(t)
	cfg2 := v2.config(cfgDual)
	p := v2.r.LeasesPrefix()
	v2.put(p+"2001:db8::1", rec("2001:db8::1", "fd10:244::/64", "10.244.0.0/24", 1))
	v2.put(p+"2001:db8::2", rec("2001:db8::2", "fd10:244:0:2::/64", "10.99.0.0/24", 2))
	v2.put(p+"2001:db8::3", rec("2001:db8::3", "fd10:244:0:3::/64", "10.244.0.0/24", 3))
	v2.put(p+"2001:db8::4", rec("2001:db8::4", "fd10:244:0:4::/64", "", 4))
	snap = v2.list(cfg2)
	if got := vteps(snap.Leases); got != "2001:db8::1 2001:db8::4" || snap.Skipped != 2 {
		t.Fatalf("dual-stack List = %s (skipped %d); want 2001:db8::1 2001:db8::4 (skipped 2)", got, snap.Skipped)
	}
}

// collect reads events until n arrived or the timeout passed.
func collect(t *testing.T, ch <-chan Event, n int, timeout time.Duration) []Event {
	t.Helper()
	var evs []Event
	deadline := time.After(timeout)
	for len(evs) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed after %d events %v; want %d", len(evs), evs, n)
			}
			evs = append(evs, ev)
		case <-deadline:
			t.Fatalf("got %d events %v within %s; want %d", len(evs), evs, timeout, n)
		}
	}
	return evs
}

// wantEvents collects as many events as want names (within 5 s) and fails
// unless they read want.
func wantEvents(t *testing.T, ch <-chan Event, want string) {
	t.Helper()
	evs := collect(t, ch, strings.Count(want, ", ")+1, 5*time.Second)
	if got := evString(evs); got != want {
		t.Fatalf("events %s; want %s", got, want)
	}
}

func evString(evs []Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Type.String()+" "+e.Lease.VTEP.String())
	}
	return strings.Join(s, ", ")
}

func noMoreEvents(t *testing.T, ch <-chan Event) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Fatalf("unexpected event %s %s", ev.Type, ev.Lease.VTEP)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestWatch runs the same events through Watch from a revision and through
// WatchSnapshot, which starts from the records List already parsed.
func TestWatch(t *testing.T) {
	t.Run("revision", func(t *testing.T) { testWatch(t, false) })
	t.Run("snapshot", func(t *testing.T) { testWatch(t, true) })
}

func testWatch(t *testing.T, fromSnapshot bool) {
	v := newEnv(t)
	cfg := v.config(cfgV6)
	p := v.r.LeasesPrefix()
	v.put(p+"2001:db8::1", rec("2001:db8::1", "fd10:244::/64", "", 1))
	snap := v.list(cfg)
	ctx, cancel := context.WithCancel(v.ctx)
	defer cancel()
	var ch <-chan Event
	if fromSnapshot {
		ch = v.r.WatchSnapshot(ctx, cfg, snap)
		if snap.ix != nil {
			t.Fatal("WatchSnapshot did not take over the snapshot's index")
		}
	} else {
		ch = v.r.Watch(ctx, cfg, snap.Revision)
	}

	// Hostile records produce no events except for the one valid newcomer.
	hostile(v) // rewrites ::1 unchanged (Added again), the rest is invalid or shadowed
	wantEvents(t, ch, "added 2001:db8::1")
	noMoreEvents(t, ch)

	l := mustAcquire(t, v, cfg, attrs("2001:db8:1::1", 1), time.Minute)
	evs := collect(t, ch, 1, 5*time.Second)
	if evString(evs) != "added 2001:db8:1::1" || evs[0].Lease.Subnets.V6.String() != l.Subnets.V6.String() || evs[0].Lease.EtcdLease != l.EtcdLease {
		t.Fatalf("events %s (%+v); want added 2001:db8:1::1 with its subnet", evString(evs), evs[0].Lease)
	}

	// Revoking the etcd lease deletes the key: Removed with the VTEP.
	if _, err := v.cli.Revoke(v.ctx, l.EtcdLease); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, ch, "removed 2001:db8:1::1")

	// Deleting the lease that shadowed ::4 promotes ::4 (Removed ::1, Added ::4).
	if _, err := v.cli.Delete(v.ctx, p+"2001:db8::1"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, ch, "removed 2001:db8::1, added 2001:db8::4")
	// A valid record turning corrupt is removed; fixing it adds it again.
	v.put(p+"2001:db8::4", `garbage`)
	wantEvents(t, ch, "removed 2001:db8::4")
	v.put(p+"2001:db8::4", rec("2001:db8::4", "fd10:244::/64", "", 4))
	wantEvents(t, ch, "added 2001:db8::4")
	// A newcomer overlapping ::4 is shadowed: no event; deleting it: no event.
	v.put(p+"2001:db8::e", rec("2001:db8::e", "fd10:244::/64", "", 14))
	noMoreEvents(t, ch)
	if _, err := v.cli.Delete(v.ctx, p+"2001:db8::e"); err != nil {
		t.Fatal(err)
	}
	noMoreEvents(t, ch)

	// An update of an existing lease that moves onto a subnet held by a lease
	// created later wins the overlap: the later one is removed.
	v.put(p+"2001:db8::f", rec("2001:db8::f", "fd10:244:0:f::/64", "", 15))
	wantEvents(t, ch, "added 2001:db8::f")
	v.put(p+"2001:db8::4", rec("2001:db8::4", "fd10:244:0:f::/64", "", 4))
	evs = collect(t, ch, 2, 5*time.Second)
	sort.Slice(evs, func(i, j int) bool { return evs[i].Type < evs[j].Type })
	if evString(evs) != "added 2001:db8::4, removed 2001:db8::f" {
		t.Fatalf("events %s; want added ::4 and removed ::f", evString(evs))
	}

	// List agrees with what the watch reported.
	snap = v.list(cfg)
	if got := vteps(snap.Leases); got != "2001:db8::4" {
		t.Fatalf("List = %s; want 2001:db8::4", got)
	}

	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			for range ch {
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch channel not closed after cancel")
	}
}

func TestWatchResyncAfterCompaction(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgV6)
	p := v.r.LeasesPrefix()
	v.put(p+"2001:db8::1", rec("2001:db8::1", "fd10:244::/64", "", 1))
	snap := v.list(cfg)
	for i := 2; i < 6; i++ {
		v.put(p+fmt.Sprintf("2001:db8::%d", i), rec(fmt.Sprintf("2001:db8::%d", i), fmt.Sprintf("fd10:244:0:%d::/64", i), "", i))
	}
	resp, err := v.cli.Get(v.ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.cli.Compact(v.ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// From the snapshot's records the watch itself meets the compaction.
	if evs := collect(t, v.r.WatchSnapshot(v.ctx, cfg, snap), 1, 10*time.Second); evs[0].Type != Resync {
		t.Fatalf("WatchSnapshot: first event %s; want resync", evString(evs))
	}
	ch := v.r.Watch(v.ctx, cfg, snap.Revision)
	evs := collect(t, ch, 1, 10*time.Second)
	if evs[0].Type != Resync {
		t.Fatalf("first event %s; want resync", evString(evs))
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("watch sent more after resync; want the channel closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch channel not closed after resync")
	}

	// rev 0 watches from now on, without replaying history.
	ch0 := v.r.Watch(v.ctx, cfg, 0)
	time.Sleep(300 * time.Millisecond)
	v.put(p+"2001:db8::8", rec("2001:db8::8", "fd10:244:0:8::/64", "", 8))
	if evs := collect(t, ch0, 1, 5*time.Second); evString(evs) != "added 2001:db8::8" {
		t.Fatalf("watch from 0: events %s; want added ::8 only", evString(evs))
	}
	noMoreEvents(t, ch0)

	// Watching again from the new revision works.
	snap = v.list(cfg)
	ch = v.r.Watch(v.ctx, cfg, snap.Revision)
	v.put(p+"2001:db8::9", rec("2001:db8::9", "fd10:244:0:9::/64", "", 9))
	wantEvents(t, ch, "added 2001:db8::9")
}
