package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/internal/testutil"
)

const healthAddr = "[::1]:9474"

// probe GETs path on the daemon's health/metrics address inside h: the HTTP
// status and the body.
func probe(h *testbed.Host, path string) (int, string) {
	out, err := h.Exec("curl", "-s", "-m", "5", "-w", "\n%{http_code}", "http://"+healthAddr+path)
	if err != nil {
		return 0, err.Error()
	}
	i := strings.LastIndexByte(out, '\n')
	var code int
	fmt.Sscan(out[i+1:], &code)
	return code, out[:max(i, 0)]
}

// waitProbe waits (bounded) until path answers code with a body containing want.
func waitProbe(t *testing.T, h *testbed.Host, path string, code int, want string, timeout time.Duration) {
	t.Helper()
	var got int
	var body string
	// 50 ms: the device's 503 lasts only until the next resync (5 s), and
	// a probe must not step over it.
	if err := testbed.Eventually(timeout, 50*time.Millisecond, func() error {
		if got, body = probe(h, path); got != code || !strings.Contains(body, want) {
			return fmt.Errorf("not yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("%s: want %d with %q within %s; last %d %q", path, code, want, timeout, got, body)
	}
}

// TestReadinessTransitions: /readyz drops when each of its conditions stops
// holding and comes back when it holds again, against the real thing: the
// vxlan device deleted by hand (healed by the resync), the subnet file
// deleted, an invalid network config written to etcd, and etcd frozen past
// the lease TTL. /livez stays 200 throughout; /healthz follows /readyz.
func TestReadinessTransitions(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	b := newBed(t, 1, false)
	h := b.Hosts[0]
	const ttl = 6 * time.Second
	h.StartDaemon("--healthz-addr", healthAddr, "--metrics-addr", healthAddr, "--lease-ttl", ttl.String(), "--resync-interval", "5s")
	h.Daemon().WaitReady(readyTimeout)
	waitProbe(t, h, "/readyz", 200, "ok", readyTimeout)
	waitProbe(t, h, "/healthz", 200, "ok", readyTimeout)
	waitProbe(t, h, "/livez", 200, "ok", readyTimeout)

	t.Run("device", func(t *testing.T) {
		h.MustExec("ip", "link", "del", testbed.Device)
		waitProbe(t, h, "/readyz", 503, "device", 10*time.Second)
		waitProbe(t, h, "/readyz", 200, "ok", 60*time.Second)
	})
	t.Run("subnet-file", func(t *testing.T) {
		// A directory where the file was: the 2 s resync cannot put the
		// file back (rename onto a directory fails), so the 503 cannot
		// slip between two probes; removing it lets the resync heal.
		if err := os.Remove(h.SubnetFile); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(h.SubnetFile, 0o755); err != nil {
			t.Fatal(err)
		}
		waitProbe(t, h, "/healthz", 503, "subnet-file", 10*time.Second)
		if err := os.Remove(h.SubnetFile); err != nil {
			t.Fatal(err)
		}
		waitProbe(t, h, "/healthz", 200, "ok", 60*time.Second)
	})
	t.Run("config", func(t *testing.T) {
		b.PutConfig(`{"EnableIPv6":true,"IPv6Network":"fd10:244::/200"}`)
		waitProbe(t, h, "/readyz", 503, "config", 60*time.Second)
		waitProbe(t, h, "/livez", 200, "ok", 5*time.Second)
		b.PutIPv6Config()
		waitProbe(t, h, "/readyz", 200, "ok", 60*time.Second)
		// A key vxlan6 does not know (written around 'config put', which
		// refuses it) is a warning in the daemon, not a reason to be unready.
		b.PutConfig(strings.Replace(testbed.ConfigJSON(false), "{", `{"FutureKey":1,`, 1))
		if err := h.Daemon().WaitLog("network config has a key vxlan6 does not know", 60*time.Second); err != nil {
			t.Error(err)
		}
		waitProbe(t, h, "/readyz", 200, "ok", 5*time.Second)
	})
	t.Run("etcd-frozen", func(t *testing.T) {
		b.StopEtcd()
		start := time.Now()
		waitProbe(t, h, "/readyz", 503, "lease", ttl+60*time.Second)
		if took := time.Since(start); took < ttl-2*time.Second {
			t.Errorf("not ready after %s, before the lease TTL %s ran out", took, ttl)
		}
		waitProbe(t, h, "/livez", 200, "ok", 5*time.Second)
		b.StartEtcd()
		waitProbe(t, h, "/readyz", 200, "ok", 90*time.Second)
	})
	code, metrics := probe(h, "/metrics")
	for _, want := range []string{"vxlan6d_ready 1", "vxlan6d_build_info{", "go_goroutines", "process_resident_memory_bytes", "vxlan6d_reconcile_duration_seconds_count"} {
		if code != 200 || !strings.Contains(metrics, want) {
			t.Errorf("metrics (%d) lack %q", code, want)
		}
	}
	if strings.Contains(metrics, "vxlan6d_lease_renewals_total 0\n") || !strings.Contains(metrics, `vxlan6d_etcd_errors_total{op="periodic_resync"}`) {
		t.Errorf("metrics show no lease renewal or no etcd error after the outage:\n%s", metrics)
	}
}
