// Choosing addresses: subnet validation, requested addresses, and the
// per-subnet cursor that keeps allocation O(1) on a /64.

package ipam

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
)

// pick finds a free address in pl, starting after the subnet's cursor so that
// addresses are not reused right after release (stale neighbour/conntrack
// entries) and so that a /64 is never scanned: the first few candidates are
// probed (one readlink each); only if they are all taken are the
// allocations in the subnet counted, which is O(allocations), never
// O(subnet size).
func (s *Store) pick(pl pool) (netip.Addr, error) {
	cur := s.readCursor(pl)
	a := cur
	probes := min(pl.capacity, probeAllocate)
	for range probes {
		a = pl.next(a)
		_, exists, err := s.owner(a)
		if err != nil {
			return netip.Addr{}, err
		}
		if !exists {
			return a, nil
		}
	}
	used, err := s.usedIn(pl)
	if err != nil {
		return netip.Addr{}, err
	}
	if uint64(len(used)) >= pl.capacity {
		return netip.Addr{}, fmt.Errorf("ipam: subnet %s: all %d assignable addresses are allocated: %w", pl.prefix, pl.capacity, ErrExhausted)
	}
	// Fewer than capacity are used, so within len(used)+1 steps one is free.
	a = cur
	for range len(used) + 1 {
		a = pl.next(a)
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("ipam: subnet %s: no free address found among %d allocations: %w", pl.prefix, len(used), ErrExhausted)
}

// usedIn returns the reserved addresses inside pl.
func (s *Store) usedIn(pl pool) (map[netip.Addr]bool, error) {
	names, err := readDirNames(s.ips)
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	used := make(map[netip.Addr]bool)
	for _, n := range names {
		a, err := netip.ParseAddr(n)
		if err == nil && pl.assignable(a) {
			used[a] = true
		}
	}
	return used, nil
}

func (s *Store) cursorPath(pl pool) string {
	return filepath.Join(s.cursors, strings.ReplaceAll(pl.prefix.String(), "/", "_"))
}

// readCursor returns the last address handed out in pl; a missing, torn or
// stale cursor just restarts at the beginning of the pool.
func (s *Store) readCursor(pl pool) netip.Addr {
	b, err := readSmallFile(s.cursorPath(pl))
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(strings.TrimSpace(string(b)))
	if err != nil || !pl.assignable(a) {
		return netip.Addr{}
	}
	return a
}

// writeCursor overwrites the cursor in place with a fixed-width record:
// no rename and no fsync, since the cursor is only a hint and a torn one
// reads as "start over". It never truncates: on ext4 (auto_da_alloc),
// truncating and rewriting a file forces its writeback on close, which was
// measured here at over 1 ms, more than all the rest of an Allocate.
func (s *Store) writeCursor(pl pool, a netip.Addr) {
	_ = writeFileAt(s.cursorPath(pl), []byte(fmt.Sprintf("%-47s\n", a)), 0)
}

func poolsOf(subnets []*net.IPNet) ([]pool, error) {
	if len(subnets) == 0 {
		return nil, errors.New("ipam: no subnet to allocate from")
	}
	pools := make([]pool, 0, len(subnets))
	for _, n := range subnets {
		pl, err := newPool(n)
		if err != nil {
			return nil, fmt.Errorf("ipam: %w", err)
		}
		if pl.empty() {
			return nil, fmt.Errorf("ipam: subnet %s has no assignable address (network, gateway and broadcast are reserved): %w", pl.prefix, ErrExhausted)
		}
		for _, o := range pools {
			if o.prefix.Overlaps(pl.prefix) {
				return nil, fmt.Errorf("ipam: subnets %s and %s overlap", o.prefix, pl.prefix)
			}
		}
		pools = append(pools, pl)
	}
	return pools, nil
}

// matchRequested assigns each requested address to the subnet containing it.
func matchRequested(pools []pool, requested []net.IP) ([]netip.Addr, error) {
	want := make([]netip.Addr, len(pools))
	for _, ip := range requested {
		a, ok := addrOf(ip)
		if !ok {
			return nil, fmt.Errorf("ipam: invalid requested address %q", ip)
		}
		i := slices.IndexFunc(pools, func(pl pool) bool { return pl.prefix.Contains(a) })
		if i < 0 {
			return nil, fmt.Errorf("ipam: requested address %s is outside the node subnets %s: %w", a, prefixList(pools), ErrOutsideSubnet)
		}
		pl := pools[i]
		if !pl.assignable(a) {
			return nil, fmt.Errorf("ipam: requested address %s is %s of subnet %s: %w", a, pl.why(a), pl.prefix, ErrOutsideSubnet)
		}
		if want[i].IsValid() && want[i] != a {
			return nil, fmt.Errorf("ipam: requested addresses %s and %s are both in subnet %s; at most one per subnet", want[i], a, pl.prefix)
		}
		want[i] = a
	}
	return want, nil
}

func prefixList(pools []pool) string {
	var parts []string
	for _, pl := range pools {
		parts = append(parts, pl.prefix.String())
	}
	return strings.Join(parts, ", ")
}
