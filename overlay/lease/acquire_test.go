package lease

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAcquireIPv6Only(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgV6)
	a := mustAcquire(t, v, cfg, attrs("2001:db8:1::1", 1), time.Minute)
	b := mustAcquire(t, v, cfg, attrs("2001:db8:1::2", 2), time.Minute)
	wantSubnet(t, "a v6", a.Subnets.V6, "fd10:244::/64")
	wantSubnet(t, "a v4", a.Subnets.V4, "")
	wantSubnet(t, "b v6", b.Subnets.V6, "fd10:244:0:1::/64")
	if a.Reserved || a.EtcdLease == 0 {
		t.Fatalf("lease a: Reserved=%v EtcdLease=%x, want a TTL lease", a.Reserved, a.EtcdLease)
	}
	resp, err := v.cli.Get(v.ctx, v.r.LeaseKey(a.VTEP))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("read lease key: %v %v", resp, err)
	}
	if got := string(resp.Kvs[0].Value); strings.Contains(got, `"Subnet"`) {
		t.Fatalf("IPv6-only record carries an IPv4 subnet: %s", got)
	}
	snap := v.list(cfg)
	if len(snap.Leases) != 2 || snap.Skipped != 0 {
		t.Fatalf("List: %d leases, %d skipped; want 2, 0", len(snap.Leases), snap.Skipped)
	}
	if peers := snap.Without(a.VTEP); len(peers) != 1 || !peers[0].VTEP.Equal(b.VTEP) {
		t.Fatalf("Without(a) = %v", peers)
	}
}

func TestAcquireDualStack(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgDual)
	a := mustAcquire(t, v, cfg, attrs("2001:db8:1::1", 1), time.Minute)
	wantSubnet(t, "v6", a.Subnets.V6, "fd10:244::/64")
	wantSubnet(t, "v4", a.Subnets.V4, "10.244.0.0/24")
	// IPv4 index 1 is reserved by someone else: the next node gets IPv6 index 1
	// and the first free IPv4 subnet instead of the same index.
	v.reserve("2001:db8:1::99", "fd10:244:0:7::/64", "10.244.1.0/24")
	b := mustAcquire(t, v, cfg, attrs("2001:db8:1::2", 2), time.Minute)
	wantSubnet(t, "b v6", b.Subnets.V6, "fd10:244:0:1::/64")
	wantSubnet(t, "b v4", b.Subnets.V4, "10.244.2.0/24")
	c := mustAcquire(t, v, cfg, attrs("2001:db8:1::3", 3), time.Minute)
	wantSubnet(t, "c v6", c.Subnets.V6, "fd10:244:0:2::/64")
	wantSubnet(t, "c v4", c.Subnets.V4, "10.244.3.0/24")
}

func TestAcquireRestartSameSubnet(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgDual)
	mustAcquire(t, v, cfg, attrs("2001:db8:1::1", 1), time.Minute)
	first := mustAcquire(t, v, cfg, attrs("2001:db8:1::2", 2), time.Minute)
	mustAcquire(t, v, cfg, attrs("2001:db8:1::3", 3), time.Minute)
	again := mustAcquire(t, v, cfg, attrs("2001:db8:1::2", 2), time.Minute)
	if !again.Subnets.V6.IP.Equal(first.Subnets.V6.IP) || again.Subnets.V4.String() != first.Subnets.V4.String() {
		t.Fatalf("restart got %s/%s, want %s/%s", again.Subnets.V6, again.Subnets.V4, first.Subnets.V6, first.Subnets.V4)
	}
	if again.EtcdLease == first.EtcdLease || again.EtcdLease == 0 {
		t.Fatalf("restart kept etcd lease %x; want a fresh one", again.EtcdLease)
	}
	// The old etcd lease is revoked in the background; the key must survive it.
	time.Sleep(300 * time.Millisecond)
	snap, err := v.r.List(v.ctx, cfg)
	if err != nil || len(snap.Leases) != 3 {
		t.Fatalf("List after restart: %v leases, err %v", snap, err)
	}
}

func TestAcquireAfterExpiryUsesHint(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgV6)
	l1 := mustAcquire(t, v, cfg, attrs("2001:db8:1::1", 1), time.Minute)
	first := mustAcquire(t, v, cfg, attrs("2001:db8:1::2", 2), 2*time.Second)
	mustAcquire(t, v, cfg, attrs("2001:db8:1::3", 3), time.Minute)
	// Free a lower subnet, so that only the hint can bring the old one back.
	if _, err := v.cli.Delete(v.ctx, v.r.LeaseKey(l1.VTEP)); err != nil {
		t.Fatal(err)
	}
	key := v.r.LeaseKey(first.VTEP)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := v.cli.Get(v.ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease %s did not expire within 20s", key)
		}
		time.Sleep(200 * time.Millisecond)
	}
	a := attrs("2001:db8:1::2", 2)
	a.Hint.V6 = first.Subnets.V6
	got := mustAcquire(t, v, cfg, a, time.Minute)
	wantSubnet(t, "after expiry with hint", got.Subnets.V6, first.Subnets.V6.String())

	// A hint someone else holds is not honoured.
	b := attrs("2001:db8:1::4", 4)
	b.Hint.V6 = first.Subnets.V6
	got = mustAcquire(t, v, cfg, b, time.Minute)
	wantSubnet(t, "hint held by another", got.Subnets.V6, "fd10:244::/64")
}

func TestAcquireReservation(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgDual)
	v.reserve("2001:db8:1::1", "fd10:244:0:5::/64", "10.244.9.0/24") // ours
	v.reserve("2001:db8:1::9", "fd10:244::/64", "10.244.0.0/24")     // someone else's
	own := mustAcquire(t, v, cfg, attrs("2001:db8:1::1", 1), time.Minute)
	wantSubnet(t, "own v6", own.Subnets.V6, "fd10:244:0:5::/64")
	wantSubnet(t, "own v4", own.Subnets.V4, "10.244.9.0/24")
	if !own.Reserved || own.EtcdLease != 0 {
		t.Fatalf("own reservation: Reserved=%v EtcdLease=%x; want reserved without etcd lease", own.Reserved, own.EtcdLease)
	}
	resp, err := v.cli.Get(v.ctx, v.r.LeaseKey(own.VTEP))
	if err != nil {
		t.Fatal(err)
	}
	if kv := resp.Kvs[0]; kv.Lease != 0 || !strings.Contains(string(kv.Value), `"NodeName":"node1"`) || !strings.Contains(string(kv.Value), "02:00:00:00:00:01") {
		t.Fatalf("reservation after acquire: lease %x value %s; want no lease, our MAC and node name", kv.Lease, kv.Value)
	}
	other := mustAcquire(t, v, cfg, attrs("2001:db8:1::2", 2), time.Minute)
	wantSubnet(t, "other v6", other.Subnets.V6, "fd10:244:0:1::/64")
	wantSubnet(t, "other v4", other.Subnets.V4, "10.244.1.0/24")
}

func TestAcquireAddsIPv4WhenDualStackEnabledLater(t *testing.T) {
	v := newEnv(t)
	l := mustAcquire(t, v, v.config(cfgV6), attrs("2001:db8:1::1", 1), time.Minute)
	wantSubnet(t, "v4 before", l.Subnets.V4, "")
	l2 := mustAcquire(t, v, v.config(cfgDual), attrs("2001:db8:1::1", 1), time.Minute)
	wantSubnet(t, "v6 after", l2.Subnets.V6, l.Subnets.V6.String())
	wantSubnet(t, "v4 after", l2.Subnets.V4, "10.244.0.0/24")
}

func TestAcquireConcurrentAllDistinct(t *testing.T) {
	v := newEnv(t)
	// /59 with /64 subnets: exactly 32 subnets; 12 reserved, 20 left for 20 nodes.
	cfg := v.config(`{"IPv6Network":"fd10:244::/59"}`)
	for i := 0; i < 12; i++ {
		v.reserve(fmt.Sprintf("2001:db8:2::%x", i+1), fmt.Sprintf("fd10:244:0:%x::/64", 31-i), "")
	}
	const n = 20
	var wg sync.WaitGroup
	leases := make([]*Lease, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			leases[i], errs[i] = v.r.Acquire(v.ctx, cfg, attrs(fmt.Sprintf("2001:db8:1::%x", i+1), i+1), time.Minute)
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("acquire %d: %v", i, errs[i])
		}
		s := leases[i].Subnets.V6.String()
		if j, dup := seen[s]; dup {
			t.Fatalf("nodes %d and %d both got %s", j, i, s)
		}
		seen[s] = i
	}
	_, err := v.r.Acquire(v.ctx, cfg, attrs("2001:db8:1::ff", 255), time.Minute)
	if !errors.Is(err, ErrNoFreeSubnet) {
		t.Fatalf("acquire on a full network: %v; want ErrNoFreeSubnet", err)
	}
	if !strings.Contains(err.Error(), "no free IPv6 subnet left in fd10:244::/59 (32 subnets, 32 leased)") {
		t.Fatalf("full network error %q does not say why", err)
	}
}

func TestAcquireOneSubnetLeft(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(`{"IPv6Network":"fd10:244::/62"}`)
	v.reserve("2001:db8:2::1", "fd10:244::/64", "")
	v.reserve("2001:db8:2::2", "fd10:244:0:1::/64", "")
	v.reserve("2001:db8:2::3", "fd10:244:0:3::/64", "")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	leases := make([]*Lease, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			leases[i], errs[i] = v.r.Acquire(v.ctx, cfg, attrs(fmt.Sprintf("2001:db8:1::%d", i+1), i+1), time.Minute)
		}()
	}
	wg.Wait()
	won, lost := 0, 0
	for i := range 2 {
		switch {
		case errs[i] == nil:
			won++
			wantSubnet(t, "winner", leases[i].Subnets.V6, "fd10:244:0:2::/64")
		case strings.Contains(errs[i].Error(), "no free IPv6 subnet left in fd10:244::/62 (4 subnets, 4 leased)"):
			lost++
		default:
			t.Fatalf("acquire %d: unexpected error %v", i, errs[i])
		}
	}
	if won != 1 || lost != 1 {
		t.Fatalf("%d won, %d lost; want exactly one each", won, lost)
	}
}

func TestAcquireSkipsSubnetUnderOtherKey(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgV6)
	// A record whose key does not match its VTEP is skipped by List, but it
	// still holds its subnet for allocation; a record with an odd prefix
	// length covering several subnets holds nothing (issue 8 §3: a record
	// holds at most one subnet of exactly the configured length).
	v.put(v.r.LeasesPrefix()+"garbage-key", `{"VTEP":"2001:db8::5","IPv6Subnet":"fd10:244::/64","VtepMAC":"02:00:00:00:00:05"}`)
	v.put(v.r.LeasesPrefix()+"2001:db8::6", `{"VTEP":"2001:db8::6","IPv6Subnet":"fd10:244:0:4::/62","VtepMAC":"02:00:00:00:00:06"}`)
	v.put(v.r.LeasesPrefix()+"2001:db8::7", `not json`)
	var got []string
	for i := 1; i <= 4; i++ {
		got = append(got, mustAcquire(t, v, cfg, attrs(fmt.Sprintf("2001:db8:1::%d", i), i), time.Minute).Subnets.V6.String())
	}
	want := "fd10:244:0:1::/64 fd10:244:0:2::/64 fd10:244:0:3::/64 fd10:244:0:4::/64"
	if strings.Join(got, " ") != want {
		t.Fatalf("allocated %v, want %s", got, want)
	}
}

func TestAcquireBadAttrs(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgV6)
	for _, a := range []Attrs{
		attrs("10.0.0.1", 1),
		attrs("fe80::1", 1),
		{VTEP: attrs("2001:db8::1", 1).VTEP},
	} {
		if _, err := v.r.Acquire(v.ctx, cfg, a, time.Minute); err == nil {
			t.Errorf("acquire with %+v succeeded", a)
		}
	}
}
