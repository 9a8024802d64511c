package notify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a real unix datagram socket, the kind systemd listens on,
// and points NOTIFY_SOCKET at it.
func listen(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on notify socket %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", addr)
	return c
}

// next reads one datagram, bounded so a missing message fails instead of
// hanging.
func next(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read notification: %v", err)
	}
	return string(buf[:n])
}

func TestMessagesOnRealSocket(t *testing.T) {
	for name, addr := range map[string]string{
		"path":     filepath.Join(t.TempDir(), "notify.sock"),
		"abstract": fmt.Sprintf("@vxlan6-notify-test-%d", os.Getpid()),
	} {
		t.Run(name, func(t *testing.T) {
			c := listen(t, addr)
			steps := []struct {
				send func() error
				want string
			}{
				{func() error { return Status("waiting for etcd at http://[::1]:2379") }, "STATUS=waiting for etcd at http://[::1]:2379"},
				{func() error { return Status("invalid config:\nbad VNI\n") }, "STATUS=invalid config: bad VNI"},
				{func() error { return Ready("") }, "READY=1"},
				{func() error { return Ready("ready: vtep 2001:db8:1::12, subnet fd10:244:0:1::/64") },
					"READY=1\nSTATUS=ready: vtep 2001:db8:1::12, subnet fd10:244:0:1::/64"},
				{Stopping, "STOPPING=1"},
			}
			for _, s := range steps {
				if err := s.send(); err != nil {
					t.Fatalf("send %q: %v", s.want, err)
				}
				if got := next(t, c); got != s.want {
					t.Errorf("got %q, want %q", got, s.want)
				}
			}
		})
	}
}

func TestNoSocketIsNoOp(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	for _, f := range []func() error{func() error { return Ready("x") }, func() error { return Status("x") }, Stopping} {
		if err := f(); err != nil {
			t.Errorf("without NOTIFY_SOCKET: %v", err)
		}
	}
}

func TestUnreachableSocketIsAnError(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	err := Ready("")
	if err == nil || !strings.Contains(err.Error(), "READY=1") {
		t.Fatalf("got %v, want an error naming READY=1", err)
	}
}

func TestWatchdog(t *testing.T) {
	c := listen(t, filepath.Join(t.TempDir(), "notify.sock"))
	pid := strconv.Itoa(os.Getpid())

	t.Run("off", func(t *testing.T) {
		for _, env := range [][2]string{{"", ""}, {"200000", "1"}, {"garbage", pid}} {
			t.Setenv("WATCHDOG_USEC", env[0])
			t.Setenv("WATCHDOG_PID", env[1])
			if d, ok := WatchdogEnabled(); ok {
				t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: enabled (%v), want off", env[0], env[1], d)
			}
			w := NewWatchdog()
			if w != nil || w.C() != nil || w.Interval() != 0 || w.Ping() != nil {
				t.Errorf("WATCHDOG_USEC=%q: a disabled watchdog must be a nil no-op", env[0])
			}
			w.Stop()
		}
	})

	t.Run("on", func(t *testing.T) {
		t.Setenv("WATCHDOG_USEC", "200000")
		t.Setenv("WATCHDOG_PID", pid)
		d, ok := WatchdogEnabled()
		if !ok || d != 200*time.Millisecond {
			t.Fatalf("WatchdogEnabled = %v, %v; want 200ms, true", d, ok)
		}
		w := NewWatchdog()
		defer w.Stop()
		if w.Interval() != 100*time.Millisecond {
			t.Errorf("ping interval %v, want half of WatchdogSec (100ms)", w.Interval())
		}
		// The loop pings on each tick; two rounds of it.
		for i := 0; i < 2; i++ {
			select {
			case <-w.C():
			case <-time.After(30 * time.Second):
				t.Fatal("watchdog ticker never fired")
			}
			if err := w.Ping(); err != nil {
				t.Fatal(err)
			}
			if got := next(t, c); got != "WATCHDOG=1" {
				t.Errorf("got %q, want WATCHDOG=1", got)
			}
		}
	})
}
