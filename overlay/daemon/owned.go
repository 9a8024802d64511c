package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"

	"github.com/vxlan6/vxlan6/overlay/vtep"
	"github.com/vxlan6/vxlan6/overlay/vxlan"
)

// ownerMark is the alias (IFLA_IFALIAS, `ip link show` prints it) of every
// VXLAN device vxlan6d made or adopted: only devices carrying it are ever
// removed, so an operator's own vxlan6.N stays whatever the VNI history.
const ownerMark = "vxlan6d"

// ensureDevice is vxlan.EnsureDevice for the VTEP choice c plus the
// ownership mark.
func (d *daemon) ensureDevice(c *vtep.Choice) (*vxlan.Device, error) {
	dev, err := vxlan.EnsureDevice(d.deviceConfig(c))
	if err != nil {
		return nil, err
	}
	markOwned(d.log, dev.Name)
	return dev, nil
}

// markOwned sets the ownership mark on device name (a failure is logged:
// the device works without it, it is only never removed).
func markOwned(log *slog.Logger, name string) {
	link, err := netlinksafe.LinkByName(name)
	if err == nil && link.Attrs().Alias != ownerMark {
		err = netlink.LinkSetAlias(link, ownerMark)
	}
	if err != nil {
		log.Warn("cannot mark the vxlan device as vxlan6d's", "device", name, "err", err)
	}
}

// removeOwned deletes VXLAN device name if it carries the ownership mark,
// with its routes, neighbours and fdb entries; others stay.
func removeOwned(log *slog.Logger, name string) error {
	link, err := netlinksafe.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up old vxlan device %s: %w", name, err)
	}
	if link.Type() != "vxlan" || link.Attrs().Alias != ownerMark {
		log.Warn("old vxlan device left in place: not marked as vxlan6d's", "device", name, "alias", link.Attrs().Alias)
		return nil
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("delete old vxlan device %s: %w", name, err)
	}
	log.Info("old vxlan device removed", "device", name)
	return nil
}

// removeStale deletes the marked vxlan6.N devices other than keep: what a
// VNI change left behind while the daemon was stopped. From an unmarked one
// (an operator's, or made before devices were marked) it only takes our
// routes: the kernel would refuse the same onlink routes on keep.
func removeStale(log *slog.Logger, keep string) {
	links, err := netlinksafe.LinkList()
	if err != nil {
		log.Warn("cannot list links to remove old vxlan devices", "err", err)
		return
	}
	for _, l := range links {
		name := l.Attrs().Name
		if name == keep || !strings.HasPrefix(name, "vxlan6.") || l.Type() != "vxlan" {
			continue
		}
		if l.Attrs().Alias != ownerMark {
			dropOurRoutes(log, l)
			continue
		}
		if err := removeOwned(log, name); err != nil {
			log.Warn("cannot remove old vxlan device", "device", name, "err", err)
		}
	}
}

// dropOurRoutes deletes the routes on l that carry vxlan.RouteProtocol,
// i.e. that vxlan6d installed.
func dropOurRoutes(log *slog.Logger, l netlink.Link) {
	for _, fam := range []int{netlink.FAMILY_V6, netlink.FAMILY_V4} {
		rs, err := netlinksafe.RouteListFiltered(fam, &netlink.Route{LinkIndex: l.Attrs().Index, Protocol: vxlan.RouteProtocol},
			netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			log.Warn("cannot list routes of an old vxlan device", "device", l.Attrs().Name, "err", err)
			continue
		}
		for i := range rs {
			if err := netlink.RouteDel(&rs[i]); err != nil {
				log.Warn("cannot delete a route of an old vxlan device", "device", l.Attrs().Name, "route", rs[i].Dst.String(), "err", err)
			}
		}
		if len(rs) > 0 {
			log.Info("routes taken off an old vxlan device not marked as vxlan6d's", "device", l.Attrs().Name, "routes", len(rs))
		}
	}
}
