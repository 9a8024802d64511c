package e2e

// systemd's Type=notify contract, against a real notify socket: STATUS=
// lines say what the daemon waits for, READY=1 only once lease, device and
// subnet file are in place, WATCHDOG=1 from the loop, STOPPING=1 on SIGTERM.

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/subnetfile"
)

// notifySocket listens on a unix datagram socket (reachable from every
// netns: it is a path) and hands each datagram to the channel.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on %s: %v", path, err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := make(chan string, 256)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			select {
			case ch <- string(buf[:n]):
			default: // a test that stopped reading must not block the reader
			}
		}
	}()
	return path, ch
}

// waitNotify returns the first datagram containing want, with every
// datagram seen before it, or fails after timeout.
func waitNotify(t *testing.T, ch <-chan string, want string, timeout time.Duration) (string, []string) {
	t.Helper()
	var seen []string
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("notify socket closed before %q; seen %q", want, seen)
			}
			if strings.Contains(m, want) {
				return m, seen
			}
			seen = append(seen, m)
		case <-deadline:
			t.Fatalf("no %q on the notify socket within %s; seen %q", want, timeout, seen)
		}
	}
}

func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	b := testbed.New(t, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	sock, ch := notifySocket(t)
	// WATCHDOG_USEC without WATCHDOG_PID is for whoever reads it (nsenter
	// execs the daemon, so the pid would be the daemon's anyway).
	h.DaemonEnv = []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=1000000"}
	b.StopEtcd()
	d := h.StartDaemon()

	// Each wait names what it waits for, and nothing says READY before
	// the subnet file exists.
	_, seen := waitNotify(t, ch, "STATUS=waiting for etcd at ", readyTimeout)
	b.StartEtcd()
	_, more := waitNotify(t, ch, "STATUS=waiting for the network config at "+b.Registry().ConfigKey(), readyTimeout)
	seen = append(seen, more...)
	b.PutConfig(`{"EnableIPv6":true,"IPv6Network":"fd10:244::/48","IPv6SubnetLen":47}`)
	_, more = waitNotify(t, ch, "STATUS=waiting for a valid network config: ", readyTimeout)
	seen = append(seen, more...)
	for _, m := range seen {
		if strings.Contains(m, "READY=1") {
			t.Fatalf("READY=1 before the config was valid: %q", m)
		}
	}
	if _, err := os.Stat(h.SubnetFile); err == nil {
		t.Fatal("subnet file written before a valid config")
	}
	b.PutIPv6Config()
	ready, _ := waitNotify(t, ch, "READY=1", readyTimeout)
	if !strings.Contains(ready, "STATUS=ready: VTEP ") {
		t.Errorf("READY=1 without a status line naming the VTEP: %q", ready)
	}
	// READY=1 means the plugin can work: the subnet file is there.
	if _, err := subnetfile.Read(h.SubnetFile); err != nil {
		t.Fatalf("READY=1 but the subnet file is not readable: %v", err)
	}
	// The loop feeds the watchdog (every WATCHDOG_USEC/2).
	for i := 0; i < 2; i++ {
		waitNotify(t, ch, "WATCHDOG=1", 10*time.Second)
	}
	if code := d.Stop(); code != 0 {
		t.Errorf("SIGTERM: exit %d", code)
	}
	waitNotify(t, ch, "STOPPING=1", 5*time.Second)
}
