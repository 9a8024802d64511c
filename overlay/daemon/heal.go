package daemon

import (
	"context"
	"time"

	"github.com/vxlan6/vxlan6/overlay/vxlan"
)

// healer is the timer of the periodic self-heal (every interval; 0: off)
// and of the early retry after a failed data-path write (healRetry).
type healer struct {
	interval time.Duration
	t        *time.Timer
	// soon: a data-path write failed; heal after healRetry instead of
	// waiting for the next interval.
	soon bool
	// armed: the timer is set for that early retry.
	armed bool
}

// newHealer is a healer whose timer is stopped until start: a failed write
// before the loop runs is remembered (soon) and retried once it does.
func newHealer(interval time.Duration) *healer {
	h := &healer{interval: interval, t: time.NewTimer(time.Hour)}
	h.t.Stop()
	return h
}

// start starts the periodic self-heal (when interval is not 0).
func (h *healer) start() {
	if h.interval > 0 {
		h.t.Reset(h.interval)
	}
}

func (h *healer) C() <-chan time.Time { return h.t.C }

func (h *healer) stop() { h.t.Stop() }

// arm sets the early retry if a write failed and it is not set yet.
func (h *healer) arm() {
	if h.soon && !h.armed {
		h.t.Reset(healRetry)
		h.armed = true
	}
}

// fired sets the next round after a heal; etcdRead says whether the heal
// could read etcd. When it could not, the next try is a full interval
// later (not healRetry), which keeps the warning to one per interval.
func (h *healer) fired(etcdRead bool) {
	h.armed = false
	if etcdRead {
		if h.interval > 0 {
			h.t.Reset(h.interval)
		}
		return
	}
	next := h.interval
	if next == 0 {
		next = DefaultResyncInterval
	}
	h.t.Reset(next)
	h.armed = h.soon
}

// heal is the periodic self-heal: a fresh etcd snapshot, then the device
// (recreated if someone deleted it or its underlay came back with a new
// index), the peers by diff, and the subnet file if it would change. While
// etcd cannot be read nothing is touched: an outage must never flush peers.
// It reports whether etcd was read.
func (d *daemon) heal(ctx context.Context) bool {
	lctx, cancel := context.WithTimeout(ctx, healListTimeout)
	snap, err := d.reg.List(lctx, d.cfg)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			d.m.incError("periodic_resync")
			d.log.Warn("periodic resync: cannot list leases; data path left as it is", "err", err)
		}
		return false
	}
	d.healer.soon = false
	if d.vtep.pending {
		// Lease and device disagree until the move retry succeeds, and it
		// reconciles everything itself then.
		d.log.Debug("periodic resync skipped: a VTEP move is pending")
		return true
	}
	d.m.update(func(m *metrics) { m.periodicResyncs++ })
	d.followUnderlay()
	c := d.vtep.cur
	dev, err := vxlan.EnsureDevice(d.deviceConfig(c))
	if err != nil {
		d.dataPathFailed("device")
		d.log.Error("periodic resync: vxlan device", "vtep", ipStr(c.Local), "underlay", c.IfName, "err", err)
		return true
	}
	if dev.Index != d.dev.Index {
		// Recreated by us: mark it (an unchanged device keeps whatever
		// mark it has, also one an operator changed).
		markOwned(d.log, dev.Name)
		d.log.Warn("vxlan device was gone and has been recreated; programming every peer again",
			"name", dev.Name, "oldIndex", d.dev.Index, "index", dev.Index, "mtu", dev.MTU)
	}
	d.replaceDevice(dev)
	d.reconcileTo(snap, c, true)
	d.syncForwardRules(false)
	d.syncMasq(false)
	if err := d.sf.sync(d.subnetConfig(c)); err != nil {
		d.healer.soon = true
		d.log.Error("periodic resync: subnet file", "err", err)
	}
	return true
}

// replaceDevice makes dev the device, closing the handle of the one before.
// A device new to the daemon (at start, recreated, or for a new VNI or
// VTEP) gets its offloads logged once.
func (d *daemon) replaceDevice(dev *vxlan.Device) {
	if d.dev == nil || d.dev.Index != dev.Index {
		vxlan.LogOffloads(d.log, dev.Name)
	}
	if d.dev != nil && d.dev != dev {
		d.dev.Close()
	}
	d.dev = dev
	d.m.update(func(m *metrics) { m.deviceName = dev.Name })
}
