package daemon

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxlan6/vxlan6/datapath/fastpath"
	"github.com/vxlan6/vxlan6/overlay/lease"
)

// How the fast path is kept in line with the kernel, on a one-second tick:
// pods after the kernel reports a link change (a pod's veth comes or goes),
// for fastPathSettle after it, and whenever the Node says it is due (a pod
// pending, a failed step, the periodic re-judgement); the peers map after
// the kernel reports a route or neighbour change of the device, at most
// every fastPathPeerGap (a new peer takes the bridge path until then), and
// every fastPathFullEvery ticks regardless (so a lost notification costs at
// most that long). A host whose pods do not change does no pod round
// between re-judgements: each is a dump of every link and qdisc.
const (
	fastPathInterval  = time.Second
	fastPathFullEvery = 30
	fastPathPeerGap   = 5 * time.Second
	// The plugin records a pod in the map after its veth's last link
	// change, later in the same ADD.
	fastPathSettle = 5 * time.Second
)

// startFastPath runs the eBPF fast path (datapath/fastpath) beside the
// daemon, or takes it away when Backend.FastPath is "off" or the kernel
// cannot run it; either way one log line says which data path is in use.
// Programs and maps are pinned: they keep working while the daemon restarts.
// The returned function stops the reconciler (not the fast path).
func (d *daemon) startFastPath(ctx context.Context) func() {
	log := d.log.With("device", d.dev.Name)
	if d.cfg.Backend.FastPath == lease.FastPathOff {
		removeFastPath(d)
		log.Info("data path: bridge path", "reason", "Backend.FastPath is off")
		return func() {}
	}
	// The fast path does not pass pod-to-pod traffic through FORWARD. That
	// is what vxlan6's own accept rules would let through anyway; with
	// --forward-rules=false the operator's FORWARD decides, so it must see
	// the traffic.
	if !d.o.ForwardRules {
		removeFastPath(d)
		log.Info("data path: bridge path", "reason", "--forward-rules=false: FORWARD is the operator's")
		return func() {}
	}
	node, err := fastpath.NewNode(d.dev.Name)
	if err == nil {
		node.Log = log
		node.Hooks.Decap = d.cfg.Backend.FastPath == lease.FastPathDecap
		err = node.Sync()
	}
	if errors.Is(err, fastpath.ErrUnsupported) || (err != nil && node == nil) {
		if node != nil {
			node.Close()
		}
		// Also when the maps could not even be opened (no CAP_BPF):
		// programs an earlier daemon pinned would otherwise go on
		// redirecting with a peers map nobody keeps.
		removeFastPath(d)
		log.Warn("data path: bridge path", "reason", "eBPF fast path unavailable", "err", err)
		return func() {}
	}
	if err != nil {
		log.Warn("fast path sync", "err", err)
	}
	if err := node.RemoveOtherVersions(); err != nil {
		log.Warn("remove fast path of other versions", "err", err)
	}
	log.Info("data path: eBPF fast path (TCX)", "pins", node.Dir, "underlayDecap", node.Hooks.Decap)
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer node.Close()
		runFastPath(fctx, node, d)
	}()
	return func() { cancel(); <-done }
}

func runFastPath(ctx context.Context, node *fastpath.Node, d *daemon) {
	changed, links := make(chan struct{}, 1), make(chan struct{}, 1)
	stop := make(chan struct{})
	defer close(stop)
	watching := watchKernel(node.Device, changed, links, stop, d)
	t := time.NewTicker(fastPathInterval)
	defer t.Stop()
	pending := false
	last, lastLink := time.Now(), time.Now()
	for tick := 1; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if signalled(changed) {
			pending = true
		}
		if signalled(links) {
			lastLink = time.Now()
		}
		// A full peers sync dumps the device's routes and neighbours
		// (thousands on a big cluster): at most every fastPathPeerGap,
		// and the garbage is handed back at once (RSS).
		peers := tick%fastPathFullEvery == 0 || (pending && time.Since(last) >= fastPathPeerGap)
		sync := node.SyncPods
		switch {
		case peers:
			sync = node.Sync
			pending, last = false, time.Now()
		case watching.Load() && !node.Due() && time.Since(lastLink) >= fastPathSettle:
			continue
		}
		if err := sync(); err != nil {
			d.log.Warn("fast path sync", "device", node.Device, "err", err)
		}
		if peers {
			d.releaseMemory()
		}
	}
}

func signalled(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// watchKernel signals changed on every route or neighbour change of device
// (they are few: peers come and go) and links on every link change in the
// daemon's netns. The flag it returns says whether link changes are still
// watched (else pod rounds cannot wait for them).
func watchKernel(device string, changed, links chan<- struct{}, stop chan struct{}, d *daemon) *atomic.Bool {
	routes := make(chan netlink.RouteUpdate, 64)
	neighs := make(chan netlink.NeighUpdate, 64)
	lupd := make(chan netlink.LinkUpdate, 64)
	errf := func(err error) { d.log.Debug("fast path: route/neighbour/link watch", "err", err) }
	if err := netlink.RouteSubscribeWithOptions(routes, stop, netlink.RouteSubscribeOptions{ErrorCallback: errf}); err != nil {
		d.log.Warn("fast path: cannot watch routes; peers follow every 30 s", "err", err)
	}
	if err := netlink.NeighSubscribeWithOptions(neighs, stop, netlink.NeighSubscribeOptions{ErrorCallback: errf}); err != nil {
		d.log.Warn("fast path: cannot watch neighbours; peers follow every 30 s", "err", err)
	}
	watching := &atomic.Bool{}
	if err := netlink.LinkSubscribeWithOptions(lupd, stop, netlink.LinkSubscribeOptions{ErrorCallback: errf}); err != nil {
		d.log.Warn("fast path: cannot watch links; pods are synced every second", "err", err)
	} else {
		watching.Store(true)
	}
	// Only the device's own routes and neighbours are peers; the pods'
	// neighbour entries change state all the time. The device's index is
	// followed from link updates (0: unknown, every change counts).
	devIdx := 0
	if l, err := netlink.LinkByName(device); err == nil {
		devIdx = l.Attrs().Index
	}
	mine := func(idx int) bool { return devIdx == 0 || idx == devIdx }
	signal := func(c chan<- struct{}) {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	go func() {
		for {
			select {
			case u, ok := <-routes:
				if !ok {
					routes = nil
				}
				if !ok || mine(u.LinkIndex) {
					signal(changed)
				}
			case u, ok := <-neighs:
				if !ok {
					neighs = nil
				}
				if !ok || mine(u.LinkIndex) {
					signal(changed)
				}
			case u, ok := <-lupd:
				if !ok {
					// No longer watched: every round is a pod round.
					lupd = nil
					watching.Store(false)
					continue
				}
				if u.Attrs().Name == device {
					devIdx = u.Attrs().Index
					if u.Header.Type == unix.RTM_DELLINK {
						devIdx = 0
					}
				}
				signal(links)
			case <-stop:
				return
			}
		}
	}()
	return watching
}

// removeFastPath detaches this host's programs and removes its maps, of every
// Version, so every pod takes the bridge path. It only unlinks pins in
// bpffs (the last reference to a TCX link goes, so the kernel detaches its
// program): that needs no bpf() call, so it works where loading them fails.
func removeFastPath(d *daemon) {
	if err := fastpath.RemoveHost(); err != nil {
		d.log.Warn("remove fast path", "err", err)
	}
}
