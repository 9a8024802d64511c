package daemon

import (
	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/vtep"
	"github.com/vxlan6/vxlan6/overlay/vxlan"
)

// apply handles one lease watch event for the VTEP choice c.
func (d *daemon) apply(ev lease.Event, c *vtep.Choice) {
	d.checkHeldEvent(ev, c)
	l := &ev.Lease
	switch ev.Type {
	case lease.Added:
		d.countEvent("added")
		d.addPeer(l, c)
	case lease.Removed:
		d.countEvent("removed")
		if old, ok := d.peers.byVTEP[ipStr(l.VTEP)]; ok {
			d.removePeer(old, "lease removed or expired")
		}
	}
}

// addPeer programs the peer of an added or changed lease, or removes the
// peer of a lease that turned invalid.
func (d *daemon) addPeer(l *lease.Lease, c *vtep.Choice) {
	p, why := peerFor(l, d.self(c))
	k := ipStr(l.VTEP)
	if why != "" {
		if !d.isOwn(l, c) {
			warnIgnored(d.log, l, why)
		}
		// A peer whose record turned bad must not stay programmed.
		if old, ok := d.peers.byVTEP[k]; ok {
			d.removePeer(old, "its lease is no longer valid")
		}
		return
	}
	old, had := d.peers.byVTEP[k]
	if had && samePeer(old, p) {
		return
	}
	// AddPeer replaces the old entries of a peer with this VTEP itself.
	if err := d.dev.AddPeer(p); err != nil {
		d.dataPathFailed("add_peer")
		d.log.Error("add peer", "vtep", k, "err", err)
		return
	}
	if had {
		d.peers.forget(old)
	}
	d.peers.set(p)
	d.setPeerMetrics()
	d.log.Info("peer added", "vtep", k, "node", l.NodeName, "mac", p.MAC.String(), "subnetV6", netStr(p.Subnets.V6),
		"subnetV4", netStr(p.Subnets.V4), "peers", d.peers.len())
}

func (d *daemon) removePeer(p vxlan.Peer, why string) {
	k := p.VTEP.String()
	if err := d.dev.RemovePeer(p); err != nil {
		d.dataPathFailed("remove_peer")
		d.log.Error("remove peer", "vtep", k, "err", err)
		// Keep it: the resync that follows soon removes it.
		return
	}
	d.peers.forget(p)
	d.setPeerMetrics()
	d.log.Info("peer removed", "vtep", k, "subnetV6", netStr(p.Subnets.V6), "reason", why, "peers", d.peers.len())
}

func (d *daemon) setPeerMetrics() {
	n := d.peers.len()
	d.m.update(func(m *metrics) { m.peers = n })
}

func (d *daemon) countEvent(kind string) {
	d.m.update(func(m *metrics) { m.watchEvents[kind]++ })
}
