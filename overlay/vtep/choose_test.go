package vtep

// Kernel-backed tests: each runs Choose inside its own fresh network
// namespace (testutil.NewNS), built from dummy links and veth pairs. Link
// names are fixed and readable because they live only in that namespace.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

type env struct {
	t  *testing.T
	ns ns.NetNS
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testutil.RequireRoot(t)
	return &env{t: t, ns: testutil.NewNS(t)}
}

func (e *env) do(f func() error) {
	e.t.Helper()
	if err := e.ns.Do(func(ns.NetNS) error { return f() }); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) link(name string) netlink.Link {
	e.t.Helper()
	var l netlink.Link
	e.do(func() (err error) {
		l, err = netlinksafe.LinkByName(name)
		return err
	})
	return l
}

// dummy adds up links that carry addresses at once. The test kernel has
// no dummy driver, so each is a veth whose peer (name+"p") is up too; the
// addresses are added with nodad.
func (e *env) dummy(names ...string) {
	e.t.Helper()
	for _, name := range names {
		e.veth(name, name+"p", true)
		e.do(func() error {
			l, err := netlinksafe.LinkByName(name)
			if err != nil {
				return err
			}
			return netlink.LinkSetMTU(l, 1480)
		})
	}
}

// veth adds an up veth pair in this namespace. With the peer down the link
// has no carrier and an address added with DAD stays tentative for as long
// as the test needs.
func (e *env) veth(name, peer string, peerUp bool) {
	e.t.Helper()
	e.do(func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
			return fmt.Errorf("add veth %s: %w", name, err)
		}
		if peerUp {
			if err := setUp(peer); err != nil {
				return err
			}
		}
		return setUp(name)
	})
}

func setUp(name string) error {
	l, err := netlinksafe.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// addr adds the cidrs to link in the order given (the kernel lists the
// newest first), with nodad: usable at once.
func (e *env) addr(link string, cidrs ...string) {
	e.t.Helper()
	for _, cidr := range cidrs {
		e.addrWith(link, cidr, unix.IFA_F_NODAD, 0, 0)
	}
}

func (e *env) addrWith(link, cidr string, flags, preferred, valid int) {
	e.t.Helper()
	e.do(func() error {
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		a.Flags, a.PreferedLft, a.ValidLft = flags, preferred, valid
		l, err := netlinksafe.LinkByName(link)
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, a); err != nil {
			return fmt.Errorf("add %s to %s: %w", cidr, link, err)
		}
		return nil
	})
}

func (e *env) sysctl(key, val string) {
	e.t.Helper()
	e.do(func() error {
		return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(val), 0o644)
	})
}

func (e *env) route(r *netlink.Route, dev string) {
	e.t.Helper()
	e.do(func() error {
		if dev != "" {
			l, err := netlinksafe.LinkByName(dev)
			if err != nil {
				return err
			}
			r.LinkIndex = l.Attrs().Index
		}
		if err := netlink.RouteAdd(r); err != nil {
			return fmt.Errorf("add route %s: %w", r, err)
		}
		return nil
	})
}

// addrs6 lists link's IPv6 addresses in the kernel's order.
func (e *env) addrs6(link string) []netlink.Addr {
	e.t.Helper()
	var as []netlink.Addr
	e.do(func() error {
		l, err := netlinksafe.LinkByName(link)
		if err != nil {
			return err
		}
		as, err = netlinksafe.AddrList(l, netlink.FAMILY_V6)
		return err
	})
	return as
}

// kernelOrder lists link's global IPv6 addresses the way the kernel does.
func (e *env) kernelOrder(link string) []string {
	e.t.Helper()
	var out []string
	for _, a := range e.addrs6(link) {
		if a.Scope == unix.RT_SCOPE_UNIVERSE {
			out = append(out, a.IP.String())
		}
	}
	return out
}

func (e *env) choose(o Options) (*Choice, error) {
	var c *Choice
	var cerr error
	e.do(func() error {
		c, cerr = Choose(o)
		return nil
	})
	return c, cerr
}

func (e *env) want(o Options, ifName, local, public, source string, opChosen bool) *Choice {
	e.t.Helper()
	c, err := e.choose(o)
	if err != nil {
		e.t.Fatalf("Choose(%+v): %v", o, err)
	}
	if c.IfName != ifName || c.Local.String() != local || c.Public.String() != public || c.Source != source || c.OperatorChosen != opChosen {
		e.t.Fatalf("Choose(%+v): got if=%s local=%s public=%s source=%q op=%v; want if=%s local=%s public=%s source=%q op=%v",
			o, c.IfName, c.Local, c.Public, c.Source, c.OperatorChosen, ifName, local, public, source, opChosen)
	}
	l := e.link(ifName)
	if c.IfIndex != l.Attrs().Index || c.MTU != l.Attrs().MTU {
		e.t.Fatalf("index/mtu %d/%d, want %d/%d", c.IfIndex, c.MTU, l.Attrs().Index, l.Attrs().MTU)
	}
	return c
}

func (e *env) wantErr(o Options, target error, names string) {
	e.t.Helper()
	c, err := e.choose(o)
	if err == nil {
		e.t.Fatalf("Choose(%+v) = %+v, want error %v", o, c, target)
	}
	if !errors.Is(err, target) || !strings.Contains(err.Error(), names) {
		e.t.Fatalf("Choose(%+v) = %v, want %v naming %q", o, err, target, names)
	}
	e.t.Logf("as expected: %v", err)
}

// The flannel trap: an uplink with several global addresses, the operator
// names one the kernel does not list first. Both insertion orders, every
// address, every way of naming it.
func TestTrapSeveralAddresses(t *testing.T) {
	addrs := []string{"2001:db8:10::a", "2001:db8:10::b", "2001:db8:10::c"}
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}} {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			e := newEnv(t)
			e.dummy("up0", "other0")
			e.addr("other0", "2001:db8:20::1/64")
			for _, i := range order {
				e.addr("up0", addrs[i]+"/64")
			}
			e.addr("up0", "192.0.2.10/24") // dual-stack: never considered
			e.route(&netlink.Route{Dst: nil, Gw: net.ParseIP("2001:db8:10::1")}, "up0")
			kernel := e.kernelOrder("up0")
			t.Logf("kernel lists %v", kernel)
			if want := addrs[order[len(order)-1]]; kernel[0] != want {
				t.Fatalf("kernel lists %s first, want the newest %s: the trap is not set", kernel[0], want)
			}
			for _, a := range addrs {
				e.want(Options{PublicIPv6: a}, "up0", a, a, sourcePublicIPv6, true)
				e.want(Options{PublicIP: a}, "up0", a, a, sourcePublicIP, true)
				e.want(Options{Iface: []string{a}}, "up0", a, a, sourceIfaceAddress, true)
				e.want(Options{Annotation: a}, "up0", a, a, sourceAnnotation, true)
				e.want(Options{PublicIPv6: a, Iface: []string{"up0"}}, "up0", a, a, sourcePublicIPv6, true)
				e.want(Options{Annotation: a, Iface: []string{"up0"}}, "up0", a, a, sourceAnnotation, true)
				e.want(Options{IfaceRegex: []string{regexp.QuoteMeta(a) + "$"}}, "up0", a, a, sourceIfaceRegex, false)
			}
			// Autodetection: the lowest, whatever the kernel lists first.
			e.want(Options{Iface: []string{"up0"}}, "up0", addrs[0], addrs[0], sourceIface, false)
			e.want(Options{}, "up0", addrs[0], addrs[0], sourceDefaultRoute, false)
			e.want(Options{IfaceRegex: []string{"^up"}}, "up0", addrs[0], addrs[0], sourceIfaceRegex, false)
		})
	}
}

func TestFlagBeatsAnnotation(t *testing.T) {
	e := newEnv(t)
	e.dummy("up0")
	e.addr("up0", "2001:db8:10::b/64", "2001:db8:10::a/64")
	e.want(Options{Annotation: "2001:db8:10::b", PublicIPv6: "2001:db8:10::a"}, "up0", "2001:db8:10::a", "2001:db8:10::a", sourcePublicIPv6, true)
	e.want(Options{Annotation: "2001:db8:10::a", PublicIP: "2001:db8:10::b"}, "up0", "2001:db8:10::b", "2001:db8:10::b", sourcePublicIP, true)
	// --public-ipv6 wins over an IPv6 --public-ip.
	e.want(Options{PublicIPv6: "2001:db8:10::b", PublicIP: "2001:db8:10::a"}, "up0", "2001:db8:10::b", "2001:db8:10::b", sourcePublicIPv6, true)
	// An IPv4 --public-ip is no IPv6 flag: the annotation still applies.
	c := e.want(Options{Annotation: "2001:db8:10::b", PublicIP: "198.51.100.7"}, "up0", "2001:db8:10::b", "2001:db8:10::b", sourceAnnotation, true)
	if c.PublicIPv4.String() != "198.51.100.7" {
		t.Fatalf("PublicIPv4 = %v", c.PublicIPv4)
	}
	// A flag wins even over a malformed annotation.
	e.want(Options{Annotation: "garbage", PublicIPv6: "2001:db8:10::b"}, "up0", "2001:db8:10::b", "2001:db8:10::b", sourcePublicIPv6, true)
}

func TestNAT(t *testing.T) {
	e := newEnv(t)
	e.dummy("up0", "other0")
	e.addr("up0", "2001:db8:10::b/64", "2001:db8:10::a/64")
	e.addr("other0", "2001:db8:20::1/64")
	// A is on no interface: advertised, up0's chosen address is local.
	c := e.want(Options{PublicIPv6: "2001:db8:99::1", Iface: []string{"up0"}}, "up0", "2001:db8:10::a", "2001:db8:99::1", sourcePublicIPv6, true)
	if !c.NAT() {
		t.Fatal("NAT() = false")
	}
	// A is on another interface: same rule.
	e.want(Options{PublicIPv6: "2001:db8:20::1", Iface: []string{"up0"}}, "up0", "2001:db8:10::a", "2001:db8:20::1", sourcePublicIPv6, true)
	// --iface ADDR picks the underlay and the local address.
	e.want(Options{PublicIPv6: "2001:db8:99::1", Iface: []string{"2001:db8:10::b"}}, "up0", "2001:db8:10::b", "2001:db8:99::1", sourcePublicIPv6, true)
	e.want(Options{Annotation: "2001:db8:99::1", IfaceRegex: []string{"^up0$"}}, "up0", "2001:db8:10::a", "2001:db8:99::1", sourceAnnotation, true)
	// Without a selector an unowned address is an error.
	e.wantErr(Options{PublicIPv6: "2001:db8:99::1"}, errNotOwned, "2001:db8:99::1")
}

func TestAutodetectSkipsUnusable(t *testing.T) {
	e := newEnv(t)
	e.veth("v0", "v0p", false) // no carrier: DAD never finishes
	// Each of these would sort before the usable one if it were not skipped.
	e.addrWith("v0", "2001:db8:10::1/64", unix.IFA_F_NODAD, 0, forever) // deprecated (preferred_lft 0), permanent
	e.addrWith("v0", "2001:db8:10::2/64", 0, 0, 0)                      // tentative
	e.addr("v0", "2001:db8:10::9/64")                                   // usable
	e.addr("v0", "2001:db8:10::3/64")                                   // usable, lowest
	e.addr("v0", "10.1.0.1/24", "fe80::1/64")
	e.addrWith("v0", "2001:db8:10::4/64", unix.IFA_F_NODAD, 3600, 3600) // dynamic (like SLAAC/DHCPv6): after permanent ones
	t.Logf("kernel lists %v", e.kernelOrder("v0"))
	e.want(Options{Iface: []string{"v0"}}, "v0", "2001:db8:10::3", "2001:db8:10::3", sourceIface, false)

	// Insertion order does not matter: the same set added the other way round.
	e2 := newEnv(t)
	e2.veth("v0", "v0p", false)
	e2.addrWith("v0", "2001:db8:10::4/64", unix.IFA_F_NODAD, 3600, 3600)
	e2.addr("v0", "fe80::1/64", "10.1.0.1/24", "2001:db8:10::3/64", "2001:db8:10::9/64")
	e2.addrWith("v0", "2001:db8:10::2/64", 0, 0, 0)
	e2.addrWith("v0", "2001:db8:10::1/64", unix.IFA_F_NODAD, 0, forever)
	t.Logf("kernel lists %v", e2.kernelOrder("v0"))
	e2.want(Options{Iface: []string{"v0"}}, "v0", "2001:db8:10::3", "2001:db8:10::3", sourceIface, false)

	// Only dynamic addresses: the numerically lowest.
	e3 := newEnv(t)
	e3.dummy("d0")
	e3.addrWith("d0", "2001:db8:10::7/64", unix.IFA_F_NODAD, 3600, 3600)
	e3.addrWith("d0", "2001:db8:10::6/64", unix.IFA_F_NODAD, 3600, 3600)
	e3.addrWith("d0", "2001:db8:10::8/64", unix.IFA_F_NODAD, 3600, 3600)
	e3.want(Options{Iface: []string{"d0"}}, "d0", "2001:db8:10::6", "2001:db8:10::6", sourceIface, false)

	// Named explicitly, a deprecated address is accepted (warned about); a
	// tentative one is waited for and then refused.
	e.want(Options{PublicIPv6: "2001:db8:10::1"}, "v0", "2001:db8:10::1", "2001:db8:10::1", sourcePublicIPv6, true)
	start := time.Now()
	e.wantErr(Options{PublicIPv6: "2001:db8:10::2", DADTimeout: 300 * time.Millisecond}, errTentative, "2001:db8:10::2")
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("gave up after %v, before DADTimeout", d)
	}
	// An interface with nothing usable.
	e4 := newEnv(t)
	e4.veth("v1", "v1p", false)
	e4.addrWith("v1", "2001:db8:10::2/64", 0, 0, 0)
	e4.addrWith("v1", "2001:db8:10::1/64", unix.IFA_F_NODAD, 0, forever)
	e4.addr("v1", "10.1.0.1/24")
	e4.wantErr(Options{Iface: []string{"v1"}, DADTimeout: -1}, errNoUsableAddr, "v1")
	e4.wantErr(Options{Iface: []string{"v1"}, DADTimeout: 200 * time.Millisecond}, errNoUsableAddr, "2001:db8:10::2 tentative")
}

// Privacy addresses made by the kernel itself (use_tempaddr=2 with a
// mngtmpaddr address) are never autodetected.
func TestAutodetectSkipsTemporary(t *testing.T) {
	e := newEnv(t)
	e.veth("t0", "t0p", true)
	e.sysctl("net.ipv6.conf.t0.use_tempaddr", "2")
	e.sysctl("net.ipv6.conf.t0.dad_transmits", "0")
	// A high interface ID, so the random temporary address sorts first.
	e.addrWith("t0", "2001:db8:7::ffff:ffff:ffff:fff0/64", unix.IFA_F_NODAD|unix.IFA_F_MANAGETEMPADDR, 3600, 3600)
	var temp string
	for deadline := time.Now().Add(5 * time.Second); temp == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, a := range e.addrs6("t0") {
			if a.Flags&unix.IFA_F_TEMPORARY != 0 && a.Flags&unix.IFA_F_TENTATIVE == 0 {
				temp = a.IP.String()
			}
		}
	}
	if temp == "" {
		t.Skip("kernel made no temporary address")
	}
	t.Logf("temporary address %s, kernel lists %v", temp, e.kernelOrder("t0"))
	e.want(Options{Iface: []string{"t0"}}, "t0", "2001:db8:7:0:ffff:ffff:ffff:fff0", "2001:db8:7:0:ffff:ffff:ffff:fff0", sourceIface, false)
	e.want(Options{IfaceRegex: []string{"^2001:db8:7:"}}, "t0", "2001:db8:7:0:ffff:ffff:ffff:fff0", "2001:db8:7:0:ffff:ffff:ffff:fff0", sourceIfaceRegex, false)
	// Named, it is used (with a warning): the operator asked for it.
	e.want(Options{PublicIPv6: temp}, "t0", temp, temp, sourcePublicIPv6, true)
}

// A tentative address named at start is waited for until DAD completes.
func TestNamedTentativeWaitsForDAD(t *testing.T) {
	e := newEnv(t)
	e.veth("w0", "w0p", true)
	e.addrWith("w0", "2001:db8:30::5/64", 0, 0, 0)
	if k := e.kernelOrder("w0"); len(k) != 1 {
		t.Fatalf("addresses %v", k)
	}
	start := time.Now()
	e.want(Options{PublicIPv6: "2001:db8:30::5", DADTimeout: 10 * time.Second}, "w0", "2001:db8:30::5", "2001:db8:30::5", sourcePublicIPv6, true)
	t.Logf("DAD finished after %v", time.Since(start))
}

// Another host holds the address: DAD fails and naming it is an error.
func TestNamedDADFailed(t *testing.T) {
	e := newEnv(t)
	peer := newEnv(t)
	e.veth("x0", "x0p", false)
	e.do(func() error {
		l, err := netlinksafe.LinkByName("x0p")
		if err != nil {
			return err
		}
		return netlink.LinkSetNsFd(l, int(peer.ns.Fd()))
	})
	peer.do(func() error { return setUp("x0p") })
	peer.addr("x0p", "2001:db8:40::1/64")
	e.addrWith("x0", "2001:db8:40::1/64", 0, 0, 0)
	e.addr("x0", "2001:db8:40::2/64")
	var dadfailed bool
	for deadline := time.Now().Add(6 * time.Second); !dadfailed && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, a := range e.addrs6("x0") {
			dadfailed = dadfailed || a.Flags&unix.IFA_F_DADFAILED != 0
		}
	}
	if !dadfailed {
		t.Fatal("DAD did not fail within 6s")
	}
	e.wantErr(Options{PublicIPv6: "2001:db8:40::1"}, errDADFailed, "2001:db8:40::1")
	e.wantErr(Options{Iface: []string{"2001:db8:40::1"}}, errDADFailed, "2001:db8:40::1")
	e.want(Options{Iface: []string{"x0"}}, "x0", "2001:db8:40::2", "2001:db8:40::2", sourceIface, false)
}

func TestDefaultRoute(t *testing.T) {
	e := newEnv(t)
	e.dummy("a0", "b0")
	e.addr("a0", "2001:db8:a::2/64", "2001:db8:a::1/64")
	e.addr("b0", "2001:db8:b::2/64", "2001:db8:b::1/64")
	e.addr("a0", "10.9.0.2/24")
	// Dual-stack host with only an IPv4 default route: IPv6 needs its own.
	e.route(&netlink.Route{Gw: net.ParseIP("10.9.0.1")}, "a0")
	e.wantErr(Options{}, errNoDefaultRoute, "--iface")
	e.route(&netlink.Route{Gw: net.ParseIP("2001:db8:a::ff"), Priority: 100}, "a0")
	e.want(Options{}, "a0", "2001:db8:a::1", "2001:db8:a::1", sourceDefaultRoute, false)
	e.route(&netlink.Route{Gw: net.ParseIP("2001:db8:b::ff"), Priority: 50}, "b0")
	e.want(Options{}, "b0", "2001:db8:b::1", "2001:db8:b::1", sourceDefaultRoute, false)
	// A default route in another table is not the main table's.
	e.dummy("c0")
	e.addr("c0", "2001:db8:c::1/64")
	e.route(&netlink.Route{Gw: net.ParseIP("2001:db8:c::ff"), Priority: 1, Table: 100}, "c0")
	e.want(Options{}, "b0", "2001:db8:b::1", "2001:db8:b::1", sourceDefaultRoute, false)
}

// An ECMP default route: its first nexthop's interface.
func TestDefaultRouteMultipath(t *testing.T) {
	e := newEnv(t)
	e.dummy("a0", "b0")
	e.addr("a0", "2001:db8:a::1/64")
	e.addr("b0", "2001:db8:b::1/64")
	a0, b0 := e.link("a0").Attrs().Index, e.link("b0").Attrs().Index
	_, all, _ := net.ParseCIDR("::/0")
	e.route(&netlink.Route{Dst: all, MultiPath: []*netlink.NexthopInfo{
		{LinkIndex: b0, Gw: net.ParseIP("2001:db8:b::ff")},
		{LinkIndex: a0, Gw: net.ParseIP("2001:db8:a::ff")},
	}}, "")
	e.want(Options{}, "b0", "2001:db8:b::1", "2001:db8:b::1", sourceDefaultRoute, false)
}

// An address on lo names no underlay.
func TestNamedAddressOnLoopback(t *testing.T) {
	e := newEnv(t)
	e.dummy("up0")
	e.addr("up0", "2001:db8:10::a/64")
	e.do(func() error { return setUp("lo") })
	e.addr("lo", "2001:db8:ffff::1/128")
	e.wantErr(Options{PublicIPv6: "2001:db8:ffff::1"}, errLoopback, "2001:db8:ffff::1")
	e.wantErr(Options{Iface: []string{"2001:db8:ffff::1"}}, errLoopback, "2001:db8:ffff::1")
	e.want(Options{PublicIPv6: "2001:db8:ffff::1", Iface: []string{"up0"}}, "up0", "2001:db8:10::a", "2001:db8:ffff::1", sourcePublicIPv6, true)
	e.wantErr(Options{IfaceRegex: []string{"ffff"}}, errNoMatch, "ffff")
}

func TestDefaultRouteInterfaceWithoutAddress(t *testing.T) {
	e := newEnv(t)
	e.dummy("a0", "b0")
	e.addr("b0", "2001:db8:b::1/64")
	e.route(&netlink.Route{Gw: net.ParseIP("fe80::1"), Priority: 1}, "a0")
	e.route(&netlink.Route{Gw: net.ParseIP("2001:db8:b::ff"), Priority: 100}, "b0")
	e.wantErr(Options{}, errNoUsableAddr, "a0")
}

func TestCanReach(t *testing.T) {
	e := newEnv(t)
	e.dummy("up0", "other0")
	e.addr("up0", "2001:db8:10::a/64", "2001:db8:10::b/64")
	e.addr("other0", "2001:db8:20::1/64")
	_, far, _ := net.ParseCIDR("2001:db8:ff::/48")
	e.route(&netlink.Route{Dst: far, Gw: net.ParseIP("2001:db8:10::1"), Src: net.ParseIP("2001:db8:10::b")}, "up0")
	_, far2, _ := net.ParseCIDR("2001:db8:fe::/48")
	e.route(&netlink.Route{Dst: far2, Gw: net.ParseIP("2001:db8:20::ff")}, "other0")
	// The route's src is the second address: that one, not the first.
	e.want(Options{IfaceCanReach: "2001:db8:ff::1"}, "up0", "2001:db8:10::b", "2001:db8:10::b", sourceCanReach, false)
	e.want(Options{IfaceCanReach: "2001:db8:fe::1"}, "other0", "2001:db8:20::1", "2001:db8:20::1", sourceCanReach, false)
	// On-link destination without src: the kernel's choice, which is usable.
	c, err := e.choose(Options{IfaceCanReach: "2001:db8:10::77"})
	if err != nil || c.IfName != "up0" || !slices.Contains([]string{"2001:db8:10::a", "2001:db8:10::b"}, c.Local.String()) {
		t.Fatalf("on-link: %+v, %v", c, err)
	}
	// src on another interface (a VTEP address kept on its own link): it is
	// Local, the route's device is the underlay.
	_, far3, _ := net.ParseCIDR("2001:db8:fd::/48")
	e.route(&netlink.Route{Dst: far3, Gw: net.ParseIP("2001:db8:10::1"), Src: net.ParseIP("2001:db8:20::1")}, "up0")
	e.want(Options{IfaceCanReach: "2001:db8:fd::1"}, "up0", "2001:db8:20::1", "2001:db8:20::1", sourceCanReach, false)
	e.wantErr(Options{IfaceCanReach: "2001:db8:77::1"}, errNoRoute, "2001:db8:77::1")
	e.wantErr(Options{IfaceCanReach: "2001:db8:10::a"}, errLocalDest, "2001:db8:10::a")
	e.wantErr(Options{IfaceCanReach: "10.0.0.1"}, errNotIPv6, "10.0.0.1")
}

func TestRegexAddressesBeforeNames(t *testing.T) {
	e := newEnv(t)
	e.dummy("eth1", "up1")
	e.addr("eth1", "2001:db8:10::a/64")
	e.addr("up1", "2001:db8:1::1/64")
	// "1" in up1's address matches before the name eth1 (which has a lower ifindex).
	e.want(Options{IfaceRegex: []string{"db8:1:"}}, "up1", "2001:db8:1::1", "2001:db8:1::1", sourceIfaceRegex, false)
	e.want(Options{IfaceRegex: []string{"eth1"}}, "eth1", "2001:db8:10::a", "2001:db8:10::a", sourceIfaceRegex, false)
	e.want(Options{IfaceRegex: []string{"^nothing", "^up"}}, "up1", "2001:db8:1::1", "2001:db8:1::1", sourceIfaceRegex, false)
	e.wantErr(Options{IfaceRegex: []string{"^nothing"}}, errNoMatch, "^nothing")
	e.wantErr(Options{IfaceRegex: []string{"^lo$"}}, errNoMatch, "^lo$")
	e.wantErr(Options{IfaceRegex: []string{"(unclosed"}}, errBadRegex, "(unclosed")
}

func TestIfaceList(t *testing.T) {
	e := newEnv(t)
	e.dummy("a0", "b0", "empty0")
	e.addr("a0", "2001:db8:a::1/64")
	e.addr("b0", "2001:db8:b::2/64", "2001:db8:b::1/64")
	e.want(Options{Iface: []string{"missing0", "empty0", "2001:db8:99::1", "b0", "a0"}}, "b0", "2001:db8:b::1", "2001:db8:b::1", sourceIface, false)
	e.want(Options{Iface: []string{"missing0", "2001:db8:b::2", "a0"}}, "b0", "2001:db8:b::2", "2001:db8:b::2", sourceIfaceAddress, true)
	e.want(Options{Iface: []string{"missing0,a0"}}, "a0", "2001:db8:a::1", "2001:db8:a::1", sourceIface, false)
	e.want(Options{Iface: []string{"missing0"}, IfaceRegex: []string{"^b"}}, "b0", "2001:db8:b::1", "2001:db8:b::1", sourceIfaceRegex, false)
}

func TestErrorsNameTheValue(t *testing.T) {
	e := newEnv(t)
	e.dummy("up0", "empty0")
	e.addr("up0", "2001:db8:10::a/64", "10.0.0.1/24")
	e.addr("empty0", "fe80::5/64")
	for _, tc := range []errCase{
		{Options{PublicIPv6: "2001:db8::zz"}, errMalformed, "2001:db8::zz"},
		{Options{PublicIPv6: "10.0.0.1"}, errNotIPv6, "10.0.0.1"},
		{Options{Iface: []string{"10.0.0.1"}}, errNotIPv6, "10.0.0.1"},
		{Options{PublicIPv6: "fe80::5"}, errLinkLocal, "fe80::5"},
		{Options{Annotation: "fe80::5"}, errLinkLocal, "fe80::5"},
		{Options{Iface: []string{"fe80::5"}}, errLinkLocal, "fe80::5"},
		{Options{PublicIPv6: "2001:db8:99::1"}, errNotOwned, "2001:db8:99::1"},
		{Options{Annotation: "2001:db8:99::1"}, errNotOwned, "2001:db8:99::1"},
		{Options{Iface: []string{"2001:db8:99::1"}}, errNotOwned, "2001:db8:99::1"},
		{Options{Iface: []string{"nosuch0"}}, errNoSuchIface, "nosuch0"},
		{Options{Iface: []string{"empty0"}}, errNoUsableAddr, "empty0"},
		{Options{Iface: []string{"lo"}}, errLoopback, "lo"},
		{Options{IfaceRegex: []string{"^empty"}}, errNoUsableAddr, "empty0"},
		{Options{IfaceCanReach: "2001:db8:77::1"}, errNoRoute, "2001:db8:77::1"},
		{Options{}, errNoDefaultRoute, "--public-ipv6"},
	} {
		e.wantErr(tc.o, tc.err, tc.names)
	}
}

func TestMain(m *testing.M) {
	// Choose logs every decision; keep `go test` output readable unless -v.
	flag.Parse()
	if !testing.Verbose() {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	os.Exit(m.Run())
}

// BenchmarkChoose measures one Choose (a fresh look at links, addresses and
// routes) on a host with 50 interfaces of 4 addresses each.
func BenchmarkChoose(b *testing.B) {
	testutil.RequireRoot(b)
	n := testutil.NewNS(b)
	err := n.Do(func(ns.NetNS) error {
		for i := range 50 {
			name := fmt.Sprintf("b%d", i)
			if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
				return err
			}
			if err := setUp(name); err != nil {
				return err
			}
			l, _ := netlinksafe.LinkByName(name)
			for j := range 4 {
				a, _ := netlink.ParseAddr(fmt.Sprintf("2001:db8:%x::%x/64", i, j+1))
				a.Flags = unix.IFA_F_NODAD
				if err := netlink.AddrAdd(l, a); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		o    Options
	}{
		{"public-ipv6", Options{PublicIPv6: "2001:db8:31::2"}},
		{"iface", Options{Iface: []string{"b49"}}},
		{"iface-regex", Options{IfaceRegex: []string{"^b4"}}},
	} {
		o := bc.o
		b.Run(bc.name, func(b *testing.B) {
			err := n.Do(func(ns.NetNS) error {
				for b.Loop() {
					if _, err := Choose(o); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
