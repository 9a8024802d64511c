package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLostSubnetNotReady: a node that did not get its previous subnet back
// is not ready, and the metric says why.
func TestLostSubnetNotReady(t *testing.T) {
	m := newMetrics(time.Minute, "")
	// A lease, a device (lo stands in) and a subnet file as written.
	file := filepath.Join(t.TempDir(), "subnet.env")
	if err := os.WriteFile(file, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.setLease("fd10:244:0:8::/64", "", false)
	m.update(func(m *metrics) { m.deviceName, m.subnetFile, m.subnetContent = "lo", file, []byte("x\n") })
	if ok, _ := m.ready(); !ok {
		t.Fatal("not ready with lease, device and subnet file")
	}
	m.update(func(m *metrics) { m.lostSubnet = "fd10:244:0:7::/64" })
	ok, why := m.ready()
	if ok || !strings.Contains(why, "fd10:244:0:7::/64") {
		t.Fatalf("ready %v (%q) after losing the previous subnet", ok, why)
	}
	var b bytes.Buffer
	m.write(&b)
	if !strings.Contains(b.String(), "vxlan6d_previous_subnet_lost 1") || !strings.Contains(b.String(), "vxlan6d_ready 0") {
		t.Fatalf("metrics:\n%s", b.String())
	}
}
