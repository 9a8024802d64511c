package vxlan

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// The device is made with UDP checksums on (IPv6), its offloads can be read,
// and a device with zero UDP checksums is replaced.
func TestDeviceChecksumsAndOffloads(t *testing.T) {
	testutil.RequireRoot(t)
	n, ul := underlayNS(t, 1500)
	cfg := DeviceConfig{VNI: 9, Port: 8472, Local: net.ParseIP("2001:db8:f::1"), UnderlayIndex: ul, UnderlayMTU: 1500}
	dev := ensureIn(t, n, cfg)
	if dev.MTU != 1500-IPv6UnderlayOverhead {
		t.Errorf("MTU %d, want underlay - %d", dev.MTU, IPv6UnderlayOverhead)
	}
	vx := linkIn(t, n, dev.Name).(*netlink.Vxlan)
	if vx.UDP6ZeroCSumTx || vx.UDP6ZeroCSumRx {
		t.Errorf("zero UDP checksums: tx %v rx %v", vx.UDP6ZeroCSumTx, vx.UDP6ZeroCSumRx)
	}
	do(t, n, func() error {
		o, err := ReadOffloads(dev.Name)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s", dev.Name, o)
		if !o.TXChecksum {
			t.Errorf("TX checksum offload off on a fresh vxlan device: %s", o)
		}
		// Replace it with one that sends zero checksums: EnsureDevice
		// must not keep it.
		if err := netlink.LinkDel(vx); err != nil {
			return err
		}
		bad := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: dev.Name}, VxlanId: 9, SrcAddr: cfg.Local, Port: 8472,
			VtepDevIndex: ul, UDP6ZeroCSumTx: true}
		return netlink.LinkAdd(bad)
	})
	again := ensureIn(t, n, cfg)
	if vx := linkIn(t, n, again.Name).(*netlink.Vxlan); vx.UDP6ZeroCSumTx {
		t.Error("a device with zero UDP checksums on TX was kept")
	}
}
