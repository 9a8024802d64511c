package ipam

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// populate makes n allocations quickly (without fsync), as if the node had
// been running for a while.
func populate(b *testing.B, dir string, subnet *net.IPNet, n int) {
	b.Helper()
	s, err := OpenWithOptions(dir, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := range n {
		if _, err := s.Allocate(fmt.Sprintf("bg%d", i), "eth0", []*net.IPNet{subnet}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func benchAllocRelease(b *testing.B, cidr string, present int, opts Options) {
	subnet := testutil.MustCIDR(cidr)
	dir := b.TempDir()
	populate(b, dir, subnet, present)
	s, err := OpenWithOptions(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	subnets := []*net.IPNet{subnet}
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("b%d", i)
		if _, err := s.Allocate(id, "eth0", subnets, nil); err != nil {
			b.Fatal(err)
		}
		if err := s.Release(id, "eth0"); err != nil {
			b.Fatal(err)
		}
	}
}

// Allocate+Release on a /64 holding 10k allocations, and on a /24 holding
// 200 (a busy node), with the default fsync and without.
func BenchmarkAllocateRelease(b *testing.B) {
	for _, c := range []struct {
		name    string
		cidr    string
		present int
	}{
		{"v6-64-10k", "fd00:1::/64", 10000},
		{"v4-24-200", "10.1.0.0/24", 200},
	} {
		b.Run(c.name+"/fsync", func(b *testing.B) { benchAllocRelease(b, c.cidr, c.present, Options{}) })
		b.Run(c.name+"/nosync", func(b *testing.B) { benchAllocRelease(b, c.cidr, c.present, Options{NoSync: true}) })
	}
}

// What one plugin exec pays: Open, Allocate, Close (the plugin is a fresh
// process each time), on a /64 with 10k allocations.
func BenchmarkOpenAllocateClose(b *testing.B) {
	subnet := testutil.MustCIDR("fd00:2::/64")
	dir := b.TempDir()
	populate(b, dir, subnet, 10000)
	subnets := []*net.IPNet{subnet}
	b.ResetTimer()
	for i := range b.N {
		s, err := Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Allocate(fmt.Sprintf("o%d", i), "eth0", subnets, nil); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// An idempotent repeat (CHECK-like) and Free (STATUS) write nothing.
func BenchmarkRepeatAndFree(b *testing.B) {
	subnet := testutil.MustCIDR("fd00:3::/64")
	dir := b.TempDir()
	populate(b, dir, subnet, 10000)
	s, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	subnets := []*net.IPNet{subnet}
	b.Run("repeat", func(b *testing.B) {
		for range b.N {
			if _, err := s.Allocate("bg77", "eth0", subnets, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("free", func(b *testing.B) {
		for range b.N {
			if ok, err := s.Free(subnet); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	// A dual-stack node whose IPv4 /24 is full (253 containers): Free must
	// count, and still stays cheap.
	dsDir := b.TempDir()
	v6, v4 := testutil.MustCIDR("fd00:4::/64"), testutil.MustCIDR("10.4.0.0/24")
	ds, err := OpenWithOptions(dsDir, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	for i := range 253 {
		if _, err := ds.Allocate(fmt.Sprintf("ds%d", i), "eth0", []*net.IPNet{v6, v4}, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("free-full-24-dualstack", func(b *testing.B) {
		for range b.N {
			if ok, err := ds.Free(v4); err != nil || ok {
				b.Fatal(ok, err)
			}
		}
	})

}

// Many plugin processes at once (50 parallel ADDs): each goroutine has its
// own Store, hence its own flock, like a separate process.
func BenchmarkParallelAllocate(b *testing.B) {
	subnet := testutil.MustCIDR("fd00:5::/64")
	dir := b.TempDir()
	subnets := []*net.IPNet{subnet}
	var seq atomic.Int64
	b.SetParallelism(25) // x GOMAXPROCS goroutines
	b.RunParallel(func(pb *testing.PB) {
		s, err := Open(dir)
		if err != nil {
			b.Error(err)
			return
		}
		defer s.Close()
		for pb.Next() {
			if _, err := s.Allocate(fmt.Sprintf("p%d", seq.Add(1)), "eth0", subnets, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
