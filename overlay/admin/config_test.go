package admin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// TestConfigPutFlannel: 'config put' against real etcd takes flannel's
// net-conf.json shape (with notes on the defaults applied), refuses what
// cannot apply and unknown keys, and writes nothing then.
func TestConfigPutFlannel(t *testing.T) {
	e := testutil.StartEtcd(t)
	flags := []string{"--etcd-endpoints", e.Endpoints[0], "--etcd-prefix", "/" + testutil.UniqueName("cfg")}
	dir := t.TempDir()
	put := func(js string) (int, string, string) {
		f := filepath.Join(dir, "net-conf.json")
		if err := os.WriteFile(f, []byte(js), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut, _ := testCLI(t, nil, "", append([]string{"config", "put", f}, flags...)...)
		return code, out, errOut
	}
	for js, want := range map[string]string{
		`{"Network":"10.42.0.0/16","IPv6Network":"fd10:244::/48"}`:                                      "udp",
		`{"Network":"10.42.0.0/16","Backend":{"Type":"vxlan"}}`:                                         "IPv4-only",
		`{"IPv6Network":"fd10:244::/48","Backend":{"Type":"udp"}}`:                                      `Backend.Type "udp" cannot apply`,
		`{"IPv6Network":"fd10:244::/48","IPv6SubnetLenn":64}`:                                           "unknown key(s) IPv6SubnetLenn",
		`{"IPv6Network":"fd10:244::/48","Backend":{"Type":"vxlan","VNI":1,"Flags":["x"]}}`:              "Backend.Flags",
		`{"IPv6Network":"fd10:244::/48","IPv6SubnetMin":"fd10:244:0:10::5","Backend":{"Type":"vxlan"}}`: "IPv6SubnetMin",
	} {
		code, out, errOut := put(js)
		if want == "udp" {
			// No Backend: flannel's default udp; vxlan6 notes it uses vxlan.
			if code != 0 || !strings.Contains(errOut, "udp") || !strings.Contains(errOut, "IPv4 is on") {
				t.Errorf("%s: exit %d %s%s", js, code, out, errOut)
			}
			continue
		}
		if code != ExitError || !strings.Contains(errOut, want) {
			t.Errorf("%s: exit %d, want 1 naming %q: %s", js, code, want, errOut)
		}
	}
	code, out, errOut, _ := testCLI(t, nil, "", append([]string{"config", "get"}, flags...)...)
	if code != 0 || !strings.Contains(out, "10.42.0.0/16") {
		t.Errorf("config get after the one good put: exit %d %s%s", code, out, errOut)
	}
}
