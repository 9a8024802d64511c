package daemon

import (
	"bytes"
	"flag"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/subnetfile"
)

func parseRun(t *testing.T, args []string, env map[string]string) (Options, error) {
	t.Helper()
	var o Options
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	addRunFlags(fs, &o)
	err := parseFlags(fs, args, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err == nil {
		err = o.validate()
	}
	return o, err
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
	if o.ResyncInterval != DefaultResyncInterval {
		t.Errorf("resync interval %s, want %s", o.ResyncInterval, DefaultResyncInterval)
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
	if !o.flagNamesAddress() {
		t.Error("--public-ipv6 names the address")
	}
}

func TestFlagNamesAddress(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want bool
	}{
		{Options{}, false},
		{Options{PublicIPv6: "x"}, true},
		{Options{PublicIP: "2001:db8::1"}, true},
		{Options{PublicIP: "192.0.2.1"}, false},
		{Options{PublicIP: "garbage"}, true}, // let vtep.Choose reject it early
		{Options{Iface: []string{"2001:db8::1"}}, false},
	} {
		if got := c.o.flagNamesAddress(); got != c.want {
			t.Errorf("%+v: got %v", c.o, got)
		}
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
		var out, errb bytes.Buffer
		cl := &cli{stdout: &out, stderr: &errb, getenv: func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }}
		code := cl.run(c.args)
		if code != ExitUsage {
			t.Errorf("%v %v: exit %d, want %d (stderr %q)", c.args, c.env, code, ExitUsage, errb.String())
		}
		if !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v %v: stderr %q does not name %q", c.args, c.env, errb.String(), c.want)
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
	if code := Main([]string{"annotate", "node-only"}, "v9", &out, &errb); code != ExitUsage {
		t.Errorf("annotate without KEY=VALUE: exit %d %q", code, errb.String())
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

func TestMetricsText(t *testing.T) {
	m := newMetrics(5 * time.Minute)
	m.update(func(m *metrics) {
		m.vtepAddr, m.vtepLocal, m.vtepSource, m.vtepIface, m.operatorChosen = "2001:db8::2", "2001:db8::2", "flag --public-ipv6", "eth0", true
		m.peers = 3
		m.errors["list_leases"] = 2
		m.periodicResyncs = 7
	})
	var b bytes.Buffer
	m.write(&b)
	for _, want := range []string{
		`vxlan6d_vtep_info{address="2001:db8::2",local="2001:db8::2",source="flag --public-ipv6",interface="eth0",operator_chosen="true"} 1`,
		"vxlan6d_peers 3", "vxlan6d_lease_ttl_seconds 300", `vxlan6d_errors_total{op="list_leases"} 2`, "vxlan6d_ready 0",
		"vxlan6d_periodic_resyncs_total 7",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
	if ok, missing := m.ready(); ok || !strings.Contains(missing, "lease") {
		t.Errorf("ready %v %q", ok, missing)
	}
}

func TestFits(t *testing.T) {
	_, n, _ := net.ParseCIDR("fd10:244::/48")
	_, in, _ := net.ParseCIDR("fd10:244:0:5::/64")
	_, out, _ := net.ParseCIDR("fd10:245:0:5::/64")
	_, wrongLen, _ := net.ParseCIDR("fd10:244:0:4::/62")
	if !fits(n, 64, in) || fits(n, 64, out) || fits(n, 64, wrongLen) || fits(n, 64, nil) {
		t.Error("fits is wrong")
	}
}

func TestEtcdTLSFilesNamed(t *testing.T) {
	e := EtcdOptions{Endpoints: []string{"https://[2001:db8::1]:2379"}, Prefix: "/p", CAFile: "/nonexistent/ca.pem"}
	if _, err := e.clientConfig(); err == nil || !strings.Contains(err.Error(), "/nonexistent/ca.pem") {
		t.Errorf("missing CA file: %v", err)
	}
	e = EtcdOptions{Endpoints: []string{"https://[2001:db8::1]:2379"}, Prefix: "/p"}
	cfg, err := e.clientConfig()
	if err != nil || cfg.TLS == nil {
		t.Errorf("https endpoint without files must still use TLS: %v %v", err, cfg.TLS)
	}
}
