package vxlan

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// Run as root: go test -run '^$' -bench . ./overlay/vxlan/
// Figures are reported, never asserted.

func benchPeers(b *testing.B, n int, dual bool) []Peer {
	peers := make([]Peer, n)
	for i := range peers {
		peers[i] = testPeer(b, i+1, dual)
	}
	return peers
}

// rssMiB is this process's resident set (the test binary included).
func rssMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func BenchmarkReconcile(b *testing.B) {
	testutil.RequireRoot(b)
	for _, n := range []int{1000, 5000} {
		for _, dual := range []bool{false, true} {
			b.Run(fmt.Sprintf("from-empty/peers=%d/dual=%v", n, dual), func(b *testing.B) {
				_, dev, _ := benchDevice(b)
				peers := benchPeers(b, n, dual)
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					if err := dev.Reconcile(nil); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					if err := dev.Reconcile(peers); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(rssMiB(), "RSS-MiB")
			})
		}
		b.Run(fmt.Sprintf("unchanged/peers=%d", n), func(b *testing.B) {
			_, dev, _ := benchDevice(b)
			peers := benchPeers(b, n, false)
			if err := dev.Reconcile(peers); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := dev.Reconcile(peers); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAddPeer measures one new peer while 5000 are programmed; p50 and
// p95 of the individual calls are reported beside the mean.
func BenchmarkAddPeer(b *testing.B) {
	testutil.RequireRoot(b)
	for _, dual := range []bool{false, true} {
		b.Run(fmt.Sprintf("with-5000/dual=%v", dual), func(b *testing.B) {
			_, dev, _ := benchDevice(b)
			if err := dev.Reconcile(benchPeers(b, 5000, dual)); err != nil {
				b.Fatal(err)
			}
			extra := benchPeers(b, 35000, dual)[5000:] // distinct from the 5000
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				p := extra[i%len(extra)]
				start := time.Now()
				if err := dev.AddPeer(p); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds()), "p95-µs")
			b.ReportMetric(rssMiB(), "RSS-MiB")
		})
	}
}

func benchDevice(b *testing.B) (any, *Device, DeviceConfig) {
	b.Helper()
	n, ul := underlayNS(b, 1500)
	cfg := DeviceConfig{VNI: 1, Port: 8472, Local: testutil.MustAddrCIDR("2001:db8:f::1/64").IP, UnderlayIndex: ul}
	return n, ensureIn(b, n, cfg), cfg
}
