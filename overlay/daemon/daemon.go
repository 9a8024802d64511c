// Package daemon is vxlan6d: it wires vtep (which address), lease (etcd) and
// vxlan (the data path) together and keeps the peers in step with etcd.
//
// The run loop follows flannel's main + pkg/backend/vxlan with three
// deliberate differences: the operator's VTEP choice is applied (or the
// daemon refuses to start, before writing to etcd); a lost lease is
// re-acquired, never a reason to exit; and stopping the daemon leaves the
// device, its peers and the lease in place, so a restart does not disturb
// traffic.
//
// All data-path changes happen on one goroutine (the loop in Run), so watch
// events, resyncs, lease changes and VTEP moves are applied in order.
package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/backoff"
	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/underlay"
	"github.com/vxlan6/vxlan6/overlay/vtep"
	"github.com/vxlan6/vxlan6/overlay/vxlan"
	"github.com/vxlan6/vxlan6/subnetfile"
)

type daemon struct {
	o   Options
	log *slog.Logger
	m   *metrics
	cli *clientv3.Client
	reg *lease.Registry
	cfg *lease.Config

	choice     *vtep.Choice
	annotation string // the public-ipv6 annotation the current choice used
	attrs      lease.Attrs
	// prevVTEP is the VTEP of the previous subnet file (nil if none): the
	// one this node's lease may still be keyed by after a restart.
	prevVTEP net.IP
	lease    *lease.Lease
	dev      *vxlan.Device
	// peers are what is programmed, keyed by VTEP string. Conflicts
	// between leases (a shared subnet or MAC) need no bookkeeping here:
	// lease.List/Watch are the arbiter (the first holder, by
	// CreateRevision, wins) and deliver no two leases sharing either.
	peers map[string]vxlan.Peer

	kaCancel context.CancelFunc
	kaDone   chan struct{}
	leaseCh  chan *lease.Lease

	// pendingMove: the last VTEP move failed and is retried.
	pendingMove bool
	// healSoon: a data-path write failed; the loop resyncs after
	// healRetry instead of waiting for the next resync interval.
	healSoon bool
	// held: another node holds our subnet (see heldby.go).
	held heldState
}

const (
	// healRetry is how soon a failed peer update or reconcile is retried.
	healRetry = 5 * time.Second
	// healListTimeout bounds the periodic List: the loop must not stall
	// on an unreachable etcd.
	healListTimeout = 5 * time.Second
)

// Run is the daemon. It returns nil when ctx ends (leaving the data path
// and the lease in place), or an error that stops the daemon before it is
// ready; an invalid VTEP choice (flag or annotation) is such an error, and
// nothing has been written to etcd then.
func Run(ctx context.Context, o Options, log *slog.Logger) error {
	if err := o.Validate(); err != nil {
		return err
	}
	// The daemon allocates in bursts (a full snapshot at start and on
	// resync) and little in between, so a tighter GC costs next to no CPU
	// and keeps the heap, hence RSS, near the live set on big clusters.
	// GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	d := &daemon{
		o: o, log: log, m: newMetrics(o.LeaseTTL),
		peers:   map[string]vxlan.Peer{},
		leaseCh: make(chan *lease.Lease, 4),
	}
	srvCtx, stopSrv := context.WithCancel(context.Background())
	defer stopSrv()
	if err := d.m.startServers(srvCtx, o.MetricsAddr, o.HealthzAddr, log); err != nil {
		return err
	}

	// An address named by flag is checked before etcd is contacted: a typo
	// must fail fast even while etcd is down, and it writes nothing.
	flagChoice := o.FlagNamesAddress()
	if flagChoice {
		if err := d.choose(""); err != nil {
			return err
		}
	}

	log.Info("connecting to etcd", "endpoints", strings.Join(o.Etcd.Endpoints, ","), "prefix", o.Etcd.Prefix)
	cli, err := o.Etcd.Connect(ctx, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	d.cli = cli
	defer cli.Close()
	d.reg = lease.New(cli, o.Etcd.Prefix)

	if !flagChoice {
		var ann map[string]string
		if !d.retry(ctx, "read node annotations", func() (err error) {
			ann, err = d.annotations(ctx)
			return err
		}) {
			return nil
		}
		if err := d.choose(lease.PublicIPv6Annotation(ann)); err != nil {
			return err
		}
	}

	log.Info("waiting for network config", "key", d.reg.ConfigKey())
	if !d.retry(ctx, "read network config", func() (err error) {
		d.cfg, err = d.reg.WaitConfig(ctx)
		if err == nil { // issue 8 §2: nothing is programmed while the network overlaps the underlay
			err = underlay.CheckConfig(ctx, d.cfg, d.choice.IfIndex, []net.IP{d.choice.Public, d.choice.Local}, o.Etcd.Endpoints)
		}
		if errors.Is(err, lease.ErrInvalidConfig) {
			// Wait for the operator to fix it rather than exit: every node
			// would die at once over one bad write. The error names the key.
			err = fmt.Errorf("%w (fix it with 'vxlan6d config put')", err)
		}
		return err
	}) {
		return nil
	}
	log.Info("network config", "ipv6Network", netStr(d.cfg.IPv6Network), "ipv6SubnetLen", d.cfg.IPv6SubnetLen,
		"ipv4Enabled", d.cfg.EnableIPv4, "ipv4Network", netStr(d.cfg.Network), "vni", d.cfg.Backend.VNI, "port", d.cfg.Backend.Port)

	d.attrs = d.attrsFor(d.choice)
	d.addHints()
	if !d.retry(ctx, "acquire lease", func() (err error) {
		actx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
		defer cancel()
		d.lease, err = d.acquire(actx)
		return err
	}) {
		return nil
	}
	d.logLease("lease acquired", d.lease)
	d.checkRegained()
	d.m.update(func(m *metrics) { m.haveLease = true })
	d.setLeaseMetrics()

	dev, err := vxlan.EnsureDevice(d.deviceConfig(d.choice))
	if err != nil {
		d.m.incError("device")
		return fmt.Errorf("vxlan device for VTEP %s on %s: %w", d.choice.Local, d.choice.IfName, err)
	}
	d.dev = dev
	d.m.update(func(m *metrics) { m.haveDevice = true })
	log.Info("vxlan device ready", "name", dev.Name, "index", dev.Index, "mtu", dev.MTU, "mac", dev.MAC.String(), "local", ipStr(dev.Local))
	d.syncForwardRules(true)

	d.startKeepAlive(ctx)
	defer d.stopKeepAlive()

	snap, ok := d.resync(ctx)
	if !ok {
		return nil
	}
	if err := d.writeSubnetFile(); err != nil {
		// The plugin cannot work without it; retrying will not fix a
		// read-only or missing directory by itself, so say so and stop.
		return err
	}
	log.Info("ready", "vtep", ipStr(d.choice.Public), "subnetV6", netStr(d.lease.IPv6Subnet), "subnetV4", netStr(d.lease.IPv4Subnet),
		"mtu", d.dev.MTU, "peers", len(d.peers), "subnetFile", o.SubnetFile, "resyncInterval", o.ResyncInterval.String())

	return d.loop(ctx, snap, flagChoice)
}

// loop watches leases from snap (what the last resync programmed) and
// applies every change on this one goroutine.
func (d *daemon) loop(ctx context.Context, snap *lease.Snapshot, flagChoice bool) error {
	wctx, wcancel := context.WithCancel(ctx)
	events := d.reg.WatchSnapshot(wctx, d.cfg, snap)
	snap = nil

	// One context for every node watch: a watch is only restarted after its
	// channel closed, so there is never an older one left to cancel.
	nctx, ncancel := context.WithCancel(ctx)
	defer ncancel()
	nodeCh := d.reg.WatchNode(nctx, d.o.NodeName)
	// The annotation may have changed between the first read and the watch.
	if !flagChoice {
		if ann, err := d.annotations(ctx); err == nil {
			d.onAnnotations(ctx, ann)
		}
	}
	// restartWatch stops the lease watch, reconciles against a fresh
	// snapshot and watches again from its revision.
	restartWatch := func() {
		wcancel()
		snap, ok := d.resync(ctx)
		if !ok {
			events = nil // ctx ended; the next round returns
			return
		}
		wctx, wcancel = context.WithCancel(ctx)
		events = d.reg.WatchSnapshot(wctx, d.cfg, snap)
	}
	var nodeRetry <-chan time.Time
	moveRetry := time.NewTicker(5 * time.Second)
	defer moveRetry.Stop()

	// One timer drives the periodic self-heal and the early retry after a
	// failed data-path write; it runs on this goroutine like every other
	// data-path change.
	interval := d.o.ResyncInterval
	healT := time.NewTimer(interval)
	if interval == 0 {
		healT.Stop()
	}
	defer healT.Stop()
	retryArmed := false

	for {
		if d.healSoon && !retryArmed {
			healT.Reset(healRetry)
			retryArmed = true
		}
		select {
		case <-healT.C:
			retryArmed = false
			if d.heal(ctx) {
				if interval > 0 {
					healT.Reset(interval)
				}
				continue
			}
			// etcd is away: try again a full interval later (not after
			// healRetry), which keeps the warning to one per interval.
			next := interval
			if next == 0 {
				next = DefaultResyncInterval
			}
			healT.Reset(next)
			retryArmed = d.healSoon

		case <-ctx.Done():
			wcancel()
			d.log.Info("stopping; the vxlan device, its peers and the lease stay in place")
			return nil

		case ev, ok := <-events:
			if ok && ev.Type != lease.Resync {
				d.apply(ev)
				continue
			}
			if ok {
				d.countEvent("resync")
				d.log.Info("lease watch reset, resyncing")
			} else if ctx.Err() == nil {
				d.countEvent("resync")
				d.log.Warn("lease watch ended unexpectedly, resyncing")
			}
			restartWatch()

		case l := <-d.leaseCh:
			if d.onLeaseChange(l) {
				// Leases skipped as overlapping our old subnet may be
				// valid now: look at everything again.
				restartWatch()
			}

		case ann, ok := <-nodeCh:
			if !ok {
				nodeCh = nil
				if ctx.Err() == nil {
					nodeRetry = time.After(time.Second)
				}
				continue
			}
			if flagChoice {
				if v := lease.PublicIPv6Annotation(ann); v != "" {
					d.log.Debug("public-ipv6 annotation ignored: a flag names the VTEP", "annotation", v)
				}
				continue
			}
			d.onAnnotations(ctx, ann)

		case <-nodeRetry:
			nodeRetry = nil
			nodeCh = d.reg.WatchNode(nctx, d.o.NodeName)
			if !flagChoice {
				if ann, err := d.annotations(ctx); err == nil {
					d.onAnnotations(ctx, ann)
				}
			}

		case <-moveRetry.C:
			if d.pendingMove {
				if ann, err := d.annotations(ctx); err == nil {
					d.annotation = "\x00" // force a new attempt
					d.onAnnotations(ctx, ann)
				}
			}
		}
	}
}

// annotations reads the node's annotations, bounded so that the loop never
// hangs on an unreachable etcd.
func (d *daemon) annotations(ctx context.Context) (map[string]string, error) {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return d.reg.NodeAnnotations(actx, d.o.NodeName)
}

// choose runs vtep.Choose with the flags and the annotation and logs the outcome.
func (d *daemon) choose(annotation string) error {
	c, err := vtep.Choose(d.o.vtepOptions(annotation))
	if err != nil {
		return fmt.Errorf("choose VTEP: %w", err)
	}
	d.choice, d.annotation = c, annotation
	d.logChoice(c)
	d.setVTEPMetrics()
	return nil
}

func (d *daemon) logChoice(c *vtep.Choice) {
	d.log.Info("VTEP chosen", "vtep", ipStr(c.Public), "local", ipStr(c.Local), "interface", c.IfName,
		"source", c.Source, "operatorChosen", c.OperatorChosen, "underlayMTU", c.MTU, "publicIPv4", ipStr(c.PublicIPv4))
}

func (d *daemon) setVTEPMetrics() {
	c := d.choice
	d.m.update(func(m *metrics) {
		m.vtepAddr, m.vtepLocal, m.vtepSource, m.vtepIface, m.operatorChosen = ipStr(c.Public), ipStr(c.Local), c.Source, c.IfName, c.OperatorChosen
	})
}

func (d *daemon) setLeaseMetrics() {
	l := d.lease
	d.m.update(func(m *metrics) { m.leaseSubnetV6, m.leaseSubnetV4 = netStr(l.IPv6Subnet), netStr(l.IPv4Subnet) })
}

func (d *daemon) logLease(msg string, l *lease.Lease) {
	d.log.Info(msg, "vtep", ipStr(l.VTEP), "subnetV6", netStr(l.IPv6Subnet), "subnetV4", netStr(l.IPv4Subnet),
		"mac", l.VtepMAC.String(), "node", l.NodeName, "reserved", l.Reserved, "ttl", d.o.LeaseTTL.String())
}

func (d *daemon) attrsFor(c *vtep.Choice) lease.Attrs {
	return lease.Attrs{VTEP: c.Public, VtepMAC: vxlan.MACFor(c.Public), NodeName: d.o.NodeName, PublicIPv4: c.PublicIPv4}
}

// addHints takes the subnets of the previous subnet file, if they fit the
// current network, so a restart after the lease expired gets them back.
func (d *daemon) addHints() {
	sf, err := subnetfile.Read(d.o.SubnetFile)
	if err != nil {
		d.hintsFromLastLease(err)
		return
	}
	if fits(d.cfg.IPv6Network, d.cfg.IPv6SubnetLen, sf.SubnetV6) {
		d.attrs.HintIPv6 = sf.SubnetV6
	}
	if d.cfg.EnableIPv4 && fits(d.cfg.Network, d.cfg.SubnetLen, sf.SubnetV4) {
		d.attrs.HintIPv4 = sf.SubnetV4
	}
	d.prevVTEP = sf.VTEP
	d.log.Info("hint from previous subnet file", "subnetV6", netStr(d.attrs.HintIPv6), "subnetV4", netStr(d.attrs.HintIPv4),
		"vtep", ipStr(sf.VTEP))
}

// acquire gets this node's lease at start. When the VTEP changed while the
// daemon was stopped (new flag, annotation or address) and this node's
// lease under the previous VTEP is still in etcd, it is moved to the new
// VTEP like a move while running: same subnet(s), so the containers here
// keep working addresses, and peers drop the old VTEP at once instead of
// tunnelling to it until its TTL runs out.
func (d *daemon) acquire(ctx context.Context) (*lease.Lease, error) {
	if d.prevVTEP != nil && !d.prevVTEP.Equal(d.attrs.VTEP) {
		old, err := d.ownLeaseAt(ctx, d.prevVTEP)
		if err != nil {
			return nil, err
		}
		if old != nil {
			d.log.Info("VTEP changed while stopped: moving this node's lease", "oldVTEP", ipStr(old.VTEP), "vtep", ipStr(d.attrs.VTEP),
				"subnetV6", netStr(old.IPv6Subnet), "subnetV4", netStr(old.IPv4Subnet))
			return d.reg.Move(ctx, d.cfg, old, d.attrs, d.o.LeaseTTL)
		}
	}
	return d.reg.Acquire(ctx, d.cfg, d.attrs, d.o.LeaseTTL)
}

// ownLeaseAt returns the lease keyed by vtep if it is this node's (same
// node name, the subnet(s) of the previous subnet file), else nil: a
// subnet file copied from another host must not make us take its lease.
func (d *daemon) ownLeaseAt(ctx context.Context, vtep net.IP) (*lease.Lease, error) {
	snap, err := d.reg.List(ctx, d.cfg)
	if err != nil {
		return nil, fmt.Errorf("look for this node's lease under the previous VTEP %s: %w", vtep, err)
	}
	for i := range snap.Leases {
		l := &snap.Leases[i]
		if !l.VTEP.Equal(vtep) {
			continue
		}
		if l.NodeName != d.o.NodeName || !sameNet(l.IPv6Subnet, d.attrs.HintIPv6) ||
			(d.cfg.EnableIPv4 && !sameNet(l.IPv4Subnet, d.attrs.HintIPv4)) {
			d.log.Warn("lease under the previous VTEP is not this node's; leaving it", "vtep", ipStr(vtep),
				"node", l.NodeName, "subnetV6", netStr(l.IPv6Subnet))
			return nil, nil
		}
		return l, nil
	}
	return nil, nil
}

func (d *daemon) deviceConfig(c *vtep.Choice) vxlan.DeviceConfig {
	return vxlan.DeviceConfig{
		VNI: d.cfg.Backend.VNI, Port: d.cfg.Backend.Port, Local: c.Local,
		UnderlayIndex: c.IfIndex, UnderlayMTU: c.MTU, MTU: d.cfg.Backend.MTU, MAC: vxlan.MACFor(c.Public),
		IPv4: d.cfg.EnableIPv4,
	}
}

func (d *daemon) subnetConfig() *subnetfile.Config {
	sf := &subnetfile.Config{
		NetworkV6: d.cfg.IPv6Network, SubnetV6: d.lease.IPv6Subnet,
		MTU: d.dev.MTU, VTEP: d.choice.Public, HeldBy: d.held.by,
	}
	if d.cfg.EnableIPv4 && d.lease.IPv4Subnet != nil {
		sf.NetworkV4, sf.SubnetV4 = d.cfg.Network, d.lease.IPv4Subnet
	}
	return sf
}

// syncSubnetFile rewrites the subnet file only if its content would
// change (deleted, edited, or the device MTU changed): an unchanged file
// keeps its mtime and plugins never race a rename for nothing.
func (d *daemon) syncSubnetFile() error {
	if cur, err := os.ReadFile(d.o.SubnetFile); err == nil && bytes.Equal(cur, d.subnetConfig().Marshal()) {
		return nil
	}
	d.log.Warn("subnet file missing or out of date, rewriting it", "path", d.o.SubnetFile)
	return d.writeSubnetFile()
}

func (d *daemon) writeSubnetFile() error {
	sf := d.subnetConfig()
	if err := subnetfile.Write(d.o.SubnetFile, sf); err != nil {
		d.m.incError("subnet_file")
		return err
	}
	d.m.update(func(m *metrics) { m.haveSubnetFile = true })
	d.saveLastLease()
	d.log.Info("subnet file written", "path", d.o.SubnetFile, "subnetV6", netStr(sf.SubnetV6), "subnetV4", netStr(sf.SubnetV4), "mtu", sf.MTU, "vtep", ipStr(sf.VTEP))
	return nil
}

// retry runs f until it succeeds or ctx ends (false), logging each failure.
func (d *daemon) retry(ctx context.Context, what string, f func() error) bool {
	// At most 5s apart: after an etcd outage the resync should not lag.
	b := backoff.New(500*time.Millisecond, 5*time.Second)
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		op := strings.ReplaceAll(what, " ", "_")
		d.m.incError(op)
		wait := b.Next()
		d.log.Error(what+" failed, retrying", "attempt", attempt, "retryIn", wait.String(), "err", err)
		if backoff.SleepCtx(ctx, wait) != nil {
			return false
		}
	}
}

// --- lease keep-alive -------------------------------------------------------

func (d *daemon) startKeepAlive(ctx context.Context) {
	kctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	d.kaCancel, d.kaDone = cancel, done
	l, attrs := *d.lease, d.attrs
	go func() {
		defer close(done)
		d.reg.KeepAlive(kctx, d.cfg, attrs, &l, d.o.LeaseTTL, func(nl *lease.Lease) {
			select {
			case d.leaseCh <- nl:
			case <-kctx.Done():
			}
		})
	}()
}

func (d *daemon) stopKeepAlive() {
	if d.kaCancel == nil {
		return
	}
	d.kaCancel()
	select {
	case <-d.kaDone:
	case <-time.After(5 * time.Second):
		d.log.Warn("lease keep-alive did not stop within 5s")
	}
	d.kaCancel = nil
}

// onLeaseChange handles a lease KeepAlive re-acquired after losing it. It
// reports whether the subnets changed; the caller then reconciles against a
// fresh List, which also drops a peer still routed to our new subnet
// (peerFor refuses it).
func (d *daemon) onLeaseChange(nl *lease.Lease) bool {
	if nl == nil || !nl.VTEP.Equal(d.attrs.VTEP) {
		return false // from a keep-alive of a VTEP we have moved away from
	}
	old := d.lease
	d.lease = nl
	d.setLeaseMetrics()
	d.logLease("lease re-acquired", nl)
	if sameNet(old.IPv6Subnet, nl.IPv6Subnet) && sameNet(old.IPv4Subnet, nl.IPv4Subnet) {
		return false
	}
	d.held = heldState{} // a new subnet: the next resync looks again
	d.log.Warn("subnet changed after re-acquiring the lease; existing containers keep their old addresses",
		"oldSubnetV6", netStr(old.IPv6Subnet), "subnetV6", netStr(nl.IPv6Subnet), "oldSubnetV4", netStr(old.IPv4Subnet), "subnetV4", netStr(nl.IPv4Subnet))
	if err := d.writeSubnetFile(); err != nil {
		d.log.Error("rewrite subnet file", "err", err)
	}
	return true
}

// --- peers -------------------------------------------------------------------

// peerFor turns a lease into a peer, or says why it is not one.
// lease.List/Watch deliver only well-formed records inside the network with
// no subnet or MAC shared between them, and vxlan.ValidatePeer is the data
// path's own check; what neither knows is this node, which lease.Self.Judge
// checks.
func (d *daemon) peerFor(l *lease.Lease) (vxlan.Peer, string) {
	p := vxlan.Peer{VTEP: l.VTEP, MAC: l.VtepMAC, IPv6Subnet: l.IPv6Subnet, IPv4Subnet: l.IPv4Subnet}
	if err := vxlan.ValidatePeer(p); err != nil {
		return p, err.Error()
	}
	return p, d.self().Judge(l)
}

// resync Lists every lease and reconciles the device to it (never flushing
// what is already right). It retries while etcd is away, leaving the data
// path alone meanwhile. It returns the snapshot (its leases consumed) for
// the lease watch to start from, or false if ctx ended.
func (d *daemon) resync(ctx context.Context) (*lease.Snapshot, bool) {
	var snap *lease.Snapshot
	if !d.retry(ctx, "list leases", func() (err error) {
		lctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
		defer cancel()
		snap, err = d.reg.List(lctx, d.cfg)
		return err
	}) {
		return nil, false
	}
	d.reconcileTo(snap, false)
	return snap, true
}

// reconcileTo makes the peers exactly the valid leases of snap. quiet logs
// at debug level when the bookkeeping did not change (the periodic resync).
func (d *daemon) reconcileTo(snap *lease.Snapshot, quiet bool) {
	peers := make(map[string]vxlan.Peer, len(snap.Leases))
	skipped := 0
	for i := range snap.Leases {
		l := &snap.Leases[i]
		p, why := d.peerFor(l)
		if why != "" {
			if !d.isOwn(l) {
				skipped++
				if !quiet {
					d.log.Warn("lease ignored", "vtep", ipStr(l.VTEP), "node", l.NodeName, "subnetV6", netStr(l.IPv6Subnet), "reason", why)
				}
			}
			continue
		}
		k := p.VTEP.String()
		peers[k] = p
	}
	list := make([]vxlan.Peer, 0, len(peers))
	for _, p := range peers {
		list = append(list, p)
	}
	start := time.Now()
	if err := d.dev.Reconcile(list); err != nil {
		// Some entries may be missing; the loop retries soon. Keep the
		// ones we know about so later events diff against reality-ish.
		d.dataPathFailed("reconcile")
		d.log.Error("reconcile peers", "device", d.dev.Name, "peers", len(list), "err", err)
	}
	added, removed, changed := diffPeers(d.peers, peers)
	rev, skippedTotal := snap.Revision, snap.Skipped+skipped
	d.peers = peers
	d.m.update(func(m *metrics) { m.reconciles++; m.peers = len(peers) })
	// The snapshot's leases (thousands of records) and the five kernel
	// dumps are garbage now (the caller keeps the snapshot only to start
	// the lease watch from); hand them back to the OS so RSS reflects the
	// steady state.
	d.checkHeld(snap.Leases)
	snap.Leases = nil
	d.releaseMemory()
	level := slog.LevelInfo
	if quiet && added+removed+changed == 0 {
		level = slog.LevelDebug
	}
	d.log.Log(context.Background(), level, "peers reconciled", "revision", rev, "peers", len(peers), "added", added, "removed", removed,
		"changed", changed, "skipped", skippedTotal, "took", time.Since(start).Round(time.Millisecond).String())
}

// dataPathFailed counts a failed data-path write and asks the loop to
// reconcile again soon: the watch alone would never retry it.
func (d *daemon) dataPathFailed(op string) {
	d.m.incError(op)
	d.healSoon = true
}

// heal is the periodic self-heal: a fresh etcd snapshot, then the device
// (recreated if someone deleted it or its underlay came back with a new
// index), the peers by diff, and the subnet file if it would change. While
// etcd cannot be read nothing is touched: an outage must never flush peers.
// It reports whether etcd was read.
func (d *daemon) heal(ctx context.Context) bool {
	lctx, cancel := context.WithTimeout(ctx, healListTimeout)
	snap, err := d.reg.List(lctx, d.cfg)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			d.m.incError("periodic_resync")
			d.log.Warn("periodic resync: cannot list leases; data path left as it is", "err", err)
		}
		return false
	}
	d.healSoon = false
	if d.pendingMove {
		// Lease and device disagree until the move retry succeeds, and it
		// reconciles everything itself then.
		d.log.Debug("periodic resync skipped: a VTEP move is pending")
		return true
	}
	d.m.update(func(m *metrics) { m.periodicResyncs++ })
	d.refreshUnderlay()
	dev, err := vxlan.EnsureDevice(d.deviceConfig(d.choice))
	if err != nil {
		d.dataPathFailed("device")
		d.log.Error("periodic resync: vxlan device", "vtep", ipStr(d.choice.Local), "underlay", d.choice.IfName, "err", err)
		return true
	}
	if dev.Index != d.dev.Index {
		d.log.Warn("vxlan device was gone and has been recreated; programming every peer again",
			"name", dev.Name, "oldIndex", d.dev.Index, "index", dev.Index, "mtu", dev.MTU)
	}
	d.dev.Close()
	d.dev = dev
	d.reconcileTo(snap, true)
	d.syncForwardRules(false)
	if err := d.syncSubnetFile(); err != nil {
		d.healSoon = true
		d.log.Error("periodic resync: subnet file", "err", err)
	}
	return true
}

// refreshUnderlay follows an underlay that was deleted and created again
// (new ifindex, maybe a new MTU) while keeping the same VTEP addresses; a
// choice that now yields another address is a VTEP move, which is the
// annotation handling's business, not the self-heal's.
func (d *daemon) refreshUnderlay() {
	// vtep.Choose logs its choice and may wait for DAD: only ask it when
	// the underlay we use is really gone or renumbered.
	l, err := netlinksafe.LinkByName(d.choice.IfName)
	if err == nil && l.Attrs().Index == d.choice.IfIndex {
		return
	}
	if err == nil {
		d.keepRAOnNewUnderlay(l)
	}
	c, err := vtep.Choose(d.o.vtepOptions(d.annotation))
	if err != nil || !c.Public.Equal(d.choice.Public) || !c.Local.Equal(d.choice.Local) {
		return
	}
	if c.IfIndex != d.choice.IfIndex || c.MTU != d.choice.MTU || c.IfName != d.choice.IfName {
		d.log.Warn("underlay interface changed", "vtep", ipStr(c.Local), "from", d.choice.IfName, "fromIndex", d.choice.IfIndex,
			"to", c.IfName, "index", c.IfIndex, "mtu", c.MTU)
		d.choice = c
		d.setVTEPMetrics()
	}
}

// releaseMemory returns freed heap to the OS at once instead of letting the
// scavenger do it over minutes, so RSS shows the steady state.
func (d *daemon) releaseMemory() {
	debug.FreeOSMemory()
	if d.log.Enabled(context.Background(), slog.LevelDebug) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		d.log.Debug("memory released", "heapInuseKiB", ms.HeapInuse>>10, "heapReleasedKiB", ms.HeapReleased>>10,
			"stackKiB", ms.StackInuse>>10, "sysKiB", ms.Sys>>10, "goroutines", runtime.NumGoroutine())
	}
}

// isOwn: our own lease shows up in every List and Watch; it is not a peer
// and not worth a warning.
func (d *daemon) isOwn(l *lease.Lease) bool {
	return d.choice != nil && l.VTEP.Equal(d.choice.Public) && l.NodeName == d.o.NodeName
}

func diffPeers(old, cur map[string]vxlan.Peer) (added, removed, changed int) {
	for k, p := range cur {
		if o, ok := old[k]; !ok {
			added++
		} else if !samePeer(o, p) {
			changed++
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			removed++
		}
	}
	return
}

// apply handles one watch event.
func (d *daemon) apply(ev lease.Event) {
	d.checkHeldEvent(ev)
	l := &ev.Lease
	switch ev.Type {
	case lease.Added:
		d.countEvent("added")
		p, why := d.peerFor(l)
		k := ipStr(l.VTEP)
		if why != "" {
			if !d.isOwn(l) {
				d.log.Warn("lease ignored", "vtep", ipStr(l.VTEP), "node", l.NodeName, "subnetV6", netStr(l.IPv6Subnet), "reason", why)
			}
			// A peer whose record turned bad must not stay programmed.
			if old, ok := d.peers[k]; ok {
				d.removePeer(old, "its lease is no longer valid")
			}
			return
		}
		old, had := d.peers[k]
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
			d.forget(old)
		}
		d.setPeer(p)
		d.log.Info("peer added", "vtep", k, "node", l.NodeName, "mac", p.MAC.String(), "subnetV6", netStr(p.IPv6Subnet), "subnetV4", netStr(p.IPv4Subnet), "peers", len(d.peers))
	case lease.Removed:
		d.countEvent("removed")
		if old, ok := d.peers[ipStr(l.VTEP)]; ok {
			d.removePeer(old, "lease removed or expired")
		}
	}
}

func (d *daemon) setPeer(p vxlan.Peer) {
	k := p.VTEP.String()
	d.peers[k] = p
	d.m.update(func(m *metrics) { m.peers = len(d.peers) })
}

// forget drops p from the bookkeeping (not from the kernel).
func (d *daemon) forget(p vxlan.Peer) {
	k := p.VTEP.String()
	delete(d.peers, k)
	d.m.update(func(m *metrics) { m.peers = len(d.peers) })
}

func (d *daemon) removePeer(p vxlan.Peer, why string) {
	k := p.VTEP.String()
	if err := d.dev.RemovePeer(p); err != nil {
		d.dataPathFailed("remove_peer")
		d.log.Error("remove peer", "vtep", k, "err", err)
		// Keep it: the resync that follows soon removes it.
		return
	}
	d.forget(p)
	d.log.Info("peer removed", "vtep", k, "subnetV6", netStr(p.IPv6Subnet), "reason", why, "peers", len(d.peers))
}

func (d *daemon) countEvent(kind string) {
	d.m.update(func(m *metrics) { m.watchEvents[kind]++ })
}

// --- VTEP moves (annotation changes) ----------------------------------------

// onAnnotations re-chooses the VTEP when the public-ipv6 annotation changed
// and moves device, lease and subnet file to it.
func (d *daemon) onAnnotations(ctx context.Context, ann map[string]string) {
	v := lease.PublicIPv6Annotation(ann)
	if v == d.annotation {
		return
	}
	d.annotation = v
	d.pendingMove = false
	c, err := vtep.Choose(d.o.vtepOptions(v))
	if err != nil {
		// Keep tunnelling from the current VTEP: a bad annotation must not
		// cut the node off.
		d.m.incError("choose_vtep")
		d.log.Error("public-ipv6 annotation changed but is unusable; keeping the current VTEP",
			"annotation", v, "vtep", ipStr(d.choice.Public), "err", err)
		return
	}
	if c.Public.Equal(d.choice.Public) && c.Local.Equal(d.choice.Local) && c.IfIndex == d.choice.IfIndex && c.Public.Equal(d.lease.VTEP) {
		d.choice = c
		d.setVTEPMetrics()
		return
	}
	d.log.Info("public-ipv6 annotation changed, moving the VTEP", "annotation", v, "from", ipStr(d.choice.Public), "to", ipStr(c.Public))
	if err := d.move(ctx, c); err != nil {
		d.pendingMove = true
		d.m.incError("move_vtep")
		d.log.Error("move VTEP failed, will retry", "to", ipStr(c.Public), "err", err)
	}
}

func (d *daemon) move(ctx context.Context, c *vtep.Choice) error {
	// The lease moves first. While etcd refuses the move (unreachable, out
	// of space) nothing is touched: peers keep our old VTEP and MAC, which
	// the device keeps too, so traffic flows as before. Moving the device
	// first would recreate it with a new local and MAC that no peer knows
	// (and flush its peers) for as long as etcd is in trouble.
	d.stopKeepAlive()
	attrs := d.attrsFor(c)
	var nl *lease.Lease
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ok := d.retry(mctx, "move lease", func() (err error) {
		nl, err = d.reg.Move(mctx, d.cfg, d.lease, attrs, d.o.LeaseTTL)
		return err
	})
	if !ok {
		// Keep the old lease alive; the move is retried later.
		d.startKeepAlive(ctx)
		return fmt.Errorf("move lease from %s to %s: %w", ipStr(d.lease.VTEP), ipStr(c.Public), mctx.Err())
	}
	d.attrs, d.lease = attrs, nl
	d.setLeaseMetrics()
	d.logLease("lease moved", nl)
	d.startKeepAlive(ctx)

	dev, err := vxlan.EnsureDevice(d.deviceConfig(c))
	if err != nil {
		// d.choice stays the old one, so the retry moves the device again
		// (the lease is already where it should be).
		return fmt.Errorf("vxlan device for VTEP %s on %s: %w", c.Local, c.IfName, err)
	}
	if d.dev != nil && d.dev != dev {
		d.dev.Close()
	}
	d.dev = dev
	old := d.choice
	d.choice = c
	d.logChoice(c)
	d.setVTEPMetrics()
	if err := d.writeSubnetFile(); err != nil {
		d.log.Error("rewrite subnet file", "err", err)
	}
	// The device may have been recreated (new local): program every peer
	// again, and drop a peer that claims our new VTEP.
	if p, ok := d.peers[c.Public.String()]; ok {
		d.forget(p)
	}
	list := make([]vxlan.Peer, 0, len(d.peers))
	for _, p := range d.peers {
		list = append(list, p)
	}
	if err := d.dev.Reconcile(list); err != nil {
		d.dataPathFailed("reconcile")
		d.log.Error("reconcile peers after VTEP move", "err", err)
	}
	d.m.update(func(m *metrics) { m.reconciles++; m.peers = len(d.peers) })
	d.log.Info("VTEP moved", "from", ipStr(old.Public), "to", ipStr(c.Public), "local", ipStr(c.Local), "device", dev.Name, "peers", len(d.peers))
	return nil
}

// --- small helpers -------------------------------------------------------------

func ipStr(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}

func netStr(n *net.IPNet) string {
	if n == nil {
		return ""
	}
	return n.String()
}

func sameNet(a, b *net.IPNet) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.String() == b.String()
}

func samePeer(a, b vxlan.Peer) bool {
	return a.VTEP.Equal(b.VTEP) && a.MAC.String() == b.MAC.String() && sameNet(a.IPv6Subnet, b.IPv6Subnet) && sameNet(a.IPv4Subnet, b.IPv4Subnet)
}

// fits: s is a subnet of exactly length bits inside network.
func fits(network *net.IPNet, bits int, s *net.IPNet) bool {
	if network == nil || s == nil {
		return false
	}
	ones, total := s.Mask.Size()
	nOnes, nTotal := network.Mask.Size()
	return total == nTotal && ones == bits && ones >= nOnes && network.Contains(s.IP)
}
