package vtep

// Tests of the pure logic: no root, no kernel. The host is fabricated; the
// kernel-backed tests are in choose_test.go.

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const forever = 0xffffffff

// mkAddr is a permanent, usable address unless flags/lft say otherwise.
func mkAddr(s string, flags int) netlink.Addr {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	scope := unix.RT_SCOPE_UNIVERSE
	if ip.IsLinkLocalUnicast() {
		scope = unix.RT_SCOPE_LINK
	}
	lft := forever
	if flags&unix.IFA_F_DEPRECATED != 0 {
		lft = 0
	}
	return netlink.Addr{IPNet: n, Flags: flags, Scope: scope, PreferedLft: lft, ValidLft: forever}
}

const perm = unix.IFA_F_PERMANENT

type fakeHost struct {
	*host
	routes []netlink.Route
	get    map[string]netlink.Route
}

func newFake() *fakeHost {
	f := &fakeHost{host: &host{addrs: map[int][]netlink.Addr{}}, get: map[string]netlink.Route{}}
	f.defaultRoutes = func() ([]netlink.Route, error) { return f.routes, nil }
	f.routeGet = func(d net.IP) ([]netlink.Route, error) {
		r, ok := f.get[d.String()]
		if !ok {
			return nil, syscall.ENETUNREACH
		}
		return []netlink.Route{r}, nil
	}
	f.link(1, "lo", net.FlagUp|net.FlagLoopback)
	f.addrs[1] = []netlink.Addr{mkAddr("::1/128", perm)}
	f.addrs[1][0].Scope = unix.RT_SCOPE_HOST
	return f
}

// link adds a link; addrs are given oldest first and stored newest first,
// the way the kernel lists them.
func (f *fakeHost) link(idx int, name string, flags net.Flags, addrs ...netlink.Addr) {
	f.links = append(f.links, &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: idx, Name: name, MTU: 1400 + idx, Flags: flags}})
	for _, a := range addrs {
		a.LinkIndex = idx
		f.addrs[idx] = append([]netlink.Addr{a}, f.addrs[idx]...)
	}
	f.sortLinks()
}

func (f *fakeHost) choose(t *testing.T, o Options) (*Choice, error) {
	t.Helper()
	p, err := o.parse()
	if err != nil {
		return nil, err
	}
	if o.DADTimeout == 0 {
		o.DADTimeout = -1
	}
	return choose(p, o.DADTimeout, func() (*host, error) { return f.host, nil })
}

func TestUnusable(t *testing.T) {
	for _, tc := range []struct {
		a    netlink.Addr
		want string
	}{
		{mkAddr("2001:db8::1/64", perm), ""},
		{mkAddr("2001:db8::1/64", 0), ""},
		{mkAddr("fd00::1/64", perm), ""},
		{mkAddr("fe80::1/64", perm), "link-local"},
		{mkAddr("10.0.0.1/24", perm), "IPv4"},
		{mkAddr("2001:db8::1/64", unix.IFA_F_TENTATIVE|perm), "tentative"},
		{mkAddr("2001:db8::1/64", unix.IFA_F_TENTATIVE|unix.IFA_F_OPTIMISTIC), "tentative"},
		{mkAddr("2001:db8::1/64", unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED|perm), "dadfailed"},
		{mkAddr("2001:db8::1/64", unix.IFA_F_DEPRECATED), "deprecated"},
		{func() netlink.Addr { a := mkAddr("2001:db8::1/64", 0); a.PreferedLft = 0; return a }(), "deprecated"},
		{mkAddr("2001:db8::1/64", unix.IFA_F_TEMPORARY), "temporary"},
		{func() netlink.Addr { a := mkAddr("2001:db8::1/64", perm); a.Scope = unix.RT_SCOPE_HOST; return a }(), "scope 254, not global"},
		{netlink.Addr{}, "no address"},
	} {
		if got := Unusable(tc.a); got != tc.want {
			t.Errorf("Unusable(%s flags %#x) = %q, want %q", tc.a.IPNet, tc.a.Flags, got, tc.want)
		}
	}
}

func TestUsableAddrsOrderIndependent(t *testing.T) {
	in := []netlink.Addr{
		mkAddr("2001:db8::30/64", 0),    // dynamic (SLAAC/DHCP)
		mkAddr("2001:db8::2/64", perm),  // static
		mkAddr("2001:db8::10/64", perm), // static
		mkAddr("2001:db8::1/64", unix.IFA_F_DEPRECATED|perm),
		mkAddr("2001:db8::3/64", unix.IFA_F_TEMPORARY),
		mkAddr("2001:db8::0:1/64", unix.IFA_F_TENTATIVE|perm),
		mkAddr("fe80::1/64", perm),
		mkAddr("2001:db8::5/64", 0),
		mkAddr("192.0.2.1/24", perm),
	}
	want := []string{"2001:db8::2", "2001:db8::10", "2001:db8::5", "2001:db8::30"}
	// Every rotation and the reverse: the result must not depend on order.
	for i := range in {
		for _, rev := range []bool{false, true} {
			perm := slices.Concat(in[i:], in[:i])
			if rev {
				slices.Reverse(perm)
			}
			var got []string
			for _, a := range UsableAddrs(perm) {
				got = append(got, a.IP.String())
			}
			if !slices.Equal(got, want) {
				t.Fatalf("rotation %d reversed %v: got %v, want %v", i, rev, got, want)
			}
		}
	}
}

// errCase is one row of the error tables: options, the error they must
// match (errors.Is) and the text the message must name.
type errCase struct {
	o     Options
	err   error
	names string
}

func TestValidateErrors(t *testing.T) {
	for _, tc := range []errCase{
		{Options{PublicIPv6: "2001:db8::zz"}, errMalformed, "2001:db8::zz"},
		{Options{PublicIPv6: "2001:db8::1/64"}, errMalformed, "2001:db8::1/64"},
		{Options{PublicIPv6: "192.0.2.1"}, errNotIPv6, "192.0.2.1"},
		{Options{PublicIPv6: "::ffff:192.0.2.1"}, errNotIPv6, "::ffff:192.0.2.1"},
		{Options{PublicIPv6: "fe80::1"}, errLinkLocal, "fe80::1"},
		{Options{PublicIPv6: "fe80::1%eth0"}, errLinkLocal, "fe80::1%eth0"},
		{Options{PublicIPv6: "2001:db8::1%eth0"}, errMalformed, "2001:db8::1%eth0"},
		{Options{PublicIPv6: "::1"}, errNotUnicast, "::1"},
		{Options{PublicIPv6: "::"}, errNotUnicast, "::"},
		{Options{PublicIPv6: "ff02::1"}, errNotUnicast, "ff02::1"},
		{Options{PublicIP: "not-an-ip"}, errMalformed, "not-an-ip"},
		{Options{PublicIP: "fe80::2"}, errLinkLocal, "fe80::2"},
		{Options{PublicIP: "0.0.0.0"}, errNotUnicast, "0.0.0.0"},
		{Options{Annotation: "nonsense"}, errMalformed, "nonsense"},
		{Options{Annotation: "10.1.2.3"}, errNotIPv6, "10.1.2.3"},
		{Options{Annotation: "fe80::3"}, errLinkLocal, "fe80::3"},
		{Options{Iface: []string{"eth0", "10.0.0.1"}}, errNotIPv6, "10.0.0.1"},
		{Options{Iface: []string{"fe80::4"}}, errLinkLocal, "fe80::4"},
		{Options{Iface: []string{"2001:db8:::1"}}, errMalformed, "2001:db8:::1"},
		{Options{Iface: []string{"averyveryverylongname"}}, errBadIfaceName, "averyveryverylongname"},
		{Options{Iface: []string{"a/b"}}, errBadIfaceName, "a/b"},
		{Options{IfaceRegex: []string{"eth[0-"}}, errBadRegex, "eth[0-"},
		{Options{IfaceCanReach: "192.0.2.9"}, errNotIPv6, "192.0.2.9"},
		{Options{IfaceCanReach: "bogus"}, errMalformed, "bogus"},
		{Options{IfaceCanReach: "fe80::9"}, errLinkLocal, "fe80::9"},
	} {
		err := tc.o.Validate()
		if !errors.Is(err, tc.err) || !strings.Contains(fmt.Sprint(err), tc.names) {
			t.Errorf("Validate(%+v) = %v, want %v naming %q", tc.o, err, tc.err, tc.names)
		}
	}
	// A flag wins, so an overridden annotation is not even parsed.
	if err := (Options{PublicIPv6: "2001:db8::1", Annotation: "junk"}).Validate(); err != nil {
		t.Errorf("overridden annotation: %v", err)
	}
	if err := (Options{Iface: []string{"eth0, 2001:db8::1 ,", ""}, PublicIP: "192.0.2.1"}).Validate(); err != nil {
		t.Errorf("comma list: %v", err)
	}
}

// trapHost: uplink eth0 with three global addresses, added in order; the
// kernel lists the newest first.
func trapHost(order ...string) *fakeHost {
	f := newFake()
	var as []netlink.Addr
	for _, s := range order {
		as = append(as, mkAddr(s+"/64", perm))
	}
	as = append(as, mkAddr("fe80::1/64", perm), mkAddr("192.0.2.10/24", perm))
	f.link(2, "eth0", net.FlagUp, as...)
	f.link(3, "eth1", net.FlagUp, mkAddr("2001:db8:1::1/64", perm))
	f.routes = []netlink.Route{{LinkIndex: 2, Type: unix.RTN_UNICAST, Priority: 1024}}
	return f
}

func check(t *testing.T, c *Choice, err error, ifName, local, public, source string, opChosen bool) {
	t.Helper()
	if err != nil {
		t.Fatalf("Choose: %v", err)
	}
	if c.IfName != ifName || c.Local.String() != local || c.Public.String() != public || c.Source != source || c.OperatorChosen != opChosen {
		t.Fatalf("got if=%s local=%s public=%s source=%q op=%v; want if=%s local=%s public=%s source=%q op=%v",
			c.IfName, c.Local, c.Public, c.Source, c.OperatorChosen, ifName, local, public, source, opChosen)
	}
}

func TestTableFake(t *testing.T) {
	orders := [][]string{
		{"2001:db8::a", "2001:db8::b", "2001:db8::c"},
		{"2001:db8::c", "2001:db8::b", "2001:db8::a"},
		{"2001:db8::b", "2001:db8::a", "2001:db8::c"},
	}
	for i, order := range orders {
		t.Run(fmt.Sprint("order", i), func(t *testing.T) {
			f := trapHost(order...)
			c, err := f.choose(t, Options{PublicIPv6: "2001:db8::b"})
			check(t, c, err, "eth0", "2001:db8::b", "2001:db8::b", sourcePublicIPv6, true)
			c, err = f.choose(t, Options{PublicIP: "2001:db8::b"})
			check(t, c, err, "eth0", "2001:db8::b", "2001:db8::b", sourcePublicIP, true)
			c, err = f.choose(t, Options{Iface: []string{"2001:db8::b"}})
			check(t, c, err, "eth0", "2001:db8::b", "2001:db8::b", sourceIfaceAddress, true)
			c, err = f.choose(t, Options{Annotation: "2001:db8::b"})
			check(t, c, err, "eth0", "2001:db8::b", "2001:db8::b", sourceAnnotation, true)
			c, err = f.choose(t, Options{Annotation: "2001:db8::b", PublicIPv6: "2001:db8::c"})
			check(t, c, err, "eth0", "2001:db8::c", "2001:db8::c", sourcePublicIPv6, true)
			c, err = f.choose(t, Options{Annotation: "2001:db8::b", PublicIP: "2001:db8::c"})
			check(t, c, err, "eth0", "2001:db8::c", "2001:db8::c", sourcePublicIP, true)
			// IPv4 --public-ip does not override the annotation.
			c, err = f.choose(t, Options{Annotation: "2001:db8::b", PublicIP: "192.0.2.77"})
			check(t, c, err, "eth0", "2001:db8::b", "2001:db8::b", sourceAnnotation, true)
			if c.PublicIPv4.String() != "192.0.2.77" {
				t.Errorf("PublicIPv4 = %v", c.PublicIPv4)
			}
			c, err = f.choose(t, Options{Iface: []string{"eth0"}})
			check(t, c, err, "eth0", "2001:db8::a", "2001:db8::a", sourceIface, false)
			c, err = f.choose(t, Options{})
			check(t, c, err, "eth0", "2001:db8::a", "2001:db8::a", sourceDefaultRoute, false)
			if c.MTU != 1402 || c.IfIndex != 2 {
				t.Errorf("mtu/index = %d/%d", c.MTU, c.IfIndex)
			}
			// --public-ipv6 + --iface owning it; and the NAT case.
			c, err = f.choose(t, Options{PublicIPv6: "2001:db8::c", Iface: []string{"eth0"}})
			check(t, c, err, "eth0", "2001:db8::c", "2001:db8::c", sourcePublicIPv6, true)
			c, err = f.choose(t, Options{PublicIPv6: "2001:db8::c", Iface: []string{"eth1"}})
			check(t, c, err, "eth1", "2001:db8:1::1", "2001:db8::c", sourcePublicIPv6, true)
			c, err = f.choose(t, Options{PublicIPv6: "2001:db8:ffff::1", Iface: []string{"eth1"}})
			check(t, c, err, "eth1", "2001:db8:1::1", "2001:db8:ffff::1", sourcePublicIPv6, true)
			if !c.NAT() {
				t.Error("NAT() false")
			}
			c, err = f.choose(t, Options{Annotation: "2001:db8:ffff::1", Iface: []string{"eth1"}})
			check(t, c, err, "eth1", "2001:db8:1::1", "2001:db8:ffff::1", sourceAnnotation, true)
			// regex: addresses first, then names.
			c, err = f.choose(t, Options{IfaceRegex: []string{`::b$`}})
			check(t, c, err, "eth0", "2001:db8::b", "2001:db8::b", sourceIfaceRegex, false)
			c, err = f.choose(t, Options{IfaceRegex: []string{`^eth1$`}})
			check(t, c, err, "eth1", "2001:db8:1::1", "2001:db8:1::1", sourceIfaceRegex, false)
			c, err = f.choose(t, Options{IfaceRegex: []string{`^nomatch`, `eth`}})
			check(t, c, err, "eth0", "2001:db8::a", "2001:db8::a", sourceIfaceRegex, false)
			// "1" matches addresses of eth1 (2001:db8:1::1) before names.
			c, err = f.choose(t, Options{IfaceRegex: []string{`db8:1:`}})
			check(t, c, err, "eth1", "2001:db8:1::1", "2001:db8:1::1", sourceIfaceRegex, false)
			// --iface list: first that resolves wins.
			c, err = f.choose(t, Options{Iface: []string{"nosuch0", "2001:db8::99", "eth1", "eth0"}})
			check(t, c, err, "eth1", "2001:db8:1::1", "2001:db8:1::1", sourceIface, false)
			c, err = f.choose(t, Options{Iface: []string{"nosuch0"}, IfaceRegex: []string{"eth0"}})
			check(t, c, err, "eth0", "2001:db8::a", "2001:db8::a", sourceIfaceRegex, false)
		})
	}
}

func TestErrorsFake(t *testing.T) {
	f := trapHost("2001:db8::a", "2001:db8::b")
	f.link(4, "empty0", net.FlagUp, mkAddr("fe80::4/64", perm), mkAddr("2001:db8:4::1/64", unix.IFA_F_DEPRECATED|perm))
	f.link(5, "dad0", net.FlagUp, mkAddr("2001:db8:5::1/64", unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED|perm),
		mkAddr("2001:db8:5::2/64", unix.IFA_F_TENTATIVE|perm))
	for _, tc := range []errCase{
		{Options{PublicIPv6: "2001:db8::99"}, errNotOwned, "2001:db8::99"},
		{Options{Annotation: "2001:db8::99"}, errNotOwned, "2001:db8::99"},
		{Options{Iface: []string{"2001:db8::99"}}, errNotOwned, "2001:db8::99"},
		{Options{PublicIPv6: "::1:2"}, errNotOwned, "::1:2"},
		{Options{Iface: []string{"nosuch0"}}, errNoSuchIface, "nosuch0"},
		{Options{Iface: []string{"lo"}}, errLoopback, "lo"},
		{Options{Iface: []string{"empty0"}}, errNoUsableAddr, "empty0"},
		{Options{Iface: []string{"nosuch0", "empty0"}}, errNoSuchIface, "nosuch0"},
		{Options{Iface: []string{"nosuch0", "empty0"}}, errNoUsableAddr, "empty0"},
		{Options{Iface: []string{"dad0"}}, errNoUsableAddr, "2001:db8:5::1 dadfailed"},
		{Options{PublicIPv6: "2001:db8:5::1"}, errDADFailed, "2001:db8:5::1"},
		{Options{PublicIPv6: "2001:db8:5::2"}, errTentative, "2001:db8:5::2"},
		{Options{Iface: []string{"2001:db8:5::1"}}, errDADFailed, "2001:db8:5::1"},
		{Options{PublicIPv6: "2001:db8:5::1", Iface: []string{"eth0"}}, nil, ""}, // NAT: fine
		{Options{PublicIPv6: "2001:db8:5::1", Iface: []string{"dad0"}}, errDADFailed, "2001:db8:5::1"},
		{Options{IfaceRegex: []string{"^zzz"}}, errNoMatch, "^zzz"},
		{Options{IfaceRegex: []string{"^empty"}}, errNoUsableAddr, "empty0"},
		{Options{IfaceCanReach: "2001:db8:99::1"}, errNoRoute, "2001:db8:99::1"},
	} {
		_, err := f.choose(t, tc.o)
		if tc.err == nil {
			if err != nil {
				t.Errorf("Choose(%+v): %v", tc.o, err)
			}
			continue
		}
		if !errors.Is(err, tc.err) || !strings.Contains(fmt.Sprint(err), tc.names) {
			t.Errorf("Choose(%+v) = %v, want %v naming %q", tc.o, err, tc.err, tc.names)
		}
	}
	// A deprecated address named explicitly is accepted (with a warning).
	c, err := f.choose(t, Options{PublicIPv6: "2001:db8:4::1"})
	check(t, c, err, "empty0", "2001:db8:4::1", "2001:db8:4::1", sourcePublicIPv6, true)
	// The last --iface value that is tentative is given up on only in the final pass.
	c, err = f.choose(t, Options{Iface: []string{"2001:db8:5::2", "eth1"}})
	check(t, c, err, "eth1", "2001:db8:1::1", "2001:db8:1::1", sourceIface, false)
}

func TestDefaultRouteFake(t *testing.T) {
	f := newFake()
	f.link(2, "a0", net.FlagUp, mkAddr("2001:db8:a::1/64", perm))
	f.link(3, "b0", net.FlagUp, mkAddr("2001:db8:b::1/64", perm), mkAddr("192.0.2.1/24", perm))
	if _, err := f.choose(t, Options{}); !errors.Is(err, errNoDefaultRoute) || !strings.Contains(err.Error(), "--iface") {
		t.Fatalf("no routes: %v", err)
	}
	_, ll, _ := net.ParseCIDR("::/0")
	f.routes = []netlink.Route{
		{Dst: ll, LinkIndex: 1, Type: unix.RTN_UNREACHABLE, Priority: 1}, // like `ip -6 route add unreachable default`
		{Dst: ll, LinkIndex: 2, Type: unix.RTN_UNICAST, Priority: 200},
		{LinkIndex: 3, Type: unix.RTN_UNICAST, Priority: 100},
		{Dst: &net.IPNet{IP: net.ParseIP("2001:db8::"), Mask: net.CIDRMask(32, 128)}, LinkIndex: 2, Type: unix.RTN_UNICAST, Priority: 1},
	}
	c, err := f.choose(t, Options{})
	check(t, c, err, "b0", "2001:db8:b::1", "2001:db8:b::1", sourceDefaultRoute, false)
	f.routes[2].Priority = 200 // tie: lowest ifindex
	c, err = f.choose(t, Options{})
	check(t, c, err, "a0", "2001:db8:a::1", "2001:db8:a::1", sourceDefaultRoute, false)
	f.routes = []netlink.Route{{Type: unix.RTN_UNICAST, MultiPath: []*netlink.NexthopInfo{{LinkIndex: 3}, {LinkIndex: 2}}}}
	c, err = f.choose(t, Options{})
	check(t, c, err, "b0", "2001:db8:b::1", "2001:db8:b::1", sourceDefaultRoute, false)
}

func TestCanReachFake(t *testing.T) {
	f := newFake()
	f.link(2, "eth0", net.FlagUp, mkAddr("2001:db8::1/64", perm), mkAddr("2001:db8::2/64", perm),
		mkAddr("2001:db8::3/64", unix.IFA_F_TEMPORARY))
	f.get["2001:db8:f::1"] = netlink.Route{LinkIndex: 2, Src: net.ParseIP("2001:db8::2"), Type: unix.RTN_UNICAST}
	f.get["2001:db8:f::2"] = netlink.Route{LinkIndex: 2, Src: net.ParseIP("2001:db8::3"), Type: unix.RTN_UNICAST}
	f.get["2001:db8:f::3"] = netlink.Route{LinkIndex: 2, Type: unix.RTN_UNICAST}
	f.get["2001:db8:f::9"] = netlink.Route{LinkIndex: 1, Type: unix.RTN_LOCAL}
	c, err := f.choose(t, Options{IfaceCanReach: "2001:db8:f::1"})
	check(t, c, err, "eth0", "2001:db8::2", "2001:db8::2", sourceCanReach, false)
	c, err = f.choose(t, Options{IfaceCanReach: "2001:db8:f::2"}) // temporary src: not used
	check(t, c, err, "eth0", "2001:db8::1", "2001:db8::1", sourceCanReach, false)
	c, err = f.choose(t, Options{IfaceCanReach: "2001:db8:f::3"})
	check(t, c, err, "eth0", "2001:db8::1", "2001:db8::1", sourceCanReach, false)
	for _, d := range []string{"2001:db8:f::9", "2001:db8::1"} { // by route type; by own address
		if _, err := f.choose(t, Options{IfaceCanReach: d}); !errors.Is(err, errLocalDest) || !strings.Contains(err.Error(), d) {
			t.Errorf("local destination %s: %v", d, err)
		}
	}
}

func TestDADWaitFake(t *testing.T) {
	f := newFake()
	f.link(2, "eth0", net.FlagUp, mkAddr("2001:db8::1/64", unix.IFA_F_TENTATIVE|perm))
	p, _ := Options{PublicIPv6: "2001:db8::1"}.parse()
	loads := 0
	start := time.Now()
	c, err := choose(p, 2*time.Second, func() (*host, error) {
		loads++
		if loads == 3 {
			f.addrs[2][0].Flags = perm // DAD done
		}
		return f.host, nil
	})
	check(t, c, err, "eth0", "2001:db8::1", "2001:db8::1", sourcePublicIPv6, true)
	t.Logf("waited %v over %d looks", time.Since(start), loads)
	f.addrs[2][0].Flags = unix.IFA_F_TENTATIVE | perm
	start = time.Now()
	_, err = choose(p, 300*time.Millisecond, func() (*host, error) { return f.host, nil })
	if !errors.Is(err, errTentative) || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("still tentative: %v after %v", err, time.Since(start))
	}
}
