package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
)

// TestHostileRecordsDoNotStopAllocation (issue 8 §3): with records claiming
// "::/0" and the whole network, and one whose VTEP is another address of
// h1, in a network of only 4 subnets, every node (also one joining later)
// still gets a subnet, pods reach each other across hosts, no host routes
// the hostile prefixes into the tunnel, and h1 does not tunnel to its own
// address.
func TestHostileRecordsDoNotStopAllocation(t *testing.T) {
	t.Parallel()
	b := testbed.New(t, testbed.Options{Hosts: 3, ReverseAddrOrder: true})
	b.PutConfig(`{"IPv6Network":"fd10:244::/62","IPv6SubnetLen":64,"Backend":{"Type":"vxlan","VNI":1}}`)
	h1, h2, h3 := b.Hosts[0], b.Hosts[1], b.Hosts[2]
	p := b.Registry().LeasesPrefix()
	hostile := map[string]string{
		p + "2001:db8:99::a": `{"VTEP":"2001:db8:99::a","IPv6Subnet":"::/0","VtepMAC":"02:00:00:00:99:0a","NodeName":"everything"}`,
		p + "2001:db8:99::b": `{"VTEP":"2001:db8:99::b","IPv6Subnet":"fd10:244::/62","VtepMAC":"02:00:00:00:99:0b","NodeName":"whole-network"}`,
		// A valid subnet under another address of h1: it holds the subnet,
		// but h1 must not tunnel to itself.
		p + h1.Addr2.String(): fmt.Sprintf(`{"VTEP":%q,"IPv6Subnet":"fd10:244:0:3::/64","VtepMAC":"02:00:00:00:99:0c","NodeName":"h1-alias"}`, h1.Addr2),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for k, v := range hostile {
		if _, err := b.Client().Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}

	for _, h := range []*testbed.Host{h1, h2} {
		h.StartDaemon()
	}
	for _, h := range []*testbed.Host{h1, h2} {
		h.Daemon().WaitReady(readyTimeout)
	}
	// A node joining later still finds the last free subnet.
	h3.StartDaemon().WaitReady(readyTimeout)
	seen := map[string]string{}
	for _, h := range b.Hosts {
		sf := h.WaitSubnetFile(readyTimeout)
		if other, dup := seen[sf.Subnets.V6.String()]; dup {
			t.Fatalf("%s and %s both got %s", other, h.Name, sf.Subnets.V6)
		}
		seen[sf.Subnets.V6.String()] = h.Name
		if sf.Subnets.V6.String() == "fd10:244:0:3::/64" {
			t.Fatalf("%s got fd10:244:0:3::/64, held by the record under %s", h.Name, h1.Addr2)
		}
	}
	var cs []*testbed.Container
	for _, h := range b.Hosts {
		cs = append(cs, h.AddContainer())
	}
	meshPing(t, targets(cs, false))

	for _, h := range b.Hosts {
		rs, err := h.Routes()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r == "::/0" || r == "fd10:244::/62" {
				t.Errorf("%s routes the hostile claim %s into the tunnel: %v", h.Name, r, rs)
			}
		}
	}
	if ok, err := h1.HasFDBDst(h1.Addr2); err != nil || ok {
		t.Errorf("%s tunnels to its own address %s (err %v)", h1.Name, h1.Addr2, err)
	}
	if !strings.Contains(h1.Daemon().Log(), "one of this host's addresses") {
		t.Errorf("%s did not say why it ignored the record under its own address", h1.Name)
	}
}

// TestNetworkOverlappingUnderlayRefused (issue 8 §2): a pod network that
// overlaps the underlay's addresses is refused with one error naming both
// prefixes: no lease, no device, no subnet file, not ready. Once the
// operator fixes the config, the daemon carries on without a restart.
func TestNetworkOverlappingUnderlayRefused(t *testing.T) {
	t.Parallel()
	b := testbed.New(t, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	b.PutConfig(`{"IPv6Network":"2001:db8::/32","IPv6SubnetLen":64,"Backend":{"Type":"vxlan","VNI":1}}`)
	routesBefore := h.MustExec("ip", "-6", "route", "show")
	d := h.StartDaemon()
	if err := d.WaitLog("overlaps the underlay", readyTimeout); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // give a wrong daemon the time to go on
	log := d.Log()
	if !strings.Contains(log, "IPv6Network 2001:db8::/32") || !strings.Contains(log, "2001:db8:1::/64") {
		t.Errorf("the error does not name both prefixes:\n%s", log)
	}
	if strings.Contains(log, testbed.ReadyMsg) {
		t.Errorf("daemon became ready with an overlapping network")
	}
	if _, err := os.Stat(h.SubnetFile); !os.IsNotExist(err) {
		t.Errorf("subnet file written (stat: %v)", err)
	}
	for _, k := range b.Keys() {
		if strings.HasPrefix(k, b.Registry().LeasesPrefix()) {
			t.Errorf("lease written: %s", k)
		}
	}
	if out, err := h.Exec("ip", "link", "show", testbed.Device); err == nil {
		t.Errorf("vxlan device created: %s", out)
	}
	if after := h.MustExec("ip", "-6", "route", "show"); after != routesBefore {
		t.Errorf("routing changed:\nbefore:\n%s\nafter:\n%s", routesBefore, after)
	}
	if d.Exited() {
		t.Fatalf("daemon exited instead of waiting for a fixed config: %v", d.ExitErr())
	}
	b.PutIPv6Config()
	d.WaitReady(readyTimeout)
	if sf := h.WaitSubnetFile(readyTimeout); !sf.Networks.V6.Contains(sf.Subnets.V6.IP) || sf.Networks.V6.Contains(net.ParseIP("2001:db8:1::1")) {
		t.Fatalf("subnet file after the fix: %+v", sf)
	}
}
