package fastpath_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/vxlan6/vxlan6/datapath/fastpath"
	"github.com/vxlan6/vxlan6/internal/testbed"
)

// The underlay decap prototype (Hooks.Decap) on two testbed hosts, driven
// as the data-path benchmark drives it: daemons with the fast path off, one
// fastpath.Node per host opened before the containers are added.
func TestUnderlayDecap(t *testing.T) {
	bed := testbed.New(t, testbed.Options{Hosts: 2})
	bed.PutConfig(testbed.ConfigJSONFastPath(false, "off"))
	bed.StartDaemons(60*time.Second, nil)
	var nodes []*fastpath.Node
	var nss []ns.NetNS
	for _, h := range bed.Hosts {
		n, err := ns.GetNS(h.NetnsPath())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		var node *fastpath.Node
		if err := n.Do(func(ns.NetNS) (err error) { node, err = fastpath.NewNode(testbed.Device); return err }); err != nil {
			t.Fatalf("fast path on %s: %v", h.Name, err)
		}
		node.Grace = 0
		t.Cleanup(func() {
			_ = n.Do(func(ns.NetNS) error { return node.Remove() })
			node.Close()
		})
		nodes, nss = append(nodes, node), append(nss, n)
	}
	h1, h2 := bed.Hosts[0], bed.Hosts[1]
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	h1.WaitSubnetFile(30 * time.Second)
	h2.WaitSubnetFile(30 * time.Second)
	hooks := fastpath.AllHooks
	hooks.Decap = true
	sync := func() {
		t.Helper()
		for i, node := range nodes {
			node.Hooks = hooks
			if err := nss[i].Do(func(ns.NetNS) error { return node.Sync() }); err != nil {
				t.Fatalf("sync %s: %v", bed.Hosts[i].Name, err)
			}
		}
	}
	// The peers' routes and fdb entries may come a moment after the subnet
	// files: sync until the first ping gets through.
	err := testbed.Eventually(60*time.Second, 500*time.Millisecond, func() error {
		sync()
		out, err := c1.Ping(c2.IPv6, 2)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("pod → pod across hosts with underlay decap: %v", err)
	}
	sync()
	st0, err := nodes[1].DecapStats()
	if err != nil {
		t.Fatal(err)
	}
	rx0, err := linkRxPackets(h2, testbed.Device)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c1.Ping(c2.IPv6, 20); err != nil {
		t.Fatalf("ping %s → %s: %v\n%s", c1.Name, c2.IPv6, err, out)
	}
	st1, err := nodes[1].DecapStats()
	if err != nil {
		t.Fatal(err)
	}
	rx1, err := linkRxPackets(h2, testbed.Device)
	if err != nil {
		t.Fatal(err)
	}
	// 20 echo requests came to h2; a lost one is no proof of anything.
	if st1.Decap-st0.Decap < 15 || st1.AdjustErr != 0 {
		t.Errorf("underlay program on %s decapsulated %d packets of 20 echoes (adjust_room errors %d)", h2.Name, st1.Decap-st0.Decap, st1.AdjustErr)
	}
	if rx1-rx0 > 5 {
		t.Errorf("%s on %s received %d packets during 20 echoes: they took the kernel path", testbed.Device, h2.Name, rx1-rx0)
	}
	t.Logf("decapsulated %d, %s rx %d during 20 echoes", st1.Decap-st0.Decap, testbed.Device, rx1-rx0)

	// A TCP stream: its GSO skbs take the kernel path (vxlan device), its
	// small ones (ACKs one way, anything unbatched) the program; both must
	// work together.
	rxTCP0, err := linkRxPackets(h2, testbed.Device)
	if err != nil {
		t.Fatal(err)
	}
	testbed.StartIperfServer(t, c2.Name)
	gbps, err := testbed.Iperf(c1.Name, c2.IPv6, 1, 2*time.Second)
	if err != nil || gbps <= 0 {
		t.Fatalf("TCP across hosts with underlay decap: %v Gbit/s, %v", gbps, err)
	}
	testbed.StartIperfServerPort(t, c1.Name, 5202)
	back, err := testbed.IperfPort(c2.Name, c1.IPv6, 5202, 1, 2*time.Second)
	if err != nil || back <= 0 {
		t.Fatalf("TCP the other way with underlay decap: %v Gbit/s, %v", back, err)
	}
	st2, err := nodes[1].DecapStats()
	if err != nil {
		t.Fatal(err)
	}
	rxTCP1, err := linkRxPackets(h2, testbed.Device)
	if err != nil {
		t.Fatal(err)
	}
	if st2.AdjustErr != 0 || st2.GSO != 0 {
		t.Errorf("bpf_skb_adjust_room failed %d times; %d GSO skbs decapsulated (want 0)", st2.AdjustErr, st2.GSO)
	}
	t.Logf("TCP %.2f / %.2f Gbit/s; on %s: decapsulated %d packets, %s received %d (GSO ones)",
		gbps, back, h2.Name, st2.Decap-st1.Decap, testbed.Device, rxTCP1-rxTCP0)

	// The GSO experiment: GSO skbs decapsulated too (stale tunnel GSO
	// state; fine for a pod that receives them, not for one that forwards).
	hooks.DecapGSO = true
	sync()
	gso, err := testbed.Iperf(c1.Name, c2.IPv6, 1, 2*time.Second)
	if err != nil || gso <= 0 {
		t.Fatalf("TCP with GSO decap: %v Gbit/s, %v", gso, err)
	}
	st3, err := nodes[1].DecapStats()
	if err != nil {
		t.Fatal(err)
	}
	if st3.GSO == 0 || st3.AdjustErr != 0 {
		t.Errorf("GSO decap: %d GSO skbs decapsulated, %d adjust_room errors", st3.GSO, st3.AdjustErr)
	}
	t.Logf("TCP with GSO decap %.2f Gbit/s; %d GSO skbs decapsulated", gso, st3.GSO)
	hooks.DecapGSO = false

	// Off again: the underlay program goes, the kernel path carries on.
	hooks.Decap = false
	sync()
	for i, node := range nodes {
		att, err := node.Attached()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := att[testbed.Uplink]; ok {
			t.Errorf("%s: underlay program still attached with Decap off", bed.Hosts[i].Name)
		}
	}
	if out, err := c1.Ping(c2.IPv6, 3); err != nil {
		t.Fatalf("ping with Decap off again: %v\n%s", err, out)
	}
}

// linkRxPackets is the receive counter of interface name on host h.
func linkRxPackets(h *testbed.Host, name string) (uint64, error) {
	rx, _, err := h.LinkPackets(name)
	return rx, err
}
