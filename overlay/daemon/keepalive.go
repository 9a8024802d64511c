package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/vxlan6/vxlan6/overlay/lease"
)

// keepAlive owns this node's lease: the record, the attributes it was
// acquired with, and the goroutine renewing it (lease.Registry.KeepAlive),
// which re-acquires a lost lease and reports the new record on ch.
type keepAlive struct {
	reg *lease.Registry
	cfg *lease.Config
	ttl time.Duration
	log *slog.Logger

	lease *lease.Lease
	attrs lease.Attrs
	ch    chan *lease.Lease

	cancel context.CancelFunc
	done   chan struct{}
}

func newKeepAlive(reg *lease.Registry, cfg *lease.Config, ttl time.Duration, log *slog.Logger) *keepAlive {
	return &keepAlive{reg: reg, cfg: cfg, ttl: ttl, log: log, ch: make(chan *lease.Lease, 4)}
}

// start keeps l (acquired with attrs) alive until stop or ctx ends.
func (k *keepAlive) start(ctx context.Context, l *lease.Lease, attrs lease.Attrs) {
	k.lease, k.attrs = l, attrs
	kctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	k.cancel, k.done = cancel, done
	cur := *l
	go func() {
		defer close(done)
		k.reg.KeepAlive(kctx, k.cfg, attrs, &cur, k.ttl, func(nl *lease.Lease) {
			select {
			case k.ch <- nl:
			case <-kctx.Done():
			}
		})
	}()
}

// stop ends the renewal (bounded); the lease stays in etcd until its TTL.
func (k *keepAlive) stop() {
	if k.cancel == nil {
		return
	}
	k.cancel()
	select {
	case <-k.done:
	case <-time.After(5 * time.Second):
		k.log.Warn("lease keep-alive did not stop within 5s")
	}
	k.cancel = nil
}

// onLeaseChange handles a lease KeepAlive re-acquired after losing it. It
// reports whether the subnets changed; the caller then reconciles against a
// fresh List, which also drops a peer still routed to our new subnet
// (peerFor refuses it).
func (d *daemon) onLeaseChange(nl *lease.Lease) bool {
	if nl == nil || !nl.VTEP.Equal(d.ka.attrs.VTEP) {
		return false // from a keep-alive of a VTEP we have moved away from
	}
	old := d.ka.lease
	d.ka.lease = nl
	d.setLeaseMetrics(nl)
	d.logLease("lease re-acquired", nl)
	if old.Subnets.Same(nl.Subnets) {
		return false
	}
	d.held = heldState{} // a new subnet: the next resync looks again
	d.log.Warn("subnet changed after re-acquiring the lease; existing containers keep their old addresses",
		"oldSubnetV6", netStr(old.Subnets.V6), "subnetV6", netStr(nl.Subnets.V6), "oldSubnetV4", netStr(old.Subnets.V4), "subnetV4", netStr(nl.Subnets.V4))
	if err := d.sf.write(d.subnetConfig(d.vtep.cur)); err != nil {
		d.log.Error("rewrite subnet file", "err", err)
	}
	return true
}

func (d *daemon) setLeaseMetrics(l *lease.Lease) {
	d.m.setLease(netStr(l.Subnets.V6), netStr(l.Subnets.V4), l.Reserved)
}

func (d *daemon) logLease(msg string, l *lease.Lease) {
	d.log.Info(msg, "vtep", ipStr(l.VTEP), "subnetV6", netStr(l.Subnets.V6), "subnetV4", netStr(l.Subnets.V4),
		"mac", l.VtepMAC.String(), "node", l.NodeName, "reserved", l.Reserved, "ttl", d.o.LeaseTTL.String())
}
