package main

import (
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/vxlan6/vxlan6/plugins/vxlan6/link"
)

// The steps of cmdCheck, in the order it takes them.

// checkPrevResult is the prevResult CHECK compares against.
func checkPrevResult(conf *NetConf) (*current.Result, error) {
	if conf.PrevResult == nil {
		return nil, cniErr(types.ErrInvalidNetworkConfig, "CHECK needs prevResult")
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return nil, cniErr(types.ErrDecodingFailure, "convert prevResult: %v", err)
	}
	return prev, nil
}

// containerIPs are prev's addresses of the container interface CNI_IFNAME,
// each of which must still be inside a node subnet.
func containerIPs(args *skel.CmdArgs, prev *current.Result, nd *node, subnetFile string) ([]*current.IPConfig, error) {
	contIdx := -1
	for i, ifc := range prev.Interfaces {
		if ifc.Name == args.IfName && ifc.Sandbox != "" {
			contIdx = i
		}
	}
	if contIdx < 0 {
		return nil, cniErr(types.ErrInvalidNetworkConfig, "prevResult has no interface %s with a sandbox", args.IfName)
	}
	var ips []*current.IPConfig
	for _, ipc := range prev.IPs {
		if ipc.Interface != nil && *ipc.Interface == contIdx {
			if err := inNodeSubnet(ipc.Address.IP, args.IfName, nd, subnetFile); err != nil {
				return nil, err
			}
			ips = append(ips, ipc)
		}
	}
	return ips, nil
}

// errOutsideNodeSubnet is CHECK's code for an attachment whose address lies
// outside the node subnet: vxlan6d could not get the node's earlier subnet
// back and now routes another one here, so the container is unreachable until
// it is recreated. No well-known code fits (the config is valid, nothing is
// transient, the container exists); the spec leaves 100+ to plugins.
const errOutsideNodeSubnet uint = 100

// inNodeSubnet fails with errOutsideNodeSubnet when ip is in no node subnet,
// naming the node subnet of ip's family (all of them if it has none).
func inNodeSubnet(ip net.IP, ifName string, nd *node, subnetFile string) error {
	if nd.subnetFor(ip) >= 0 {
		return nil
	}
	for _, s := range nd.subnets {
		if (s.IP.To4() == nil) == (ip.To4() == nil) {
			return cniErr(errOutsideNodeSubnet, "address %s of %s is outside the node subnet %s (subnet file %s): the node subnet changed (vxlan6d could not get the earlier one back); recreate the container",
				ip, ifName, s, subnetFile)
		}
	}
	return cniErr(errOutsideNodeSubnet, "address %s of %s is in none of the node subnets %v (subnet file %s): the node has no subnet of its family now; recreate the container",
		ip, ifName, nd.subnets, subnetFile)
}

// checkIPAMHolds fails unless the IPAM store holds every one of ips for the
// pair.
func checkIPAMHolds(conf *NetConf, args *skel.CmdArgs, ips []*current.IPConfig) error {
	store, err := openStore(conf, types.ErrIOFailure)
	if err != nil {
		return err
	}
	defer store.Close()
	alloc, err := store.Get(args.ContainerID, args.IfName)
	if err != nil {
		return cniErr(types.ErrIOFailure, "read IPAM store %s: %v", conf.DataDir, err)
	}
	for _, ipc := range ips {
		held := false
		if alloc != nil {
			for _, a := range alloc.IPs {
				held = held || a.Equal(ipc.Address.IP)
			}
		}
		if !held {
			return fmt.Errorf("IPAM in %s does not hold %s for %s/%s", conf.DataDir, ipc.Address.IP, args.ContainerID, args.IfName)
		}
	}
	return nil
}

// checkInContainer looks for ips and prev's routes on CNI_IFNAME in the
// container's netns.
func checkInContainer(args *skel.CmdArgs, prev *current.Result, ips []*current.IPConfig) error {
	netns, err := openNetNS(args.Netns)
	if err != nil {
		return err
	}
	defer netns.Close()
	var addrs []*net.IPNet
	for _, ipc := range ips {
		a := ipc.Address
		addrs = append(addrs, &a)
	}
	var routes []link.Route
	for _, r := range prev.Routes {
		dst := r.Dst
		routes = append(routes, link.Route{Dst: &dst, GW: r.GW})
	}
	return netns.Do(func(ns.NetNS) error {
		if err := link.CheckContainer(args.IfName, addrs, routes); err != nil {
			return fmt.Errorf("check %s in %s: %w", args.IfName, args.Netns, err)
		}
		return nil
	})
}
