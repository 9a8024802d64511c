// Package underlay knows what the host's own network (the underlay the
// tunnel runs over) is made of, so that the overlay never claims it: the
// prefixes a pod network must not overlap (issue 8 §2), and the host's own
// addresses, which no peer may use as its VTEP (§3).
//
// The checks are pure functions over Prefix lists; gather reads them from
// the kernel (netlink) and the etcd endpoints.
package underlay

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/vxlan6/vxlan6/internal/ipnet"
)

// Prefix is one part of the underlay and where it comes from.
type Prefix struct {
	Net  *net.IPNet
	What string // e.g. "address of eth0", "route on eth0", "VTEP", "etcd endpoint https://[2001:db8::9]:2379"
}

func (p Prefix) String() string { return fmt.Sprintf("%s %s", p.What, p.Net) }

// OverlapError is a pod network overlapping a part of the underlay.
type OverlapError struct {
	Field    string // IPv6Network or Network
	Network  *net.IPNet
	Underlay Prefix
}

func (e *OverlapError) Error() string {
	return fmt.Sprintf("pod network %s %s overlaps the underlay: %s (routes into the tunnel would capture host traffic; choose a network apart from the underlay)",
		e.Field, e.Network, e.Underlay)
}

// Network is a pod network named by its config field.
type Network struct {
	Field string
	Net   *net.IPNet
}

// checkOverlap returns an *OverlapError for the first network that overlaps
// one of the underlay prefixes, else nil. Prefixes of length 0 (a default
// route) are ignored: they overlap everything by definition.
func checkOverlap(networks []Network, underlay []Prefix) error {
	for _, n := range networks {
		if n.Net == nil {
			continue
		}
		for _, p := range underlay {
			if p.Net == nil {
				continue
			}
			if ones, _ := p.Net.Mask.Size(); ones == 0 {
				continue
			}
			if ipnet.Overlaps(n.Net, p.Net) {
				return &OverlapError{Field: n.Field, Network: n.Net, Underlay: p}
			}
		}
	}
	return nil
}

// hostPrefix is ip as a /128 (or /32) prefix.
func hostPrefix(ip net.IP) *net.IPNet {
	if ip4 := ip.To4(); ip4 != nil {
		return &net.IPNet{IP: ip4, Mask: net.CIDRMask(32, 32)}
	}
	return &net.IPNet{IP: ip.To16(), Mask: net.CIDRMask(128, 128)}
}

// endpointPrefixes are the addresses of the etcd endpoints (host names
// resolved, bounded by timeout); unix sockets have none. An endpoint that
// cannot be resolved is skipped: the etcd client reports it better.
func endpointPrefixes(ctx context.Context, endpoints []string, timeout time.Duration) []Prefix {
	var out []Prefix
	for _, ep := range endpoints {
		host := endpointHost(ep)
		if host == "" {
			continue
		}
		if ip := net.ParseIP(host); ip != nil {
			out = append(out, Prefix{Net: hostPrefix(ip), What: "etcd endpoint " + ep})
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		ips, err := net.DefaultResolver.LookupIPAddr(rctx, host)
		cancel()
		if err != nil {
			continue
		}
		for _, a := range ips {
			out = append(out, Prefix{Net: hostPrefix(a.IP), What: "etcd endpoint " + ep})
		}
	}
	return out
}

// endpointHost is the host part of an etcd endpoint ("" for unix sockets).
func endpointHost(ep string) string {
	if strings.HasPrefix(ep, "unix:") || strings.HasPrefix(ep, "unixs:") {
		return ""
	}
	if !strings.Contains(ep, "://") {
		ep = "http://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(strings.TrimPrefix(u.Hostname(), "["), "]")
}
