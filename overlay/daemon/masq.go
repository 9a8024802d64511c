package daemon

import "github.com/vxlan6/vxlan6/overlay/egress"

// syncMasq keeps the pod egress masquerade (--ip-masq) in place, or removes
// it when turned off. Run at start and on every resync (a firewall reload
// drops the rules); a failure is logged and counted, never fatal: pod to
// pod traffic does not need it. start is true for the call at start, the
// only one that removes the rules of an earlier run when they are off now
// (nothing writes them while the daemon runs with --ip-masq=false, so a
// removal per resync would only cost two iptables execs each time).
func (d *daemon) syncMasq(start bool) {
	if !d.o.IPMasq {
		if !start {
			return
		}
		if changed, err := egress.Remove(); err != nil {
			d.m.incError("masquerade")
			d.log.Error("remove pod egress masquerade", "chain", egress.Chain, "err", err)
		} else if changed {
			d.log.Info("pod egress masquerade removed (--ip-masq=false)", "chain", egress.Chain)
		}
		return
	}
	changed, err := egress.Ensure(d.podNetworks())
	if err != nil {
		d.m.incError("masquerade")
		d.log.Error("pod egress masquerade", "chain", egress.Chain, "err", err)
		return
	}
	if changed {
		d.log.Info("pod egress masquerade in place", "chain", egress.Chain, "networkV6", netStr(d.cfg.Networks.V6), "networkV4", netStr(d.cfg.Networks.V4))
	}
}
