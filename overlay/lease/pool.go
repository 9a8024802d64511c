package lease

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
)

// ErrNoFreeSubnet matches (errors.Is) the error of Acquire on a full network.
var ErrNoFreeSubnet = errors.New("no free subnet")

// NoFreeSubnetError says which network is full.
type NoFreeSubnetError struct {
	Family  string // "IPv6" or "IPv4"
	Network *net.IPNet
	Total   *big.Int // subnets in the network
	Leased  *big.Int // subnets held by records
}

func (e *NoFreeSubnetError) Error() string {
	return fmt.Sprintf("no free %s subnet left in %s (%s subnets, %s leased)", e.Family, e.Network, e.Total, e.Leased)
}

func (e *NoFreeSubnetError) Is(target error) bool { return target == ErrNoFreeSubnet }

// held is the subnet index some record claims.
type held struct {
	idx       *big.Int
	key       string
	createRev int64
}

// pool is one family's view of the network for allocation.
type pool struct {
	family  string
	network *net.IPNet
	subLen  int
	v4      bool
	held    []held
	// lo..hi bound the indexes handed out (SubnetMin/SubnetMax); nil: all.
	lo, hi *big.Int
}

// logKey is the log key of a subnet of this pool.
func (p *pool) logKey() string {
	if p.v4 {
		return "subnetV4"
	}
	return "subnetV6"
}

// count is one past the last index that may be handed out.
func (p *pool) count() *big.Int {
	if p.hi != nil {
		return new(big.Int).Add(p.hi, big.NewInt(1))
	}
	return subnetCount(p.network, p.subLen)
}

// first is the first index that may be handed out.
func (p *pool) first() *big.Int {
	if p.lo != nil {
		return p.lo
	}
	return big.NewInt(0)
}

// inRange: i may be handed out.
func (p *pool) inRange(i *big.Int) bool {
	return i != nil && i.Cmp(p.count()) < 0 && i.Cmp(p.first()) >= 0
}

// add records that the record at key holds subnet s. A record holds at most
// one subnet: s must be exactly the configured length and inside the
// network (host bits are masked off, so a sloppy but honest record still
// holds its subnet). A wider or outside claim holds nothing: one hostile
// "::/0" record must not exhaust the network.
func (p *pool) add(s, key string, createRev int64) {
	if n := p.claim(s); n != nil {
		p.held = append(p.held, held{idx: p.index(n), key: key, createRev: createRev})
	}
}

// claim returns the one subnet of this pool that s names, or nil.
func (p *pool) claim(s string) *net.IPNet {
	if s == "" || len(s) > maxFieldLen {
		return nil
	}
	ip, n, err := net.ParseCIDR(s)
	if err != nil || (ip.To4() != nil) != p.v4 {
		return nil
	}
	ones, bits := n.Mask.Size()
	if _, nbits := p.network.Mask.Size(); bits != nbits || ones != p.subLen || !p.network.Contains(n.IP) {
		return nil
	}
	return n
}

func (p *pool) index(n *net.IPNet) *big.Int {
	return subnetIndex(p.network, p.subLen, n.IP)
}

// heldBy returns the key of a record (other than except, created before
// before, or any if before is 0) that holds subnet index i.
func (p *pool) heldBy(i *big.Int, except string, before int64) string {
	for _, h := range p.held {
		if h.key == except || (before != 0 && h.createRev >= before) {
			continue
		}
		if h.idx.Cmp(i) == 0 {
			return h.key
		}
	}
	return ""
}

// valid parses s as a subnet of this pool (nil if empty or invalid).
func (p *pool) valid(s string) (*net.IPNet, error) {
	if s == "" {
		return nil, nil
	}
	return parseSubnet(p.family+" subnet", s, p.network, p.subLen, p.v4)
}

// pick returns the hint if free, else the subnet with index prefer if
// free, else a free subnet chosen uniformly at random (lowest first when
// lowestFirst). except is our own key. Random, not lowest-first: a node that
// was down longer than its TTL asks for its old subnet back, and with
// lowest-first every newcomer would take exactly the subnet a rebooting node
// lost last.
func (p *pool) pick(hint *net.IPNet, prefer *big.Int, except string, lowestFirst bool) (*net.IPNet, error) {
	count := p.count()
	if hint != nil {
		if n, err := p.valid(hint.String()); err == nil && p.inRange(p.index(n)) && p.heldBy(p.index(n), except, 0) == "" {
			return n, nil
		}
	}
	if prefer != nil && p.inRange(prefer) && p.heldBy(prefer, except, 0) == "" {
		return nthSubnet(p.network, p.subLen, prefer), nil
	}
	start := p.first()
	var taken []*big.Int
	for _, t := range p.taken(except) {
		if p.inRange(t) {
			taken = append(taken, t)
		}
	}
	size := new(big.Int).Sub(count, start)
	free := new(big.Int).Sub(size, big.NewInt(int64(len(taken))))
	if free.Sign() <= 0 {
		return nil, &NoFreeSubnetError{Family: p.family, Network: p.network, Total: size, Leased: big.NewInt(int64(len(taken)))}
	}
	nth := big.NewInt(0)
	if !lowestFirst {
		var err error
		if nth, err = rand.Int(rand.Reader, free); err != nil {
			return nil, fmt.Errorf("choose a free subnet: %w", err)
		}
	}
	// Walk the taken indexes in order: the nth free index is start + nth
	// plus the number of taken indexes at or below it.
	i := new(big.Int).Add(start, nth)
	for _, t := range taken {
		if t.Cmp(i) > 0 {
			break
		}
		i = new(big.Int).Add(i, big.NewInt(1))
	}
	return nthSubnet(p.network, p.subLen, i), nil
}

// taken returns the distinct subnet indexes held by records other than
// except, in ascending order.
func (p *pool) taken(except string) []*big.Int {
	var out []*big.Int
	for _, h := range p.held {
		if h.key != except {
			out = append(out, h.idx)
		}
	}
	slices.SortFunc(out, func(a, b *big.Int) int { return a.Cmp(b) })
	return slices.CompactFunc(out, func(a, b *big.Int) bool { return a.Cmp(b) == 0 })
}

// pools reads every lease record and returns the per-family allocation
// state, every record by key and the revision read.
func (r *Registry) pools(ctx context.Context, cfg *Config) (p6, p4 *pool, all map[string]*keyValue, rev int64, err error) {
	kvs, rev, err := r.getLeases(ctx, 0)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	all = make(map[string]*keyValue, len(kvs))
	p6 = &pool{family: "IPv6", network: cfg.Networks.V6, subLen: cfg.SubnetLen.V6,
		lo: subnetIndex(cfg.Networks.V6, cfg.SubnetLen.V6, cfg.SubnetMin.V6), hi: subnetIndex(cfg.Networks.V6, cfg.SubnetLen.V6, cfg.SubnetMax.V6)}
	if cfg.DualStack() {
		p4 = &pool{family: "IPv4", network: cfg.Networks.V4, subLen: cfg.SubnetLen.V4, v4: true,
			lo: subnetIndex(cfg.Networks.V4, cfg.SubnetLen.V4, cfg.SubnetMin.V4), hi: subnetIndex(cfg.Networks.V4, cfg.SubnetLen.V4, cfg.SubnetMax.V4)}
	}
	for i := range kvs {
		kv := &kvs[i]
		all[kv.key] = kv
		// Any record that names a subnet holds it, valid or not: a record
		// skipped by peers today may be fixed by its owner tomorrow.
		var rec record
		if json.Unmarshal(kv.value, &rec) != nil {
			continue
		}
		p6.add(rec.IPv6Subnet, kv.key, kv.createRev)
		if p4 != nil {
			p4.add(rec.Subnet, kv.key, kv.createRev)
		}
	}
	return p6, p4, all, rev, nil
}
