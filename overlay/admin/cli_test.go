package admin

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/overlay/daemon"
	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/subnetfile"
)

// parseRun parses a `vxlan6d run` command line the way the binary does
// (cobra, one-dash spellings, environment) and returns the options the
// daemon would get, or the usage error printed on stderr.
func parseRun(t *testing.T, args []string, env map[string]string) (runOptions, error) {
	t.Helper()
	code, _, errOut, o := testCLI(t, env, "", append([]string{"run"}, args...)...)
	if code != ExitOK || o == nil {
		return runOptions{}, fmt.Errorf("exit %d: %s", code, errOut)
	}
	return runOptions{Options: *o}, nil
}

func TestFlagDefaults(t *testing.T) {
	o, err := parseRun(t, []string{"--node-name", "n1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Etcd.Endpoints; !reflect.DeepEqual(got, []string{"http://127.0.0.1:2379"}) {
		t.Errorf("endpoints %v", got)
	}
	if o.Etcd.Prefix != lease.DefaultPrefix || o.LeaseTTL != lease.DefaultTTL || o.SubnetFile != subnetfile.DefaultPath {
		t.Errorf("defaults: prefix %q ttl %s subnet file %q", o.Etcd.Prefix, o.LeaseTTL, o.SubnetFile)
	}
	if o.MetricsAddr != "" || o.HealthzAddr != "" {
		t.Errorf("metrics/healthz must be off by default")
	}
	if o.ResyncInterval != daemon.DefaultResyncInterval {
		t.Errorf("resync interval %s, want %s", o.ResyncInterval, daemon.DefaultResyncInterval)
	}
	if o, err = parseRun(t, []string{"--node-name", "n1"}, map[string]string{"VXLAN6D_RESYNC_INTERVAL": "0"}); err != nil || o.ResyncInterval != 0 {
		t.Errorf("VXLAN6D_RESYNC_INTERVAL=0 must disable the resync: %s, %v", o.ResyncInterval, err)
	}
}

func TestFlagBeatsEnvAndListsSplit(t *testing.T) {
	env := map[string]string{
		"VXLAN6D_ETCD_ENDPOINTS": "http://[2001:db8::1]:2379,http://[2001:db8::2]:2379",
		"VXLAN6D_LEASE_TTL":      "24h",
		"VXLAN6D_PUBLIC_IPV6":    "2001:db8::99",
		"VXLAN6D_IFACE":          "eth1,eth2",
		"VXLAN6D_NODE_NAME":      "from-env",
	}
	o, err := parseRun(t, []string{"--public-ipv6", "2001:db8::7", "--iface", "eth0", "--iface", "2001:db8::7,eth3"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if o.PublicIPv6 != "2001:db8::7" {
		t.Errorf("flag must beat env: %q", o.PublicIPv6)
	}
	if !reflect.DeepEqual(o.Iface, []string{"eth0", "2001:db8::7", "eth3"}) {
		t.Errorf("iface from flags only, split: %v", o.Iface)
	}
	if len(o.Etcd.Endpoints) != 2 || o.LeaseTTL != 24*time.Hour || o.NodeName != "from-env" {
		t.Errorf("env not applied: %v %s %q", o.Etcd.Endpoints, o.LeaseTTL, o.NodeName)
	}
	if !o.FlagNamesAddress() {
		t.Error("--public-ipv6 names the address")
	}
}

func TestBadFlagsExit2NamingTheFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--bogus"}, nil, "--bogus"},
		{[]string{"--lease-ttl", "soon"}, nil, "--lease-ttl"},
		{[]string{"--lease-ttl", "0s"}, nil, "--lease-ttl"},
		{[]string{"--lease-ttl", "1500ms"}, nil, "--lease-ttl"},
		{nil, map[string]string{"VXLAN6D_LEASE_TTL": "nope"}, "VXLAN6D_LEASE_TTL for flag --lease-ttl:"},
		{[]string{"--lease-ttl", "x"}, nil, "for flag --lease-ttl:"},
		{[]string{"--resync-interval", "100ms"}, nil, "--resync-interval"},
		{[]string{"--resync-interval", "-1m"}, nil, "--resync-interval"},
		{nil, map[string]string{"VXLAN6D_RESYNC_INTERVAL": "often"}, "VXLAN6D_RESYNC_INTERVAL for flag --resync-interval:"},
		{[]string{"--log-level", "loud"}, nil, "--log-level"},
		{[]string{"--log-format", "xml"}, nil, "--log-format"},
		{[]string{"--iface-regex", "eth("}, nil, "--iface-regex"},
		{[]string{"--etcd-endpoints", "ftp://x"}, nil, "--etcd-endpoints"},
		{[]string{"--etcd-endpoints", "127.0.0.1:2379"}, nil, "--etcd-endpoints"},
		{[]string{"--etcd-prefix", "relative"}, nil, "--etcd-prefix"},
		{[]string{"--etcd-certfile", "c.pem"}, nil, "--etcd-keyfile"},
		{[]string{"--metrics-addr", "nocolon"}, nil, "--metrics-addr"},
		{[]string{"--node-name", "a/b"}, nil, "--node-name"},
		{[]string{"extra"}, nil, "extra"},
	} {
		code, _, errOut, _ := testCLI(t, c.env, "", append([]string{"run"}, c.args...)...)
		if code != ExitUsage {
			t.Errorf("%v %v: exit %d, want %d (stderr %q)", c.args, c.env, code, ExitUsage, errOut)
		}
		if !strings.Contains(errOut, c.want) {
			t.Errorf("%v %v: stderr %q does not name %q", c.args, c.env, errOut, c.want)
		}
	}
}

func TestMainCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"version"}, "v9", &out, &errb); code != 0 || !strings.Contains(out.String(), "v9") {
		t.Errorf("version: %d %q", code, out.String())
	}
	out.Reset()
	if code := Main([]string{"frobnicate"}, "v9", &out, &errb); code != ExitUsage {
		t.Errorf("unknown command: exit %d", code)
	}
	errb.Reset()
	if code := Main([]string{"annotate"}, "v9", &out, &errb); code != ExitUsage {
		t.Errorf("annotate without NODE: exit %d %q", code, errb.String())
	}
	errb.Reset()
	if code := Main([]string{"config", "put", "/nonexistent/file.json"}, "v9", &out, &errb); code != ExitError || !strings.Contains(errb.String(), "/nonexistent/file.json") {
		t.Errorf("config put missing file: exit %d %q", code, errb.String())
	}
	errb.Reset()
	if code := Main([]string{"etcd"}, "v9", &out, &errb); code != ExitUsage || !strings.Contains(errb.String(), "--data-dir") {
		t.Errorf("etcd without --data-dir: exit %d %q", code, errb.String())
	}
	out.Reset()
	if code := Main([]string{"run", "-h"}, "v9", &out, &errb); code != 0 || !strings.Contains(out.String(), "public-ipv6") {
		t.Errorf("run -h: exit %d %q", code, out.String())
	}
}
