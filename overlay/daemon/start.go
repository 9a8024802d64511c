package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/vxlan6/vxlan6/internal/backoff"
	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/overlay/underlay"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/vtep"
	"github.com/vxlan6/vxlan6/overlay/vxlan"
	"github.com/vxlan6/vxlan6/subnetfile"
)

// run starts the daemon in order (VTEP, etcd, config, lease, device,
// keep-alive, peers, subnet file) and then runs the loop. The chosen VTEP
// travels through the parameters of each step.
func (d *daemon) run(ctx context.Context) error {
	stopPings := d.pingWhileStarting()
	defer stopPings()
	// An address named by flag is checked before etcd is contacted: a typo
	// must fail fast even while etcd is down, and it writes nothing.
	byFlag := d.o.FlagNamesAddress()
	var choice *vtep.Choice
	if byFlag {
		c, err := d.choose("")
		if err != nil {
			return err
		}
		choice = c
	}
	cli, err := d.connect(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	d.reg = lease.New(cli, d.o.Etcd.Prefix)
	d.reg.SetRenewHook(d.m.onRenew)

	annotation := ""
	if !byFlag {
		if choice, annotation, err = d.chooseByAnnotation(ctx); err != nil {
			return err
		}
	}
	if err := d.waitConfig(ctx, choice); err != nil {
		return err
	}
	l, attrs, err := d.acquireLease(ctx, choice)
	if err != nil {
		return err
	}
	if err := d.createDevice(choice); err != nil {
		return err
	}
	defer d.startFastPath(ctx)()
	d.ka = newKeepAlive(d.reg, d.cfg, d.o.LeaseTTL, d.log)
	d.ka.start(ctx, l, attrs)
	defer d.ka.stop()
	d.vtep = newMover(choice, annotation, byFlag, d.m)

	snap, err := d.resync(ctx, choice)
	if err != nil {
		return err
	}
	if err := d.sf.write(d.subnetConfig(choice)); err != nil {
		// The plugin cannot work without it; retrying will not fix a
		// read-only or missing directory by itself, so say so and stop.
		return err
	}
	d.log.Info("ready", "vtep", ipStr(choice.Public), "subnetV6", netStr(l.Subnets.V6), "subnetV4", netStr(l.Subnets.V4),
		"mtu", d.dev.MTU, "peers", d.peers.len(), "subnetFile", d.o.SubnetFile, "resyncInterval", d.o.ResyncInterval.String())
	d.ready(fmt.Sprintf("ready: VTEP %s, subnet %s, %d peers", ipStr(choice.Public), netStr(l.Subnets.V6), d.peers.len()))
	stopPings()
	return d.loop(ctx, snap)
}

// connect dials etcd (etcdclient retries until it answers or ctx ends).
func (d *daemon) connect(ctx context.Context) (*clientv3.Client, error) {
	d.log.Info("connecting to etcd", "endpoints", strings.Join(d.o.Etcd.Endpoints, ","), "prefix", d.o.Etcd.Prefix)
	d.status("waiting for etcd at " + strings.Join(d.o.Etcd.Endpoints, ","))
	cli, err := d.o.Etcd.Connect(ctx, d.log)
	if err != nil && ctx.Err() != nil {
		return nil, errStopped
	}
	return cli, err
}

// choose runs vtep.Choose with the flags and the annotation and logs the outcome.
func (d *daemon) choose(annotation string) (*vtep.Choice, error) {
	c, err := vtep.Choose(d.o.vtepOptions(annotation))
	if err != nil {
		return nil, fmt.Errorf("choose VTEP: %w", err)
	}
	d.logChoice(c)
	setVTEPMetrics(d.m, c)
	return c, nil
}

// chooseByAnnotation chooses the VTEP with the node's public-ipv6
// annotation (flags that do not name an address still apply).
func (d *daemon) chooseByAnnotation(ctx context.Context) (*vtep.Choice, string, error) {
	var ann map[string]string
	if err := d.retry(ctx, "read node annotations", func() (err error) {
		ann, err = d.annotations(ctx)
		return err
	}); err != nil {
		return nil, "", err
	}
	v := lease.PublicIPv6Annotation(ann)
	c, err := d.choose(v)
	return c, v, err
}

// waitConfig reads the network config, waiting for it to be written and,
// when invalid or overlapping the underlay of the VTEP choice c, for the
// operator to fix it rather than exit: every node would die at once over
// one bad write. WaitValidConfig retries reading; the underlay check (issue
// 8 §2: nothing is programmed while the network overlaps the underlay) is
// retried here.
func (d *daemon) waitConfig(ctx context.Context, c *vtep.Choice) error {
	d.log.Info("waiting for network config", "key", d.reg.ConfigKey())
	d.status("waiting for the network config at " + d.reg.ConfigKey())
	failed := func(attempt int, wait time.Duration, err error) {
		d.m.incError("read_network_config")
		if errors.Is(err, lease.ErrInvalidConfig) {
			err = fmt.Errorf("%w (fix it with 'vxlan6d config put')", err)
		}
		d.log.Error("read network config failed, retrying", "attempt", attempt, "retryIn", wait.String(), "err", err)
		d.status("waiting for a valid network config: " + err.Error())
	}
	var cfg *lease.Config
	err := backoff.Retry(ctx, backoff.New(500*time.Millisecond, 5*time.Second), func() (err error) {
		if cfg, err = d.reg.WaitValidConfig(ctx, failed); err != nil {
			return err
		}
		return underlay.CheckConfig(ctx, cfg, c.IfIndex, []net.IP{c.Public, c.Local}, d.o.Etcd.Endpoints)
	}, failed)
	if err != nil {
		return errStopped
	}
	d.cfg = cfg
	d.log.Info("network config", "networkV6", netStr(cfg.Networks.V6), "subnetLenV6", cfg.SubnetLen.V6,
		"enableIPv4", cfg.EnableIPv4, "networkV4", netStr(cfg.Networks.V4), "vni", cfg.Backend.VNI, "port", cfg.Backend.Port)
	return nil
}

// acquireLease gets this node's lease for the chosen VTEP, with the
// subnets of the previous subnet file as hints; it returns the lease and
// the attributes it was acquired with (the keep-alive re-acquires with them).
func (d *daemon) acquireLease(ctx context.Context, c *vtep.Choice) (*lease.Lease, lease.Attrs, error) {
	attrs, prevVTEP := d.withHints(attrsFor(c, d.o.NodeName))
	d.status("acquiring a subnet lease for VTEP " + ipStr(c.Public))
	var l *lease.Lease
	if err := d.retry(ctx, "acquire lease", func() (err error) {
		actx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
		defer cancel()
		l, err = d.acquire(actx, attrs, prevVTEP)
		return err
	}); err != nil {
		return nil, attrs, err
	}
	d.logLease("lease acquired", l)
	d.checkRegained(attrs, l)
	d.setLeaseMetrics(l)
	return l, attrs, nil
}

// attrsFor are the lease attributes of a VTEP choice.
func attrsFor(c *vtep.Choice, node string) lease.Attrs {
	return lease.Attrs{VTEP: c.Public, VtepMAC: vxlan.MACFor(c.Public), NodeName: node, PublicIPv4: c.PublicIPv4}
}

// withHints adds the subnets of the previous subnet file, if they fit the
// current network, so a restart after the lease expired gets them back; it
// also returns that file's VTEP (nil if none), which this node's lease may
// still be keyed by.
func (d *daemon) withHints(attrs lease.Attrs) (lease.Attrs, net.IP) {
	sf, err := subnetfile.Read(d.o.SubnetFile)
	if err != nil {
		return d.hintsFromLastLease(attrs, err)
	}
	if ipnet.Fits(d.cfg.Networks.V6, d.cfg.SubnetLen.V6, sf.Subnets.V6) {
		attrs.Hint.V6 = sf.Subnets.V6
	}
	if d.cfg.EnableIPv4 && ipnet.Fits(d.cfg.Networks.V4, d.cfg.SubnetLen.V4, sf.Subnets.V4) {
		attrs.Hint.V4 = sf.Subnets.V4
	}
	d.log.Info("hint from previous subnet file", "subnetV6", netStr(attrs.Hint.V6), "subnetV4", netStr(attrs.Hint.V4),
		"vtep", ipStr(sf.VTEP))
	return attrs, sf.VTEP
}

// acquire gets this node's lease at start. When the VTEP changed while the
// daemon was stopped (new flag, annotation or address) and this node's
// lease under the previous VTEP is still in etcd, it is moved to the new
// VTEP like a move while running: same subnet(s), so the containers here
// keep working addresses, and peers drop the old VTEP at once instead of
// tunnelling to it until its TTL runs out.
func (d *daemon) acquire(ctx context.Context, attrs lease.Attrs, prevVTEP net.IP) (*lease.Lease, error) {
	if prevVTEP != nil && !prevVTEP.Equal(attrs.VTEP) {
		old, err := d.ownLeaseAt(ctx, prevVTEP, attrs)
		if err != nil {
			return nil, err
		}
		if old != nil {
			d.log.Info("VTEP changed while stopped: moving this node's lease", "oldVTEP", ipStr(old.VTEP), "vtep", ipStr(attrs.VTEP),
				"subnetV6", netStr(old.Subnets.V6), "subnetV4", netStr(old.Subnets.V4))
			return d.reg.Move(ctx, d.cfg, old, attrs, d.o.LeaseTTL)
		}
	}
	return d.reg.Acquire(ctx, d.cfg, attrs, d.o.LeaseTTL)
}

// ownLeaseAt returns the lease keyed by vtep if it is this node's (same
// node name, the subnet(s) of the previous subnet file, i.e. the hints),
// else nil: a subnet file copied from another host must not make us take
// its lease.
func (d *daemon) ownLeaseAt(ctx context.Context, vtep net.IP, attrs lease.Attrs) (*lease.Lease, error) {
	snap, err := d.reg.List(ctx, d.cfg)
	if err != nil {
		return nil, fmt.Errorf("look for this node's lease under the previous VTEP %s: %w", vtep, err)
	}
	for i := range snap.Leases {
		l := &snap.Leases[i]
		if !l.VTEP.Equal(vtep) {
			continue
		}
		if l.NodeName != d.o.NodeName || !ipnet.Same(l.Subnets.V6, attrs.Hint.V6) ||
			(d.cfg.EnableIPv4 && !ipnet.Same(l.Subnets.V4, attrs.Hint.V4)) {
			d.log.Warn("lease under the previous VTEP is not this node's; leaving it", "vtep", ipStr(vtep),
				"node", l.NodeName, "subnetV6", netStr(l.Subnets.V6))
			return nil, nil
		}
		return l, nil
	}
	return nil, nil
}

// createDevice makes (or adopts) the VXLAN device for the chosen VTEP.
func (d *daemon) createDevice(c *vtep.Choice) error {
	dev, err := d.ensureDevice(c)
	if err != nil {
		d.m.incError("device")
		return fmt.Errorf("vxlan device for VTEP %s on %s: %w", c.Local, c.IfName, err)
	}
	// A VNI change while the daemon was stopped left the old device.
	removeStale(d.log, dev.Name)
	d.replaceDevice(dev)
	d.log.Info("vxlan device ready", "name", dev.Name, "index", dev.Index, "mtu", dev.MTU, "mac", dev.MAC.String(), "local", ipStr(dev.Local))
	d.syncForwardRules(true)
	d.syncMasq(true)
	return nil
}

// deviceConfig is the VXLAN device for a VTEP choice under the network config.
func (d *daemon) deviceConfig(c *vtep.Choice) vxlan.DeviceConfig {
	return vxlan.DeviceConfig{
		VNI: d.cfg.Backend.VNI, Port: d.cfg.Backend.Port, Local: c.Local,
		UnderlayIndex: c.IfIndex, UnderlayMTU: c.MTU, MTU: d.cfg.Backend.MTU, MAC: vxlan.MACFor(c.Public),
		IPv4: d.cfg.EnableIPv4,
	}
}

// annotations reads the node's annotations, bounded so that the loop never
// hangs on an unreachable etcd.
func (d *daemon) annotations(ctx context.Context) (map[string]string, error) {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return d.reg.NodeAnnotations(actx, d.o.NodeName)
}

func (d *daemon) logChoice(c *vtep.Choice) {
	d.log.Info("VTEP chosen", "vtep", ipStr(c.Public), "local", ipStr(c.Local), "interface", c.IfName,
		"source", c.Source, "operatorChosen", c.OperatorChosen, "underlayMTU", c.MTU, "publicIPv4", ipStr(c.PublicIPv4))
}

func setVTEPMetrics(m *metrics, c *vtep.Choice) {
	m.update(func(m *metrics) {
		m.vtepAddr, m.vtepLocal, m.vtepSource, m.vtepIface, m.operatorChosen = ipStr(c.Public), ipStr(c.Local), c.Source, c.IfName, c.OperatorChosen
	})
}
