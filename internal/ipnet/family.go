package ipnet

import (
	"iter"
	"net"
)

// PerFamily holds one value per address family. V6 is always used (vxlan6
// is IPv6-first); V4 is used only in dual-stack networks and is the zero
// value otherwise. It is the one spelling of "the IPv6 and IPv4 ..." that the
// lease registry, the daemon and the subnet file share.
type PerFamily[T any] struct {
	V6 T
	V4 T
}

// Subnets is a pair of prefixes, one per family: a node's pod subnets or the
// cluster's pod networks; V4 is nil unless dual-stack. A defined type rather
// than an alias because Go allows no methods on an instantiated alias.
type Subnets PerFamily[*net.IPNet]

// Same reports whether both families hold the same prefixes (see Same: two
// nils are the same).
func (s Subnets) Same(o Subnets) bool {
	return Same(s.V6, o.V6) && Same(s.V4, o.V4)
}

// All yields the set prefixes, V6 first.
func (s Subnets) All() iter.Seq[*net.IPNet] {
	return func(yield func(*net.IPNet) bool) {
		for _, n := range [...]*net.IPNet{s.V6, s.V4} {
			if n != nil && !yield(n) {
				return
			}
		}
	}
}
