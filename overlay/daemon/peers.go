package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/vtep"
	"github.com/vxlan6/vxlan6/overlay/vxlan"
)

// peerTable is what is programmed on the device: the peers keyed by VTEP
// string. Conflicts between leases (a shared subnet or MAC) need no
// bookkeeping here: lease.List/Watch are the arbiter (the first holder, by
// CreateRevision, wins) and deliver no two leases sharing either.
type peerTable struct {
	byVTEP map[string]vxlan.Peer
}

func newPeerTable() *peerTable {
	return &peerTable{byVTEP: map[string]vxlan.Peer{}}
}

func (t *peerTable) len() int { return len(t.byVTEP) }

func (t *peerTable) set(p vxlan.Peer) { t.byVTEP[p.VTEP.String()] = p }

// forget drops p from the table (not from the kernel).
func (t *peerTable) forget(p vxlan.Peer) { delete(t.byVTEP, p.VTEP.String()) }

// list is the table as the device's Reconcile takes it.
func (t *peerTable) list() []vxlan.Peer {
	list := make([]vxlan.Peer, 0, len(t.byVTEP))
	for _, p := range t.byVTEP {
		list = append(list, p)
	}
	return list
}

// peerFor turns a lease into a peer, or says why it is not one.
// lease.List/Watch deliver only well-formed records inside the network with
// no subnet or MAC shared between them, and vxlan.ValidatePeer is the data
// path's own check; what neither knows is this node, which s.Judge checks.
func peerFor(l *lease.Lease, s lease.Self) (vxlan.Peer, string) {
	p := vxlan.Peer{VTEP: l.VTEP, MAC: l.VtepMAC, Subnets: l.Subnets}
	if err := vxlan.ValidatePeer(p); err != nil {
		return p, err.Error()
	}
	return p, s.Judge(l)
}

// isOwn: our own lease (VTEP choice c) shows up in every List and Watch; it
// is not a peer and not worth a warning.
func (d *daemon) isOwn(l *lease.Lease, c *vtep.Choice) bool {
	return c != nil && l.VTEP.Equal(c.Public) && l.NodeName == d.o.NodeName
}

// buildPeers is the peer table of a snapshot, built once: every valid
// lease that is not ours (isOwn). It returns how many leases it skipped
// (warned about unless quiet).
func buildPeers(snap *lease.Snapshot, s lease.Self, isOwn func(*lease.Lease) bool, log *slog.Logger, quiet bool) (*peerTable, int) {
	t := &peerTable{byVTEP: make(map[string]vxlan.Peer, len(snap.Leases))}
	skipped := 0
	for i := range snap.Leases {
		l := &snap.Leases[i]
		p, why := peerFor(l, s)
		if why == "" {
			t.set(p)
			continue
		}
		if !isOwn(l) {
			skipped++
			if !quiet {
				warnIgnored(log, l, why)
			}
		}
	}
	return t, skipped
}

func warnIgnored(log *slog.Logger, l *lease.Lease, why string) {
	log.Warn("lease ignored", "vtep", ipStr(l.VTEP), "node", l.NodeName, "subnetV6", netStr(l.Subnets.V6), "reason", why)
}

// resync Lists every lease and reconciles the device to it (never flushing
// what is already right). It retries while etcd is away, leaving the data
// path alone meanwhile. It returns the snapshot (its leases consumed) for
// the lease watch to start from, or errStopped if ctx ended.
func (d *daemon) resync(ctx context.Context, c *vtep.Choice) (*lease.Snapshot, error) {
	var snap *lease.Snapshot
	if err := d.retry(ctx, "list leases", func() (err error) {
		lctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
		defer cancel()
		snap, err = d.reg.List(lctx, d.cfg)
		return err
	}); err != nil {
		return nil, err
	}
	d.reconcileTo(snap, c, false)
	return snap, nil
}

// reconcileTo makes the peers exactly the valid leases of snap. quiet logs
// at debug level when the bookkeeping did not change (the periodic resync).
func (d *daemon) reconcileTo(snap *lease.Snapshot, c *vtep.Choice, quiet bool) {
	peers, skipped := buildPeers(snap, d.self(c), func(l *lease.Lease) bool { return d.isOwn(l, c) }, d.log, quiet)
	start := time.Now()
	d.reconcileDevice(peers, "reconcile peers")
	added, removed, changed := diffPeers(d.peers.byVTEP, peers.byVTEP)
	rev, skippedTotal := snap.Revision, snap.Skipped+skipped
	d.m.update(func(m *metrics) { m.ignoredPeers = skipped })
	d.peers = peers
	// The snapshot's leases (thousands of records) and the five kernel
	// dumps are garbage now (the caller keeps the snapshot only to start
	// the lease watch from); hand them back to the OS so RSS reflects the
	// steady state.
	d.checkHeld(snap.Leases, c)
	snap.Leases = nil
	d.releaseMemory()
	level := slog.LevelInfo
	if quiet && added+removed+changed == 0 {
		level = slog.LevelDebug
	}
	d.log.Log(context.Background(), level, "peers reconciled", "revision", rev, "peers", peers.len(), "added", added, "removed", removed,
		"changed", changed, "skipped", skippedTotal, "took", time.Since(start).Round(time.Millisecond).String())
}

// reconcileDevice programs exactly t on the device. On failure some entries
// may be missing; the loop retries soon, and the table keeps what we know
// about so later events diff against reality-ish.
func (d *daemon) reconcileDevice(t *peerTable, what string) {
	start := time.Now()
	if err := d.dev.Reconcile(t.list()); err != nil {
		d.dataPathFailed("reconcile")
		d.log.Error(what, "device", d.dev.Name, "peers", t.len(), "err", err)
	}
	d.m.observeReconcile(time.Since(start), t.len())
}

// dataPathFailed counts a failed data-path write and asks the loop to
// reconcile again soon: the watch alone would never retry it.
func (d *daemon) dataPathFailed(op string) {
	d.m.incError(op)
	d.healer.soon = true
}

func diffPeers(old, cur map[string]vxlan.Peer) (added, removed, changed int) {
	for k, p := range cur {
		if o, ok := old[k]; !ok {
			added++
		} else if !samePeer(o, p) {
			changed++
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			removed++
		}
	}
	return
}

func samePeer(a, b vxlan.Peer) bool {
	return a.VTEP.Equal(b.VTEP) && a.MAC.String() == b.MAC.String() && a.Subnets.Same(b.Subnets)
}
