package daemon

import (
	"errors"
	"strings"

	"github.com/vxlan6/vxlan6/overlay/lastlease"
)

// hintsFromLastLease takes the hints from the lease file under /var/lib
// when the subnet file (in /run) gave none: after a reboot, or after the
// node was down longer than its lease TTL, the node asks for the subnet(s)
// its containers had. noSubnetFile is why the subnet file did not help.
func (d *daemon) hintsFromLastLease(noSubnetFile error) {
	if d.o.LeaseFile == "" {
		d.log.Debug("no usable previous subnet file and no lease file, no hint", "err", noSubnetFile)
		return
	}
	last, err := lastlease.Load(d.o.LeaseFile)
	if err != nil {
		level := d.log.Warn
		if errors.Is(err, lastlease.ErrNone) {
			level = d.log.Debug
		}
		level("no usable previous subnet file or lease file, no hint", "subnetFileErr", noSubnetFile, "err", err)
		return
	}
	if last.NodeName != d.o.NodeName {
		d.log.Warn("lease file is another node's; ignoring it", "path", d.o.LeaseFile, "node", last.NodeName)
		return
	}
	if fits(d.cfg.IPv6Network, d.cfg.IPv6SubnetLen, last.IPv6Subnet) {
		d.attrs.HintIPv6 = last.IPv6Subnet
	}
	if d.cfg.EnableIPv4 && fits(d.cfg.Network, d.cfg.SubnetLen, last.Subnet) {
		d.attrs.HintIPv4 = last.Subnet
	}
	d.prevVTEP = last.VTEP
	d.log.Info("hint from the lease file", "path", d.o.LeaseFile, "subnetV6", netStr(d.attrs.HintIPv6),
		"subnetV4", netStr(d.attrs.HintIPv4), "vtep", ipStr(last.VTEP))
}

// saveLastLease persists the lease next to every subnet file write.
func (d *daemon) saveLastLease() {
	if d.o.LeaseFile == "" || d.lease == nil {
		return
	}
	l := &lastlease.Last{NodeName: d.o.NodeName, VTEP: d.lease.VTEP, IPv6Network: d.cfg.IPv6Network, IPv6Subnet: d.lease.IPv6Subnet}
	if d.cfg.DualStack() && d.lease.IPv4Subnet != nil {
		l.Network, l.Subnet = d.cfg.Network, d.lease.IPv4Subnet
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
func (d *daemon) checkRegained() {
	var lost []string
	if d.attrs.HintIPv6 != nil && !sameNet(d.attrs.HintIPv6, d.lease.IPv6Subnet) {
		lost = append(lost, d.attrs.HintIPv6.String())
	}
	if d.attrs.HintIPv4 != nil && d.lease.IPv4Subnet != nil && !sameNet(d.attrs.HintIPv4, d.lease.IPv4Subnet) {
		lost = append(lost, d.attrs.HintIPv4.String())
	}
	if len(lost) == 0 {
		return
	}
	d.m.incError("previous_subnet_lost")
	d.m.update(func(m *metrics) { m.lostSubnet = strings.Join(lost, ",") })
	d.log.Error("this node did NOT get its previous subnet back: another node holds it; containers here with addresses from it are cut off (recreate them; restart vxlan6d to clear this)",
		"previousSubnet", strings.Join(lost, ","), "subnetV6", netStr(d.lease.IPv6Subnet), "subnetV4", netStr(d.lease.IPv4Subnet))
}
