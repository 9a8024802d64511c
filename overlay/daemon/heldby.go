package daemon

import (
	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/vtep"
	"github.com/vxlan6/vxlan6/subnetfile"
)

// heldState is what the daemon knows about another node holding this
// node's subnet: lease.List/Watch resolve a subnet claimed twice in favour of
// the older lease, so a peer lease carrying our subnet means it won.
type heldState struct {
	vtep string // the holder's VTEP, "" while nobody else holds it
	by   string // subnetfile.SafeHeldBy of "node@vtep"
}

// claimsOurs: l is another node's lease carrying one of our subnets.
func (d *daemon) claimsOurs(l *lease.Lease, c *vtep.Choice) bool {
	own := d.ka.lease
	if own == nil || d.isOwn(l, c) || l.VTEP.Equal(own.VTEP) {
		return false
	}
	return ipnet.Same(l.Subnets.V6, own.Subnets.V6) ||
		(l.Subnets.V4 != nil && ipnet.Same(l.Subnets.V4, own.Subnets.V4))
}

// checkHeld looks at every lease of a snapshot (before reconcileTo drops
// them) and sets or clears the mark.
func (d *daemon) checkHeld(leases []lease.Lease, c *vtep.Choice) {
	for i := range leases {
		if l := &leases[i]; d.claimsOurs(l, c) {
			d.setHeld(l)
			return
		}
	}
	d.setHeld(nil)
}

// checkHeldEvent does the same for one watch event.
func (d *daemon) checkHeldEvent(ev lease.Event, c *vtep.Choice) {
	l := &ev.Lease
	switch {
	case ev.Type == lease.Added && d.claimsOurs(l, c):
		d.setHeld(l)
	case d.held.vtep != "" && ipStr(l.VTEP) == d.held.vtep:
		// The holder's lease went away or no longer claims our subnet.
		d.setHeld(nil)
	}
}

// setHeld records the holder (nil: nobody) and, when that changes, rewrites
// the subnet file with or without the mark, so the plugin stops (or
// resumes) allocating from the subnet: ADD answers "try again later"
// meanwhile (subnetfile.KeyHeldBy).
func (d *daemon) setHeld(l *lease.Lease) {
	var next heldState
	if l != nil {
		next = heldState{vtep: ipStr(l.VTEP), by: subnetfile.SafeHeldBy(l.NodeName + "@" + ipStr(l.VTEP))}
	}
	if next == d.held {
		return
	}
	prev := d.held
	d.held = next
	if next.vtep != "" {
		d.m.incError("subnet_held")
		d.log.Error("this node's subnet is held by another node; the plugin allocates nothing from it until that is resolved",
			"subnetV6", netStr(d.ka.lease.Subnets.V6), "subnetV4", netStr(d.ka.lease.Subnets.V4), "holder", l.NodeName, "holderVTEP", next.vtep)
	} else {
		d.log.Info("this node's subnet is no longer held by another node", "subnetV6", netStr(d.ka.lease.Subnets.V6), "wasHolderVTEP", prev.vtep)
	}
	if d.dev == nil {
		return // the first subnet file is written once the device is ready
	}
	if err := d.sf.write(d.subnetConfig(d.vtep.cur)); err != nil {
		d.healer.soon = true
		d.log.Error("rewrite subnet file", "err", err)
	}
}
