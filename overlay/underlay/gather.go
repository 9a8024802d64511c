package underlay

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
)

// linkPrefixes are the addresses (each with its prefix) and the connected
// routes (main table, no gateway) of the link with index ifIndex, both
// families. Link-local ones are left out: a pod network never is.
func linkPrefixes(ifIndex int) ([]Prefix, error) {
	link, err := netlink.LinkByIndex(ifIndex)
	if err != nil {
		return nil, fmt.Errorf("underlay link %d: %w", ifIndex, err)
	}
	name := link.Attrs().Name
	addrs, err := netlinksafe.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", name, err)
	}
	var out []Prefix
	for _, a := range addrs {
		if a.IPNet == nil || a.IP.IsLinkLocalUnicast() {
			continue
		}
		// The prefix first: it names the whole on-link network in the error.
		n := &net.IPNet{IP: a.IP.Mask(a.Mask), Mask: a.Mask}
		out = append(out, Prefix{Net: n, What: "address prefix of " + name})
		out = append(out, Prefix{Net: hostPrefix(a.IP), What: "address of " + name})
	}
	routes, err := netlinksafe.RouteList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("routes of %s: %w", name, err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Gw != nil || len(r.MultiPath) > 0 || r.Dst.IP.IsLinkLocalUnicast() || r.Dst.IP.IsMulticast() {
			continue
		}
		out = append(out, Prefix{Net: r.Dst, What: "connected route on " + name})
	}
	return out, nil
}

// gather is every underlay prefix of this host: the underlay link's
// addresses and connected routes, the VTEP addresses, the etcd endpoints.
func gather(ctx context.Context, ifIndex int, vteps []net.IP, endpoints []string) ([]Prefix, error) {
	out, err := linkPrefixes(ifIndex)
	if err != nil {
		return nil, err
	}
	for _, ip := range vteps {
		if ip != nil {
			out = append(out, Prefix{Net: hostPrefix(ip), What: "VTEP"})
		}
	}
	return append(out, endpointPrefixes(ctx, endpoints, 2*time.Second)...), nil
}

// check gathers the underlay and checks the networks against it: nil, an
// *OverlapError naming both prefixes, or an error reading the kernel.
func check(ctx context.Context, networks []Network, ifIndex int, vteps []net.IP, endpoints []string) error {
	ps, err := gather(ctx, ifIndex, vteps, endpoints)
	if err != nil {
		return fmt.Errorf("check the pod network against the underlay: %w", err)
	}
	return checkOverlap(networks, ps)
}

// LocalAddrs answers "is this one of the host's addresses?" from a copy of
// the host's address list refreshed at most every maxAge, so that checking
// thousands of peers costs one netlink dump.
type LocalAddrs struct {
	maxAge time.Duration
	mu     sync.Mutex
	at     time.Time
	set    map[string]bool
}

// NewLocalAddrs returns a LocalAddrs whose copy is at most maxAge old.
func NewLocalAddrs(maxAge time.Duration) *LocalAddrs { return &LocalAddrs{maxAge: maxAge} }

// Has reports whether ip is an address of any link of this host's network
// namespace. If the kernel cannot be read it says false: the other checks
// still hold, and a peer is not dropped over a failed dump.
func (l *LocalAddrs) Has(ip net.IP) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.set == nil || time.Since(l.at) > l.maxAge {
		addrs, err := netlinksafe.AddrList(nil, netlink.FAMILY_ALL)
		if err != nil {
			return l.set[string(ip.To16())]
		}
		set := make(map[string]bool, len(addrs))
		for _, a := range addrs {
			set[string(a.IP.To16())] = true
		}
		l.set, l.at = set, time.Now()
	}
	return l.set[string(ip.To16())]
}
