package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// CNIRefDir holds the reference CNI plugins tests chain with vxlan6
// (portmap, bandwidth, tuning, bridge, host-local), installed there by
// .ci/deps.sh. A directory of their own, never on PATH: the reference
// `bridge` plugin would shadow iproute2's bridge tool.
const CNIRefDir = "/opt/cni-ref/bin"

// RefPluginDirs are searched in order by RefPlugin: ours, then where
// distributions put CNI plugins.
var RefPluginDirs = []string{CNIRefDir, "/opt/cni/bin", "/usr/lib/cni"}

// RefPlugin returns the path of a reference CNI plugin. Missing, the test is
// skipped, or fails under CI=true (.ci/deps.sh installs them).
func RefPlugin(t testing.TB, name string) string {
	t.Helper()
	for _, d := range RefPluginDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CNI reference plugin %s not in %v (.ci/deps.sh installs it into %s)", name, RefPluginDirs, CNIRefDir)
	}
	t.Skipf("CNI reference plugin %s not in %v (.ci/deps.sh installs it into %s)", name, RefPluginDirs, CNIRefDir)
	return ""
}
