// Package forwarding turns on IP forwarding for vxlan6 (daemon and plugin
// alike) without costing a host configured by router advertisements its
// default route.
//
// Every write of 1 to net.ipv6.conf.all.forwarding makes the kernel delete
// the RA-learned default routes of every link whose own accept_ra is not 2,
// and ignore later RAs there; the "all" and "default" values protect nothing.
// So before forwarding is written (and also when it is on already, which
// lets a link that lost its route learn it again from the next RA) KeepRA
// raises accept_ra from 1 to 2 on the links that take RAs now.
//
// Hosts where systemd-networkd or NetworkManager handle RAs in userspace
// have accept_ra 0 in the kernel: nothing here touches them.
package forwarding

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	fwd6 = "net/ipv6/conf/all/forwarding"
	fwd4 = "net/ipv4/ip_forward"
)

// Underlay names the host's uplink, which is always considered (even when it
// is a bridge, or has not learned anything yet because it was just created
// and forwarding was on already): by link index, or by one of its addresses
// (the plugin knows only the VTEP from the subnet file). Zero values name
// nothing.
type Underlay struct {
	Index int
	Addr  net.IP
}

// containerFacing link types never get accept_ra raised: containers sit
// behind them, and a container must not be able to become the host's router.
var containerFacing = map[string]bool{"bridge": true, "veth": true, "tun": true, "tuntap": true, "vxlan": true, "netkit": true}

// Enable raises accept_ra where needed (KeepRA), then turns on IPv6
// forwarding and, for dual-stack networks only, IPv4 forwarding. Each
// sysctl is written only when it is not 1 already: a write to
// all/forwarding walks every interface in the kernel.
// It returns the links whose accept_ra it raised.
func Enable(v4 bool, u Underlay) ([]string, error) {
	changed, err := KeepRA(u)
	if err != nil {
		return changed, err
	}
	if err := ensureOne(fwd6); err != nil {
		return changed, err
	}
	if v4 {
		return changed, ensureOne(fwd4)
	}
	return changed, nil
}

func ensureOne(key string) error {
	if cur, err := sysctl.Sysctl(key); err == nil && strings.TrimSpace(cur) == "1" {
		return nil
	}
	if _, err := sysctl.Sysctl(key, "1"); err != nil {
		return fmt.Errorf("enable forwarding (sysctl %s=1): %w", key, err)
	}
	return nil
}

// KeepRA sets accept_ra 2 on every link that takes router advertisements
// now: accept_ra 1 and an RA-learned route or a SLAAC (dynamic global)
// address, and on the underlay whenever its accept_ra is 1. Container-facing
// links (bridges, veths, tun, vxlan) are skipped unless they are the
// underlay. A value other than 1 (0: RAs off or handled in userspace; 2
// already) is the operator's and is never changed. It returns the names of
// the links it changed.
func KeepRA(u Underlay) ([]string, error) {
	cands, err := candidates(u)
	if err != nil {
		return nil, err
	}
	var changed []string
	for idx, isUnderlay := range cands {
		l, err := netlink.LinkByIndex(idx) // a get, not a dump: no EINTR retry needed
		if err != nil {
			continue // gone meanwhile
		}
		name := l.Attrs().Name
		if !isUnderlay && containerFacing[l.Type()] {
			continue
		}
		key := "net/ipv6/conf/" + name + "/accept_ra"
		cur, err := sysctl.Sysctl(key)
		if err != nil || strings.TrimSpace(cur) != "1" {
			continue // IPv6 off on it, or not ours to change
		}
		if _, err := sysctl.Sysctl(key, "2"); err != nil {
			return changed, fmt.Errorf("keep accepting router advertisements on %s (sysctl %s=2): %w", name, key, err)
		}
		changed = append(changed, name)
	}
	return changed, nil
}

// candidates maps link index -> is the underlay, for the underlay and every
// link with an RA-learned route or a dynamic global IPv6 address: one route
// dump and one address dump, so the plugin can afford it on every ADD.
func candidates(u Underlay) (map[int]bool, error) {
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		return nil, nil // no IPv6 in this kernel: nothing learns RAs
	}
	c := map[int]bool{}
	if u.Index > 0 {
		c[u.Index] = true
	}
	routes, err := netlinksafe.RouteListFiltered(netlink.FAMILY_V6,
		&netlink.Route{Protocol: unix.RTPROT_RA}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("list RA-learned IPv6 routes: %w", err)
	}
	for _, r := range routes {
		if r.LinkIndex > 0 && !c[r.LinkIndex] {
			c[r.LinkIndex] = false
		}
	}
	addrs, err := netlinksafe.AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("list IPv6 addresses: %w", err)
	}
	for _, a := range addrs {
		if u.Addr != nil && a.IP.Equal(u.Addr) {
			c[a.LinkIndex] = true
			continue
		}
		if a.Scope == unix.RT_SCOPE_UNIVERSE && a.Flags&unix.IFA_F_PERMANENT == 0 && !c[a.LinkIndex] {
			c[a.LinkIndex] = false
		}
	}
	return c, nil
}
