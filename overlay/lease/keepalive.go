package lease

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/backoff"
)

// stableHold is how long a lease must have been held for the re-acquire
// backoff to start again from its minimum; it stops two daemons that claim the
// same VTEP from overwriting each other in a tight loop.
const stableHold = 10 * time.Second

// SetRenewHook makes KeepAlive call f(true) after each renewal etcd
// confirmed (and after a re-acquire), f(false) when the lease was lost or a
// re-acquire failed: the daemon's metrics and readiness. Set it before
// KeepAlive runs; f must not block.
func (r *Registry) SetRenewHook(f func(ok bool)) { r.renewHook = f }

func (r *Registry) renewed(ok bool) {
	if r.renewHook != nil {
		r.renewHook(ok)
	}
}

// KeepAlive keeps l's etcd lease alive until ctx ends. When the lease is lost
// (revoked, expired, key deleted or overwritten by someone else) it
// re-acquires (same subnet if possible) and calls onChange with the new lease
// (also when the subnets stayed the same: the etcd lease changed); it never
// gives up while ctx lives, and retries with backoff while etcd is
// unreachable, logging at most every few seconds. It returns only when ctx
// ends; the data path is never torn down from here. onChange runs on
// KeepAlive's goroutine.
//
// A reservation (l.Reserved) has no etcd lease to renew; KeepAlive then only
// watches its key and re-acquires when an operator changes or deletes it.
func (r *Registry) KeepAlive(ctx context.Context, cfg *Config, attrs Attrs, l *Lease, ttl time.Duration, onChange func(*Lease)) {
	cur := l
	bo := backoff.New(200*time.Millisecond, 5*time.Second)
	var lastLog time.Time
	for {
		start := time.Now()
		why := r.hold(ctx, cur)
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("lease lost, re-acquiring", "vtep", cur.VTEP, "subnetV6", cur.Subnets.V6, "reason", why)
		r.renewed(false)
		if time.Since(start) >= stableHold {
			bo.Reset()
		} else if backoff.SleepCtx(ctx, bo.Next()) != nil {
			return
		}
		nl, err := r.reacquire(ctx, cfg, attrs, cur, ttl, bo, &lastLog)
		if err != nil {
			return
		}
		if !nl.Subnets.Same(cur.Subnets) {
			r.log.Warn("re-acquired lease with a different subnet", "vtep", nl.VTEP,
				"oldSubnetV6", cur.Subnets.V6, "subnetV6", nl.Subnets.V6, "oldSubnetV4", cur.Subnets.V4, "subnetV4", nl.Subnets.V4)
		} else {
			r.log.Info("re-acquired lease", "vtep", nl.VTEP, "subnetV6", nl.Subnets.V6, "subnetV4", nl.Subnets.V4)
		}
		cur = nl
		r.renewed(true)
		if onChange != nil {
			onChange(nl)
		}
	}
}

// reacquire acquires again, cur's subnets as hints, until it succeeds or
// ctx ends (ctx's error), logging a failure at most every 5s (*lastLog).
func (r *Registry) reacquire(ctx context.Context, cfg *Config, attrs Attrs, cur *Lease, ttl time.Duration, bo *backoff.Backoff, lastLog *time.Time) (*Lease, error) {
	hinted := attrs
	hinted.Hint.V6, hinted.Hint.V4 = cur.Subnets.V6, cur.Subnets.V4
	var nl *Lease
	err := backoff.Retry(ctx, bo, func() (err error) {
		opCtx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		nl, err = r.Acquire(opCtx, cfg, hinted, ttl)
		return err
	}, func(_ int, _ time.Duration, err error) {
		r.renewed(false)
		if time.Since(*lastLog) >= 5*time.Second {
			*lastLog = time.Now()
			r.log.Error("cannot re-acquire lease, retrying", "vtep", attrs.VTEP, "err", err)
		}
	})
	return nl, err
}

// hold renews l and watches its key until the lease is lost (returning why)
// or ctx ends (returning "").
func (r *Registry) hold(ctx context.Context, l *Lease) string {
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	key := r.LeaseKey(l.VTEP)

	var kaCh <-chan *clientv3.LeaseKeepAliveResponse
	if l.EtcdLease != 0 {
		var err error
		if kaCh, err = r.cli.KeepAlive(hctx, l.EtcdLease); err != nil {
			return fmt.Sprintf("keep etcd lease %x alive: %v", int64(l.EtcdLease), err)
		}
	}
	rev := l.ModRevision
	watch := func() clientv3.WatchChan {
		opts := []clientv3.OpOption{clientv3.WithPrevKV()}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev+1))
		}
		return r.cli.Watch(hctx, key, opts...)
	}
	wch := watch()
	for {
		select {
		case <-ctx.Done():
			return ""
		case _, ok := <-kaCh:
			if ok {
				r.renewed(true)
			}
			if !ok {
				if ctx.Err() != nil {
					return ""
				}
				return fmt.Sprintf("etcd lease %x expired or was revoked", int64(l.EtcdLease))
			}
		case wr, ok := <-wch:
			if ctx.Err() != nil {
				return ""
			}
			if !ok || wr.Err() != nil || wr.CompactRevision != 0 {
				// The watch broke; find out whether we still hold the key
				// before watching again from now.
				why, now := r.checkKey(ctx, key, l)
				if why != "" {
					return why
				}
				if now > 0 {
					rev = now
				}
				if err := backoff.SleepCtx(ctx, time.Second); err != nil {
					return ""
				}
				wch = watch()
				continue
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return "key " + key + " was deleted"
				}
				if ev.Kv.Lease != int64(l.EtcdLease) || ev.Kv.ModRevision != l.ModRevision {
					return "key " + key + " was overwritten"
				}
			}
		}
	}
}

// checkKey reads key: a reason if l no longer owns it, else "" and the
// revision read (0 if etcd could not be asked, which is not a loss).
func (r *Registry) checkKey(ctx context.Context, key string, l *Lease) (string, int64) {
	opCtx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	resp, err := r.cli.Get(opCtx, key)
	if err != nil {
		return "", 0
	}
	if len(resp.Kvs) == 0 {
		return "key " + key + " was deleted", 0
	}
	if kv := resp.Kvs[0]; kv.Lease != int64(l.EtcdLease) || kv.ModRevision != l.ModRevision {
		return "key " + key + " was overwritten", 0
	}
	return "", resp.Header.Revision
}
