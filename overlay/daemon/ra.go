package daemon

import (
	"github.com/vishvananda/netlink"

	"github.com/vxlan6/vxlan6/internal/forwarding"
)

// keepRAOnNewUnderlay raises accept_ra on an underlay that was deleted and
// created again (same name, new index). Forwarding is on, so the new link
// inherited accept_ra 1 with forwarding 1 and ignores every router
// advertisement: on an RA-configured host it would never get its SLAAC
// address (the VTEP) or default route back, and vtep.Choose would never
// find it. The next RA (or a router solicitation) then configures it.
func (d *daemon) keepRAOnNewUnderlay(l netlink.Link) {
	changed, err := forwarding.KeepRA(forwarding.Underlay{Index: l.Attrs().Index})
	if err != nil {
		d.log.Warn("recreated underlay: keep accepting router advertisements", "interface", l.Attrs().Name, "err", err)
		return
	}
	if len(changed) > 0 {
		d.log.Info("underlay recreated: accept_ra raised to 2 so router advertisements configure it again",
			"interface", l.Attrs().Name, "index", l.Attrs().Index, "links", changed)
	}
}
