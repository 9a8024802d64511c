package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/vxlan6/vxlan6/internal/testbed"
)

// downPastTTL stops h's daemon, removes its subnet file (a reboot clears
// /run) and waits until its lease (TTL 2s) has expired in etcd.
func downPastTTL(t *testing.T, b *testbed.Bed, h *testbed.Host) {
	t.Helper()
	sf := h.WaitSubnetFile(readyTimeout)
	h.Daemon().Stop()
	if err := os.Remove(h.SubnetFile); err != nil {
		t.Fatal(err)
	}
	err := testbed.Eventually(60*time.Second, 200*time.Millisecond, func() error {
		if b.LeaseFor(sf.VTEP) != nil {
			return fmt.Errorf("lease of %s still in etcd", sf.VTEP)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRebootPastTTLKeepsSubnet (issue 8 §7): a node down longer than its
// lease TTL, whose subnet file is gone, gets its old subnet back from the
// lease file under /var/lib (here the host's dir), although another node
// joined meanwhile; its old container reaches the newcomer's again.
func TestRebootPastTTLKeepsSubnet(t *testing.T) {
	t.Parallel()
	b := newBed(t, 2, false)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	h1.StartDaemon("--lease-ttl", "2s").WaitReady(readyTimeout)
	before := h1.WaitSubnetFile(readyTimeout)
	c1 := h1.AddContainer()

	downPastTTL(t, b, h1)
	h2.StartDaemon().WaitReady(readyTimeout) // a newcomer while h1 is away
	c2 := h2.AddContainer()

	d := h1.StartDaemon("--lease-ttl", "2s")
	d.WaitReady(readyTimeout)
	after := h1.WaitSubnetFile(readyTimeout)
	if after.Subnets.V6.String() != before.Subnets.V6.String() {
		t.Fatalf("%s came back with %s, had %s", h1.Name, after.Subnets.V6, before.Subnets.V6)
	}
	if !strings.Contains(d.Log(), "hint from the lease file") {
		t.Errorf("the subnet did not come from the lease file")
	}
	if strings.Contains(d.Log(), "did NOT get its previous subnet back") {
		t.Errorf("false alarm about a lost subnet")
	}
	meshPing(t, targets([]*testbed.Container{c1, c2}, false))
}

// TestRebootPastTTLSubnetTakenIsLoud: when the old subnet was taken while
// the node was down, the daemon says so as an error naming it (and is not
// ready, see TestLostSubnetNotReady), and still serves new containers
// from the subnet it got instead. A container that outlived the daemon on
// the old subnet fails CHECK with code 100 naming its address.
func TestRebootPastTTLSubnetTakenIsLoud(t *testing.T) {
	t.Parallel()
	b := newBed(t, 1, false)
	h1 := b.Hosts[0]
	h1.StartDaemon("--lease-ttl", "2s").WaitReady(readyTimeout)
	before := h1.WaitSubnetFile(readyTimeout)
	ch := h1.Chain()
	old := ch.Add(nil)
	if err := ch.Check(old, nil); err != nil {
		t.Fatalf("CHECK before the daemon went down: %v", err)
	}
	downPastTTL(t, b, h1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	thief := fmt.Sprintf(`{"VTEP":"2001:db8:99::1","IPv6Subnet":%q,"VtepMAC":"02:00:00:00:99:01","NodeName":"thief"}`, before.Subnets.V6)
	if _, err := b.Client().Put(ctx, b.Registry().LeasesPrefix()+"2001:db8:99::1", thief); err != nil {
		t.Fatal(err)
	}
	d := h1.StartDaemon("--lease-ttl", "2s")
	d.WaitReady(readyTimeout)
	after := h1.WaitSubnetFile(readyTimeout)
	if after.Subnets.V6.String() == before.Subnets.V6.String() {
		t.Fatalf("%s got %s although another node holds it", h1.Name, after.Subnets.V6)
	}
	if err := d.WaitLog("did NOT get its previous subnet back", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Log(), "level=ERROR") || !strings.Contains(d.Log(), "previousSubnet="+before.Subnets.V6.String()) {
		t.Errorf("the error does not name the lost subnet %s", before.Subnets.V6)
	}
	h1.AddContainer()
	var te *types.Error
	if err := ch.Check(old, nil); !errors.As(err, &te) || te.Code != 100 || !strings.Contains(te.Msg, old.IPv6.String()) {
		t.Errorf("CHECK of %s (%s, outside the new subnet %s): %v; want code 100 naming the address", old.Name, old.IPv6, after.Subnets.V6, err)
	}
}
