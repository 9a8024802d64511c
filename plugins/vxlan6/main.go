// Command vxlan6 is the CNI plugin of the vxlan6 overlay: it puts a container
// on this node's pod subnet (written by vxlan6d into the subnet file) through
// a veth pair on the node bridge, with addresses from the node-local IPAM.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	cniversion "github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/vxlan6/vxlan6/ipam"
	"github.com/vxlan6/vxlan6/plugins/vxlan6/link"
	"github.com/vxlan6/vxlan6/plugins/vxlan6/masq"
	"github.com/vxlan6/vxlan6/subnetfile"
)

// version is set at build time (-X main.version=...).
var version = "dev"

var supportedVersions = cniversion.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

func init() {
	// Namespace switches are per OS thread: keep main on one thread.
	runtime.LockOSThread()
}

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    cmdAdd,
		Del:    cmdDel,
		Check:  cmdCheck,
		GC:     cmdGC,
		Status: cmdStatus,
	}, supportedVersions, "vxlan6 CNI plugin "+version)
}

func cniErr(code uint, format string, a ...any) *types.Error {
	return types.NewError(code, fmt.Sprintf(format, a...), "")
}

// readSubnetFile maps every failure to "try again later": the daemon writes
// the file once it holds a lease, so a missing file is a transient state.
func readSubnetFile(path string, code uint) (*subnetfile.Config, error) {
	c, err := subnetfile.Read(path)
	if err != nil {
		return nil, cniErr(code, "%v (the subnet file is written by vxlan6d; is it running and holding a lease?)", err)
	}
	return c, nil
}

// node is what ADD derives from the subnet file: subnets to allocate from and
// their gateways.
type node struct {
	subnets  []*net.IPNet // v6 first, then v4 if dual-stack
	networks []*net.IPNet // cluster networks, same order
	gws      []net.IP     // gateways, same order
	mtu      int
}

func nodeFrom(sf *subnetfile.Config, mtu int) *node {
	n := &node{mtu: sf.MTU}
	if mtu != 0 {
		n.mtu = mtu
	}
	// A parsed subnet file sets a family's network and subnet together.
	n.subnets, n.networks = slices.Collect(sf.Subnets.All()), slices.Collect(sf.Networks.All())
	for _, s := range n.subnets {
		n.gws = append(n.gws, ipam.Gateway(s))
	}
	return n
}

func (n *node) gatewayNets() []*net.IPNet {
	out := make([]*net.IPNet, len(n.gws))
	for i, gw := range n.gws {
		out[i] = &net.IPNet{IP: gw, Mask: n.subnets[i].Mask}
	}
	return out
}

// subnetFor returns the index of the node subnet holding ip, or -1.
func (n *node) subnetFor(ip net.IP) int {
	for i, s := range n.subnets {
		if s.Contains(ip) {
			return i
		}
	}
	return -1
}

func openNetNS(path string) (ns.NetNS, error) {
	netns, err := ns.GetNS(path)
	if err != nil {
		var notExist ns.NSPathNotExistErr
		if errors.As(err, &notExist) {
			return nil, cniErr(types.ErrUnknownContainer, "CNI_NETNS %s does not exist", path)
		}
		return nil, cniErr(types.ErrInvalidEnvironmentVariables, "CNI_NETNS %s: %v", path, err)
	}
	// GetNS accepts any namespace file (/proc/PID/ns/ipc too); the veth
	// request would then fail with a bare EINVAL after IPAM had run.
	if t, err := unix.IoctlRetInt(int(netns.Fd()), unix.NS_GET_NSTYPE); err == nil && t != unix.CLONE_NEWNET {
		netns.Close()
		return nil, cniErr(types.ErrInvalidEnvironmentVariables, "CNI_NETNS %s is not a network namespace", path)
	}
	return netns, nil
}

func ipamErr(err error) error {
	switch {
	case errors.Is(err, ipam.ErrOutsideSubnet):
		return cniErr(types.ErrInvalidNetworkConfig, "%v", err)
	case errors.Is(err, ipam.ErrInUse), errors.Is(err, ipam.ErrExhausted):
		return cniErr(types.ErrTryAgainLater, "%v", err)
	}
	return cniErr(types.ErrIOFailure, "%v", err)
}

func cmdAdd(args *skel.CmdArgs) (err error) {
	conf, req, err := addRequest(args)
	if err != nil {
		return err
	}
	netns, err := openContainerNetNS(args.Netns)
	if err != nil {
		return err
	}
	defer netns.Close()
	sf, nd, err := addNode(conf, req)
	if err != nil {
		return err
	}
	store, err := openStore(conf, types.ErrIOFailure)
	if err != nil {
		return err
	}
	defer store.Close()
	// A runtime retrying ADD (after a timeout, say) must get the attachment
	// it already has, not an error that makes it DEL a working container.
	prev, err := existingResult(args, conf, req, nd, netns, store)
	if err != nil {
		return err
	}
	if prev != nil {
		return types.PrintResult(prev, conf.CNIVersion)
	}
	ips, err := store.AllocateFor(args.ContainerID, args.IfName, ownerOf(args, conf, netns), nd.subnets, req.IPs)
	if err != nil {
		return ipamErr(fmt.Errorf("allocate in %v for %s/%s (requested %v): %w", nd.subnets, args.ContainerID, args.IfName, req.IPs, err))
	}
	hostName := link.HostVethName(args.ContainerID, args.IfName)
	// Every failure from here on must leave nothing behind.
	defer func() {
		if err != nil {
			rollbackAdd(conf, args, hostName, store)
		}
	}()
	br, err := prepareHost(conf.Bridge, sf, nd)
	if err != nil {
		return err
	}
	result, addrs, err := attachContainer(args, netns, nd, br, req.MAC, ips)
	if err != nil {
		return err
	}
	if conf.IPMasq {
		if err := masq.Setup(masqNets(addrs, nd), conf.Name, args.ContainerID, args.IfName); err != nil {
			return fmt.Errorf("set up masquerade for %s/%s: %w", args.ContainerID, args.IfName, err)
		}
	}
	fastPathAdd(args, conf, hostName, br, result)
	return types.PrintResult(result, conf.CNIVersion)
}

// checkRequested refuses a bad static request: the caller's mistake (7);
// left to IPAM, the ones it has no sentinel for would be reported as a store
// failure (5).
func checkRequested(req *staticRequest, nd *node, subnetFile string) error {
	reqIn := make([]net.IP, len(nd.subnets))
	for _, rip := range req.IPs {
		i := nd.subnetFor(rip)
		if i < 0 {
			return cniErr(types.ErrInvalidNetworkConfig, "requested IP %s is outside the node subnets %v (subnet file %s)", rip, nd.subnets, subnetFile)
		}
		if rip.Equal(nd.subnets[i].IP) || rip.Equal(nd.gws[i]) {
			return cniErr(types.ErrInvalidNetworkConfig, "requested IP %s is the network or gateway address of %s", rip, nd.subnets[i])
		}
		if reqIn[i] != nil && !reqIn[i].Equal(rip) {
			return cniErr(types.ErrInvalidNetworkConfig, "requested IPs %s and %s are both in node subnet %s; at most one per subnet", reqIn[i], rip, nd.subnets[i])
		}
		reqIn[i] = rip
	}
	return nil
}

// attachmentFor is what ADD puts in the container for the allocated ips:
// each address with its node subnet's mask, a default route and a route to
// the cluster network through the subnet's gateway, and the result listing
// them (the interfaces' MACs left for the caller to fill in). ADD and a
// repeated ADD share it so that both report the same attachment.
func attachmentFor(args *skel.CmdArgs, nd *node, ips []net.IP) (*current.Result, []*net.IPNet, []link.Route, error) {
	result := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: link.HostVethName(args.ContainerID, args.IfName)},
			{Name: args.IfName, Sandbox: args.Netns},
		},
	}
	var addrs []*net.IPNet
	var routes []link.Route
	for _, a := range ips {
		i := nd.subnetFor(a)
		if i < 0 {
			return nil, nil, nil, cniErr(types.ErrInternal, "IPAM returned %s, which is in no node subnet %v", a, nd.subnets)
		}
		an := &net.IPNet{IP: a, Mask: nd.subnets[i].Mask}
		addrs = append(addrs, an)
		result.IPs = append(result.IPs, &current.IPConfig{Interface: current.Int(1), Address: *an, Gateway: nd.gws[i]})
		def := &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		if a.To4() != nil {
			def = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
		}
		for _, dst := range []*net.IPNet{def, nd.networks[i]} {
			routes = append(routes, link.Route{Dst: dst, GW: nd.gws[i]})
			result.Routes = append(result.Routes, &types.Route{Dst: *dst, GW: nd.gws[i]})
		}
	}
	return result, addrs, routes, nil
}

// masqNets gives each container address the mask of its cluster network, so
// the masquerade rules exempt traffic that stays inside the cluster.
func masqNets(addrs []*net.IPNet, nd *node) []*net.IPNet {
	var out []*net.IPNet
	for _, a := range addrs {
		for _, nw := range nd.networks {
			if nw.Contains(a.IP) {
				out = append(out, &net.IPNet{IP: a.IP, Mask: nw.Mask})
			}
		}
	}
	return out
}

func cmdDel(args *skel.CmdArgs) error {
	conf, err := decodeConf(args.StdinData)
	if err != nil {
		return err
	}
	store, err := openStore(conf, types.ErrIOFailure)
	if err != nil {
		return err
	}
	defer store.Close()
	if conf.IPMasq {
		if err := masq.Teardown(conf.Name, args.ContainerID, args.IfName); err != nil {
			slog.Warn("tear down masquerade", "container", args.ContainerID, "ifname", args.IfName, "err", err)
		}
	}
	fastPathDel(args, store)
	// The host veth goes first: deleting it takes the container end with it,
	// and needs no netns (nerdctl's DEL has none).
	if err := link.DelHostVeth(link.HostVethName(args.ContainerID, args.IfName)); err != nil {
		return err
	}
	if err := store.Release(args.ContainerID, args.IfName); err != nil {
		return cniErr(types.ErrIOFailure, "release addresses of %s/%s: %v", args.ContainerID, args.IfName, err)
	}
	return nil
}

func cmdCheck(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	prev, err := checkPrevResult(conf)
	if err != nil {
		return err
	}
	sf, err := readSubnetFile(conf.SubnetFile, types.ErrTryAgainLater)
	if err != nil {
		return err
	}
	ips, err := containerIPs(args, prev, nodeFrom(sf, conf.MTU), conf.SubnetFile)
	if err != nil {
		return err
	}
	if err := checkIPAMHolds(conf, args, ips); err != nil {
		return err
	}
	if err := link.HostVethOnBridge(link.HostVethName(args.ContainerID, args.IfName), conf.Bridge); err != nil {
		return err
	}
	return checkInContainer(args, prev, ips)
}

func cmdGC(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	valid := map[string]bool{}
	for _, a := range conf.ValidAttachments {
		valid[a.ContainerID+"\x00"+a.IfName] = true
		valid[link.HostVethName(a.ContainerID, a.IfName)] = true
	}
	store, err := openStore(conf, types.ErrIOFailure)
	if err != nil {
		return err
	}
	defer store.Close()
	allocs, err := store.List()
	if err != nil {
		return cniErr(types.ErrIOFailure, "list IPAM store %s: %v", conf.DataDir, err)
	}
	var errs []error
	for _, a := range allocs {
		if valid[a.ContainerID+"\x00"+a.IfName] {
			continue
		}
		if err := store.Release(a.ContainerID, a.IfName); err != nil {
			errs = append(errs, fmt.Errorf("release %s/%s: %w", a.ContainerID, a.IfName, err))
		}
	}
	veths, err := link.HostVeths(conf.Bridge)
	if err != nil {
		errs = append(errs, err)
	}
	for _, l := range veths {
		if !valid[l.Attrs().Name] {
			if err := link.DelHostVeth(l.Attrs().Name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if conf.IPMasq {
		keep := func(a masq.Attachment) bool { return valid[a.ContainerID+"\x00"+a.IfName] }
		if err := masq.GC(conf.Name, keep); err != nil {
			errs = append(errs, fmt.Errorf("GC masquerade rules: %w", err))
		}
	}
	return errors.Join(errs...)
}

func cmdStatus(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	sf, err := readSubnetFile(conf.SubnetFile, types.ErrPluginNotAvailable)
	if err != nil {
		return err
	}
	store, err := openStore(conf, types.ErrPluginNotAvailable)
	if err != nil {
		return err
	}
	defer store.Close()
	for _, s := range nodeFrom(sf, 0).subnets {
		free, err := store.Free(s)
		if err != nil {
			return cniErr(types.ErrPluginNotAvailable, "IPAM store %s: %v", conf.DataDir, err)
		}
		if !free {
			return cniErr(types.ErrPluginNotAvailable, "no free address left in node subnet %s (IPAM store %s)", s, conf.DataDir)
		}
	}
	return nil
}
