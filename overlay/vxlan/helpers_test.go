package vxlan

import (
	"net"
	"os/exec"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// newNS makes a network namespace with lo up, removed when the test ends.
func newNS(t testing.TB) ns.NetNS {
	t.Helper()
	n := testutil.NewNS(t)
	do(t, n, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	return n
}

// do runs f inside n and fails the test on error.
func do(t testing.TB, n ns.NetNS, f func() error) {
	t.Helper()
	if err := n.Do(func(ns.NetNS) error { return f() }); err != nil {
		t.Fatal(err)
	}
}

// addAddr puts a non-tentative address on a link (DAD would delay pings).
func addAddr(link netlink.Link, cidr *net.IPNet) error {
	return netlink.AddrAdd(link, &netlink.Addr{IPNet: cidr, Flags: unix.IFA_F_NODAD})
}

// addBridge creates an up, portless bridge (this kernel has no dummy links) holding the given addresses.
func addBridge(name string, mtu int, cidrs ...*net.IPNet) (netlink.Link, error) {
	d := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu}}
	if err := netlink.LinkAdd(d); err != nil {
		return nil, err
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, err
	}
	for _, c := range cidrs {
		if err := addAddr(link, c); err != nil {
			return nil, err
		}
	}
	return link, netlink.LinkSetUp(link)
}

// underlayNS is a namespace with a bridge as underlay (no traffic leaves it).
func underlayNS(t testing.TB, mtu int) (ns.NetNS, int) {
	t.Helper()
	n := newNS(t)
	var idx int
	do(t, n, func() error {
		l, err := addBridge(testutil.UniqueName("ul"), mtu, testutil.MustAddrCIDR("2001:db8:f::1/64"))
		if err != nil {
			return err
		}
		idx = l.Attrs().Index
		return nil
	})
	return n, idx
}

// ensureIn runs EnsureDevice inside n.
func ensureIn(t testing.TB, n ns.NetNS, cfg DeviceConfig) *Device {
	t.Helper()
	var dev *Device
	do(t, n, func() error {
		var err error
		dev, err = EnsureDevice(cfg)
		return err
	})
	t.Cleanup(dev.Close)
	return dev
}

func nsenter(n ns.NetNS, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + n.Path()}, args...)...)
}
