package daemon

import (
	"net"

	"github.com/vxlan6/vxlan6/overlay/firewall"
)

// syncForwardRules keeps (or, with --forward-rules=false, removes) the
// accept rules for the pod networks in the FORWARD path; see package
// firewall. Run once the device is up and on every periodic resync, since a
// firewall reload drops our rules. A failure is logged and counted, never
// fatal: on a host without a dropping firewall the data path works anyway.
// start is true for the call at start, the one that removes the rules of
// an earlier run when they are off now.
func (d *daemon) syncForwardRules(start bool) {
	if !d.o.ForwardRules {
		if start {
			if err := firewall.Remove(); err != nil {
				d.log.Warn("--forward-rules=false: remove forward rules", "chain", firewall.Chain, "err", err)
			}
		}
		return
	}
	nets := d.podNetworks()
	res, err := firewall.Ensure(nets)
	if err != nil {
		d.m.incError("forward_rules")
		d.log.Error("forward rules for the pod networks", "chain", firewall.Chain, "err", err)
	}
	if start && err == nil && len(res.Backends) == 0 {
		d.log.Info("no iptables/ip6tables installed: no forward rules to keep", "chain", firewall.Chain)
	}
	if len(res.Changed) > 0 {
		d.log.Info("forward rules written", "chain", firewall.Chain, "backends", res.Changed, "networks", nets)
	}
}

// podNetworks are the cluster's pod networks, the ones the forward and
// masquerade rules are written for.
func (d *daemon) podNetworks() []*net.IPNet {
	nets := []*net.IPNet{d.cfg.Networks.V6}
	if d.cfg.DualStack() {
		nets = append(nets, d.cfg.Networks.V4)
	}
	return nets
}
