package daemon

import (
	"errors"
	"net"
	"strings"

	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/overlay/lease"

	"github.com/vxlan6/vxlan6/overlay/lastlease"
)

// hintsFromLastLease takes the hints from the lease file under /var/lib
// when the subnet file (in /run) gave none: after a reboot, or after the
// node was down longer than its lease TTL, the node asks for the subnet(s)
// its containers had. noSubnetFile is why the subnet file did not help. It
// returns attrs with the hints and the lease file's VTEP (nil if none).
func (d *daemon) hintsFromLastLease(attrs lease.Attrs, noSubnetFile error) (lease.Attrs, net.IP) {
	if d.o.LeaseFile == "" {
		d.log.Debug("no usable previous subnet file and no lease file, no hint", "err", noSubnetFile)
		return attrs, nil
	}
	last, err := lastlease.Load(d.o.LeaseFile)
	if err != nil {
		level := d.log.Warn
		if errors.Is(err, lastlease.ErrNone) {
			level = d.log.Debug
		}
		level("no usable previous subnet file or lease file, no hint", "subnetFileErr", noSubnetFile, "err", err)
		return attrs, nil
	}
	if last.NodeName != d.o.NodeName {
		d.log.Warn("lease file is another node's; ignoring it", "path", d.o.LeaseFile, "node", last.NodeName)
		return attrs, nil
	}
	if ipnet.Fits(d.cfg.Networks.V6, d.cfg.SubnetLen.V6, last.Subnets.V6) {
		attrs.Hint.V6 = last.Subnets.V6
	}
	if d.cfg.EnableIPv4 && ipnet.Fits(d.cfg.Networks.V4, d.cfg.SubnetLen.V4, last.Subnets.V4) {
		attrs.Hint.V4 = last.Subnets.V4
	}
	d.log.Info("hint from the lease file", "path", d.o.LeaseFile, "subnetV6", netStr(attrs.Hint.V6),
		"subnetV4", netStr(attrs.Hint.V4), "vtep", ipStr(last.VTEP))
	return attrs, last.VTEP
}

// saveLastLease persists the lease next to every subnet file write.
func (d *daemon) saveLastLease() {
	if d.o.LeaseFile == "" || d.ka == nil || d.ka.lease == nil {
		return
	}
	own := d.ka.lease
	l := &lastlease.Last{NodeName: d.o.NodeName, VTEP: own.VTEP, Networks: ipnet.Subnets{V6: d.cfg.Networks.V6}, Subnets: ipnet.Subnets{V6: own.Subnets.V6}}
	if d.cfg.DualStack() && own.Subnets.V4 != nil {
		l.Networks.V4, l.Subnets.V4 = d.cfg.Networks.V4, own.Subnets.V4
	}
	if err := lastlease.Save(d.o.LeaseFile, l); err != nil {
		d.m.incError("lease_file")
		d.log.Error("cannot persist the lease; after a reboot this node may get another subnet", "err", err)
	}
}

// checkRegained says loudly when the node did not get the subnet(s) it held
// before (another node took them while it was down): containers that still
// have addresses from them are cut off. It logs an error, sets the
// vxlan6d_previous_subnet_lost metric and keeps /readyz failing until the
// daemon is restarted (then the new subnet is the previous one).
func (d *daemon) checkRegained(attrs lease.Attrs, l *lease.Lease) {
	var lost []string
	if attrs.Hint.V6 != nil && !ipnet.Same(attrs.Hint.V6, l.Subnets.V6) {
		lost = append(lost, attrs.Hint.V6.String())
	}
	if attrs.Hint.V4 != nil && l.Subnets.V4 != nil && !ipnet.Same(attrs.Hint.V4, l.Subnets.V4) {
		lost = append(lost, attrs.Hint.V4.String())
	}
	if len(lost) == 0 {
		return
	}
	d.m.incError("previous_subnet_lost")
	d.m.update(func(m *metrics) { m.lostSubnet = strings.Join(lost, ",") })
	d.log.Error("this node did NOT get its previous subnet back: another node holds it; containers here with addresses from it are cut off (recreate them; restart vxlan6d to clear this)",
		"previousSubnet", strings.Join(lost, ","), "subnetV6", netStr(l.Subnets.V6), "subnetV4", netStr(l.Subnets.V4))
}
