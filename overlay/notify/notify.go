// Package notify is vxlan6d's side of systemd's Type=notify protocol
// (sd_notify(3)): READY=1 once the node can start containers, STATUS= lines
// saying what the daemon waits for, STOPPING=1 on shutdown and WATCHDOG=1
// from the main loop, so that systemd restarts a loop that got stuck.
//
// Every function is a no-op returning nil when NOTIFY_SOCKET is not set
// (started by hand, by a test, or by a unit that is not Type=notify), so
// the daemon calls them unconditionally. The environment is left in place:
// the daemon notifies many times over its life, not once.
package notify

import (
	"fmt"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// send writes one notification datagram. go-systemd's SdNotify is used
// rather than hand-written code: it handles abstract sockets and the
// NOTIFY_SOCKET parsing the way libsystemd does.
func send(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("sd_notify %q: %w", firstLine(state), err)
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Ready tells systemd that start-up is complete: lease, device and subnet
// file are in place, so the container runtimes ordered after the daemon may
// start. status, if not empty, is sent along as the STATUS= line.
func Ready(status string) error {
	if status == "" {
		return send(daemon.SdNotifyReady)
	}
	return send(daemon.SdNotifyReady + "\n" + statusLine(status))
}

// Status sets the one-line status shown by `systemctl status vxlan6d`, e.g.
// "waiting for etcd at https://[2001:db8::10]:2379: connection refused".
func Status(msg string) error {
	return send(statusLine(msg))
}

// statusLine keeps a status to one line: a newline in msg (an error text
// from etcd, say) would start a new, bogus assignment.
func statusLine(msg string) string {
	return "STATUS=" + strings.ReplaceAll(strings.TrimSpace(msg), "\n", " ")
}

// Stopping tells systemd that the daemon is shutting down on purpose.
func Stopping() error {
	return send(daemon.SdNotifyStopping)
}

// Watchdog is the keep-alive half of WatchdogSec=. It only ticks; the
// caller pings from the loop whose liveness it vouches for, so a loop that
// hangs stops the pings and systemd restarts the service.
type Watchdog struct {
	t        *time.Ticker
	interval time.Duration
}

// WatchdogEnabled reports the interval systemd expects pings at
// (WATCHDOG_USEC, for this process per WATCHDOG_PID), or false when the
// unit has no WatchdogSec= or the variables are not for this process.
func WatchdogEnabled() (time.Duration, bool) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

// NewWatchdog returns a ticker at half the watchdog interval (what
// sd_watchdog_enabled(3) recommends), or nil when the watchdog is off. All
// methods work on a nil *Watchdog: C is then a nil channel, which never
// fires in a select.
func NewWatchdog() *Watchdog {
	d, ok := WatchdogEnabled()
	if !ok {
		return nil
	}
	every := d / 2
	if every <= 0 {
		every = d
	}
	return &Watchdog{t: time.NewTicker(every), interval: every}
}

// C fires when the next ping is due.
func (w *Watchdog) C() <-chan time.Time {
	if w == nil {
		return nil
	}
	return w.t.C
}

// Interval is the ping interval (half WATCHDOG_USEC); 0 when off.
func (w *Watchdog) Interval() time.Duration {
	if w == nil {
		return 0
	}
	return w.interval
}

// Ping sends WATCHDOG=1.
func (w *Watchdog) Ping() error {
	if w == nil {
		return nil
	}
	return send(daemon.SdNotifyWatchdog)
}

// Stop stops the ticker.
func (w *Watchdog) Stop() {
	if w != nil {
		w.t.Stop()
	}
}
