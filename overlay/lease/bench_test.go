package lease

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/internal/testutil"
)

// fillLeases writes n synthetic dual-stack leases the way vxlan6d would.
func fillLeases(b testing.TB, cli *clientv3.Client, r *Registry, cfg *Config, n int) {
	b.Helper()
	ctx := context.Background()
	var ops []clientv3.Op
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range n {
		l := &Lease{
			VTEP:     net.ParseIP(fmt.Sprintf("2001:db8:%x::%x", i/65536+1, i%65536+1)),
			Subnets:  ipnet.Subnets{V6: nthSubnet(cfg.Networks.V6, cfg.SubnetLen.V6, bigInt(i))},
			VtepMAC:  net.HardwareAddr{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)},
			NodeName: fmt.Sprintf("node-%d", i),
		}
		if cfg.DualStack() {
			l.Subnets.V4 = nthSubnet(cfg.Networks.V4, cfg.SubnetLen.V4, bigInt(i))
		}
		v, err := MarshalRecord(l)
		if err != nil {
			b.Fatal(err)
		}
		ops = append(ops, clientv3.OpPut(r.LeaseKey(l.VTEP), string(v)))
		if len(ops) == 100 {
			flush()
		}
	}
	flush()
}

// BenchmarkList5000 measures List over 5000 dual-stack leases (the daemon's
// start and every resync).
func BenchmarkList5000(b *testing.B) {
	e := testutil.StartEtcd(b)
	r := New(e.Client, "/"+testutil.UniqueName("b"))
	cfg, err := ParseConfig([]byte(`{"EnableIPv4":true,"IPv6Network":"fd10:244::/48","Network":"10.0.0.0/8","SubnetLen":24}`))
	if err != nil {
		b.Fatal(err)
	}
	fillLeases(b, e.Client, r, cfg, 5000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		snap, err := r.List(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if len(snap.Leases) != 5000 || snap.Skipped != 0 {
			b.Fatalf("List: %d leases, %d skipped", len(snap.Leases), snap.Skipped)
		}
	}
	b.StopTimer()

	// Also report one Watch start (it re-reads the state at the revision)
	// and one Acquire among 5000 leases, as figures for the daemon's budget.
	snap, _ := r.List(ctx, cfg)
	start := time.Now()
	wctx, cancel := context.WithCancel(ctx)
	ch := r.Watch(wctx, cfg, snap.Revision)
	start2 := time.Now()
	l, err := r.Acquire(ctx, cfg, Attrs{VTEP: net.ParseIP("2001:db8:ffff::1"), VtepMAC: net.HardwareAddr{2, 1, 1, 1, 1, 1}}, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	acq := time.Since(start2)
	ev := <-ch
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms-watch-start-to-event")
	b.ReportMetric(float64(acq.Microseconds())/1000, "ms-acquire")
	cancel()
	if ev.Type != Added || !ev.Lease.VTEP.Equal(l.VTEP) {
		b.Fatalf("watch event %v", ev)
	}
}
