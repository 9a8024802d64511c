package e2e

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
)

// TestArbiterFirstHolderAfterRestart (issue 7, the lease arbiter): peer A
// is created first, B later with A's MAC, then A's record is rewritten, so
// B has the older ModRevision. The daemon used to keep B after a full List
// (it sorted by ModRevision) while its watch had kept A; now both paths ask
// lease, and A, the first holder, is the peer: on the watch path and after a
// restart.
func TestArbiterFirstHolderAfterRestart(t *testing.T) {
	t.Parallel()
	b := newBed(t, 1, false)
	h1 := b.Hosts[0]
	h1.StartDaemon().WaitReady(readyTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := b.Registry().LeasesPrefix()
	rec := func(vtep, subnet, node string) string {
		return fmt.Sprintf(`{"VTEP":%q,"IPv6Subnet":%q,"VtepMAC":"02:00:00:00:99:aa","NodeName":%q}`, vtep, subnet, node)
	}
	for _, kv := range [][2]string{
		{"2001:db8:99::a", rec("2001:db8:99::a", "fd10:244:0:fa::/64", "a")},
		{"2001:db8:99::b", rec("2001:db8:99::b", "fd10:244:0:fb::/64", "b")},
		{"2001:db8:99::a", rec("2001:db8:99::a", "fd10:244:0:fa::/64", "a-rewritten")},
	} {
		if _, err := b.Client().Put(ctx, p+kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	_, subA, _ := net.ParseCIDR("fd10:244:0:fa::/64")
	_, subB, _ := net.ParseCIDR("fd10:244:0:fb::/64")
	check := func(when string) {
		t.Helper()
		err := testbed.Eventually(10*time.Second, 100*time.Millisecond, func() error {
			okA, err := h1.HasFDBDst(net.ParseIP("2001:db8:99::a"))
			if err != nil {
				return err
			}
			okB, _ := h1.HasFDBDst(net.ParseIP("2001:db8:99::b"))
			rA, _ := h1.HasRoute(subA)
			rB, _ := h1.HasRoute(subB)
			if !okA || !rA || okB || rB {
				return fmt.Errorf("%s: fdb A %v B %v, route A %v B %v; want only A, the first holder of the MAC", when, okA, okB, rA, rB)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check("watch path")
	h1.Daemon().Stop()
	h1.StartDaemon().WaitReady(readyTimeout)
	check("after a restart (full List)")
}
