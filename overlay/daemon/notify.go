package daemon

import (
	"sync"

	"github.com/vxlan6/vxlan6/overlay/notify"
)

// systemd (Type=notify) learns from these what the daemon waits for:
// READY=1 only once lease, device and subnet file are in place, a STATUS=
// line for every wait (etcd, the network config, the lease) and failure,
// STOPPING=1 on shutdown. Without NOTIFY_SOCKET each call is a no-op.

// status sends a STATUS= line; a notify socket that fails is logged once
// per call at debug level: the daemon must not depend on systemd.
func (d *daemon) status(msg string) {
	d.notify(func() error { return notify.Status(msg) })
}

// ready sends READY=1 with a status line.
func (d *daemon) ready(msg string) {
	d.notify(func() error { return notify.Ready(msg) })
}

func (d *daemon) notify(send func() error) {
	if err := send(); err != nil {
		d.log.Debug("sd_notify failed", "err", err)
	}
}

// pingWhileStarting keeps systemd's watchdog fed while the daemon starts
// (it may wait for etcd for hours; TimeoutStartSec=infinity allows that);
// from the loop on, the loop pings itself, so a stuck loop gets restarted.
// It returns the function that stops the start-up pings (idempotent).
func (d *daemon) pingWhileStarting() (stop func()) {
	if d.wd == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-d.wd.C():
				d.notify(d.wd.Ping)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}
