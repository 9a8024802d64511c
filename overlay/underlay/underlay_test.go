package underlay

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

func cidr(t *testing.T, s string) *net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	if ip.To4() != nil {
		n.IP = n.IP.To4()
	}
	return n
}

func TestCheckOverlap(t *testing.T) {
	under := []Prefix{
		{Net: cidr(t, "2001:db8:1::/64"), What: "address prefix of eth0"},
		{Net: cidr(t, "2001:db8:9::5/128"), What: "etcd endpoint [2001:db8:9::5]:2379"},
		{Net: cidr(t, "::/0"), What: "connected route on eth0"}, // ignored
		{Net: cidr(t, "192.0.2.0/24"), What: "connected route on eth0"},
	}
	for _, tc := range []struct{ net, want string }{
		{"fd10:244::/48", ""},
		{"2001:db8::/32", "pod network IPv6Network 2001:db8::/32 overlaps the underlay: address prefix of eth0 2001:db8:1::/64"},
		{"2001:db8:1::/80", "address prefix of eth0 2001:db8:1::/64"},
		{"2001:db8:9::/64", "etcd endpoint [2001:db8:9::5]:2379 2001:db8:9::5/128"},
		{"192.0.0.0/16", "Network 192.0.0.0/16 overlaps the underlay: connected route on eth0 192.0.2.0/24"},
		{"10.0.0.0/8", ""},
	} {
		field := "IPv6Network"
		if !strings.Contains(tc.net, ":") {
			field = "Network"
		}
		err := checkOverlap([]Network{{Field: field, Net: cidr(t, tc.net)}}, under)
		var oe *OverlapError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want no overlap", tc.net, err)
		case tc.want != "" && (!errors.As(err, &oe) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an OverlapError containing %q", tc.net, err, tc.want)
		}
	}
}

func TestEndpointHost(t *testing.T) {
	for ep, want := range map[string]string{
		"http://[2001:db8::1]:2379": "2001:db8::1",
		"https://10.0.0.1:2379":     "10.0.0.1",
		"[fd00::1]:2379":            "fd00::1",
		"etcd.example:2379":         "etcd.example",
		"unix:///run/etcd.sock":     "",
		"unixs://etcd.sock:0":       "",
	} {
		if got := endpointHost(ep); got != want {
			t.Errorf("endpointHost(%q) = %q, want %q", ep, got, want)
		}
	}
	ps := endpointPrefixes(context.Background(), []string{"http://[2001:db8::1]:2379", "unix:///x"}, time.Second)
	if len(ps) != 1 || ps[0].Net.String() != "2001:db8::1/128" {
		t.Fatalf("endpointPrefixes = %v", ps)
	}
}

// TestGatherFromKernel reads a veth underlay's addresses and connected
// routes in a throwaway netns, and LocalAddrs knows its addresses.
func TestGatherFromKernel(t *testing.T) {
	testutil.RequireRoot(t)
	netns := testutil.NewNS(t)
	err := netns.Do(func(ns.NetNS) error {
		// A veth (no dummy module on every kernel).
		la := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "under0"}, PeerName: "under1"}
		if err := netlink.LinkAdd(la); err != nil {
			return err
		}
		link, err := netlink.LinkByName("under0")
		if err != nil {
			return err
		}
		for _, name := range []string{"under0", "under1"} {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
		}
		addr, _ := netlink.ParseAddr("2001:db8:1::11/64")
		addr.Flags = 0x80 // IFA_F_NODAD: usable at once
		if err := netlink.AddrAdd(link, addr); err != nil {
			return err
		}
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: cidr(t, "2001:db8:77::/48")}); err != nil {
			return err
		}
		err = check(context.Background(), []Network{{Field: "IPv6Network", Net: cidr(t, "2001:db8:77:5::/64")}},
			link.Attrs().Index, []net.IP{net.ParseIP("2001:db8:5::1")}, nil)
		if err == nil || !strings.Contains(err.Error(), "connected route on under0 2001:db8:77::/48") {
			t.Errorf("route overlap: %v", err)
		}
		err = check(context.Background(), []Network{{Field: "IPv6Network", Net: cidr(t, "2001:db8:5::/48")}},
			link.Attrs().Index, []net.IP{net.ParseIP("2001:db8:5::1")}, nil)
		if err == nil || !strings.Contains(err.Error(), "VTEP 2001:db8:5::1/128") {
			t.Errorf("VTEP overlap: %v", err)
		}
		err = check(context.Background(), []Network{{Field: "IPv6Network", Net: cidr(t, "fd10:244::/48")}},
			link.Attrs().Index, nil, []string{"http://[2001:db8:9::1]:2379"})
		if err != nil {
			t.Errorf("apart from the underlay: %v", err)
		}
		la2 := NewLocalAddrs(time.Minute)
		if !la2.Has(net.ParseIP("2001:db8:1::11")) || la2.Has(net.ParseIP("2001:db8:1::12")) {
			t.Errorf("LocalAddrs does not know exactly the veth's address")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
