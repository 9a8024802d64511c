package lease

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/ipnet"
)

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
	wrap := func(err error) error {
		if errors.Is(err, errLostRace) {
			err = fmt.Errorf("lost the race for a subnet %d times in a row", maxAcquireAttempts)
		}
		return fmt.Errorf("acquire lease for VTEP %s: %w", attrs.VTEP, err)
	}
	var l *Lease
	err := retryRaces(ctx, func() (err error) {
		if l, err = a.try(ctx); err != nil && !errors.Is(err, errLostRace) {
			return wrap(err)
		}
		return err
	}, wrap)
	if err != nil {
		return nil, err
	}
	return l, nil
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

// ownRecord is the record at our key when an attempt starts.
type ownRecord struct {
	kv       *keyValue // nil: there is none
	rec      record    // its value, when ok
	ok       bool      // the value is record JSON
	reserved bool      // an operator's reservation (no etcd lease)
}

func readOwn(kv *keyValue) ownRecord {
	o := ownRecord{kv: kv}
	o.ok = kv != nil && json.Unmarshal(kv.value, &o.rec) == nil
	o.reserved = o.ok && kv.lease == 0
	return o
}

// try makes one attempt: the lease, errLostRace after a lost race, or an
// error retrying cannot help.
func (a *acquirer) try(ctx context.Context) (*Lease, error) {
	p6, p4, all, rev, err := a.r.pools(ctx, a.cfg)
	if err != nil {
		return nil, err
	}
	own := readOwn(all[a.key])
	s6, s4, fresh, err := a.subnets(p6, p4, own)
	if err != nil {
		return nil, err
	}
	l := a.newLease(own, s6, s4)
	value, err := a.value(l, own, p4 == nil)
	if err != nil {
		return nil, err
	}
	if own.reserved && !fresh && bytes.Equal(value, own.kv.value) {
		l.ModRevision = own.kv.modRev
		a.r.log.Info("using reserved lease", "vtep", a.attrs.VTEP, "subnetV6", s6, "subnetV4", s4)
		return l, nil
	}
	if err := a.write(ctx, l, value, a.conditions(own, fresh, rev)); err != nil {
		return nil, err
	}
	if own.kv != nil {
		a.revokeReplaced(l, clientv3.LeaseID(own.kv.lease))
	}
	a.r.log.Info("acquired lease", "vtep", a.attrs.VTEP, "subnetV6", s6, "subnetV4", s4,
		"reused", own.kv != nil && !fresh, "reserved", own.reserved, "key", a.key)
	return l, nil
}

// subnets chooses the attempt's subnets: our record's where still usable,
// else the hint or a free one. fresh says whether one is not our record's.
func (a *acquirer) subnets(p6, p4 *pool, own ownRecord) (s6, s4 *net.IPNet, fresh bool, err error) {
	if s6 = a.reuse(p6, own, own.rec.IPv6Subnet); s6 == nil {
		fresh = true
		if s6, err = p6.pick(a.attrs.Hint.V6, nil, a.key, a.r.lowestFirst); err != nil {
			return nil, nil, false, err
		}
	}
	if p4 == nil {
		return s6, nil, fresh, nil
	}
	if s4 = a.reuse(p4, own, own.rec.Subnet); s4 == nil {
		fresh = true
		// Same index as the IPv6 subnet keeps the two easy to correlate.
		if s4, err = p4.pick(a.attrs.Hint.V4, p6.index(s6), a.key, a.r.lowestFirst); err != nil {
			return nil, nil, false, err
		}
	}
	return s6, s4, fresh, nil
}

// reuse returns our record's subnet s of pool p when it is still usable:
// valid and not claimed by a record created before ours (which would win
// the overlap and make ours invisible to peers).
func (a *acquirer) reuse(p *pool, own ownRecord, s string) *net.IPNet {
	if !own.ok || s == "" {
		return nil
	}
	n, err := p.valid(s)
	if err != nil {
		a.r.log.Warn("existing lease has an unusable subnet, allocating another", "key", a.key, "err", err)
		return nil
	}
	if k := p.heldBy(p.index(n), a.key, own.kv.createRev); k != "" {
		a.r.log.Warn("existing lease's subnet is held by an earlier lease, allocating another", "key", a.key, p.logKey(), n, "holder", k)
		return nil
	}
	return n
}

// newLease is the lease this attempt writes; a reservation keeps its
// operator's PublicIPv4 when the node names none.
func (a *acquirer) newLease(own ownRecord, s6, s4 *net.IPNet) *Lease {
	attrs := a.attrs
	l := &Lease{VTEP: attrs.VTEP, Subnets: ipnet.Subnets{V6: s6, V4: s4}, VtepMAC: attrs.VtepMAC,
		NodeName: attrs.NodeName, PublicIPv4: attrs.PublicIPv4, Reserved: own.reserved}
	if own.reserved && l.PublicIPv4 == nil {
		if ip := net.ParseIP(own.rec.PublicIPv4); ip != nil {
			l.PublicIPv4 = ip.To4()
		}
	}
	return l
}

// value is the record JSON of l.
func (a *acquirer) value(l *Lease, own ownRecord, v6only bool) ([]byte, error) {
	value, err := MarshalRecord(l)
	if err != nil || !own.reserved || !v6only || own.rec.Subnet == "" {
		return value, err
	}
	// Keep the operator's IPv4 subnet of a reservation: it is unused in
	// an IPv6-only network but may be meant for a later dual-stack one.
	rec := own.rec
	rec.VTEP, rec.IPv6Subnet, rec.VtepMAC, rec.NodeName = a.attrs.VTEP.String(), l.Subnets.V6.String(), a.attrs.VtepMAC.String(), a.attrs.NodeName
	if l.PublicIPv4 != nil {
		rec.PublicIPv4 = l.PublicIPv4.String()
	}
	return json.Marshal(rec)
}

// conditions guard the write: our key is as read, and when a subnet is
// taken fresh, no record changed since we computed what is free.
func (a *acquirer) conditions(own ownRecord, fresh bool, rev int64) []clientv3.Cmp {
	var cmps []clientv3.Cmp
	if own.kv != nil {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(a.key), "=", own.kv.modRev))
	} else {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(a.key), "=", 0))
	}
	if fresh {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(a.r.LeasesPrefix()), "<", rev+1).WithPrefix())
	}
	return cmps
}

// write puts value at our key if cmps hold; errLostRace if they do not.
func (a *acquirer) write(ctx context.Context, l *Lease, value []byte, cmps []clientv3.Cmp) error {
	opts, err := a.leaseOpts(ctx, l.Reserved)
	if err != nil {
		return err
	}
	won, err := a.commit(ctx, l, cmps, clientv3.OpPut(a.key, string(value), opts...))
	if err != nil {
		return fmt.Errorf("write %s: %w", a.key, err)
	}
	if !won {
		a.r.log.Debug("lost a race for a subnet, retrying", "key", a.key)
		return errLostRace
	}
	return nil
}
