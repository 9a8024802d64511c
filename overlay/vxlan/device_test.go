package vxlan

import (
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

func TestMACFor(t *testing.T) {
	a := MACFor(net.ParseIP("2001:db8::1"))
	if a.String() != MACFor(net.ParseIP("2001:db8::1")).String() {
		t.Fatal("MACFor not deterministic")
	}
	if a[0]&0x02 == 0 || a[0]&0x01 != 0 || len(a) != 6 {
		t.Fatalf("MACFor = %v: want 6-byte locally administered unicast", a)
	}
	if b := MACFor(net.ParseIP("2001:db8::2")); b.String() == a.String() {
		t.Fatalf("two VTEPs share MAC %v", a)
	}
	// The 4- and 16-byte forms of one address are the same VTEP.
	v := net.ParseIP("2001:db8::1").To16()
	if MACFor(v).String() != a.String() {
		t.Fatal("MACFor depends on the slice form")
	}
}

func linkIn(t *testing.T, n ns.NetNS, name string) netlink.Link {
	t.Helper()
	var l netlink.Link
	do(t, n, func() error {
		var err error
		l, err = netlink.LinkByName(name)
		return err
	})
	return l
}

func TestEnsureDevice(t *testing.T) {
	testutil.RequireRoot(t)
	n, ul := underlayNS(t, 1500)
	local := net.ParseIP("2001:db8:f::1")
	cfg := DeviceConfig{VNI: 7, Port: 8472, Local: local, UnderlayIndex: ul, UnderlayMTU: 1500, IPv4: true}

	dev := ensureIn(t, n, cfg)
	if dev.Name != "vxlan6.7" || dev.MTU != 1430 || dev.MAC.String() != MACFor(local).String() || !dev.Local.Equal(local) {
		t.Fatalf("device = %+v", dev)
	}
	l := linkIn(t, n, "vxlan6.7")
	vx, ok := l.(*netlink.Vxlan)
	if !ok {
		t.Fatalf("link type %s", l.Type())
	}
	if vx.VxlanId != 7 || !vx.SrcAddr.Equal(local) || vx.Port != 8472 || vx.VtepDevIndex != ul || vx.Learning {
		t.Fatalf("vxlan attrs: vni %d local %v port %d dev %d learning %v", vx.VxlanId, vx.SrcAddr, vx.Port, vx.VtepDevIndex, vx.Learning)
	}
	if vx.MTU != 1430 || vx.HardwareAddr.String() != dev.MAC.String() || vx.Flags&net.FlagUp == 0 || vx.Index != dev.Index {
		t.Fatalf("link attrs: mtu %d mac %v flags %v index %d", vx.MTU, vx.HardwareAddr, vx.Flags, vx.Index)
	}
	do(t, n, func() error {
		for key, want := range map[string]string{
			"net/ipv6/conf/all/forwarding":        "1",
			"net/ipv4/ip_forward":                 "1",
			"net/ipv6/conf/vxlan6.7/disable_ipv6": "0",
			"net/ipv6/conf/vxlan6.7/accept_ra":    "0",
		} {
			if got, err := sysctl.Sysctl(key); err != nil || got != want {
				t.Errorf("%s = %q (%v), want %q", key, got, err, want)
			}
		}
		return nil
	})

	// The underlay (a bridge here) keeps taking RAs with forwarding on.
	do(t, n, func() error {
		u, err := netlink.LinkByIndex(ul)
		if err != nil {
			return err
		}
		if got, err := sysctl.Sysctl("net/ipv6/conf/" + u.Attrs().Name + "/accept_ra"); err != nil || got != "2" {
			t.Errorf("underlay %s accept_ra = %q (%v), want 2", u.Attrs().Name, got, err)
		}
		return nil
	})

	t.Run("reuse compatible, fixing MTU, MAC and up", func(t *testing.T) {
		do(t, n, func() error {
			_ = netlink.LinkSetDown(l)
			_ = netlink.LinkSetMTU(l, 1300)
			return netlink.LinkSetHardwareAddr(l, net.HardwareAddr{2, 0, 0, 0, 0, 1})
		})
		again := ensureIn(t, n, cfg)
		if again.Index != dev.Index {
			t.Fatalf("recreated: index %d, was %d", again.Index, dev.Index)
		}
		l := linkIn(t, n, "vxlan6.7")
		if l.Attrs().MTU != 1430 || l.Attrs().HardwareAddr.String() != dev.MAC.String() || l.Attrs().Flags&net.FlagUp == 0 {
			t.Fatalf("not repaired: %+v", l.Attrs())
		}
	})

	t.Run("MTU override", func(t *testing.T) {
		c := cfg
		c.MTU = 1400
		d := ensureIn(t, n, c)
		if d.Index != dev.Index || d.MTU != 1400 || linkIn(t, n, "vxlan6.7").Attrs().MTU != 1400 {
			t.Fatalf("override: %+v", d)
		}
	})

	prev := dev.Index
	for _, tc := range []struct {
		name   string
		mutate func(*DeviceConfig)
	}{
		{"other local", func(c *DeviceConfig) { c.Local = net.ParseIP("2001:db8:f::2") }},
		{"other port", func(c *DeviceConfig) { c.Port = 4789 }},
	} {
		t.Run("recreate on "+tc.name, func(t *testing.T) {
			c := cfg
			tc.mutate(&c)
			d := ensureIn(t, n, c)
			vx := linkIn(t, n, "vxlan6.7").(*netlink.Vxlan)
			if d.Index == prev || vx.Index != d.Index || !vx.SrcAddr.Equal(c.Local) || vx.Port != c.Port {
				t.Fatalf("not recreated: index %d (was %d), local %v, port %d", d.Index, prev, vx.SrcAddr, vx.Port)
			}
			prev = d.Index
		})
	}

	t.Run("recreate with learning on", func(t *testing.T) {
		do(t, n, func() error {
			old, _ := netlink.LinkByName("vxlan6.7")
			if err := netlink.LinkDel(old); err != nil {
				return err
			}
			return netlink.LinkAdd(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vxlan6.7"}, VxlanId: 7,
				SrcAddr: local, Port: 8472, VtepDevIndex: ul, Learning: true})
		})
		bad := linkIn(t, n, "vxlan6.7").Attrs().Index
		d := ensureIn(t, n, cfg)
		if vx := linkIn(t, n, "vxlan6.7").(*netlink.Vxlan); d.Index == bad || vx.Learning {
			t.Fatalf("learning device kept: index %d learning %v", d.Index, vx.Learning)
		}
	})

	t.Run("replace a non-vxlan link of that name", func(t *testing.T) {
		do(t, n, func() error {
			_, err := addBridge("vxlan6.9", 1500)
			return err
		})
		c := cfg
		c.VNI = 9
		d := ensureIn(t, n, c)
		if linkIn(t, n, "vxlan6.9").Type() != "vxlan" || d.Name != "vxlan6.9" {
			t.Fatal("bridge not replaced")
		}
	})
}

func TestEnsureDeviceBadInput(t *testing.T) {
	testutil.RequireRoot(t)
	n, ul := underlayNS(t, 1300)
	good := DeviceConfig{VNI: 3, Port: 8472, Local: net.ParseIP("2001:db8:f::1"), UnderlayIndex: ul}
	for _, tc := range []struct {
		name   string
		mutate func(*DeviceConfig)
		want   string
	}{
		{"IPv4 local", func(c *DeviceConfig) { c.Local = net.ParseIP("10.0.0.1") }, "10.0.0.1"},
		{"link-local local", func(c *DeviceConfig) { c.Local = net.ParseIP("fe80::1") }, "fe80::1"},
		{"no local", func(c *DeviceConfig) { c.Local = nil }, "local address"},
		{"bad port", func(c *DeviceConfig) { c.Port = 0 }, "port 0"},
		{"bad VNI", func(c *DeviceConfig) { c.VNI = 1 << 24 }, "VNI 16777216"},
		{"no underlay", func(c *DeviceConfig) { c.UnderlayIndex = 99999 }, "99999"},
		{"multicast MAC", func(c *DeviceConfig) { c.MAC = net.HardwareAddr{1, 2, 3, 4, 5, 6} }, "multicast"},
		// 1300 - 70 < 1280: IPv6 would be disabled on the device.
		{"MTU too small", func(c *DeviceConfig) {}, "1230"},
		{"MTU above underlay", func(c *DeviceConfig) { c.MTU = 1290 }, "MTU 1290 exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mutate(&c)
			err := n.Do(func(ns.NetNS) error {
				_, err := EnsureDevice(c)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
			do(t, n, func() error {
				if _, err := netlink.LinkByName(DeviceName(c.VNI)); err == nil {
					t.Errorf("%s left behind", DeviceName(c.VNI))
				}
				return nil
			})
		})
	}
}
