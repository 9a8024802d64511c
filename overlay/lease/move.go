package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

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
	if old == nil || old.VTEP == nil || old.Subnets.V6 == nil {
		return nil, errors.New("move lease: no old lease")
	}
	hinted := attrs
	hinted.Hint.V6, hinted.Hint.V4 = old.Subnets.V6, old.Subnets.V4
	if old.VTEP.Equal(attrs.VTEP) {
		return r.Acquire(ctx, cfg, hinted, ttl)
	}
	m := mover{a: acquirer{r: r, ttl: ttl}, cfg: cfg, old: old, attrs: attrs, hinted: hinted,
		oldKey: r.LeaseKey(old.VTEP), newKey: r.LeaseKey(attrs.VTEP)}
	defer m.a.revokeUnused()
	var l *Lease
	err := retryRaces(ctx, func() (err error) {
		l, err = m.try(ctx)
		return err
	}, func(err error) error {
		if errors.Is(err, errLostRace) {
			return fmt.Errorf("move lease %s to %s: lost the race %d times in a row", old.VTEP, attrs.VTEP, maxAcquireAttempts)
		}
		return m.errorf(err)
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// mover is one Move call between two different VTEPs.
type mover struct {
	a              acquirer // for its grant bookkeeping only
	cfg            *Config
	old            *Lease
	attrs, hinted  Attrs // hinted: attrs with old's subnets as hints
	oldKey, newKey string
}

func (m *mover) errorf(err error) error {
	return fmt.Errorf("move lease %s to %s: %w", m.old.VTEP, m.attrs.VTEP, err)
}

// try makes one attempt: the lease, errLostRace after a lost race, or an
// error retrying cannot help.
func (m *mover) try(ctx context.Context) (*Lease, error) {
	r := m.a.r
	p6, p4, all, rev, err := r.pools(ctx, m.cfg)
	if err != nil {
		return nil, m.errorf(err)
	}
	oldKV := all[m.oldKey]
	if all[m.newKey] != nil || !m.subnetsFree(p6, p4) {
		// Cannot carry the subnets over unchanged: release the old key
		// and let Acquire pick (it prefers the old subnets as hints).
		if err := r.deleteIf(ctx, m.oldKey, oldKV); err != nil {
			return nil, m.errorf(err)
		}
		return r.Acquire(ctx, m.cfg, m.hinted, m.a.ttl)
	}
	l := m.newLease(p4 != nil)
	value, err := MarshalRecord(l)
	if err != nil {
		return nil, err
	}
	opts, err := m.a.leaseOpts(ctx, l.Reserved)
	if err != nil {
		return nil, m.errorf(err)
	}
	won, err := m.a.commit(ctx, l, m.conditions(oldKV, rev), clientv3.OpDelete(m.oldKey), clientv3.OpPut(m.newKey, string(value), opts...))
	if err != nil {
		return nil, m.errorf(err)
	}
	if !won {
		return nil, errLostRace
	}
	m.a.revokeReplaced(l, m.old.EtcdLease)
	r.log.Info("moved lease", "oldVTEP", m.old.VTEP, "vtep", m.attrs.VTEP, "subnetV6", l.Subnets.V6, "subnetV4", l.Subnets.V4)
	return l, nil
}

// subnetsFree reports whether no record but the old one holds its subnets.
func (m *mover) subnetsFree(p6, p4 *pool) bool {
	free := p6.heldBy(p6.index(m.old.Subnets.V6), m.oldKey, 0) == ""
	if p4 != nil {
		free = free && m.old.Subnets.V4 != nil && p4.heldBy(p4.index(m.old.Subnets.V4), m.oldKey, 0) == ""
	}
	return free
}

// newLease is the old lease's subnets under the new VTEP and attrs.
func (m *mover) newLease(dualStack bool) *Lease {
	old, attrs := m.old, m.attrs
	l := &Lease{VTEP: attrs.VTEP, Subnets: old.Subnets, VtepMAC: attrs.VtepMAC, NodeName: attrs.NodeName, PublicIPv4: attrs.PublicIPv4, Reserved: old.Reserved}
	if !dualStack {
		l.Subnets.V4 = nil
	}
	return l
}

// conditions guard the move: the new key is unused, and the old record is
// as read (or, when there was none, no record changed since).
func (m *mover) conditions(oldKV *keyValue, rev int64) []clientv3.Cmp {
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(m.newKey), "=", 0)}
	if oldKV != nil {
		return append(cmps, clientv3.Compare(clientv3.ModRevision(m.oldKey), "=", oldKV.modRev))
	}
	return append(cmps, clientv3.Compare(clientv3.ModRevision(m.a.r.LeasesPrefix()), "<", rev+1).WithPrefix())
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
