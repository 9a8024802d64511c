package main

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/vxlan6/vxlan6/datapath/fastpath"
	"github.com/vxlan6/vxlan6/ipam"
	"github.com/vxlan6/vxlan6/plugins/vxlan6/link"
)

// The plugin's part of the eBPF fast path (datapath/fastpath): ADD records
// the pod in the pinned pod map, DEL removes it. The plugin only writes when
// vxlan6d runs the fast path on this host (the maps exist), never loads or
// attaches programs itself (that keeps ADD as fast as before), and records
// new pods as pending: vxlan6d puts them on the fast path once the rest of
// the chain (bandwidth, portmap) has had its say. Every failure here only
// costs speed, so it is logged and ADD/DEL go on.

func fastPathAdd(args *skel.CmdArgs, conf *NetConf, hostVeth string, br netlink.Link, res *current.Result) {
	if strings.EqualFold(conf.FastPath, "off") {
		return
	}
	if err := addToFastPath(args, hostVeth, br, res); err != nil {
		slog.Warn("fast path: pod stays on the bridge path", "container", args.ContainerID, "err", err)
	}
}

func addToFastPath(args *skel.CmdArgs, hostVeth string, br netlink.Link, res *current.Result) error {
	m, err := fastpath.OpenPinnedMaps()
	if err != nil || m == nil {
		return err
	}
	defer m.Close()
	hl, err := netlink.LinkByName(hostVeth)
	if err != nil {
		return fmt.Errorf("look up %s: %w", hostVeth, err)
	}
	var contMAC net.HardwareAddr
	for _, ifc := range res.Interfaces {
		if ifc.Sandbox != "" {
			contMAC, _ = net.ParseMAC(ifc.Mac)
		}
	}
	if len(contMAC) != 6 || len(br.Attrs().HardwareAddr) != 6 {
		return fmt.Errorf("MACs of %s (%q) or bridge %s unknown", args.IfName, contMAC, br.Attrs().Name)
	}
	p := fastpath.Pod{
		Ifindex: uint32(hl.Attrs().Index),
		Flags:   fastpath.FlagSlow | fastpath.FlagPending,
		Created: uint32(time.Now().Unix()),
	}
	copy(p.MAC[:], contMAC)
	copy(p.GwMAC[:], br.Attrs().HardwareAddr)
	for _, ipc := range res.IPs {
		if ipc.Address.IP.To4() == nil {
			if err := m.PutPod(ipc.Address.IP, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// fastPathDel forgets the attachment's addresses and unpins its program
// before the veth goes (the kernel detaches a deleted veth's program, but
// not the pin). It needs no netns, like the rest of DEL.
func fastPathDel(args *skel.CmdArgs, store *ipam.Store) {
	var ips []net.IP
	if alloc, err := store.Get(args.ContainerID, args.IfName); err == nil && alloc != nil {
		ips = alloc.IPs
	}
	forgetFastPath(args.ContainerID, args.IfName, ips)
}

// forgetFastPath removes an attachment's pod entries and its program pin
// (DEL, and a leftover reclaimed before its address is handed out again:
// no redirect may point at the old pod's veth). Without the daemon's maps
// there is nothing to forget.
func forgetFastPath(containerID, ifName string, ips []net.IP) {
	m, err := fastpath.OpenPinnedMaps()
	if err != nil || m == nil {
		if err != nil {
			slog.Warn("fast path: open maps", "err", err)
		}
		return
	}
	defer m.Close()
	for _, ip := range ips {
		if ip.To4() == nil {
			if err := m.DeletePod(ip); err != nil {
				slog.Warn("fast path: forget pod", "pod", ip.String(), "err", err)
			}
		}
	}
	if err := m.Detach(link.HostVethName(containerID, ifName)); err != nil {
		slog.Warn("fast path: detach", "container", containerID, "err", err)
	}
}
