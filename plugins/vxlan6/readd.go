package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/vxlan6/vxlan6/ipam"
	"github.com/vxlan6/vxlan6/plugins/vxlan6/link"
	"github.com/vxlan6/vxlan6/plugins/vxlan6/masq"
)

// existingResult makes a repeated ADD of (CNI_CONTAINERID, CNI_IFNAME)
// idempotent. When CNI_IFNAME in the netns is exactly what an earlier ADD of
// that pair left (the peer of the pair's host veth, on the bridge; the
// pair's IPAM allocation, inside the current node subnets,
// on the interface), it returns that ADD's result rebuilt from the kernel and
// the store, having changed nothing but missing routes (and, with ipMasq,
// the pair's masquerade rules, rewritten as they were).
//
// It returns nil, nil when there is nothing to reuse (no host veth of the
// pair, or no CNI_IFNAME in the netns): ADD goes on as usual. Whenever
// CNI_IFNAME exists but is anything else, or the request asks for another
// IP or MAC than the attachment has, it returns code 4 before ADD touches
// anything, so neither that interface nor the pair's state is changed.
func existingResult(args *skel.CmdArgs, conf *NetConf, req *staticRequest, nd *node, netns ns.NetNS, store *ipam.Store) (*current.Result, error) {
	hostName := link.HostVethName(args.ContainerID, args.IfName)
	taken := func(format string, a ...any) error {
		return cniErr(types.ErrInvalidEnvironmentVariables, "CNI_IFNAME %s already exists in netns %s: %s",
			args.IfName, args.Netns, fmt.Sprintf(format, a...))
	}
	host, cont, err := link.ExistingPair(hostName, args.IfName, netns)
	if errors.Is(err, link.ErrIfaceExists) {
		return nil, taken("not the attachment of %s/%s (%v)", args.ContainerID, args.IfName, err)
	}
	if err != nil {
		return nil, err
	}
	if host == nil {
		return nil, nil
	}
	mismatch := func(format string, a ...any) error {
		return taken("it is the veth of %s/%s but %s; DEL it first", args.ContainerID, args.IfName, fmt.Sprintf(format, a...))
	}
	if err := link.OnBridge(host, conf.Bridge); err != nil {
		return nil, mismatch("%v", err)
	}
	alloc, err := store.Get(args.ContainerID, args.IfName)
	if err != nil {
		return nil, cniErr(types.ErrIOFailure, "read IPAM store %s: %v", conf.DataDir, err)
	}
	if alloc == nil {
		return nil, mismatch("IPAM in %s holds no address for it", conf.DataDir)
	}
	// In node subnet order, as Allocate returns them: one address per
	// subnet, or the attachment predates a subnet change.
	ips := make([]net.IP, len(nd.subnets))
	for _, a := range alloc.IPs {
		i := nd.subnetFor(a)
		if i < 0 {
			return nil, mismatch("its address %s is outside the node subnets %v (subnet file %s)", a, nd.subnets, conf.SubnetFile)
		}
		if ips[i] != nil {
			return nil, mismatch("IPAM holds both %s and %s in %s", ips[i], a, nd.subnets[i])
		}
		ips[i] = a
	}
	for i, a := range ips {
		if a == nil {
			return nil, mismatch("it has no address in node subnet %s", nd.subnets[i])
		}
	}
	// A static request the attachment does not satisfy is refused rather
	// than answered with the addresses the container really has.
	for _, rip := range req.IPs {
		if i := nd.subnetFor(rip); !ips[i].Equal(rip) {
			return nil, mismatch("it holds %s, not the requested %s", ips[i], rip)
		}
	}
	contMAC := cont.Attrs().HardwareAddr
	if req.MAC != nil && !bytes.Equal(req.MAC, contMAC) {
		return nil, mismatch("its MAC is %s, not the requested %s", contMAC, req.MAC)
	}

	result, addrs, routes, err := attachmentFor(args, nd, ips)
	if err != nil {
		return nil, err
	}
	result.Interfaces[0].Mac = host.Attrs().HardwareAddr.String()
	result.Interfaces[1].Mac = contMAC.String()
	err = netns.Do(func(ns.NetNS) error { return link.CheckAndRoute(cont, addrs, routes) })
	if err != nil {
		return nil, mismatch("%v", err)
	}
	if conf.IPMasq {
		// The earlier ADD may have been killed before this last step.
		if err := masq.Setup(masqNets(addrs, nd), conf.Name, args.ContainerID, args.IfName); err != nil {
			return nil, fmt.Errorf("set up masquerade for %s/%s: %w", args.ContainerID, args.IfName, err)
		}
	}
	return result, nil
}
