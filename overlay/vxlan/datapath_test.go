package vxlan

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/internal/testutil"
)

// host is one simulated node: a netns with an underlay veth end, a bridge
// holding its pod-subnet addresses, and the vxlan device.
type host struct {
	ns   ns.NetNS
	vtep net.IP
	ul   int
	pod6 net.IP
	pod4 net.IP
	peer Peer
	dev  *Device
}

// twoHosts joins two namespaces by a veth pair carrying an IPv6-only underlay
// (2001:db8:1::1 and ::2) and gives host i the pod subnets fd10:244:0:i::/64
// and, for dual stack, 10.244.i.0/24 with .1 on its bridge.
func twoHosts(t *testing.T, dual bool) (*host, *host) {
	t.Helper()
	hs := []*host{{ns: newNS(t)}, {ns: newNS(t)}}
	ulNames := []string{testutil.UniqueName("ula"), testutil.UniqueName("ulb")}
	do(t, hs[0].ns, func() error {
		return netlink.LinkAdd(&netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: ulNames[0]},
			PeerName:      ulNames[1],
			PeerNamespace: netlink.NsFd(int(hs[1].ns.Fd())),
		})
	})
	for i, h := range hs {
		n := i + 1
		h.vtep = net.ParseIP(fmt.Sprintf("2001:db8:1::%d", n))
		h.pod6 = net.ParseIP(fmt.Sprintf("fd10:244:0:%d::1", n))
		h.peer = Peer{VTEP: h.vtep, MAC: MACFor(h.vtep), Subnets: ipnet.Subnets{V6: testutil.MustCIDR(fmt.Sprintf("fd10:244:0:%d::/64", n))}}
		pods := []*net.IPNet{testutil.MustAddrCIDR(fmt.Sprintf("fd10:244:0:%d::1/64", n))}
		if dual {
			h.pod4 = net.ParseIP(fmt.Sprintf("10.244.%d.1", n)).To4()
			h.peer.Subnets.V4 = testutil.MustCIDR(fmt.Sprintf("10.244.%d.0/24", n))
			pods = append(pods, testutil.MustAddrCIDR(fmt.Sprintf("10.244.%d.1/24", n)))
		}
		do(t, h.ns, func() error {
			ul, err := netlink.LinkByName(ulNames[i])
			if err != nil {
				return err
			}
			if err := addAddr(ul, testutil.MustAddrCIDR(fmt.Sprintf("2001:db8:1::%d/64", n))); err != nil {
				return err
			}
			if err := netlink.LinkSetUp(ul); err != nil {
				return err
			}
			h.ul = ul.Attrs().Index
			_, err = addBridge(testutil.UniqueName("pods"), 1500, pods...)
			return err
		})
		h.dev = ensureIn(t, h.ns, DeviceConfig{VNI: 1, Port: 8472, Local: h.vtep, UnderlayIndex: h.ul})
	}
	return hs[0], hs[1]
}

// ping sends one echo from src in n to dst, with bounded retries: the first
// packet may wait for the underlay's neighbour discovery.
func ping(t *testing.T, n ns.NetNS, src, dst net.IP) {
	t.Helper()
	fam := "-6"
	if dst.To4() != nil {
		fam = "-4"
	}
	var out []byte
	var err error
	for range 5 {
		out, err = nsenter(n, "ping", fam, "-c1", "-W2", "-I", src.String(), dst.String()).CombinedOutput()
		if err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("ping %s -> %s: %v\n%s", src, dst, err, out)
}

func TestDataPathIPv6(t *testing.T) {
	testutil.RequireRoot(t)
	a, b := twoHosts(t, false)
	if err := a.dev.AddPeer(b.peer); err != nil {
		t.Fatal(err)
	}
	if err := b.dev.AddPeer(a.peer); err != nil {
		t.Fatal(err)
	}
	ping(t, a.ns, a.pod6, b.pod6)
	ping(t, b.ns, b.pod6, a.pod6)

	// Without the peer the path is gone: RemovePeer really removed it.
	if err := a.dev.RemovePeer(b.peer); err != nil {
		t.Fatal(err)
	}
	if out, err := nsenter(a.ns, "ping", "-6", "-c1", "-W1", "-I", a.pod6.String(), b.pod6.String()).CombinedOutput(); err == nil {
		t.Fatalf("ping works after RemovePeer:\n%s", out)
	}
}

func TestDataPathDualStack(t *testing.T) {
	testutil.RequireRoot(t)
	a, b := twoHosts(t, true)
	if err := a.dev.Reconcile([]Peer{b.peer}); err != nil {
		t.Fatal(err)
	}
	if err := b.dev.Reconcile([]Peer{a.peer}); err != nil {
		t.Fatal(err)
	}
	ping(t, a.ns, a.pod6, b.pod6)
	ping(t, a.ns, a.pod4, b.pod4)
	ping(t, b.ns, b.pod4, a.pod4)
	// Full-size packets fit the device MTU (1500 - 70 on the underlay).
	payload := fmt.Sprint(a.dev.MTU - 40 - 8)
	if out, err := nsenter(a.ns, "ping", "-6", "-c1", "-W2", "-M", "do", "-s", payload,
		"-I", a.pod6.String(), b.pod6.String()).CombinedOutput(); err != nil {
		t.Fatalf("full-size ping6 (payload %s): %v\n%s", payload, err, out)
	}
}
