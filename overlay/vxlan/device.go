// Package vxlan owns the data path: the VXLAN device (device.go) and the
// per-peer fdb, neighbour and route entries (peers.go), kept apart as in
// flannel's pkg/backend/vxlan.
//
// Everything acts on the network namespace that is current when EnsureDevice
// runs: the Device keeps a netlink handle opened there, so later calls reach
// the same namespace from any goroutine.
package vxlan

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxlan6/vxlan6/internal/forwarding"
)

// IPv6UnderlayOverhead is what VXLAN over an IPv6 underlay costs per packet:
// 40 (IPv6) + 8 (UDP) + 8 (VXLAN) + 14 (inner Ethernet).
const IPv6UnderlayOverhead = 70

// NetlinkTimeout bounds each send and receive on the device's netlink
// handle: a kernel that does not answer turns into an error the daemon
// retries, not a loop stuck for ever.
const NetlinkTimeout = 10 * time.Second

// minIPv6MTU is the smallest link MTU IPv6 allows (RFC 8200); below it the
// kernel silently disables IPv6 on the device, which would break pods.
const minIPv6MTU = 1280

// DeviceConfig describes the wanted device.
type DeviceConfig struct {
	VNI           int              // device name is "vxlan6.<VNI>"
	Port          int              // UDP destination port
	Local         net.IP           // VTEP: the device's local address
	UnderlayIndex int              // underlay link index
	UnderlayMTU   int              // 0 = read from the underlay link
	MTU           int              // 0 = UnderlayMTU - 70 (IPv6 underlay)
	MAC           net.HardwareAddr // stable VTEP MAC; see MACFor. nil = MACFor(Local)
	// IPv4 turns on IPv4 forwarding too (dual-stack networks only: an
	// IPv6-only network has no business routing the host's IPv4).
	IPv4 bool
}

// Device is the VXLAN device as it exists in the kernel.
type Device struct {
	Name  string
	Index int
	MTU   int
	MAC   net.HardwareAddr
	Local net.IP

	// st is shared by copies of the Device; nil for a Device built by hand,
	// in which case it is opened on first use in the then current netns.
	st *state
}

// state is what a Device needs between calls: one netlink handle bound to the
// device's netns, and the peers programmed through it (so AddPeer/RemovePeer
// can clean up after a peer's changes in O(1) netlink calls).
type state struct {
	mu    sync.Mutex
	h     netlinksafe.Handle
	peers *peerSet
}

var stateInit sync.Mutex

func (d *Device) state() (*state, error) {
	stateInit.Lock()
	defer stateInit.Unlock()
	if d.st != nil {
		return d.st, nil
	}
	h, err := newHandle(d.Name)
	if err != nil {
		return nil, err
	}
	d.st = &state{h: h, peers: newPeerSet()}
	return d.st, nil
}

// newHandle opens a netlink handle in the current netns with
// NetlinkTimeout on its socket.
func newHandle(dev string) (netlinksafe.Handle, error) {
	h, err := netlinksafe.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return h, fmt.Errorf("open netlink handle for %s: %w", dev, err)
	}
	if err := h.SetSocketTimeout(NetlinkTimeout); err != nil {
		h.Close()
		return h, fmt.Errorf("set a %s timeout on the netlink handle for %s: %w", NetlinkTimeout, dev, err)
	}
	return h, nil
}

// Close releases the device's netlink handle. The kernel device stays.
func (d *Device) Close() {
	stateInit.Lock()
	defer stateInit.Unlock()
	if d.st != nil {
		d.st.mu.Lock()
		d.st.h.Close()
		d.st.mu.Unlock()
		d.st = nil
	}
}

// DeviceName is the name of the device for a VNI.
func DeviceName(vni int) string { return "vxlan6." + strconv.Itoa(vni) }

// MACFor derives a stable, locally administered unicast MAC from the VTEP
// address, so a node keeps its MAC across restarts and reboots.
func MACFor(vtep net.IP) net.HardwareAddr {
	ip := vtep.To16()
	if ip == nil {
		ip = vtep // still deterministic for garbage input
	}
	sum := sha256.Sum256(ip)
	mac := net.HardwareAddr(append([]byte(nil), sum[:6]...))
	mac[0] = (mac[0] | 0x02) &^ 0x01
	return mac
}

func (cfg *DeviceConfig) validate() error {
	name := DeviceName(cfg.VNI)
	if cfg.VNI < 0 || cfg.VNI > 1<<24-1 {
		return fmt.Errorf("vxlan device: VNI %d out of range 0..16777215", cfg.VNI)
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return fmt.Errorf("%s: UDP port %d out of range 1..65535", name, cfg.Port)
	}
	if !isIPv6(cfg.Local) {
		return fmt.Errorf("%s: local address %q is not an IPv6 address", name, cfg.Local)
	}
	if cfg.Local.IsLinkLocalUnicast() || cfg.Local.IsUnspecified() || cfg.Local.IsMulticast() {
		return fmt.Errorf("%s: local address %s is not a usable unicast VTEP", name, cfg.Local)
	}
	if cfg.UnderlayIndex <= 0 {
		return fmt.Errorf("%s: underlay link index %d invalid", name, cfg.UnderlayIndex)
	}
	if cfg.MAC != nil {
		if err := checkMAC(cfg.MAC); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func isIPv6(ip net.IP) bool { return ip.To16() != nil && ip.To4() == nil }

func checkMAC(mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("MAC %q is not a 6-byte Ethernet address", mac)
	}
	if mac[0]&1 != 0 {
		return fmt.Errorf("MAC %s is multicast", mac)
	}
	if isZeroMAC(mac) {
		return fmt.Errorf("MAC %s is all zeros", mac)
	}
	return nil
}

func isZeroMAC(mac net.HardwareAddr) bool {
	for _, b := range mac {
		if b != 0 {
			return false
		}
	}
	return true
}

// EnsureDevice creates the device, or reuses a compatible existing one (same
// VNI, local, port, underlay, learning off), or deletes and recreates an
// incompatible one. It sets MTU and MAC, brings it up, and enables forwarding
// (keeping router advertisements working on the underlay, see package forwarding).
func EnsureDevice(cfg DeviceConfig) (*Device, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	name := DeviceName(cfg.VNI)
	h, err := newHandle(name)
	if err != nil {
		return nil, err
	}
	dev, err := ensureDevice(h, name, cfg)
	if err != nil {
		h.Close()
		return nil, err
	}
	dev.st = &state{h: h, peers: newPeerSet()}
	return dev, nil
}

func ensureDevice(h netlinksafe.Handle, name string, cfg DeviceConfig) (_ *Device, err error) {
	under, err := h.LinkByIndex(cfg.UnderlayIndex)
	if err != nil {
		return nil, fmt.Errorf("%s: underlay link index %d: %w", name, cfg.UnderlayIndex, err)
	}
	mtu, err := deviceMTU(name, under.Attrs(), cfg)
	if err != nil {
		return nil, err
	}
	mac := cfg.MAC
	if mac == nil {
		mac = MACFor(cfg.Local)
	}

	want := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: name, MTU: mtu, HardwareAddr: mac},
		VxlanId:      cfg.VNI,
		SrcAddr:      cfg.Local.To16(),
		VtepDevIndex: cfg.UnderlayIndex,
		Port:         cfg.Port,
		Learning:     false,
		// UDP checksums stay on over IPv6: zero checksums would make
		// every receiver validate the inner packet in software.
		UDP6ZeroCSumTx: false,
		UDP6ZeroCSumRx: false,
	}

	link, err := reusableDevice(h, want)
	if err != nil {
		return nil, err
	}
	if link == nil {
		if link, err = createDevice(h, want, under.Attrs().Name); err != nil {
			return nil, err
		}
		defer func() {
			// A device we made but could not finish is removed again, so a
			// failed start leaves nothing half-configured behind.
			if err != nil {
				_ = h.LinkDel(link)
			}
		}()
	}

	if err := configure(h, link, mtu, mac); err != nil {
		return nil, err
	}
	if err := enableForwarding(name, cfg); err != nil {
		return nil, err
	}

	return &Device{
		Name:  name,
		Index: link.Attrs().Index,
		MTU:   mtu,
		MAC:   append(net.HardwareAddr(nil), mac...),
		Local: append(net.IP(nil), cfg.Local.To16()...),
	}, nil
}

// deviceMTU is the MTU the device gets: cfg.MTU, or by default what the
// underlay carries after encapsulation; either way checked against both
// limits.
func deviceMTU(name string, under *netlink.LinkAttrs, cfg DeviceConfig) (int, error) {
	if cfg.UnderlayMTU == 0 {
		cfg.UnderlayMTU = under.MTU
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = cfg.UnderlayMTU - IPv6UnderlayOverhead
	}
	if mtu < minIPv6MTU {
		return 0, fmt.Errorf("%s: MTU %d (underlay %s MTU %d) is below the IPv6 minimum %d",
			name, mtu, under.Name, cfg.UnderlayMTU, minIPv6MTU)
	}
	// The kernel refuses more than the underlay can carry after
	// encapsulation; say so in our words rather than a bare EINVAL.
	if limit := under.MTU - IPv6UnderlayOverhead; mtu > limit {
		return 0, fmt.Errorf("%s: MTU %d exceeds underlay %s MTU %d minus %d (IPv6 VXLAN overhead)",
			name, mtu, under.Name, under.MTU, IPv6UnderlayOverhead)
	}
	return mtu, nil
}

// reusableDevice returns the existing device named want.Name if it can serve
// as want. An incompatible one is deleted; then, as when there is none, it
// returns nil.
func reusableDevice(h netlinksafe.Handle, want *netlink.Vxlan) (netlink.Link, error) {
	name := want.Name
	link, err := h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	why := incompatible(link, want)
	if why == "" {
		slog.Debug("reusing vxlan device", "device", name, "index", link.Attrs().Index)
		return link, nil
	}
	slog.Warn("vxlan device incompatible, recreating", "device", name, "reason", why)
	if err := h.LinkDel(link); err != nil {
		return nil, fmt.Errorf("delete incompatible %s (%s): %w", name, why, err)
	}
	return nil, nil
}

// createDevice adds want and returns the link as the kernel reports it (with
// its index). If that look-up fails the new device is deleted again.
func createDevice(h netlinksafe.Handle, want *netlink.Vxlan, underName string) (netlink.Link, error) {
	name := want.Name
	if err := h.LinkAdd(want); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create %s: another vxlan device already uses VNI %d port %d: %w",
				name, want.VxlanId, want.Port, err)
		}
		return nil, fmt.Errorf("create %s (VNI %d, local %s, port %d, underlay %s): %w",
			name, want.VxlanId, want.SrcAddr, want.Port, underName, err)
	}
	link, err := h.LinkByName(name)
	if err != nil {
		_ = h.LinkDel(want)
		return nil, fmt.Errorf("look up created %s: %w", name, err)
	}
	slog.Info("created vxlan device", "device", name, "index", link.Attrs().Index,
		"vni", want.VxlanId, "local", want.SrcAddr.String(), "port", want.Port, "underlay", underName)
	return link, nil
}

// configure fixes the device's attributes in place (a reused device may
// differ; MTU, MAC and up state are not reasons to recreate it) and brings
// it up.
func configure(h netlinksafe.Handle, link netlink.Link, mtu int, mac net.HardwareAddr) error {
	if err := setMTU(h, link, mtu); err != nil {
		return err
	}
	if err := setMAC(h, link, mac); err != nil {
		return err
	}
	if err := enableIPv6(link.Attrs().Name); err != nil {
		return err
	}
	return setUp(h, link)
}

// setMTU, setMAC and setUp each write only if the value differs.
func setMTU(h netlinksafe.Handle, link netlink.Link, mtu int) error {
	if link.Attrs().MTU == mtu {
		return nil
	}
	if err := h.LinkSetMTU(link, mtu); err != nil {
		return fmt.Errorf("set MTU %d on %s: %w", mtu, link.Attrs().Name, err)
	}
	return nil
}

func setMAC(h netlinksafe.Handle, link netlink.Link, mac net.HardwareAddr) error {
	if link.Attrs().HardwareAddr.String() == mac.String() {
		return nil
	}
	if err := h.LinkSetHardwareAddr(link, mac); err != nil {
		return fmt.Errorf("set MAC %s on %s: %w", mac, link.Attrs().Name, err)
	}
	return nil
}

func setUp(h netlinksafe.Handle, link netlink.Link) error {
	if link.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", link.Attrs().Name, err)
	}
	return nil
}

// enableIPv6 makes the device carry IPv6: pods are IPv6 first, even where
// the host default disables it. accept_ra off: nobody routes for us on the
// overlay.
func enableIPv6(name string) error {
	for key, val := range map[string]string{
		"net/ipv6/conf/" + name + "/disable_ipv6": "0",
		"net/ipv6/conf/" + name + "/accept_ra":    "0",
	} {
		if err := setSysctl(key, val); err != nil {
			return fmt.Errorf("enable IPv6 on %s: %w", name, err)
		}
	}
	return nil
}

// enableForwarding runs on every call (start, periodic resync, VTEP move),
// also when forwarding is on already: an underlay that was recreated comes
// back with accept_ra 1 and would ignore every RA from then on.
func enableForwarding(name string, cfg DeviceConfig) error {
	changed, err := forwarding.Enable(cfg.IPv4, forwarding.Underlay{Index: cfg.UnderlayIndex, Addr: cfg.Local})
	if len(changed) > 0 {
		slog.Info("accept_ra raised to 2 so router advertisements keep working with forwarding on", "links", changed)
	}
	if err != nil {
		return fmt.Errorf("enable forwarding for %s: %w", name, err)
	}
	return nil
}

func setSysctl(key, val string) error {
	cur, err := sysctl.Sysctl(key)
	if err == nil && cur == val {
		return nil
	}
	if _, err := sysctl.Sysctl(key, val); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, val, err)
	}
	return nil
}

// incompatible says why an existing link cannot serve as want, or "" if it can
// (MTU, MAC and up state are fixed in place and do not count).
func incompatible(link netlink.Link, want *netlink.Vxlan) string {
	have, ok := link.(*netlink.Vxlan)
	if !ok {
		return fmt.Sprintf("link type %q, want vxlan", link.Type())
	}
	switch {
	case have.VxlanId != want.VxlanId:
		return fmt.Sprintf("VNI %d, want %d", have.VxlanId, want.VxlanId)
	case !have.SrcAddr.Equal(want.SrcAddr):
		return fmt.Sprintf("local %v, want %v", have.SrcAddr, want.SrcAddr)
	case have.Port != want.Port:
		return fmt.Sprintf("port %d, want %d", have.Port, want.Port)
	case have.VtepDevIndex != want.VtepDevIndex:
		return fmt.Sprintf("underlay index %d, want %d", have.VtepDevIndex, want.VtepDevIndex)
	case have.Learning:
		return "learning on, want off"
	case len(have.Group) > 0 && !have.Group.IsUnspecified():
		return fmt.Sprintf("remote/group %v set, want none", have.Group)
	case have.FlowBased:
		return "external (flow based), want not"
	case have.GBP:
		return "GBP on, want off"
	case have.UDP6ZeroCSumTx:
		return "zero UDP checksum on TX, want checksums"
	}
	return ""
}
