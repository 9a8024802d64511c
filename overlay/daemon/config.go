package daemon

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vxlan6/vxlan6/overlay/lease"
)

// onConfig follows a change of <prefix>/config while running. Backend.VNI
// and Backend.Port are followed live (switchBackend). The networks,
// Backend.MTU and Backend.FastPath are not: applying them would renumber pods or leave existing
// ones at the old MTU, so the daemon says what changed, is not ready, and
// keeps its data path until a restart applies them to new pods. An invalid
// or deleted config is refused the same way.
func (d *daemon) onConfig(ctx context.Context, c lease.ConfigChange) {
	if c.Err != nil {
		d.configProblem(fmt.Sprintf("%v; the config in use stays", c.Err))
		return
	}
	if diff := fixedDiff(d.cfg, c.Config); diff != "" {
		d.configProblem("network config changed (" + diff + "): not applied while running; restart vxlan6d to apply it to new pods")
		return
	}
	d.configProblem("")
	if c.Config.Backend.VNI != d.cfg.Backend.VNI || c.Config.Backend.Port != d.cfg.Backend.Port {
		d.switchBackend(ctx, c.Config)
	}
}

// configProblem records why the network config in etcd is not the one in
// use ("" once they agree again): an error in the log and /healthz not ready.
func (d *daemon) configProblem(why string) {
	var before string
	d.m.update(func(m *metrics) { before, m.configProblem = m.configProblem, why })
	switch {
	case why != "":
		d.m.incError("network_config")
		d.log.Error("network config not applied; data path kept", "err", why)
	case before != "":
		d.log.Info("network config in etcd agrees with the one in use again")
	}
}

// fixedDiff names the fields that cannot change while running, with old
// and new values ("" if none changed).
func fixedDiff(old, cur *lease.Config) string {
	var d []string
	add := func(field, a, b string) {
		if a != b {
			d = append(d, fmt.Sprintf("%s %s -> %s", field, a, b))
		}
	}
	add("EnableIPv6", strconv.FormatBool(old.EnableIPv6), strconv.FormatBool(cur.EnableIPv6))
	add("IPv6Network", netStr(old.Networks.V6), netStr(cur.Networks.V6))
	add("IPv6SubnetLen", strconv.Itoa(old.SubnetLen.V6), strconv.Itoa(cur.SubnetLen.V6))
	add("EnableIPv4", strconv.FormatBool(old.EnableIPv4), strconv.FormatBool(cur.EnableIPv4))
	add("Network", netStr(old.Networks.V4), netStr(cur.Networks.V4))
	add("SubnetLen", strconv.Itoa(old.SubnetLen.V4), strconv.Itoa(cur.SubnetLen.V4))
	add("Backend.MTU", strconv.Itoa(old.Backend.MTU), strconv.Itoa(cur.Backend.MTU))
	add("Backend.FastPath", old.Backend.FastPath, cur.Backend.FastPath)
	return strings.Join(d, ", ")
}

// switchBackend moves the data path to a new VNI or UDP port: a new device
// with the same VTEP, our peers taken off the old device (which is removed
// if it is vxlan6d's), then every peer programmed on the new one. The lease
// and the subnet file do not depend on either. On failure the old config
// and device stay in use and the daemon is not ready.
func (d *daemon) switchBackend(ctx context.Context, cfg *lease.Config) {
	start := time.Now()
	old, oldDev, c := d.cfg, d.dev, d.vtep.cur
	d.cfg = cfg
	dev, err := d.ensureDevice(c)
	if err != nil {
		d.cfg = old
		d.m.incError("device")
		d.configProblem(fmt.Sprintf("follow Backend VNI %d -> %d, port %d -> %d: %v",
			old.Backend.VNI, cfg.Backend.VNI, old.Backend.Port, cfg.Backend.Port, err))
		return
	}
	if oldDev.Name != dev.Name {
		// Our peers leave the old device first: the kernel refuses an
		// onlink route whose gateway another device still routes.
		if err := oldDev.Reconcile(nil); err != nil {
			d.log.Error("remove the peers from the old vxlan device", "device", oldDev.Name, "err", err)
		}
		if err := removeOwned(d.log, oldDev.Name); err != nil {
			d.log.Error("remove the old vxlan device", "err", err)
		}
	}
	d.replaceDevice(dev)
	d.reconcileDevice(d.peers, "reconcile peers on the new vxlan device")
	if err := d.sf.sync(d.subnetConfig(c)); err != nil {
		d.log.Error("rewrite subnet file", "err", err)
	}
	d.log.Info("backend changed: data path moved", "oldVNI", old.Backend.VNI, "vni", cfg.Backend.VNI, "oldPort", old.Backend.Port,
		"port", cfg.Backend.Port, "oldDevice", oldDev.Name, "device", dev.Name, "local", ipStr(dev.Local), "peers", d.peers.len(),
		"took", time.Since(start).Round(time.Millisecond).String())
}
