package ipam

import (
	"fmt"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// BenchmarkFirstAllocateAfterReboot is the store's share of the first ADD
// after a reboot: Open with the new boot ID, Allocate, Close, on a dataDir
// holding n records of the earlier boot. Retiring them is two renames, so
// the cost must not grow with n. The values of n are measured interleaved
// (rotating order) in every iteration, so load on the machine hits them
// alike; it reports the median per n and the ratio to n=0. NoSync: the two
// fsyncs (boot file, record) cost the same whatever n, and on a shared disk
// their noise would drown the figure.
//
//	go test -run '^$' -bench FirstAllocateAfterReboot -benchtime 20x ./ipam/
func BenchmarkFirstAllocateAfterReboot(b *testing.B) {
	sn := []*net.IPNet{testutil.MustCIDR("fd00:bb::/64"), testutil.MustCIDR("10.187.0.0/18")}
	counts := []int{0, 500, 2000}
	took := make([][]time.Duration, len(counts))
	iters := 0
	for b.Loop() {
		b.StopTimer()
		dirs := make([]string, len(counts))
		for i, n := range counts {
			dirs[i] = populateBoot(b, "earlier", n, sn)
		}
		runtime.GC()
		b.StartTimer()
		for k := range counts {
			i := (iters + k) % len(counts)
			start := time.Now()
			s, err := OpenWithOptions(dirs[i], Options{NoSync: true, BootID: "now"})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.AllocateFor("first", "eth0", owned("first"), sn, nil); err != nil {
				b.Fatal(err)
			}
			s.Close()
			took[i] = append(took[i], time.Since(start))
		}
		iters++
	}
	base := median(took[0])
	for i, n := range counts {
		m := median(took[i])
		b.ReportMetric(float64(m.Microseconds()), fmt.Sprintf("µs-median/first-stale=%d", n))
		if n > 0 {
			b.ReportMetric(float64(m)/float64(base), fmt.Sprintf("ratio-stale=%d", n))
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// populateBoot is a dataDir holding n allocations made under boot.
func populateBoot(b *testing.B, boot string, n int, sn []*net.IPNet) string {
	dir := b.TempDir()
	s, err := OpenWithOptions(dir, Options{NoSync: true, BootID: boot})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := range n {
		id := fmt.Sprintf("stale%d", i)
		if _, err := s.AllocateFor(id, "eth0", owned(id), sn, nil); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.Get("x", "eth0"); err != nil { // writes the boot file when n is 0
		b.Fatal(err)
	}
	return dir
}
