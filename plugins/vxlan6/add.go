package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	cnins "github.com/containernetworking/cni/pkg/ns"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/vxlan6/vxlan6/internal/forwarding"
	"github.com/vxlan6/vxlan6/ipam"
	"github.com/vxlan6/vxlan6/plugins/vxlan6/link"
	"github.com/vxlan6/vxlan6/plugins/vxlan6/masq"
	"github.com/vxlan6/vxlan6/subnetfile"
)

// The steps of cmdAdd, in the order it takes them.

// addRequest is ADD's input: the config and the static request, all of it
// checked before anything is opened.
func addRequest(args *skel.CmdArgs) (*NetConf, *staticRequest, error) {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return nil, nil, err
	}
	// skel's check lets % through, which the kernel would expand.
	if err := validIfName(args.IfName); err != nil {
		return nil, nil, cniErr(types.ErrInvalidEnvironmentVariables, "CNI_IFNAME %q: %v", args.IfName, err)
	}
	req, err := parseStatic(conf, args.Args)
	if err != nil {
		return nil, nil, err
	}
	return conf, req, nil
}

// openContainerNetNS opens CNI_NETNS for ADD, refusing the host's own.
func openContainerNetNS(path string) (ns.NetNS, error) {
	netns, err := openNetNS(path)
	if err != nil {
		return nil, err
	}
	if same, _ := cnins.CheckNetNS(path); same {
		netns.Close()
		// skel would notice only after ADD has wired the host to itself.
		return nil, cniErr(types.ErrInvalidEnvironmentVariables, "CNI_NETNS %s is the host's own network namespace", path)
	}
	return netns, nil
}

// addNode reads the node subnets ADD may allocate from and checks the static
// request against them.
func addNode(conf *NetConf, req *staticRequest) (*subnetfile.Config, *node, error) {
	sf, err := readSubnetFile(conf.SubnetFile, types.ErrTryAgainLater)
	if err != nil {
		return nil, nil, err
	}
	if sf.Held() {
		// Addresses from it would clash with the other node's pods.
		return nil, nil, cniErr(types.ErrTryAgainLater, "node subnet %s is held by another node (%s); vxlan6d is sorting it out: try again later (subnet file %s)",
			sf.Subnets.V6, sf.HeldBy, conf.SubnetFile)
	}
	nd := nodeFrom(sf, conf.MTU)
	if err := checkRequested(req, nd, conf.SubnetFile); err != nil {
		return nil, nil, err
	}
	return sf, nd, nil
}

// rollbackAdd undoes a failed ADD after allocation: masquerade rules, the
// veth pair, the addresses.
func rollbackAdd(conf *NetConf, args *skel.CmdArgs, hostName string, store *ipam.Store) {
	if conf.IPMasq {
		_ = masq.Teardown(conf.Name, args.ContainerID, args.IfName)
	}
	if derr := link.DelHostVeth(hostName); derr != nil {
		slog.Warn("rollback: delete host veth", "veth", hostName, "err", derr)
	}
	if rerr := store.Release(args.ContainerID, args.IfName); rerr != nil {
		slog.Warn("rollback: release addresses", "container", args.ContainerID, "ifname", args.IfName, "err", rerr)
	}
}

// prepareHost makes the node bridge ready and turns forwarding on.
func prepareHost(bridge string, sf *subnetfile.Config, nd *node) (netlink.Link, error) {
	br, err := link.EnsureBridge(bridge, nd.mtu, nd.gatewayNets())
	if errors.Is(err, link.ErrForeignBridge) {
		return nil, cniErr(types.ErrInvalidNetworkConfig, "%v", err)
	}
	if err != nil {
		return nil, err
	}
	// Also when forwarding is on already: see package forwarding. The
	// underlay is the link holding the VTEP (when the file names it).
	if _, err := forwarding.Enable(sf.DualStack(), forwarding.Underlay{Addr: sf.VTEP}); err != nil {
		return nil, err
	}
	return br, nil
}

// attachContainer creates the veth pair on br and configures the container
// end with ips; it returns the result and the container's addresses.
func attachContainer(args *skel.CmdArgs, netns ns.NetNS, nd *node, br netlink.Link, mac net.HardwareAddr, ips []net.IP) (*current.Result, []*net.IPNet, error) {
	hostMAC, err := link.SetupVeth(link.Veth{
		HostName:  link.HostVethName(args.ContainerID, args.IfName),
		ContName:  args.IfName,
		MTU:       nd.mtu,
		ContMAC:   mac,
		Bridge:    br,
		ContainNS: netns,
	})
	if err != nil {
		if errors.Is(err, link.ErrIfaceExists) {
			return nil, nil, cniErr(types.ErrInvalidEnvironmentVariables, "CNI_IFNAME %s already exists in netns %s", args.IfName, args.Netns)
		}
		return nil, nil, err
	}
	result, addrs, routes, err := attachmentFor(args, nd, ips)
	if err != nil {
		return nil, nil, err
	}
	result.Interfaces[0].Mac = hostMAC.String()
	err = netns.Do(func(ns.NetNS) error {
		cl, err := link.ConfigureContainer(args.IfName, addrs, routes)
		if err != nil {
			return err
		}
		result.Interfaces[1].Mac = cl.Attrs().HardwareAddr.String()
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("configure %s in %s: %w", args.IfName, args.Netns, err)
	}
	return result, addrs, nil
}
