package main

import (
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxlan6/vxlan6/plugins/vxlan6/link"
)

// addHostBridge creates a bridge the way an operator (or an older vxlan6)
// would, with addrs and no vxlan6 mark.
func (e *env) addHostBridge(name string, addrs ...string) {
	e.t.Helper()
	err := e.inHost(func() error {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: 1500}}
		if err := netlink.LinkAdd(br); err != nil {
			return err
		}
		for _, a := range addrs {
			ip, n, _ := net.ParseCIDR(a)
			n.IP = ip
			if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: n, Flags: unix.IFA_F_NODAD}); err != nil {
				return err
			}
		}
		return netlink.LinkSetUp(br)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// bridgeState is the alias, MTU and global addresses of a host bridge.
func (e *env) bridgeState(name string) (alias string, mtu int, addrs []string) {
	e.t.Helper()
	err := e.inHost(func() error {
		br, err := netlinksafe.LinkByName(name)
		if err != nil {
			return err
		}
		as, err := netlinksafe.AddrList(br, netlink.FAMILY_ALL)
		for _, a := range as {
			if !a.IP.IsLinkLocalUnicast() {
				addrs = append(addrs, a.IPNet.String())
			}
		}
		alias, mtu = br.Attrs().Alias, br.Attrs().MTU
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return alias, mtu, addrs
}

// Issue 8 §7: a conflist naming the host's own bridge (br0 holding the
// host's addresses) must not strip them. ADD refuses it with an error naming
// the bridge (CNI code 7) and leaves nothing behind; the bridge is as it was.
func TestAddRefusesForeignBridge(t *testing.T) {
	e := newEnv(t, v6Subnet())
	e.bridge = "br0"
	e.addHostBridge("br0", "2001:db8:1::12/64", "192.0.2.12/24")
	c := e.newContainer()
	_, err := e.add(e.list("1.0.0"), c.rt())
	wantCode(t, err, 7)
	if !strings.Contains(err.Error(), "br0") {
		t.Errorf("error does not name the bridge: %v", err)
	}
	alias, mtu, addrs := e.bridgeState("br0")
	if alias != "" || mtu != 1500 || len(addrs) != 2 {
		t.Errorf("br0 changed: alias %q, MTU %d, addresses %v", alias, mtu, addrs)
	}
	e.assertClean(0)
	if ls := c.links(t); len(ls) != 1 { // lo only
		t.Errorf("container links after a refused ADD: %v", ls)
	}

	// A bare bridge of someone else's (no address, no mark) is refused too,
	// after waiting a moment for a mark that never comes.
	e.bridge = "brbare"
	e.addHostBridge("brbare")
	_, err = e.add(e.list("1.0.0"), c.rt())
	wantCode(t, err, 7)
	if alias, mtu, addrs := e.bridgeState("brbare"); alias != "" || mtu != 1500 || len(addrs) != 0 {
		t.Errorf("brbare changed: alias %q, MTU %d, addresses %v", alias, mtu, addrs)
	}
	e.assertClean(0)
}

// A bridge vxlan6 creates carries the mark; a bridge made before the mark
// existed (c8681c8: vx6br0 holding the gateway of the node subnet) is
// adopted on upgrade: marked, its gateway kept, and ADD works.
func TestBridgeMarkAndAdoption(t *testing.T) {
	t.Run("created", func(t *testing.T) {
		e := newEnv(t, v6Subnet())
		c := e.newContainer()
		e.mustAdd(e.list("1.0.0"), c.rt())
		if alias, _, _ := e.bridgeState(e.bridge); alias != link.BridgeAlias {
			t.Errorf("new bridge alias %q, want %q", alias, link.BridgeAlias)
		}
	})
	t.Run("adopted", func(t *testing.T) {
		e := newEnv(t, dualSubnet())
		e.bridge = "vx6br0"
		e.addHostBridge("vx6br0", "fd10:244:0:1::1/64", "10.244.1.1/24")
		a, b := e.newContainer(), e.newContainer()
		ra := e.mustAdd(e.list("1.0.0"), a.rt())
		rb := e.mustAdd(e.list("1.0.0"), b.rt())
		alias, _, addrs := e.bridgeState("vx6br0")
		if alias != link.BridgeAlias || len(addrs) != 2 {
			t.Errorf("adopted bridge: alias %q, addresses %v", alias, addrs)
		}
		a.ping(t, rb.IPs[0].Address.IP)
		b.ping(t, ra.IPs[0].Address.IP)
	})
}
