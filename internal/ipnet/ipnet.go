// Package ipnet is the one home of the subnet comparisons the daemon, the
// lease registry and the subnet file share, so "the same subnet" and "a
// subnet of the network" mean one thing everywhere, and of their one
// per-family pair (PerFamily, Subnets).
package ipnet

import "net"

// Same reports whether a and b are the same prefix; two nils are the same,
// a nil and a non-nil are not.
func Same(a, b *net.IPNet) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.String() == b.String()
}

// Contains reports whether inner lies inside outer (same family, prefix at
// least as long). Both must be non-nil.
func Contains(outer, inner *net.IPNet) bool {
	oo, ob := outer.Mask.Size()
	io, ib := inner.Mask.Size()
	return ob == ib && io >= oo && outer.Contains(inner.IP)
}

// Fits reports whether s is a subnet of exactly length bits inside network;
// false when either is nil.
func Fits(network *net.IPNet, bits int, s *net.IPNet) bool {
	if network == nil || s == nil {
		return false
	}
	ones, _ := s.Mask.Size()
	return ones == bits && Contains(network, s)
}

// Overlaps reports whether a and b share an address. The family is the
// mask's (::ffff:0:0/96 has an IPv4-looking IP; a 4-byte IPv4 net never
// overlaps a 16-byte IPv6 one). Both must be non-nil.
func Overlaps(a, b *net.IPNet) bool {
	if len(a.Mask) != len(b.Mask) {
		return false
	}
	return a.Contains(b.IP) || b.Contains(a.IP)
}

// String is n in CIDR notation, or "" for nil (a family the network does
// not use): for logs and tables, where "<nil>" would read as a value.
func String(n *net.IPNet) string {
	if n == nil {
		return ""
	}
	return n.String()
}

// IPString is ip's text, or "" for nil.
func IPString(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}
