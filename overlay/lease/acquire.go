package lease

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/backoff"
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

// maxAcquireAttempts bounds the retries after lost races; every round some
// contender wins, so this only ends pathological contention.
const maxAcquireAttempts = 100

// Acquire gets this node's lease: an existing one for attrs.VTEP (also a
// reservation) is reused with the same subnet(s); otherwise the hint, else a
// free subnet, is taken in one etcd transaction, retried on a lost race.
// Errors say why (e.g. "no free IPv6 subnet left in fd10:244::/62 (4
// subnets, 4 leased)"; errors.Is(err, ErrNoFreeSubnet)).
//
// A reused lease is bound to a fresh etcd lease with ttl (the old one is
// revoked); a reservation (a record without etcd lease) stays without TTL
// and only gets this node's MAC, node name and public IPv4 written into it.
// A subnet is free when no record at all holds it, whatever its key and
// validity. ttl <= 0 means DefaultTTL.
func (r *Registry) Acquire(ctx context.Context, cfg *Config, attrs Attrs, ttl time.Duration) (*Lease, error) {
	if err := validateAttrs(attrs); err != nil {
		return nil, fmt.Errorf("acquire lease: %w", err)
	}
	a := acquirer{r: r, cfg: cfg, attrs: attrs, key: r.LeaseKey(attrs.VTEP), ttl: ttl}
	defer a.revokeUnused()
	bo := backoff.New(10*time.Millisecond, time.Second)
	for attempt := 1; ; attempt++ {
		l, err := a.try(ctx)
		if err != nil || l != nil {
			if err != nil {
				err = fmt.Errorf("acquire lease for VTEP %s: %w", attrs.VTEP, err)
			}
			return l, err
		}
		if attempt >= maxAcquireAttempts {
			return nil, fmt.Errorf("acquire lease for VTEP %s: lost the race for a subnet %d times in a row", attrs.VTEP, attempt)
		}
		if err := bo.Sleep(ctx); err != nil {
			return nil, fmt.Errorf("acquire lease for VTEP %s: %w", attrs.VTEP, err)
		}
	}
}

func validateAttrs(a Attrs) error {
	if err := validateVTEP(a.VTEP); err != nil {
		return err
	}
	if err := validateMAC(a.VtepMAC); err != nil {
		return err
	}
	if a.PublicIPv4 != nil && a.PublicIPv4.To4() == nil {
		return fmt.Errorf("PublicIPv4 %s is not IPv4", a.PublicIPv4)
	}
	return nil
}

func ttlSeconds(ttl time.Duration) int64 {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return max(1, int64(math.Ceil(ttl.Seconds())))
}

// held is a range of subnet indexes some record claims.
type held struct {
	lo, hi    *big.Int
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
		i := p.index(n)
		p.held = append(p.held, held{lo: i, hi: i, key: key, createRev: createRev})
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
	lo, _, _ := subnetIndex(p.network, p.subLen, n)
	return lo
}

// heldBy returns the key of a record (other than except, created before
// before, or any if before is 0) that holds subnet index i.
func (p *pool) heldBy(i *big.Int, except string, before int64) string {
	for _, h := range p.held {
		if h.key == except || (before != 0 && h.createRev >= before) {
			continue
		}
		if h.lo.Cmp(i) <= 0 && i.Cmp(h.hi) <= 0 {
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
			out = append(out, h.lo)
		}
	}
	slices.SortFunc(out, func(a, b *big.Int) int { return a.Cmp(b) })
	return slices.CompactFunc(out, func(a, b *big.Int) bool { return a.Cmp(b) == 0 })
}

// acquirer is one Acquire (or Move) call; it keeps the etcd lease it granted across
// retries.
type acquirer struct {
	r       *Registry
	cfg     *Config
	attrs   Attrs
	key     string
	ttl     time.Duration
	granted clientv3.LeaseID // granted by us and not (yet) attached
}

func (a *acquirer) revokeUnused() {
	if a.granted != 0 {
		a.r.revokeAsync(a.granted)
		a.granted = 0
	}
}

// leaseOpts returns the put options of a record: none for a reservation,
// else the etcd lease granted for this call (kept across retries).
func (a *acquirer) leaseOpts(ctx context.Context, reserved bool) ([]clientv3.OpOption, error) {
	if reserved {
		return nil, nil
	}
	if a.granted == 0 {
		g, err := a.r.cli.Grant(ctx, ttlSeconds(a.ttl))
		if err != nil {
			return nil, fmt.Errorf("grant etcd lease: %w", err)
		}
		a.granted = g.ID
	}
	return []clientv3.OpOption{clientv3.WithLease(a.granted)}, nil
}

// commit runs ops if cmps hold. On success l gets the revision written and the
// granted etcd lease (which is then no longer ours to revoke); false means a
// lost race or a grant that expired while we retried (a new one is taken on
// the next attempt): retry.
func (a *acquirer) commit(ctx context.Context, l *Lease, cmps []clientv3.Cmp, ops ...clientv3.Op) (bool, error) {
	resp, err := a.r.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		a.granted = 0
		return false, nil
	}
	if err != nil || !resp.Succeeded {
		return false, err
	}
	l.ModRevision = resp.Header.Revision
	l.EtcdLease = a.granted
	a.granted = 0
	return true, nil
}

// revokeReplaced revokes old, the etcd lease of the record l replaced, unless
// l still uses it.
func (a *acquirer) revokeReplaced(l *Lease, old clientv3.LeaseID) {
	if old != 0 && old != l.EtcdLease {
		a.r.revokeAsync(old)
	}
}

// revokeAsync revokes an etcd lease we no longer use; failure only delays
// its expiry, so it is best effort and never blocks the caller.
func (r *Registry) revokeAsync(id clientv3.LeaseID) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := r.cli.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			r.log.Debug("revoke unused etcd lease", "lease", fmt.Sprintf("%x", int64(id)), "err", err)
		}
	}()
}

// pools reads every lease record and returns the per-family allocation
// state, every record by key and the revision read.
func (r *Registry) pools(ctx context.Context, cfg *Config) (p6, p4 *pool, all map[string]*keyValue, rev int64, err error) {
	kvs, rev, err := r.getLeases(ctx, 0)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	all = make(map[string]*keyValue, len(kvs))
	p6 = &pool{family: "IPv6", network: cfg.IPv6Network, subLen: cfg.IPv6SubnetLen,
		lo: rangeIndex(cfg.IPv6Network, cfg.IPv6SubnetLen, cfg.IPv6SubnetMin), hi: rangeIndex(cfg.IPv6Network, cfg.IPv6SubnetLen, cfg.IPv6SubnetMax)}
	if cfg.DualStack() {
		p4 = &pool{family: "IPv4", network: cfg.Network, subLen: cfg.SubnetLen, v4: true,
			lo: rangeIndex(cfg.Network, cfg.SubnetLen, cfg.SubnetMin), hi: rangeIndex(cfg.Network, cfg.SubnetLen, cfg.SubnetMax)}
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

// try makes one attempt: (lease, nil) on success, (nil, nil) after a lost
// race, (nil, err) when retrying cannot help.
func (a *acquirer) try(ctx context.Context) (*Lease, error) {
	r, cfg, attrs := a.r, a.cfg, a.attrs
	p6, p4, all, rev, err := r.pools(ctx, cfg)
	if err != nil {
		return nil, err
	}
	own := all[a.key]
	var ownRec record
	ownOK := own != nil && json.Unmarshal(own.value, &ownRec) == nil
	reserved := ownOK && own.lease == 0

	// reuse returns the existing record's subnet of pool p when it is still
	// usable: valid and not claimed by a record created before ours (which
	// would win the overlap and make ours invisible to peers).
	reuse := func(p *pool, s string) *net.IPNet {
		if !ownOK || s == "" {
			return nil
		}
		n, err := p.valid(s)
		if err != nil {
			r.log.Warn("existing lease has an unusable subnet, allocating another", "key", a.key, "err", err)
			return nil
		}
		if k := p.heldBy(p.index(n), a.key, own.createRev); k != "" {
			r.log.Warn("existing lease's subnet is held by an earlier lease, allocating another", "key", a.key, "subnet", n, "holder", k)
			return nil
		}
		return n
	}

	fresh := false // a subnet not held by our record is being taken
	s6 := reuse(p6, ownRec.IPv6Subnet)
	if s6 == nil {
		fresh = true
		if s6, err = p6.pick(attrs.HintIPv6, nil, a.key, r.lowestFirst); err != nil {
			return nil, err
		}
	}
	var s4 *net.IPNet
	if p4 != nil {
		if s4 = reuse(p4, ownRec.Subnet); s4 == nil {
			fresh = true
			// Same index as the IPv6 subnet keeps the two easy to correlate.
			if s4, err = p4.pick(attrs.HintIPv4, p6.index(s6), a.key, r.lowestFirst); err != nil {
				return nil, err
			}
		}
	}

	l := &Lease{VTEP: attrs.VTEP, IPv6Subnet: s6, IPv4Subnet: s4, VtepMAC: attrs.VtepMAC,
		NodeName: attrs.NodeName, PublicIPv4: attrs.PublicIPv4, Reserved: reserved}
	if reserved && l.PublicIPv4 == nil {
		if ip := net.ParseIP(ownRec.PublicIPv4); ip != nil {
			l.PublicIPv4 = ip.To4()
		}
	}
	value, err := MarshalRecord(l)
	if err != nil {
		return nil, err
	}
	if reserved && p4 == nil && ownRec.Subnet != "" {
		// Keep the operator's IPv4 subnet of a reservation: it is unused in
		// an IPv6-only network but may be meant for a later dual-stack one.
		rec := ownRec
		rec.VTEP, rec.IPv6Subnet, rec.VtepMAC, rec.NodeName = attrs.VTEP.String(), s6.String(), attrs.VtepMAC.String(), attrs.NodeName
		if l.PublicIPv4 != nil {
			rec.PublicIPv4 = l.PublicIPv4.String()
		}
		if value, err = json.Marshal(rec); err != nil {
			return nil, err
		}
	}

	if reserved && !fresh && bytes.Equal(value, own.value) {
		l.ModRevision = own.modRev
		r.log.Info("using reserved lease", "vtep", attrs.VTEP, "subnetV6", s6, "subnetV4", s4)
		return l, nil
	}

	var cmps []clientv3.Cmp
	if own != nil {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(a.key), "=", own.modRev))
	} else {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(a.key), "=", 0))
	}
	if fresh {
		// Fails if any record changed since we computed what is free.
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(r.LeasesPrefix()), "<", rev+1).WithPrefix())
	}
	opts, err := a.leaseOpts(ctx, reserved)
	if err != nil {
		return nil, err
	}
	won, err := a.commit(ctx, l, cmps, clientv3.OpPut(a.key, string(value), opts...))
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", a.key, err)
	}
	if !won {
		r.log.Debug("lost a race for a subnet, retrying", "key", a.key)
		return nil, nil
	}
	if own != nil {
		a.revokeReplaced(l, clientv3.LeaseID(own.lease))
	}
	r.log.Info("acquired lease", "vtep", attrs.VTEP, "subnetV6", s6, "subnetV4", s4,
		"reused", own != nil && !fresh, "reserved", reserved, "key", a.key)
	return l, nil
}

// Move re-keys this node's lease to a new VTEP keeping its subnet(s), in one
// transaction (used when the public-ipv6 annotation changes). Stop the
// KeepAlive of old first and KeepAlive the returned lease. If a record for the
// new VTEP already exists (a reservation or a stale lease), it wins: the old
// key is deleted and the existing record is reused as Acquire would. A
// reservation moves as a reservation (still without TTL).
func (r *Registry) Move(ctx context.Context, cfg *Config, old *Lease, attrs Attrs, ttl time.Duration) (*Lease, error) {
	if err := validateAttrs(attrs); err != nil {
		return nil, fmt.Errorf("move lease: %w", err)
	}
	if old == nil || old.VTEP == nil || old.IPv6Subnet == nil {
		return nil, errors.New("move lease: no old lease")
	}
	hinted := attrs
	hinted.HintIPv6, hinted.HintIPv4 = old.IPv6Subnet, old.IPv4Subnet
	if old.VTEP.Equal(attrs.VTEP) {
		return r.Acquire(ctx, cfg, hinted, ttl)
	}
	oldKey, newKey := r.LeaseKey(old.VTEP), r.LeaseKey(attrs.VTEP)
	a := acquirer{r: r, ttl: ttl} // for its grant bookkeeping only
	defer a.revokeUnused()
	bo := backoff.New(10*time.Millisecond, time.Second)
	for attempt := 1; attempt <= maxAcquireAttempts; attempt++ {
		if attempt > 1 {
			if err := bo.Sleep(ctx); err != nil {
				return nil, fmt.Errorf("move lease %s to %s: %w", old.VTEP, attrs.VTEP, err)
			}
		}
		p6, p4, all, rev, err := r.pools(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("move lease %s to %s: %w", old.VTEP, attrs.VTEP, err)
		}
		oldKV, newExists := all[oldKey], all[newKey] != nil
		free := p6.heldBy(p6.index(old.IPv6Subnet), oldKey, 0) == ""
		if p4 != nil {
			free = free && old.IPv4Subnet != nil && p4.heldBy(p4.index(old.IPv4Subnet), oldKey, 0) == ""
		}
		if newExists || !free {
			// Cannot carry the subnets over unchanged: release the old key
			// and let Acquire pick (it prefers the old subnets as hints).
			if err := r.deleteIf(ctx, oldKey, oldKV); err != nil {
				return nil, fmt.Errorf("move lease %s to %s: %w", old.VTEP, attrs.VTEP, err)
			}
			return r.Acquire(ctx, cfg, hinted, ttl)
		}
		l := &Lease{VTEP: attrs.VTEP, IPv6Subnet: old.IPv6Subnet, IPv4Subnet: old.IPv4Subnet,
			VtepMAC: attrs.VtepMAC, NodeName: attrs.NodeName, PublicIPv4: attrs.PublicIPv4, Reserved: old.Reserved}
		if p4 == nil {
			l.IPv4Subnet = nil
		}
		value, err := MarshalRecord(l)
		if err != nil {
			return nil, err
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(newKey), "=", 0)}
		if oldKV != nil {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(oldKey), "=", oldKV.modRev))
		} else {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(r.LeasesPrefix()), "<", rev+1).WithPrefix())
		}
		opts, err := a.leaseOpts(ctx, l.Reserved)
		if err != nil {
			return nil, fmt.Errorf("move lease %s to %s: %w", old.VTEP, attrs.VTEP, err)
		}
		won, err := a.commit(ctx, l, cmps, clientv3.OpDelete(oldKey), clientv3.OpPut(newKey, string(value), opts...))
		if err != nil {
			return nil, fmt.Errorf("move lease %s to %s: %w", old.VTEP, attrs.VTEP, err)
		}
		if !won {
			continue
		}
		a.revokeReplaced(l, old.EtcdLease)
		r.log.Info("moved lease", "oldVTEP", old.VTEP, "vtep", attrs.VTEP, "subnetV6", l.IPv6Subnet, "subnetV4", l.IPv4Subnet)
		return l, nil
	}
	return nil, fmt.Errorf("move lease %s to %s: lost the race %d times in a row", old.VTEP, attrs.VTEP, maxAcquireAttempts)
}

// deleteIf deletes key if it is still at kv's revision (nil kv: nothing to do).
func (r *Registry) deleteIf(ctx context.Context, key string, kv *keyValue) error {
	if kv == nil {
		return nil
	}
	_, err := r.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.modRev)).Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}
