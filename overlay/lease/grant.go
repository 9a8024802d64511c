package lease

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The etcd-lease bookkeeping of an acquirer: a grant is kept across
// retries and revoked when it ends up unused.

func ttlSeconds(ttl time.Duration) int64 {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return max(1, int64(math.Ceil(ttl.Seconds())))
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
