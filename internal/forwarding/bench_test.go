package forwarding

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// globAcceptRA is what the plugin did before (c8681c8's keepAcceptingRA,
// run only while forwarding was off): read accept_ra of every interface.
func globAcceptRA() {
	paths, _ := filepath.Glob("/proc/sys/net/ipv6/conf/*/accept_ra")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == "1" {
			_ = b
		}
	}
}

// BenchmarkKeepRA measures what ADD now pays on every call (forwarding on
// already, nothing to change) on a host with 200 pods (host veths without
// IPv6, as link.SetupVeth leaves them) and an uplink with an RA route,
// against the old per-interface sysctl walk in the same netns.
func BenchmarkKeepRA(b *testing.B) {
	testutil.RequireRoot(b)
	n := testutil.NewNS(b)
	nsRunB(b, n, "ip", "link", "add", "par0", "type", "bridge")
	nsRunB(b, n, "ip", "link", "add", "up0", "link", "par0", "type", "macvlan")
	nsRunB(b, n, "ip", "link", "set", "par0", "up")
	nsRunB(b, n, "ip", "link", "set", "up0", "up")
	nsRunB(b, n, "ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "up0", "proto", "ra")
	var batch strings.Builder
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&batch, "link add vh%d type veth peer name vc%d\n", i, i)
	}
	f := filepath.Join(b.TempDir(), "batch")
	_ = os.WriteFile(f, []byte(batch.String()), 0o644)
	nsRunB(b, n, "ip", "-batch", f)
	nsRunB(b, n, "sh", "-c", "for i in $(seq 0 199); do echo 1 > /proc/sys/net/ipv6/conf/vh$i/disable_ipv6; ip link set vh$i up; done")
	_ = n.Do(func(ns.NetNS) error {
		if _, err := Enable(false, Underlay{}); err != nil {
			b.Fatal(err)
		}
		return nil
	})
	_ = n.Do(func(ns.NetNS) error {
		// The baseline, a few rounds in the same run (it is slow).
		const rounds = 3
		start := time.Now()
		for i := 0; i < rounds; i++ {
			globAcceptRA()
		}
		walk := time.Since(start) / rounds
		b.ResetTimer()
		start = time.Now()
		for i := 0; i < b.N; i++ {
			if _, err := KeepRA(Underlay{}); err != nil {
				b.Fatal(err)
			}
		}
		keep := time.Since(start) / time.Duration(b.N)
		b.ReportMetric(float64(walk.Microseconds()), "walk-us/op")
		b.ReportMetric(float64(walk)/float64(keep), "x-faster-than-walk")
		return nil
	})
}

func nsRunB(b *testing.B, n ns.NetNS, args ...string) {
	b.Helper()
	nsRunT(b, n, args...)
}
