package e2e

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/vxlan"
)

// Issue 8 §7: while the daemon knows that another node holds its subnet (a
// lease with an older CreateRevision claims it, so lease.List gives it to
// that node), the plugin must not allocate from it: the subnet file carries
// VXLAN6_SUBNET_HELD_BY and ADD answers "try again later" (code 11). Once
// the other lease lets go, the mark goes and ADD works again.
func TestSubnetHeldByOtherNodeBlocksADD(t *testing.T) {
	t.Parallel()
	b := testbed.NewConfigured(t, testbed.Options{Hosts: 1}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := b.Registry()
	vtep := net.ParseIP("2001:db8:99::a1")
	_, own, _ := net.ParseCIDR("fd10:244:0:a1::/64")
	other := &lease.Lease{VTEP: vtep, VtepMAC: vxlan.MACFor(vtep), Subnets: ipnet.Subnets{V6: own}, NodeName: "other-node"}
	put := func() {
		t.Helper()
		v, err := lease.MarshalRecord(other)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Client().Put(ctx, reg.LeaseKey(vtep), string(v)); err != nil {
			t.Fatal(err)
		}
	}
	first := own
	put() // before the daemon's lease: the older key
	startAll(t, b, map[int][]string{0: {"--resync-interval", "10m"}})
	h := b.Hosts[0]
	sf := h.WaitSubnetFile(readyTimeout)
	if sf.Held() {
		t.Fatalf("fresh subnet file marked held by %s", sf.HeldBy)
	}
	mine := sf.Subnets.V6

	// The same key now claims our subnet, keeping its older CreateRevision.
	other.Subnets.V6 = mine
	put()
	err := testbed.Eventually(30*time.Second, 100*time.Millisecond, func() error {
		c, err := h.SubnetConfig()
		if err != nil {
			return err
		}
		if !c.Held() {
			return errors.New("subnet file not marked held")
		}
		if c.HeldBy != "other-node@"+vtep.String() {
			t.Errorf("held by %q, want other-node@%s", c.HeldBy, vtep)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	add := func() error {
		t.Helper()
		_, err := h.TryAddContainer()
		return err
	}
	err = add()
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrTryAgainLater {
		t.Fatalf("ADD while the subnet is held elsewhere: %v, want CNI code %d", err, types.ErrTryAgainLater)
	}
	t.Logf("ADD refused: %s", te.Msg)

	// The other node lets go: the mark goes, ADD works.
	// Back to its first subnet, which ours cannot be (it was taken then).
	other.Subnets.V6 = first
	put()
	err = testbed.Eventually(30*time.Second, 100*time.Millisecond, func() error {
		c, err := h.SubnetConfig()
		if err != nil {
			return err
		}
		if c.Held() || c.Subnets.V6.String() != mine.String() {
			return errors.New("subnet file still marked held (or subnet changed): " + c.HeldBy + " " + c.Subnets.V6.String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := add(); err != nil {
		t.Fatalf("ADD after the mark went: %v", err)
	}
}
