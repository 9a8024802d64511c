package testbed

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// PeerTimeout bounds how long a daemon may take to program (or remove) a
// peer's fdb entry or route after the peer's lease changed.
const PeerTimeout = 15 * time.Second

// NewConfigured is New plus the network config (ConfigJSON(dual)) in etcd.
// Tests say which underlay address order they rely on through
// o.ReverseAddrOrder.
func NewConfigured(t testing.TB, o Options, dual bool) *Bed {
	t.Helper()
	b := New(t, o)
	b.PutConfig(ConfigJSON(dual))
	return b
}

// WaitFDB waits until h has (want) or lacks (!want) an fdb entry tunnelling
// to vtep, bounded by PeerTimeout; it fails t otherwise.
func (h *Host) WaitFDB(t testing.TB, vtep net.IP, want bool) {
	t.Helper()
	h.WaitPresent(t, fmt.Sprintf("fdb entry to %s", vtep), want, PeerTimeout, func() (bool, error) { return h.HasFDBDst(vtep) })
}

// WaitRoute waits until h has (want) or lacks a route to subnet through
// the VXLAN device, bounded by timeout; it fails t otherwise.
func (h *Host) WaitRoute(t testing.TB, subnet *net.IPNet, want bool, timeout time.Duration) {
	t.Helper()
	h.WaitPresent(t, fmt.Sprintf("route to %s", subnet), want, timeout, func() (bool, error) { return h.HasRoute(subnet) })
}

// WaitPresent waits until has reports want for what on h, or fails t.
func (h *Host) WaitPresent(t testing.TB, what string, want bool, timeout time.Duration, has func() (bool, error)) {
	t.Helper()
	err := Eventually(timeout, 50*time.Millisecond, func() error {
		got, err := has()
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s: %s present=%v, want %v", h.Name, what, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// MustPing sends 3 echoes from c to dst and fails t when any is lost.
func (c *Container) MustPing(t testing.TB, dst net.IP) {
	t.Helper()
	if out, err := c.Ping(dst, 3); err != nil {
		t.Fatalf("ping %s from %s (%s): %v\n%s", dst, c.Name, c.Host.Name, err, out)
	}
}

// VTEP is the VTEP h's daemon wrote into its subnet file.
func (h *Host) VTEP(t testing.TB) net.IP {
	t.Helper()
	c, err := h.SubnetConfig()
	if err != nil {
		t.Fatal(err)
	}
	return c.VTEP
}
