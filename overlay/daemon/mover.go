package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"

	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/vtep"
)

// mover owns the VTEP choice after start: the current choice (cur, written
// only through adopt), the public-ipv6 annotation it was made with, and a
// move that failed and is retried every moveRetryEvery.
type mover struct {
	cur        *vtep.Choice
	annotation string
	// byFlag: a flag names the VTEP, so annotations are ignored.
	byFlag bool
	// pending: the last move failed; retryMove tries again.
	pending bool
	m       *metrics
}

func newMover(c *vtep.Choice, annotation string, byFlag bool, m *metrics) *mover {
	return &mover{cur: c, annotation: annotation, byFlag: byFlag, m: m}
}

// adopt makes c the current choice.
func (v *mover) adopt(c *vtep.Choice) {
	v.cur = c
	setVTEPMetrics(v.m, c)
}

// onAnnotations follows a change of the node's public-ipv6 annotation.
func (d *daemon) onAnnotations(ctx context.Context, ann map[string]string) {
	v := lease.PublicIPv6Annotation(ann)
	if d.vtep.byFlag {
		if v != "" {
			d.log.Debug("public-ipv6 annotation ignored: a flag names the VTEP", "annotation", v)
		}
		return
	}
	if v != d.vtep.annotation {
		d.changeVTEP(ctx, v)
	}
}

// retryMove tries a failed move again, with the annotation as it is now.
func (d *daemon) retryMove(ctx context.Context) {
	if !d.vtep.pending || d.vtep.byFlag {
		return
	}
	ann, err := d.annotations(ctx)
	if err != nil {
		return
	}
	d.changeVTEP(ctx, lease.PublicIPv6Annotation(ann))
}

// changeVTEP re-chooses the VTEP with annotation v and moves device, lease
// and subnet file to it.
func (d *daemon) changeVTEP(ctx context.Context, v string) {
	mv := d.vtep
	mv.annotation, mv.pending = v, false
	c, err := vtep.Choose(d.o.vtepOptions(v))
	if err != nil {
		// Keep tunnelling from the current VTEP: a bad annotation must not
		// cut the node off.
		d.m.incError("choose_vtep")
		d.log.Error("public-ipv6 annotation changed but is unusable; keeping the current VTEP",
			"annotation", v, "vtep", ipStr(mv.cur.Public), "err", err)
		return
	}
	cur := mv.cur
	if c.Public.Equal(cur.Public) && c.Local.Equal(cur.Local) && c.IfIndex == cur.IfIndex && c.Public.Equal(d.ka.lease.VTEP) {
		mv.adopt(c)
		return
	}
	d.log.Info("public-ipv6 annotation changed, moving the VTEP", "annotation", v, "from", ipStr(cur.Public), "to", ipStr(c.Public))
	if err := d.move(ctx, c); err != nil {
		mv.pending = true
		d.m.incError("move_vtep")
		d.log.Error("move VTEP failed, will retry", "to", ipStr(c.Public), "err", err)
	}
}

// move moves this node to the VTEP choice c: the lease first, then the
// device, the subnet file and the peers.
func (d *daemon) move(ctx context.Context, c *vtep.Choice) error {
	if err := d.moveLease(ctx, c); err != nil {
		return err
	}
	dev, err := d.ensureDevice(c)
	if err != nil {
		// The current choice stays the old one, so the retry moves the
		// device again (the lease is already where it should be).
		return fmt.Errorf("vxlan device for VTEP %s on %s: %w", c.Local, c.IfName, err)
	}
	d.replaceDevice(dev)
	old := d.vtep.cur
	d.vtep.adopt(c)
	d.logChoice(c)
	if err := d.sf.write(d.subnetConfig(c)); err != nil {
		d.log.Error("rewrite subnet file", "err", err)
	}
	// The device may have been recreated (new local): program every peer
	// again, and drop a peer that claims our new VTEP.
	if p, ok := d.peers.byVTEP[c.Public.String()]; ok {
		d.peers.forget(p)
	}
	d.reconcileDevice(d.peers, "reconcile peers after VTEP move")
	d.log.Info("VTEP moved", "from", ipStr(old.Public), "to", ipStr(c.Public), "local", ipStr(c.Local), "device", d.dev.Name, "peers", d.peers.len())
	return nil
}

// moveLease re-keys this node's lease to c's VTEP. While etcd refuses the
// move (unreachable, out of space) nothing is touched: peers keep our old
// VTEP and MAC, which the device keeps too, so traffic flows as before.
// Moving the device first would recreate it with a new local and MAC that
// no peer knows (and flush its peers) for as long as etcd is in trouble.
func (d *daemon) moveLease(ctx context.Context, c *vtep.Choice) error {
	d.ka.stop()
	attrs := attrsFor(c, d.o.NodeName)
	old := d.ka.lease
	var nl *lease.Lease
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.retry(mctx, "move lease", func() (err error) {
		nl, err = d.reg.Move(mctx, d.cfg, old, attrs, d.o.LeaseTTL)
		return err
	}); err != nil {
		// Keep the old lease alive; the move is retried later.
		d.ka.start(ctx, old, d.ka.attrs)
		return fmt.Errorf("move lease from %s to %s: %w", ipStr(old.VTEP), ipStr(c.Public), mctx.Err())
	}
	d.setLeaseMetrics(nl)
	d.logLease("lease moved", nl)
	d.ka.start(ctx, nl, attrs)
	return nil
}

// followUnderlay follows an underlay that was deleted and created again
// (new ifindex, maybe a new MTU) while keeping the same VTEP addresses; a
// choice that now yields another address is a VTEP move, which is the
// annotation handling's business, not the self-heal's.
func (d *daemon) followUnderlay() {
	cur := d.vtep.cur
	// vtep.Choose logs its choice and may wait for DAD: only ask it when
	// the underlay we use is really gone or renumbered.
	l, err := netlinksafe.LinkByName(cur.IfName)
	if err == nil && l.Attrs().Index == cur.IfIndex {
		return
	}
	if err == nil {
		d.keepRAOnNewUnderlay(l)
	}
	c, err := vtep.Choose(d.o.vtepOptions(d.vtep.annotation))
	if err != nil || !c.Public.Equal(cur.Public) || !c.Local.Equal(cur.Local) {
		return
	}
	if c.IfIndex != cur.IfIndex || c.MTU != cur.MTU || c.IfName != cur.IfName {
		d.log.Warn("underlay interface changed", "vtep", ipStr(c.Local), "from", cur.IfName, "fromIndex", cur.IfIndex,
			"to", c.IfName, "index", c.IfIndex, "mtu", c.MTU)
		d.vtep.adopt(c)
	}
}
