package daemon

import (
	"context"
	"time"

	"github.com/vxlan6/vxlan6/overlay/lease"
)

// loop watches leases from snap (what the last resync programmed) and the
// node's annotations, and hands every event to its owner, on this one
// goroutine.
func (d *daemon) loop(ctx context.Context, snap *lease.Snapshot) error {
	w := d.watchLeases(ctx, snap)
	defer w.stop()
	// WatchNode sends the current annotations first (a change since the
	// read at start is not missed), re-establishes a broken watch itself and
	// closes its channel only when ctx ends.
	nodeCh := d.reg.WatchNode(ctx, d.o.NodeName)
	configCh := d.reg.WatchConfig(ctx)
	moveRetry := time.NewTicker(moveRetryEvery)
	defer moveRetry.Stop()
	d.healer.start()
	defer d.healer.stop()

	for {
		d.m.heartbeat()
		d.healer.arm()
		select {
		case <-d.healer.C():
			d.healer.fired(d.heal(ctx))
		case <-d.wd.C():
			d.notify(d.wd.Ping)
		case <-ctx.Done():
			d.log.Info("stopping; the vxlan device, its peers and the lease stay in place")
			return nil
		case ev, ok := <-w.events:
			if d.onLeaseEvent(ctx, ev, ok) {
				w.restart(ctx)
			}
		case l := <-d.ka.ch:
			if d.onLeaseChange(l) {
				// Leases skipped as overlapping our old subnet may be
				// valid now: look at everything again.
				w.restart(ctx)
			}
		case ann, ok := <-nodeCh:
			if !ok {
				nodeCh = nil // ctx ended; the next round returns
				continue
			}
			d.onAnnotations(ctx, ann)
		case <-moveRetry.C:
			d.retryMove(ctx)
		case c, ok := <-configCh:
			if !ok {
				configCh = nil // ctx ended; the next round returns
				continue
			}
			d.onConfig(ctx, c)
		}
	}
}

// onLeaseEvent applies a lease watch event; it reports whether the watch
// must be restarted from a fresh snapshot (it asked for a resync, or ended).
func (d *daemon) onLeaseEvent(ctx context.Context, ev lease.Event, ok bool) bool {
	if ok && ev.Type != lease.Resync {
		d.apply(ev, d.vtep.cur)
		return false
	}
	if ok {
		d.countEvent("resync")
		d.log.Info("lease watch reset, resyncing")
	} else if ctx.Err() == nil {
		d.countEvent("resync")
		d.log.Warn("lease watch ended unexpectedly, resyncing")
	}
	return true
}

// leaseWatch is the lease watch the loop reads, restartable.
type leaseWatch struct {
	d      *daemon
	events <-chan lease.Event
	cancel context.CancelFunc
}

func (d *daemon) watchLeases(ctx context.Context, snap *lease.Snapshot) *leaseWatch {
	w := &leaseWatch{d: d}
	w.start(ctx, snap)
	return w
}

func (w *leaseWatch) start(ctx context.Context, snap *lease.Snapshot) {
	wctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	w.events = w.d.reg.WatchSnapshot(wctx, w.d.cfg, snap)
}

func (w *leaseWatch) stop() { w.cancel() }

// restart stops the watch, reconciles against a fresh snapshot and
// watches again from its revision.
func (w *leaseWatch) restart(ctx context.Context) {
	w.cancel()
	snap, err := w.d.resync(ctx, w.d.vtep.cur)
	if err != nil {
		w.events = nil // ctx ended; the next round returns
		return
	}
	w.start(ctx, snap)
}
