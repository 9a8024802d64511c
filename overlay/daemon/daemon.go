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
// All data-path changes happen on one goroutine (loop), so watch events,
// resyncs, lease changes and VTEP moves are applied in order. The loop only
// dispatches; each concern has one owner in its own file:
//
//	start.go       Run's start: VTEP choice, etcd, config, lease, device
//	loop.go        the event loop and the lease and node watches
//	peers.go       the peer table, built once per snapshot, and watch events
//	mover.go       the VTEP choice after start: annotation moves and their retry
//	keepalive.go   this node's lease and its renewal
//	subnetfile.go  the subnet file (the plugin's input)
//	heal.go        the periodic self-heal and the early retry after a failure
//	heldby.go      another node holding this node's subnet (subnet file mark)
//	lastlease.go   the lease file under /var/lib; self.go: this node for the arbiter
//	firewall.go    FORWARD accept rules for the pod networks; ra.go: accept_ra
//	bounds.go      the bounds of every etcd and netlink call of the loop
//	retry.go       retries through internal/backoff
//	notify.go      systemd: READY=1, STATUS= lines, STOPPING=1, the watchdog
//
// The chosen VTEP goes from vtep.Choose through function parameters to the
// lease attributes (attrsFor), the device (deviceConfig) and the subnet file
// (subnetConfig); after start the mover holds the current one.
package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/notify"
	"github.com/vxlan6/vxlan6/overlay/vxlan"
)

// daemon holds the owners; o, log, m, reg and cfg are set once at start.
type daemon struct {
	o   Options
	log *slog.Logger
	m   *metrics
	reg *lease.Registry
	cfg *lease.Config

	dev    *vxlan.Device // replaced when the device is recreated
	peers  *peerTable
	vtep   *mover
	ka     *keepAlive
	sf     *subnetWriter
	healer *healer
	// held: another node holds our subnet (see heldby.go).
	held heldState
	// wd pings systemd's watchdog (nil without WatchdogSec=; see notify.go).
	wd *notify.Watchdog
}

const (
	// healRetry is how soon a failed peer update or reconcile is retried.
	healRetry = 5 * time.Second
	// healListTimeout bounds the periodic List: the loop must not stall
	// on an unreachable etcd.
	healListTimeout = 5 * time.Second
	// moveRetryEvery is how often a failed VTEP move is tried again.
	moveRetryEvery = 5 * time.Second
)

// errStopped: ctx ended before the daemon was ready; Run returns nil then.
var errStopped = errors.New("stopped")

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
		o: o, log: log, m: newMetrics(o.LeaseTTL, o.Version),
		peers:  newPeerTable(),
		healer: newHealer(o.ResyncInterval),
	}
	d.sf = &subnetWriter{path: o.SubnetFile, log: log, m: d.m}
	d.sf.written = func() {
		d.saveLastLease()
		d.writeStatusFile()
	}
	srvCtx, stopSrv := context.WithCancel(context.Background())
	defer stopSrv()
	if err := d.m.startServers(srvCtx, o.MetricsAddr, o.HealthzAddr, log); err != nil {
		return err
	}
	d.wd = notify.NewWatchdog()
	defer d.wd.Stop()
	// STOPPING=1 as soon as shutdown starts, whatever Run is doing then;
	// Run does not return before it is sent (AfterFunc's goroutine would
	// otherwise race the process's exit, and systemd would not hear it).
	stopping := make(chan struct{})
	notStarted := context.AfterFunc(ctx, func() {
		defer close(stopping)
		d.notify(notify.Stopping)
	})
	defer func() {
		if !notStarted() {
			<-stopping
		}
	}()
	if err := d.run(ctx); err != nil && !errors.Is(err, errStopped) {
		d.status("failed: " + err.Error())
		return err
	}
	return nil
}
