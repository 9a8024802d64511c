// Package daemon_test benchmarks vxlan6d against many synthetic peers:
//
//   - start: from the daemon's start to every peer's route on the VXLAN device
//     (routes are the last thing programmed per peer);
//   - RSS of the daemon at the end (/proc/PID/status VmRSS), and of it the
//     anonymous part (RssAnon: heap, stacks; the rest is the binary's pages,
//     shared page cache);
//   - new peer: from a new lease's write in etcd to its route appearing
//     (netlink route notifications in the host's netns), p50/p95 over 100,
//     with all the synthetic peers present.
//
// Run: go test -run '^$' -bench . -benchtime 1x ./bench/daemon/   (root)
// VXLAN6_BENCH_PEERS (comma-separated, default "1000,5000") picks the sizes.
// Figures are printed as a table; nothing fails on timing.
package daemon_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"

	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/vxlan"
)

const newPeers = 100

type result struct {
	peers          int
	fast           string // Backend.FastPath
	start          time.Duration
	rssKiB         int // at the end, settled
	anonKiB        int // RssAnon at the end
	rssStartKiB    int // right when every peer was programmed
	hwmKiB         int // peak
	p50, p95, pmax time.Duration
}

var results []result

func BenchmarkDaemon(b *testing.B) {
	for _, n := range peerCounts(b) {
		for _, fast := range []string{"off", "auto", "decap"} {
			b.Run(fmt.Sprintf("peers=%d/fastpath=%s", n, fast), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					r := run(b, n, fast)
					results = append(results, r)
					b.ReportMetric(r.start.Seconds(), "start-s")
					b.ReportMetric(float64(r.rssKiB)/1024, "rss-MiB")
					b.ReportMetric(float64(r.p50.Microseconds())/1000, "newpeer-p50-ms")
					b.ReportMetric(float64(r.p95.Microseconds())/1000, "newpeer-p95-ms")
				}
			})
		}
	}
	printTable()
}

func peerCounts(b *testing.B) []int {
	v := os.Getenv("VXLAN6_BENCH_PEERS")
	if v == "" {
		return []int{1000, 5000}
	}
	var ns []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			b.Fatalf("VXLAN6_BENCH_PEERS=%q: want comma-separated counts", v)
		}
		ns = append(ns, n)
	}
	return ns
}

func printTable() {
	if len(results) == 0 {
		return
	}
	fmt.Println("\nvxlan6d benchmark (aim: 5000 peers <= 5 s, RSS <= 40 MiB, new peer p50 <= 20 ms)")
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "peers\tFastPath\tstart->all programmed\tRSS MiB (end)\tof it anon\tRSS at programmed\tpeak\tnew peer p50\tp95\tmax\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%s\t%s\t\n", r.peers, r.fast, r.start.Round(time.Millisecond), float64(r.rssKiB)/1024, float64(r.anonKiB)/1024,
			float64(r.rssStartKiB)/1024, float64(r.hwmKiB)/1024,
			r.p50.Round(10*time.Microsecond), r.p95.Round(10*time.Microsecond), r.pmax.Round(10*time.Microsecond))
	}
	tw.Flush()
	results = nil
}

// synthetic is peer i: a VTEP nobody owns, its MAC, a /64 of its own.
func synthetic(i int) *lease.Lease {
	vtep := net.ParseIP(fmt.Sprintf("2001:db8:100::%x:%x", i/0x10000+1, i%0x10000+1))
	_, sub, _ := net.ParseCIDR(fmt.Sprintf("fd10:244:%x:%x::/64", 1+i/0x10000, i%0x10000))
	return &lease.Lease{VTEP: vtep, VtepMAC: vxlan.MACFor(vtep), Subnets: ipnet.Subnets{V6: sub}, NodeName: "synthetic-" + strconv.Itoa(i)}
}

func putLeases(b *testing.B, bed *testbed.Bed, from, to int, id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := bed.Registry()
	var ops []clientv3.Op
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if _, err := bed.Client().Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatalf("write synthetic leases: %v", err)
		}
		ops = ops[:0]
	}
	for i := from; i < to; i++ {
		l := synthetic(i)
		v, err := lease.MarshalRecord(l)
		if err != nil {
			b.Fatal(err)
		}
		ops = append(ops, clientv3.OpPut(reg.LeaseKey(l.VTEP), string(v), clientv3.WithLease(id)))
		if len(ops) == 100 { // etcd allows 128 operations per transaction
			flush()
		}
	}
	flush()
}

func run(b *testing.B, n int, fast string) result {
	b.StopTimer()
	bed := testbed.New(b, testbed.Options{Hosts: 1})
	// The daemon's own subnet comes from fd10:244:0::/48; the synthetic
	// ones from fd10:244:1::/48 on, all inside fd10:244::/40.
	bed.PutConfig(`{"EnableIPv6":true,"IPv6Network":"fd10:244::/40","IPv6SubnetLen":64,"Backend":{"Type":"vxlan","VNI":1,"FastPath":"` + fast + `"}}`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	grant, err := bed.Client().Grant(ctx, 3600)
	if err != nil {
		b.Fatal(err)
	}
	putLeases(b, bed, 0, n, grant.ID)
	h := bed.Hosts[0]
	// Build before the clock starts.
	bed.DaemonBin = testutil.Binary(b, "vxlan6d")

	nsh, err := netns.GetFromPath(h.NetnsPath())
	if err != nil {
		b.Fatal(err)
	}
	defer nsh.Close()
	nl, err := netlink.NewHandleAt(nsh)
	if err != nil {
		b.Fatal(err)
	}
	defer nl.Close()

	b.StartTimer()
	t0 := time.Now()
	d := h.StartDaemon()
	pid := d.PID()
	var count int
	err = testbed.Eventually(2*time.Minute, 10*time.Millisecond, func() error {
		if d.Exited() {
			b.Fatalf("daemon exited: %v\n%s", d.ExitErr(), d.Log())
		}
		link, err := nl.LinkByName(testbed.Device)
		if err != nil {
			return err
		}
		rs, err := nl.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{LinkIndex: link.Attrs().Index}, netlink.RT_FILTER_OIF)
		if err != nil {
			return err
		}
		count = 0
		for _, r := range rs {
			if r.Dst != nil && !r.Dst.IP.IsLinkLocalUnicast() {
				count++
			}
		}
		if count < n {
			return fmt.Errorf("%d of %d peer routes", count, n)
		}
		return nil
	})
	start := time.Since(t0)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	d.WaitReady(time.Minute)
	rssProgrammed := vmRSS(pid, "VmRSS:")

	// New peers, one at a time, with all n present.
	updates := make(chan netlink.RouteUpdate, 1024)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.RouteSubscribeWithOptions(updates, done, netlink.RouteSubscribeOptions{Namespace: &nsh, ReceiveBufferSize: 1 << 20}); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	for i := n; i < n+newPeers; i++ {
		l := synthetic(i)
		v, _ := lease.MarshalRecord(l)
		want, key := l.Subnets.V6.String(), bed.Registry().LeaseKey(l.VTEP)
		t1 := time.Now()
		if _, err := bed.Client().Put(ctx, key, string(v), clientv3.WithLease(grant.ID)); err != nil {
			b.Fatal(err)
		}
		timeout := time.After(10 * time.Second)
	wait:
		for {
			select {
			case u := <-updates:
				if u.Type == unix.RTM_NEWROUTE && u.Dst != nil && u.Dst.String() == want {
					lat = append(lat, time.Since(t1))
					break wait
				}
			case <-timeout:
				b.Fatalf("route to new peer %s not programmed within 10s", want)
			}
		}
	}
	// Let the daemon settle (it returns its start-up burst to the OS a few
	// seconds after each full resync), then read RSS and the peak.
	time.Sleep(4 * time.Second)
	rss, hwm, anon := vmRSS(pid, "VmRSS:"), vmRSS(pid, "VmHWM:"), vmRSS(pid, "RssAnon:")
	if sm, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		for _, l := range strings.Split(string(sm), "\n") {
			if strings.HasPrefix(l, "Pss_Anon") || strings.HasPrefix(l, "Pss_File") {
				b.Log(l)
			}
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := result{peers: n, fast: fast, start: start, rssKiB: rss, anonKiB: anon, rssStartKiB: rssProgrammed, hwmKiB: hwm, p50: lat[len(lat)/2], p95: lat[len(lat)*95/100], pmax: lat[len(lat)-1]}
	b.Logf("%d peers: start->programmed %s, RSS %d KiB, new peer p50 %s p95 %s", n, start, rss, r.p50, r.p95)
	for _, line := range strings.Split(d.Log(), "\n") {
		if strings.Contains(line, "memory released") {
			b.Log(line)
		}
	}
	d.Stop()
	return r
}

// vmRSS reads one KiB field (VmRSS:, VmHWM:) of /proc/PID/status.
func vmRSS(pid int, field string) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	return -1
}
