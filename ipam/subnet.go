package ipam

import (
	"fmt"
	"math"
	"net"
	"net/netip"
)

// pool is the assignable range of one subnet: everything but the network
// address, the gateway (network+1) and, for IPv4, the broadcast address.
type pool struct {
	prefix      netip.Prefix
	first, last netip.Addr // inclusive; invalid when the pool is empty
	capacity    uint64     // saturates at MaxUint64 (a /64 is "infinite")
}

func prefixOf(n *net.IPNet) (netip.Prefix, error) {
	if n == nil {
		return netip.Prefix{}, fmt.Errorf("nil subnet")
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("subnet %s: invalid address", n)
	}
	a = a.Unmap()
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, fmt.Errorf("subnet %s: non-canonical mask", n)
	}
	if bits == 128 && a.Is4() && ones >= 96 {
		ones -= 96 // IPv4 address with a 16-byte mask
	} else if bits != a.BitLen() {
		return netip.Prefix{}, fmt.Errorf("subnet %s: mask length does not match the address family", n)
	}
	return netip.PrefixFrom(a, ones).Masked(), nil
}

func newPool(n *net.IPNet) (pool, error) {
	p, err := prefixOf(n)
	if err != nil {
		return pool{}, err
	}
	pl := pool{prefix: p}
	hostBits := p.Addr().BitLen() - p.Bits()
	reserved := uint64(2)
	if p.Addr().Is4() {
		reserved = 3
	}
	switch {
	case hostBits >= 64:
		pl.capacity = math.MaxUint64
	case uint64(1)<<hostBits > reserved:
		pl.capacity = uint64(1)<<hostBits - reserved
	default:
		return pl, nil // nothing assignable; first/last stay invalid
	}
	pl.first = p.Addr().Next().Next()
	pl.last = lastAddr(p)
	if p.Addr().Is4() {
		pl.last = pl.last.Prev()
	}
	return pl, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := range b {
		bitsBefore := i * 8
		switch {
		case bitsBefore >= p.Bits():
			b[i] = 0xff
		case bitsBefore+8 > p.Bits():
			b[i] |= 0xff >> (p.Bits() - bitsBefore)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func (pl pool) empty() bool { return pl.capacity == 0 }

// assignable reports whether a may be handed out from this pool.
func (pl pool) assignable(a netip.Addr) bool {
	return !pl.empty() && pl.prefix.Contains(a) && a.Compare(pl.first) >= 0 && a.Compare(pl.last) <= 0
}

// next is the assignable address after a, wrapping from last to first. Any a
// outside the range (an unset or stale cursor) restarts at first.
func (pl pool) next(a netip.Addr) netip.Addr {
	if !pl.assignable(a) || a == pl.last {
		return pl.first
	}
	return a.Next()
}

// why explains why a in the prefix is not assignable.
func (pl pool) why(a netip.Addr) string {
	switch {
	case a == pl.prefix.Addr():
		return "the network address"
	case a == pl.prefix.Addr().Next():
		return "the gateway address"
	case a.Is4() && a == lastAddr(pl.prefix):
		return "the broadcast address"
	}
	return "not assignable"
}

func toNetIP(a netip.Addr) net.IP {
	if !a.IsValid() {
		return nil
	}
	return net.IP(a.AsSlice())
}

func addrOf(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}
