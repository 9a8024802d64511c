package ipam

import (
	"fmt"
	"net"
	"testing"
)

// BenchmarkFirstAllocateAfterReboot is the store's share of the first ADD
// after a reboot: Open with the new boot ID, Allocate, Close, on a dataDir
// holding n records of the earlier boot. Retiring them is two renames, so
// the cost must not grow with n. NoSync: the two fsyncs (boot file, record)
// cost the same whatever n, and on a shared disk their noise would drown the
// figure.
//
//	go test -run '^$' -bench FirstAllocateAfterReboot -benchtime 10x ./ipam/
func BenchmarkFirstAllocateAfterReboot(b *testing.B) {
	sn := []*net.IPNet{mustCIDR(b, "fd00:bb::/64"), mustCIDR(b, "10.187.0.0/18")}
	for _, n := range []int{0, 500, 2000} {
		b.Run(fmt.Sprintf("stale=%d", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				s, err := OpenWithOptions(dir, Options{NoSync: true, BootID: "earlier"})
				if err != nil {
					b.Fatal(err)
				}
				for i := range n {
					id := fmt.Sprintf("stale%d", i)
					if _, err := s.AllocateFor(id, "eth0", owned(id), sn, nil); err != nil {
						b.Fatal(err)
					}
				}
				s.Close()
				b.StartTimer()
				s, err = OpenWithOptions(dir, Options{NoSync: true, BootID: "now"})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.AllocateFor("first", "eth0", owned("first"), sn, nil); err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
		})
	}
}
