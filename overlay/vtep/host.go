package vtep

import (
	"fmt"
	"net"
	"slices"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// host is one consistent look at the current network namespace: its links
// and IPv6 addresses, read once, plus the two route queries. Resolution works
// on it only, so the whole table is testable with a fabricated host.
type host struct {
	links []netlink.Link         // ascending ifindex
	addrs map[int][]netlink.Addr // IPv6 only, by ifindex, kernel order
	// defaultRoutes lists the IPv6 routes of the main table (filtered to
	// ::/0 by the caller).
	defaultRoutes func() ([]netlink.Route, error)
	// routeGet is `ip -6 route get`.
	routeGet func(dst net.IP) ([]netlink.Route, error)
}

// loadHost reads the current network namespace. Only IPv6 is listed: IPv4
// state of a dual-stack host never takes part in the choice.
func loadHost() (*host, error) {
	links, err := netlinksafe.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	addrs, err := netlinksafe.AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("list IPv6 addresses: %w", err)
	}
	h := &host{
		links: links,
		addrs: map[int][]netlink.Addr{},
		defaultRoutes: func() ([]netlink.Route, error) {
			rs, err := netlinksafe.RouteListFiltered(netlink.FAMILY_V6,
				&netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
			if err != nil {
				return nil, fmt.Errorf("list IPv6 routes: %w", err)
			}
			return rs, nil
		},
		routeGet: netlink.RouteGet,
	}
	for _, a := range addrs {
		h.addrs[a.LinkIndex] = append(h.addrs[a.LinkIndex], a)
	}
	h.sortLinks()
	return h, nil
}

func (h *host) sortLinks() {
	slices.SortFunc(h.links, func(a, b netlink.Link) int { return a.Attrs().Index - b.Attrs().Index })
}

func (h *host) linkByName(name string) netlink.Link {
	for _, l := range h.links {
		if l.Attrs().Name == name {
			return l
		}
	}
	return nil
}

func (h *host) linkByIndex(idx int) netlink.Link {
	for _, l := range h.links {
		if l.Attrs().Index == idx {
			return l
		}
	}
	return nil
}

// addrOn returns ip as configured on link idx.
func (h *host) addrOn(idx int, ip net.IP) (netlink.Addr, bool) {
	for _, a := range h.addrs[idx] {
		if a.IP.Equal(ip) {
			return a, true
		}
	}
	return netlink.Addr{}, false
}

// owners returns the links that have ip, ascending ifindex.
func (h *host) owners(ip net.IP) []netlink.Link {
	var out []netlink.Link
	for _, l := range h.links {
		if _, ok := h.addrOn(l.Attrs().Index, ip); ok {
			out = append(out, l)
		}
	}
	return out
}

func isLoopback(l netlink.Link) bool {
	return l.Attrs().Flags&net.FlagLoopback != 0
}
