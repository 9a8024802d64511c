package admin

import (
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// kernelPeers is what the kernel has programmed on the VXLAN device: fdb
// (MAC -> VTEP), permanent neighbours (gateway -> MAC) and routes (subnet
// -> gateway), keyed for comparison with the leases.
type kernelPeers struct {
	dev    netlink.Link
	fdb    map[string][]string // MAC -> VTEPs
	neigh  map[string]string   // IP -> MAC
	routes map[string]string   // dst CIDR -> gateway
}

// retryDump repeats a netlink dump the kernel interrupted (the table
// changed meanwhile), a few times.
func retryDump(f func() error) error {
	var err error
	for range 5 {
		if err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return err
}

func readKernel(device string) (*kernelPeers, error) {
	link, err := netlinksafe.LinkByName(device)
	if err != nil {
		return nil, fmt.Errorf("vxlan device %s: %w", device, err)
	}
	k := &kernelPeers{dev: link, fdb: map[string][]string{}, neigh: map[string]string{}, routes: map[string]string{}}
	idx := link.Attrs().Index
	var fdb []netlink.Neigh
	if err := retryDump(func() (err error) { fdb, err = netlink.NeighList(idx, unix.AF_BRIDGE); return err }); err != nil {
		return nil, fmt.Errorf("list fdb of %s: %w", device, err)
	}
	for _, n := range fdb {
		if n.IP != nil && !n.IP.IsUnspecified() {
			k.fdb[n.HardwareAddr.String()] = append(k.fdb[n.HardwareAddr.String()], n.IP.String())
		}
	}
	for _, fam := range []int{unix.AF_INET6, unix.AF_INET} {
		var ns []netlink.Neigh
		if err := retryDump(func() (err error) { ns, err = netlink.NeighList(idx, fam); return err }); err != nil {
			return nil, fmt.Errorf("list neighbours of %s: %w", device, err)
		}
		for _, n := range ns {
			if n.State&netlink.NUD_PERMANENT != 0 && n.HardwareAddr != nil {
				k.neigh[n.IP.String()] = n.HardwareAddr.String()
			}
		}
		rs, err := netlinksafe.RouteListFiltered(fam, &netlink.Route{LinkIndex: idx}, netlink.RT_FILTER_OIF)
		if err != nil {
			return nil, fmt.Errorf("list routes via %s: %w", device, err)
		}
		for _, r := range rs {
			if r.Dst != nil && r.Gw != nil {
				k.routes[r.Dst.String()] = r.Gw.String()
			}
		}
	}
	return k, nil
}

// peerCheck compares one lease with the kernel: "" when fine, else what is
// wrong, per table.
type peerCheck struct {
	FDB, Neigh, Route string
}

func (k *kernelPeers) check(vtep net.IP, mac net.HardwareAddr, subnets ...*net.IPNet) peerCheck {
	var pc peerCheck
	dsts := k.fdb[mac.String()]
	switch {
	case len(dsts) == 0:
		pc.FDB = "missing"
	case !contains(dsts, vtep.String()):
		pc.FDB = "to " + dsts[0]
	}
	for _, s := range subnets {
		if s == nil {
			continue
		}
		gw := s.IP.String()
		if m, ok := k.neigh[gw]; !ok {
			pc.Neigh = join([]string{pc.Neigh, gw + " missing"})
		} else if m != mac.String() {
			pc.Neigh = join([]string{pc.Neigh, gw + " is " + m})
		}
		if g, ok := k.routes[s.String()]; !ok {
			pc.Route = join([]string{pc.Route, s.String() + " missing"})
		} else if g != gw {
			pc.Route = join([]string{pc.Route, s.String() + " via " + g})
		}
	}
	return pc
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
