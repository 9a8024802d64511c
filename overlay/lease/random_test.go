package lease

import (
	"fmt"
	"testing"
	"time"
)

// TestAcquireRandom: the daemon's Registry picks a free subnet at random,
// never a held one, so that a node that comes back after its lease expired
// rarely finds its subnet taken by a newcomer (issue 8 §7).
func TestAcquireRandom(t *testing.T) {
	v := newEnv(t)
	v.r.lowestFirst = false
	cfg := v.config(`{"IPv6Network":"fd10:244::/56"}`) // 256 subnets
	seen := map[string]bool{}
	lowest := 0
	for i := 1; i <= 12; i++ {
		l := mustAcquire(t, v, cfg, attrs(fmt.Sprintf("2001:db8:1::%d", i), i), time.Minute)
		s := l.Subnets.V6.String()
		if seen[s] {
			t.Fatalf("subnet %s handed out twice", s)
		}
		seen[s] = true
		if s == fmt.Sprintf("fd10:244:0:%x::/64", i-1) || (i == 1 && s == "fd10:244::/64") {
			lowest++
		}
	}
	// Lowest-first would give exactly 0, 1, 2, ...; random hardly ever does.
	if lowest == 12 {
		t.Fatalf("12 acquisitions took the 12 lowest subnets in order: not random")
	}

	// With one subnet free, random finds exactly that one.
	v2 := newEnv(t)
	v2.r.lowestFirst = false
	cfg2 := v2.config(`{"IPv6Network":"fd10:244::/60"}`) // 16 subnets
	for i := range 16 {
		if i != 11 {
			v2.reserve(fmt.Sprintf("2001:db8:2::%x", i+1), fmt.Sprintf("fd10:244:0:%x::/64", i), "")
		}
	}
	l := mustAcquire(t, v2, cfg2, attrs("2001:db8:1::1", 1), time.Minute)
	wantSubnet(t, "the one free subnet", l.Subnets.V6, "fd10:244:0:b::/64")
}
