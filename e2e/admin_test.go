package e2e

// The admin commands and the daemon's refusals of bad flags and choices.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/vxlan"
)

// TestBadChoicesWriteNothing: invalid VTEP choices (flag, --iface address,
// annotation), bad flags and a bad config are clear errors and leave no
// lease in etcd.
func TestBadChoicesWriteNothing(t *testing.T) {
	t.Parallel()
	b := testbed.New(t, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	run := func(env []string, args ...string) (string, int) {
		t.Helper()
		full := append([]string{"run"}, append(h.DaemonArgs(), args...)...)
		_, errOut, code := h.Run(30*time.Second, env, full...)
		return errOut, code
	}

	// A bad config is refused before it reaches etcd.
	bad := filepath.Join(b.Dir, "bad.json")
	os.WriteFile(bad, []byte(`{"EnableIPv6":true,"IPv6Network":"fd10:244::/48","IPv6SubnetLen":40}`), 0o644)
	_, errOut, code := h.Run(20*time.Second, nil, append([]string{"config", "put", bad}, b.EtcdFlags()...)...)
	if code != 1 || !strings.Contains(errOut, "IPv6SubnetLen") {
		t.Errorf("config put of a bad config: exit %d, %q (want 1 naming IPv6SubnetLen)", code, errOut)
	}
	if keys := b.Keys(); len(keys) != 0 {
		t.Fatalf("bad config reached etcd: %v", keys)
	}
	good := filepath.Join(b.Dir, "good.json")
	os.WriteFile(good, []byte(testbed.ConfigJSON(false)), 0o644)
	if out, errOut, code := h.Run(20*time.Second, nil, append([]string{"config", "put", good}, b.EtcdFlags()...)...); code != 0 {
		t.Fatalf("config put: %d %s %s", code, out, errOut)
	}
	if out, _, code := h.Run(20*time.Second, nil, append([]string{"config", "get"}, b.EtcdFlags()...)...); code != 0 || !strings.Contains(out, testbed.IPv6Network) {
		t.Errorf("config get: %d %q", code, out)
	}

	for _, c := range []struct {
		name  string
		env   []string
		args  []string
		code  int
		names string
	}{
		{"link-local", nil, []string{"--public-ipv6", "fe80::1"}, 1, "fe80::1"},
		{"not owned", nil, []string{"--public-ipv6", "2001:db8:77::1"}, 1, "2001:db8:77::1"},
		{"malformed", nil, []string{"--public-ipv6", "2001:db8::zz"}, 1, "2001:db8::zz"},
		{"ipv4 as ipv6", nil, []string{"--public-ipv6", "192.0.2.1"}, 1, "192.0.2.1"},
		{"iface address not owned", nil, []string{"--iface", "2001:db8:77::5"}, 1, "2001:db8:77::5"},
		{"unknown flag", nil, []string{"--publik-ipv6", "x"}, 2, "--publik-ipv6"},
		{"bad ttl", nil, []string{"--lease-ttl", "five"}, 2, "--lease-ttl"},
		{"bad ttl env", []string{"VXLAN6D_LEASE_TTL=five"}, nil, 2, "VXLAN6D_LEASE_TTL"},
	} {
		errOut, code := run(c.env, c.args...)
		if code != c.code || !strings.Contains(errOut, c.names) {
			t.Errorf("%s: exit %d, want %d naming %q; stderr:\n%s", c.name, code, c.code, c.names, errOut)
		}
	}
	// An unusable annotation stops the daemon the same way.
	h.Annotate(lease.AnnotationPublicIPv6 + "=2001:db8:77::9")
	if errOut, code := run(nil); code != 1 || !strings.Contains(errOut, "2001:db8:77::9") {
		t.Errorf("bad annotation: exit %d, stderr:\n%s", code, errOut)
	}
	for _, k := range b.Keys() {
		if strings.HasPrefix(k, b.Registry().LeasesPrefix()) {
			t.Errorf("a failed start wrote %s", k)
		}
	}
	// A flag wins over the bad annotation.
	h.StartDaemon("--public-ipv6", h.NotFirst().String())
	h.Daemon().WaitReady(readyTimeout)
	if local, _ := h.VXLANLocal(); !local.Equal(h.NotFirst()) {
		t.Errorf("local %s, want the flag's %s", local, h.NotFirst())
	}
}

// TestAdminCLI: leases table and annotation removal.
func TestAdminCLI(t *testing.T) {
	t.Parallel()
	b := testbed.NewConfigured(t, testbed.Options{Hosts: 2}, false)
	startAll(t, b, map[int][]string{0: {"--public-ipv6", b.Hosts[0].NotFirst().String()}})
	h1 := b.Hosts[0]
	out, errOut, code := h1.Run(20*time.Second, nil, append([]string{"leases"}, b.EtcdFlags()...)...)
	if code != 0 {
		t.Fatalf("leases: %d %s", code, errOut)
	}
	for _, h := range b.Hosts {
		sf, _ := h.SubnetConfig()
		for _, want := range []string{h.Name, sf.VTEP.String(), sf.Subnets.V6.String(), vxlan.MACFor(sf.VTEP).String()} {
			if !strings.Contains(out, want) {
				t.Errorf("leases table lacks %q:\n%s", want, out)
			}
		}
	}
	if !regexp.MustCompile(`\b[1-5]m[0-9]+s\b|\b5m0s\b|\b[0-9]+s\b`).MatchString(out) {
		t.Errorf("leases table shows no TTL:\n%s", out)
	}
	t.Logf("vxlan6d leases:\n%s", out)
	for _, args := range [][]string{{"annotate", "n9", "team=blue", "vxlan6.io/public-ipv6=2001:db8:1::5"}, {"annotate", "n9", "team-"}} {
		if _, errOut, code := h1.Run(20*time.Second, nil, append(args, b.EtcdFlags()...)...); code != 0 {
			t.Fatalf("%v: %d %s", args, code, errOut)
		}
	}
	ann, err := b.Registry().NodeAnnotations(context.Background(), "n9")
	if err != nil || ann["team"] != "" || ann[lease.AnnotationPublicIPv6] != "2001:db8:1::5" {
		t.Errorf("annotations %v %v", ann, err)
	}
	if _, _, code := h1.Run(20*time.Second, nil, append([]string{"annotate", "n9", lease.AnnotationPublicIPv6 + "=10.0.0.1"}, b.EtcdFlags()...)...); code != 1 {
		t.Errorf("an IPv4 public-ipv6 annotation was accepted (exit %d)", code)
	}
}

// TestEtcdSubcommand: `vxlan6d etcd` serves until SIGTERM, and the admin
// commands work against it (no root needed).
func TestEtcdSubcommand(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary: skipped with -short")
	}
	bin := testutil.Binary(t, "vxlan6d")
	dir := t.TempDir()
	sock := "unix://" + filepath.Join(dir, "etcd.sock")
	// Killed in Cleanup; gone with the test process even without it.
	etcd := testbed.StartProc(t, "vxlan6d etcd", "", filepath.Join(dir, "etcd.log"), nil, 8<<10,
		bin, "etcd", "--data-dir", filepath.Join(dir, "data"), "--listen-client-urls", sock)
	conf := filepath.Join(dir, "net.json")
	os.WriteFile(conf, []byte(testbed.ConfigJSON(true)), 0o644)
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, append(args, "--etcd-endpoints", sock)...).CombinedOutput()
		return string(out), err
	}
	if err := testbed.Eventually(20*time.Second, 200*time.Millisecond, func() error {
		out, err := run("config", "put", conf)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}); err != nil {
		t.Fatalf("config put against vxlan6d etcd: %v", err)
	}
	out, err := run("config", "get")
	if err != nil || !strings.Contains(out, testbed.IPv4Network) {
		t.Fatalf("config get: %v %s", err, out)
	}
	if out, err := run("leases"); err != nil || !strings.Contains(out, "VTEP") {
		t.Errorf("leases on an empty cluster: %v %s", err, out)
	}
	_ = etcd.Signal(syscall.SIGTERM)
	if _, err := etcd.Wait(20 * time.Second); err != nil {
		t.Fatalf("vxlan6d etcd ignored SIGTERM: %v", err)
	}
	if err := etcd.ExitErr(); err != nil {
		t.Errorf("vxlan6d etcd exit after SIGTERM: %v\n%s", err, etcd.Log())
	}
}
