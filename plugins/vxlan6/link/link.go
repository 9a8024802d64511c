// Package link does the kernel work of the vxlan6 CNI plugin: the node bridge,
// the veth pair and the container side's addresses and routes. Each function
// does one kernel thing and issues as few netlink requests as it can, because
// ADD latency is what container start-up waits on.
package link

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// VethPrefix starts every host-side veth name the plugin creates, so GC can
// tell its own strays from other links.
const VethPrefix = "vx6"

// ErrIfaceExists reports that the container interface name is already taken
// inside the container's network namespace.
var ErrIfaceExists = errors.New("interface already exists in the container netns")

// HostVethName derives the host end's name from (container ID, ifname) alone,
// so DEL and GC find it without a netns or a prevResult (nerdctl sends DEL
// with an empty CNI_NETNS).
func HostVethName(containerID, ifName string) string {
	sum := sha256.Sum256([]byte(containerID + "/" + ifName))
	return VethPrefix + hex.EncodeToString(sum[:])[:12]
}

// IsHostVethName reports whether name has the shape HostVethName produces.
func IsHostVethName(name string) bool {
	if len(name) != len(VethPrefix)+12 || !strings.HasPrefix(name, VethPrefix) {
		return false
	}
	_, err := hex.DecodeString(name[len(VethPrefix):])
	return err == nil
}

// BridgeAlias marks the bridges vxlan6 creates (their IFLA_IFALIAS, `ip link`
// shows it as "alias vxlan6"): EnsureBridge removes every other global
// address from the node bridge, so it must only ever work on its own.
const BridgeAlias = "vxlan6"

// markWait bounds how long EnsureBridge waits for the mark of a bridge
// another plugin process is creating.
const markWait = time.Second

// ErrForeignBridge reports that the bridge the config names exists and was
// not made by vxlan6 (say the host's own br0): it is left untouched.
var ErrForeignBridge = errors.New("bridge was not created by vxlan6")

// EnsureBridge makes sure the node bridge exists, is up, has mtu and holds
// exactly the gateway addresses gws (gateway IP with the subnet's mask). A
// gateway address left from an older subnet is removed. Safe against
// concurrent plugin processes: whoever loses a create race uses the winner's
// bridge. On the common path (all in place) it costs two netlink requests.
//
// A bridge is created with BridgeAlias. An existing bridge without it is
// refused (ErrForeignBridge, nothing changed) unless it holds one of gws:
// that is a bridge of vxlan6 before the mark existed, adopted by marking it.
func EnsureBridge(name string, mtu int, gws []*net.IPNet) (netlink.Link, error) {
	br, err := netlinksafe.LinkByName(name)
	if isNotFound(err) {
		br, err = createBridge(name, mtu)
	} else if err != nil {
		err = fmt.Errorf("look up bridge %s: %w", name, err)
	}
	if err != nil {
		return nil, err
	}
	if _, ok := br.(*netlink.Bridge); !ok {
		return nil, fmt.Errorf("%s exists but is a %s, not a bridge", name, br.Type())
	}
	addrs, err := netlinksafe.AddrList(br, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses of bridge %s: %w", name, err)
	}
	if br.Attrs().Alias != BridgeAlias {
		if err := adoptBridge(br, addrs, gws); err != nil {
			return nil, err
		}
	}
	if br.Attrs().MTU != mtu {
		if err := netlink.LinkSetMTU(br, mtu); err != nil {
			return nil, fmt.Errorf("set MTU %d on bridge %s: %w", mtu, name, err)
		}
	}
	if br.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(br); err != nil {
			return nil, fmt.Errorf("set bridge %s up: %w", name, err)
		}
	}
	if err := setGateways(br, addrs, gws); err != nil {
		return nil, err
	}
	return br, nil
}

// createBridge creates the node bridge, marked with BridgeAlias, or returns
// the one a concurrent plugin process created first.
func createBridge(name string, mtu int) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.MTU = mtu
	attrs.Flags = net.FlagUp
	// A fixed MAC keeps the gateway's MAC stable while ports come and
	// go; by default a bridge takes the lowest MAC of its ports.
	attrs.HardwareAddr = randomMAC()
	created := true
	newBr := &netlink.Bridge{LinkAttrs: attrs}
	if err := netlink.LinkAdd(newBr); err != nil {
		if !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create bridge %s: %w", name, err)
		}
		created = false
	}
	if created {
		// First thing after creating it (the kernel ignores an alias
		// in the create request): a process that lost the race
		// waits for the mark (see adoptBridge).
		if err := netlink.LinkSetAlias(newBr, BridgeAlias); err != nil {
			_ = netlink.LinkDel(newBr)
			return nil, fmt.Errorf("mark bridge %s as vxlan6's (alias %s): %w", name, BridgeAlias, err)
		}
	}
	br, err := netlinksafe.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("look up bridge %s after creating it: %w", name, err)
	}
	if !created {
		return br, nil
	}
	// Containers are on the other side of this bridge: it must
	// never take their router advertisements.
	_, _ = sysctl.Sysctl("net/ipv6/conf/"+name+"/accept_ra", "0")
	// The kernel sends a neighbour solicitation for a forwarded
	// packet from the bridge's link-local address and sends none
	// while that address is tentative; with DAD the first
	// container's inbound traffic from other hosts stalled 1-2 s
	// and under load failed with "address unreachable". The
	// link-local appears with the first port, after this write,
	// and its MAC is our random one (unless a process that lost
	// the create race attaches a port first: then DAD runs once).
	// Best effort like accept_ra: failing ADD over it would leave
	// a bridge no retry configures.
	_, _ = sysctl.Sysctl("net/ipv6/conf/"+name+"/accept_dad", "0")
	// Only an explicit MTU change marks the bridge's MTU as set by
	// the user; otherwise it falls back to 1500 when its last port
	// leaves and follows its ports.
	if err := netlink.LinkSetMTU(br, mtu); err != nil {
		return nil, fmt.Errorf("set MTU %d on bridge %s: %w", mtu, name, err)
	}
	return br, nil
}

// setGateways makes the global addresses of br (addrs) exactly gws.
func setGateways(br netlink.Link, addrs []netlink.Addr, gws []*net.IPNet) error {
	name := br.Attrs().Name
	have := make([]bool, len(gws))
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		keep := false
		for i, gw := range gws {
			if a.IP.Equal(gw.IP) && maskEqual(a.Mask, gw.Mask) {
				have[i], keep = true, true
			}
		}
		if keep {
			continue
		}
		// The bridge belongs to this plugin: any other global address is a
		// gateway of a subnet this node no longer holds.
		if err := netlink.AddrDel(br, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove stale gateway %s from bridge %s: %w", a.IPNet, name, err)
		}
	}
	for i, gw := range gws {
		if have[i] {
			continue
		}
		addr := &netlink.Addr{IPNet: gw, Flags: unix.IFA_F_NODAD}
		if err := netlink.AddrAdd(br, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add gateway %s to bridge %s: %w", gw, name, err)
		}
	}
	return nil
}

// adoptBridge marks br as vxlan6's if it holds one of the gateways gws (a
// bridge made before the mark existed, e.g. by c8681c8), and refuses it
// otherwise, changing nothing.
func adoptBridge(br netlink.Link, addrs []netlink.Addr, gws []*net.IPNet) error {
	name := br.Attrs().Name
	for _, a := range addrs {
		for _, gw := range gws {
			if a.IP.Equal(gw.IP) && maskEqual(a.Mask, gw.Mask) {
				if err := netlink.LinkSetAlias(br, BridgeAlias); err != nil {
					return fmt.Errorf("mark bridge %s as vxlan6's (alias %s): %w", name, BridgeAlias, err)
				}
				return nil
			}
		}
	}
	if br.Attrs().Alias == "" && !hasGlobal(addrs) && awaitMark(br) {
		return nil
	}
	why := "no alias"
	if a := br.Attrs().Alias; a != "" {
		why = fmt.Sprintf("alias %q", a)
	}
	return fmt.Errorf("%w: %s (%s, no vxlan6 gateway address); vxlan6 would remove its addresses, so it is left alone: name a bridge of vxlan6's own in the conflist (\"bridge\") or delete %s",
		ErrForeignBridge, name, why, name)
}

// awaitMark: a bridge another plugin process has just created is unmarked
// (and bare) until it sets the alias, a few microseconds later; look again
// for up to markWait before refusing it.
func awaitMark(br netlink.Link) bool {
	for deadline := time.Now().Add(markWait); time.Now().Before(deadline); {
		time.Sleep(markWait / 100)
		l, err := netlinksafe.LinkByName(br.Attrs().Name)
		if err != nil || l.Attrs().Index != br.Attrs().Index {
			return false
		}
		if a := l.Attrs().Alias; a != "" {
			return a == BridgeAlias
		}
	}
	return false
}

func hasGlobal(addrs []netlink.Addr) bool {
	for _, a := range addrs {
		if !a.IP.IsLinkLocalUnicast() {
			return true
		}
	}
	return false
}

func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = mac[0]&0xfe | 0x02 // unicast, locally administered
	return mac
}

func maskEqual(a, b net.IPMask) bool {
	ao, ab := a.Size()
	bo, bb := b.Size()
	return ao == bo && ab == bb
}

// Veth describes the pair SetupVeth creates.
type Veth struct {
	HostName  string           // host end, attached to the bridge
	ContName  string           // container end (CNI_IFNAME)
	MTU       int              // both ends
	ContMAC   net.HardwareAddr // optional static MAC of the container end
	Bridge    netlink.Link     // node bridge
	ContainNS ns.NetNS         // container netns
}

// SetupVeth creates the pair in one netlink request: host end up, on the
// bridge, with a fixed MAC; container end born inside the
// container netns. It returns the host end's MAC. If the container netns
// already has ContName it returns ErrIfaceExists. A host end left over from
// an earlier ADD of the same (container ID, ifname) is a stale attachment: it
// is replaced.
func SetupVeth(v Veth) (net.HardwareAddr, error) {
	hostMAC := randomMAC()
	err := addVethPair(v, hostMAC)
	if errors.Is(err, unix.EEXIST) {
		if exists, lerr := contLinkExists(v.ContainNS, v.ContName); lerr != nil {
			return nil, lerr
		} else if exists {
			return nil, fmt.Errorf("%w: %s in %s", ErrIfaceExists, v.ContName, v.ContainNS.Path())
		}
		if derr := DelHostVeth(v.HostName); derr != nil {
			return nil, fmt.Errorf("replace stale host veth %s: %w", v.HostName, derr)
		}
		err = addVethPair(v, hostMAC)
	}
	if err != nil {
		return nil, fmt.Errorf("create veth %s on bridge %s (container end %s in %s): %w",
			v.HostName, v.Bridge.Attrs().Name, v.ContName, v.ContainNS.Path(), err)
	}
	// The host end is only a bridge port and needs no IPv6 of its own.
	// Without this each one got a link-local address (with DAD and MLD
	// reports), and every ADD's address dump of the bridge in EnsureBridge
	// walked one more address per pod (0.45-0.73 ms with 500 pods,
	// 0.19-0.28 ms without them). The link-local would only appear once
	// the container end is up, so writing now is in time. Best effort:
	// without IPv6 in the host the file does not exist.
	_, _ = sysctl.Sysctl("net/ipv6/conf/"+v.HostName+"/disable_ipv6", "1")
	return hostMAC, nil
}

// addVethPair is netlink.LinkAdd for a veth, plus what that cannot put in
// the create request (IFLA_MASTER), saving the look-up and set-master round
// trips it would otherwise take.
func addVethPair(v Veth, hostMAC net.HardwareAddr) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Change, msg.Flags = unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.HostName)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(v.MTU))))
	req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, []byte(hostMAC)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(v.Bridge.Attrs().Index))))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	peer := data.AddRtAttr(nl.VETH_INFO_PEER, nil)
	// The peer cannot be born up: the kernel configures it before the
	// pair is linked, and veth_open refuses (ENOTCONN).
	nl.NewIfInfomsgChild(peer, unix.AF_UNSPEC)
	peer.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.ContName))
	peer.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(v.MTU)))
	if v.ContMAC != nil {
		peer.AddRtAttr(unix.IFLA_ADDRESS, []byte(v.ContMAC))
	}
	peer.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(v.ContainNS.Fd())))
	req.AddData(info)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

func contLinkExists(netns ns.NetNS, name string) (bool, error) {
	exists := false
	err := netns.Do(func(ns.NetNS) error {
		_, err := netlinksafe.LinkByName(name)
		if err == nil {
			exists = true
			return nil
		}
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("look up %s in %s: %w", name, netns.Path(), err)
	})
	return exists, err
}

// Route is a route to install in the container.
type Route struct {
	Dst *net.IPNet
	GW  net.IP
}

// ConfigureContainer, run inside the container netns, gives ifName its
// addresses (without duplicate address detection, so they are usable the
// moment ADD returns), brings it up and adds routes. It returns the link.
func ConfigureContainer(ifName string, addrs []*net.IPNet, routes []Route) (netlink.Link, error) {
	l, err := netlinksafe.LinkByName(ifName)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", ifName, err)
	}
	for _, a := range addrs {
		addr := &netlink.Addr{IPNet: a}
		if a.IP.To4() == nil {
			addr.Flags = unix.IFA_F_NODAD
		}
		err := netlink.AddrAdd(l, addr)
		if errors.Is(err, unix.EACCES) && a.IP.To4() == nil {
			// IPv6 is disabled in this netns (some runtimes do that):
			// enable it on this interface only and retry.
			if _, werr := sysctl.Sysctl("net/ipv6/conf/"+ifName+"/disable_ipv6", "0"); werr == nil {
				err = netlink.AddrAdd(l, addr)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("add address %s to %s: %w", a, ifName, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(l); err != nil {
			return nil, fmt.Errorf("set %s up: %w", ifName, err)
		}
	}
	if err := addRoutes(l, routes); err != nil {
		return nil, err
	}
	return l, nil
}

// addRoutes adds routes through l; a route already there is kept as it is,
// so a repeated ADD can run it again safely.
func addRoutes(l netlink.Link, routes []Route) error {
	for _, r := range routes {
		rt := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: r.Dst, Gw: r.GW}
		if err := netlink.RouteAdd(rt); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add route %s via %s dev %s: %w", r.Dst, r.GW, l.Attrs().Name, err)
		}
	}
	return nil
}

// ExistingPair finds the veth pair an earlier ADD made: the host end
// hostName (in the current netns) and its peer, which must be ifName inside
// netns. It returns nil links and no error when there is nothing to reuse:
// hostName does not exist, or netns has no ifName (the host end is then a
// stale one SetupVeth replaces). When ifName exists in netns but is not the
// peer of hostName, the error wraps ErrIfaceExists; nothing is changed
// either way.
//
// The peer is identified by the host end's IFLA_LINK_NETNSID and IFLA_LINK
// (the peer's netns ID, as the current netns sees it, and its ifindex there)
// rather than by name or ifindex alone: ifindexes are per netns, so another
// container's veth may carry the same index.
func ExistingPair(hostName, ifName string, netns ns.NetNS) (host, cont netlink.Link, err error) {
	host, err = netlinksafe.LinkByName(hostName)
	if err != nil {
		if isNotFound(err) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("look up host veth %s: %w", hostName, err)
	}
	err = netns.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(ifName)
		if err != nil {
			if isNotFound(err) {
				return nil
			}
			return fmt.Errorf("look up %s in %s: %w", ifName, netns.Path(), err)
		}
		cont = l
		return nil
	})
	if err != nil || cont == nil {
		return nil, nil, err
	}
	notPeer := func(why string) error {
		return fmt.Errorf("%w: %s in %s is not the peer of host veth %s (%s)", ErrIfaceExists, ifName, netns.Path(), hostName, why)
	}
	if host.Type() != "veth" {
		return nil, nil, notPeer(hostName + " is a " + host.Type())
	}
	if cont.Type() != "veth" {
		return nil, nil, notPeer(ifName + " is a " + cont.Type())
	}
	nsid, err := netlink.GetNetNsIdByFd(int(netns.Fd()))
	if err != nil {
		return nil, nil, fmt.Errorf("get the netns ID of %s: %w", netns.Path(), err)
	}
	ha := host.Attrs()
	if nsid < 0 || ha.NetNsID != nsid || ha.ParentIndex != cont.Attrs().Index {
		return nil, nil, notPeer(fmt.Sprintf("the host end's peer is ifindex %d in netns ID %d; %s is ifindex %d in netns ID %d",
			ha.ParentIndex, ha.NetNsID, ifName, cont.Attrs().Index, nsid))
	}
	return host, cont, nil
}

// CheckAndRoute, run inside the container netns on the container end l
// (as ExistingPair returned it, so it is not looked up again), verifies what
// CheckContainer verifies for addrs and then adds whichever of routes are
// missing (cheap, and harmless when they are all there).
func CheckAndRoute(l netlink.Link, addrs []*net.IPNet, routes []Route) error {
	if err := checkLink(l, addrs, nil); err != nil {
		return err
	}
	return addRoutes(l, routes)
}

// DelHostVeth deletes the host end by name (the kernel removes the container
// end with it). A link that is already gone is not an error.
func DelHostVeth(name string) error {
	l, err := netlinksafe.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("look up host veth %s: %w", name, err)
	}
	if l.Type() != "veth" {
		return fmt.Errorf("%s is a %s, not a veth of vxlan6: leaving it alone", name, l.Type())
	}
	if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete host veth %s: %w", name, err)
	}
	return nil
}

// HostVeths lists the veths attached to bridge whose names have the shape
// HostVethName produces (the candidates for GC).
func HostVeths(bridge string) ([]netlink.Link, error) {
	br, err := netlinksafe.LinkByName(bridge)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("look up bridge %s: %w", bridge, err)
	}
	links, err := netlinksafe.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []netlink.Link
	for _, l := range links {
		a := l.Attrs()
		if l.Type() == "veth" && a.MasterIndex == br.Attrs().Index && IsHostVethName(a.Name) {
			out = append(out, l)
		}
	}
	return out, nil
}

// HostVethOnBridge reports whether the host veth name exists and is a port of
// bridge.
func HostVethOnBridge(name, bridge string) error {
	l, err := netlinksafe.LinkByName(name)
	if err != nil {
		return fmt.Errorf("host veth %s: %w", name, err)
	}
	return OnBridge(l, bridge)
}

// OnBridge is HostVethOnBridge for a host veth already looked up (a repeated
// ADD has it from ExistingPair), sparing a second look-up of it.
func OnBridge(l netlink.Link, bridge string) error {
	br, err := netlinksafe.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", bridge, err)
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		return fmt.Errorf("host veth %s is not a port of bridge %s", l.Attrs().Name, bridge)
	}
	return nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, syscall.ENODEV)
}

// CheckContainer, run inside the container netns, verifies that ifName
// exists, is up and holds every address of addrs (with its prefix length),
// and that every route of routes exists (a later chained plugin may have
// added more; that is fine).
func CheckContainer(ifName string, addrs []*net.IPNet, routes []Route) error {
	l, err := netlinksafe.LinkByName(ifName)
	if err != nil {
		return fmt.Errorf("look up %s: %w", ifName, err)
	}
	return checkLink(l, addrs, routes)
}

// checkLink is CheckContainer on a link already looked up.
func checkLink(l netlink.Link, addrs []*net.IPNet, routes []Route) error {
	ifName := l.Attrs().Name
	if l.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("%s is down", ifName)
	}
	have, err := netlinksafe.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", ifName, err)
	}
	for _, want := range addrs {
		found := false
		for _, a := range have {
			found = found || (a.IP.Equal(want.IP) && maskEqual(a.Mask, want.Mask))
		}
		if !found {
			return fmt.Errorf("address %s missing on %s", want, ifName)
		}
	}
	if len(routes) == 0 {
		return nil
	}
	rts, err := netlinksafe.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, want := range routes {
		found := false
		for _, r := range rts {
			dst := r.Dst
			if dst == nil {
				bits := 128
				if r.Family == netlink.FAMILY_V4 {
					bits = 32
				}
				dst = &net.IPNet{IP: make(net.IP, bits/8), Mask: net.CIDRMask(0, bits)}
			}
			if !dst.IP.Equal(want.Dst.IP) || !maskEqual(dst.Mask, want.Dst.Mask) {
				continue
			}
			if want.GW == nil || want.GW.Equal(r.Gw) {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("route %s via %s missing", want.Dst, want.GW)
		}
	}
	return nil
}
