package main

import (
	"errors"
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxlan6/vxlan6/ipam"
	"github.com/vxlan6/vxlan6/plugins/vxlan6/link"
	"github.com/vxlan6/vxlan6/plugins/vxlan6/masq"
)

// openStore opens the IPAM store with this boot's ID (so the allocations of
// an earlier boot are let go) and the judge of leftovers below. code is the
// CNI error code of a failure.
func openStore(conf *NetConf, code uint) (*ipam.Store, error) {
	opts := ipam.Options{Reclaimer: leftovers{conf: conf}}
	if id, err := ipam.ReadBootID(conf.BootIDFile); err != nil {
		slog.Warn("no boot ID: allocations of an earlier boot are not released", "err", err)
	} else {
		opts.BootID = id
	}
	store, err := ipam.OpenWithOptions(conf.DataDir, opts)
	if err != nil {
		return nil, cniErr(code, "open IPAM store %s: %v", conf.DataDir, err)
	}
	return store, nil
}

// ownerOf is what the store records about the container at ADD: its netns
// path and identity (device and inode: a /proc/PID/ns/net path can come back
// with a reused PID, a /run/netns name with a new netns), its host veth, and
// whether it gets masquerade rules.
func ownerOf(args *skel.CmdArgs, conf *NetConf, netns ns.NetNS) ipam.Owner {
	o := ipam.Owner{Netns: args.Netns, HostVeth: link.HostVethName(args.ContainerID, args.IfName), NoMasq: !conf.IPMasq}
	var st unix.Stat_t
	if err := unix.Fstat(int(netns.Fd()), &st); err == nil {
		o.NetnsDev, o.NetnsIno = uint64(st.Dev), st.Ino
	}
	return o
}

// leftovers judges, for the store's last-resort reclaim, whether an
// allocation of this boot belongs to a container that is gone, and removes
// the plugin's own state for it first.
type leftovers struct{ conf *NetConf }

// Gone: both the netns and the host veth are gone. Anything short of proof
// (a stat error other than "no such file") counts as alive.
func (lo leftovers) Gone(l ipam.Leftover) bool {
	return netnsGone(l.Owner) && vethGone(l)
}

func netnsGone(o ipam.Owner) bool {
	var st unix.Stat_t
	err := unix.Stat(o.Netns, &st)
	if err == unix.ENOENT {
		return true
	}
	if err != nil {
		return false
	}
	// Another netns (or a plain file) is at the path now.
	return uint64(st.Dev) != o.NetnsDev || st.Ino != o.NetnsIno
}

func vethGone(l ipam.Leftover) bool {
	name := l.Owner.HostVeth
	if name == "" {
		name = link.HostVethName(l.ContainerID, l.IfName)
	}
	_, err := netlinksafe.LinkByName(name)
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// Cleanup removes vxlan6's own state for the leftover before its address
// is handed out again: its fast-path entries and pin, and its masquerade
// rules unless its ADD set up none (NoMasq), whether or not ipMasq is on
// now. (Looking for rules that were never made costs two iptables execs.)
func (lo leftovers) Cleanup(l ipam.Leftover) error {
	forgetFastPath(l.ContainerID, l.IfName, l.IPs)
	if l.Owner.NoMasq {
		return nil
	}
	return masq.Teardown(lo.conf.Name, l.ContainerID, l.IfName)
}
