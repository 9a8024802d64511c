package admin

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigPutRefusesHostCapturingNetworks (issue 8 §2): `config put`
// validates before contacting etcd and refuses networks that would capture
// host traffic, naming the field and the value.
func TestConfigPutRefusesHostCapturingNetworks(t *testing.T) {
	dir := t.TempDir()
	for cfg, want := range map[string]string{
		`{"IPv6Network":"::/0","IPv6SubnetLen":120}`:                                         "IPv6Network ::/0 is shorter than /8",
		`{"IPv6Network":"fe80::/10"}`:                                                        "IPv6Network fe80::/10 overlaps link-local",
		`{"IPv6Network":"ff00::/8","IPv6SubnetLen":64}`:                                      "IPv6Network ff00::/8 overlaps multicast",
		`{"EnableIPv4":true,"IPv6Network":"fd10::/48","Network":"0.0.0.0/0","SubnetLen":24}`: "Network 0.0.0.0/0 is shorter than /8",
	} {
		f := filepath.Join(dir, "c.json")
		if err := os.WriteFile(f, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		// No etcd anywhere: the refusal must come before dialling.
		code := Main([]string{"config", "put", f, "--etcd-endpoints", "unix:///nonexistent.sock"}, "v9", &out, &errb)
		if code != ExitError || !strings.Contains(errb.String(), want) {
			t.Errorf("config put %s: exit %d %q; want %d and %q", cfg, code, errb.String(), ExitError, want)
		}
	}
}
