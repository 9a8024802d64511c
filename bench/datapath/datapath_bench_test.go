// Package datapath measures the overlay's data path against the underlay it
// runs on, in one run, alternating: two testbed hosts (network namespaces on
// one machine, vxlan6d on each, containers attached by the vxlan6 plugin).
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/datapath/
//
// Rows: iperf3 one TCP stream and four streams, and ping round-trip time,
// pod→pod across hosts against host→host on the underlay; one stream and RTT
// pod→pod on one host against a bare veth pair between two namespaces (same
// MTU as the pods). Columns: the baseline and each path mode. Every
// repetition measures every column of a row back to back (the column order
// rotates per repetition), so load from elsewhere on the machine hits them
// alike; the ratio column is the median of the per-repetition ratios.
//
// Both iperf3 ends share the machine's cores: the server is pinned to CPU 0
// and the client to CPU 1 (iperf3 -A); softirq work runs where the kernel
// puts it. Knobs: VXLAN6_BENCH_REPS (default 5), VXLAN6_BENCH_SECS (iperf3
// seconds per measurement, default 3), VXLAN6_BENCH_PINGS (default 300, 10 ms
// apart), VXLAN6_BENCH_ONLY (rows whose name contains one of these
// comma-separated words), VXLAN6_BENCH_COLUMNS (likewise for path modes).
// Nothing fails on timing.
package datapath

import (
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// endpoints is one column of a row: who sends to whom.
type endpoints struct {
	from string // netns of the client
	to   string // netns of the server
	dst  net.IP
}

// column is a path mode: a name and how to switch the testbed to it.
type column struct {
	name  string
	setup func(b *testing.B) // puts the testbed in this mode (nil: nothing to do)
}

// metric is one row: a measurement, run against the baseline endpoints and
// the overlay endpoints.
type metric struct {
	name     string
	unit     string
	higher   bool // higher is better (throughput) or lower (RTT)
	base     endpoints
	overlay  endpoints
	baseName string
	measure  func(e endpoints) (float64, error)
}

type lab struct {
	bed                *testbed.Bed
	h1, h2             *testbed.Host
	c1, c1b, c2        *testbed.Container
	vethA, vethB       string
	vethAddrB          net.IP
	secs, pings, reps  int
	columns            []column
	fastPathAvailable  bool
	fastPathSkipReason string
	nodes              []hostNode
}

func newLab(b *testing.B) *lab {
	bed := testbed.New(b, testbed.Options{Hosts: 2})
	// The daemons leave the fast path alone (off); the benchmark drives it
	// itself to switch modes (see fastpath_bench_test.go).
	bed.PutConfig(testbed.ConfigJSONFastPath(false, "off"))
	bed.StartDaemons(60*time.Second, nil)
	l := &lab{bed: bed, h1: bed.Hosts[0], h2: bed.Hosts[1],
		secs: envInt("VXLAN6_BENCH_SECS", 3), pings: envInt("VXLAN6_BENCH_PINGS", 300), reps: envInt("VXLAN6_BENCH_REPS", 5)}
	l.openNodes(b)
	l.c1, l.c1b, l.c2 = l.h1.AddContainer(), l.h1.AddContainer(), l.h2.AddContainer()
	sf := l.h1.WaitSubnetFile(30 * time.Second)
	l.vethPair(b, sf.MTU)
	for _, ns := range []string{l.h2.Name, l.c2.Name, l.c1b.Name, l.vethB} {
		testbed.StartIperfServer(b, ns)
	}
	// The first packets pay neighbour discovery; warm every path up.
	for _, p := range [][2]any{{l.h1.Name, l.h2.Addr1}, {l.c1.Name, l.c2.IPv6}, {l.c1.Name, l.c1b.IPv6}, {l.vethA, l.vethAddrB}} {
		if out, err := bed.Ping(p[0].(string), p[1].(net.IP), 3); err != nil {
			b.Fatalf("warm-up ping: %v\n%s", err, out)
		}
	}
	return l
}

// vethPair builds the one-host baseline: two namespaces joined by a bare veth
// pair with the pods' MTU.
func (l *lab) vethPair(b *testing.B, mtu int) {
	l.vethA, l.vethB = l.bed.Name+"va", l.bed.Name+"vb"
	l.bed.AddNetns(l.vethA)
	l.bed.AddNetns(l.vethB)
	l.vethAddrB = net.ParseIP("fd00:99::2")
	m := strconv.Itoa(mtu)
	l.bed.MustExec(l.vethA, "ip", "link", "add", "eth0", "mtu", m, "type", "veth", "peer", "name", "eth0", "mtu", m, "netns", testbed.NetnsPath(l.vethB))
	for _, c := range []struct{ ns, addr string }{{l.vethA, "fd00:99::1/64"}, {l.vethB, "fd00:99::2/64"}} {
		l.bed.MustExec(c.ns, "ip", "link", "set", "lo", "up")
		l.bed.MustExec(c.ns, "ip", "addr", "add", c.addr, "dev", "eth0", "nodad")
		l.bed.MustExec(c.ns, "ip", "link", "set", "eth0", "up")
	}
}

func (l *lab) metrics() []metric {
	d := time.Duration(l.secs) * time.Second
	iperf := func(streams int) func(e endpoints) (float64, error) {
		return func(e endpoints) (float64, error) { return testbed.Iperf(e.from, e.dst, streams, d) }
	}
	rtt := func(e endpoints) (float64, error) {
		rtts, err := testbed.PingRTTs(e.from, e.dst, l.pings, 10*time.Millisecond)
		return testbed.Median(rtts), err
	}
	under := endpoints{l.h1.Name, l.h2.Name, l.h2.Addr1}
	cross := endpoints{l.c1.Name, l.c2.Name, l.c2.IPv6}
	veth := endpoints{l.vethA, l.vethB, l.vethAddrB}
	local := endpoints{l.c1.Name, l.c1b.Name, l.c1b.IPv6}
	return only(os.Getenv("VXLAN6_BENCH_ONLY"), []metric{
		{"across hosts, TCP 1 stream", "Gbit/s", true, under, cross, "underlay", iperf(1)},
		{"across hosts, TCP 4 streams", "Gbit/s", true, under, cross, "underlay", iperf(4)},
		{"across hosts, RTT (median ping)", "ms", false, under, cross, "underlay", rtt},
		{"one host, TCP 1 stream", "Gbit/s", true, veth, local, "veth-veth", iperf(1)},
		{"one host, RTT (median ping)", "ms", false, veth, local, "veth-veth", rtt},
	})
}

// only keeps the rows whose name contains one of the comma-separated
// filters (all rows for an empty filter).
func only(filter string, ms []metric) []metric {
	if filter == "" {
		return ms
	}
	var out []metric
	for _, m := range ms {
		for _, f := range strings.Split(filter, ",") {
			if f != "" && strings.Contains(m.name, f) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// result holds, per metric, per column (0 = baseline), one value per rep.
type result [][][]float64

func (l *lab) run(b *testing.B) result {
	ms := l.metrics()
	res := make(result, len(ms))
	for i := range res {
		res[i] = make([][]float64, len(l.columns)+1)
	}
	for rep := 0; rep < l.reps; rep++ {
		for mi, m := range ms {
			n := len(l.columns) + 1
			for k := 0; k < n; k++ {
				col := (k + rep) % n // rotate who goes first
				e := m.base
				if col > 0 {
					e = m.overlay
					if s := l.columns[col-1].setup; s != nil {
						s(b)
					}
				}
				v, err := m.measure(e)
				if err != nil {
					b.Fatalf("%s, %s, rep %d: %v", m.name, l.colName(m, col), rep, err)
				}
				res[mi][col] = append(res[mi][col], v)
			}
		}
	}
	return res
}

func (l *lab) colName(m metric, col int) string {
	if col == 0 {
		return m.baseName
	}
	return l.columns[col-1].name
}

func (l *lab) filterColumns(filter string) {
	if filter == "" {
		return
	}
	var keep []column
	for _, c := range l.columns {
		for _, f := range strings.Split(filter, ",") {
			if f != "" && c.name == f {
				keep = append(keep, c)
				break
			}
		}
	}
	l.columns = keep
}

func spread(xs []float64) (lo, hi float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[0], s[len(s)-1]
}

// ratios are the per-repetition ratios overlay/baseline.
func ratios(over, base []float64) []float64 {
	out := make([]float64, len(over))
	for i := range over {
		out[i] = over[i] / base[i]
	}
	return out
}

func (l *lab) table(res result) string {
	var sb strings.Builder
	ms := l.metrics()
	fmt.Fprintf(&sb, "\nvxlan6 data path: %d alternating repetitions, iperf3 %d s per run (server on CPU %d, client on CPU %d), %d pings 10 ms apart\n",
		l.reps, l.secs, testbed.ServerCPU, testbed.ClientCPU, l.pings)
	fmt.Fprintf(&sb, "cells: median [min-max]; ratio: median of per-repetition overlay/baseline [min-max]\n")
	if !l.fastPathAvailable {
		fmt.Fprintf(&sb, "fast path not measured: %s\n", l.fastPathSkipReason)
	}
	sb.WriteString("\n")
	for mi, m := range ms {
		fmt.Fprintf(&sb, "%s (%s)\n", m.name, m.unit)
		base := res[mi][0]
		lo, hi := spread(base)
		fmt.Fprintf(&sb, "  %-22s %8.3f [%.3f-%.3f]\n", m.baseName, testbed.Median(base), lo, hi)
		for c := 1; c < len(res[mi]); c++ {
			v := res[mi][c]
			lo, hi := spread(v)
			r := ratios(v, base)
			rlo, rhi := spread(r)
			fmt.Fprintf(&sb, "  %-22s %8.3f [%.3f-%.3f]  ratio %.2f [%.2f-%.2f]\n", l.columns[c-1].name,
				testbed.Median(v), lo, hi, testbed.Median(r), rlo, rhi)
		}
	}
	return sb.String()
}

func BenchmarkDataPath(b *testing.B) {
	for b.Loop() {
		l := newLab(b)
		l.columns = []column{{name: "bridge path", setup: l.bridgePath}}
		l.addFastPathColumns(b)
		l.filterColumns(os.Getenv("VXLAN6_BENCH_COLUMNS"))
		res := l.run(b)
		fmt.Println(l.table(res))
		fmt.Println(l.cniLatency(b))
	}
}
