package admin

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/overlay/daemon"
	"github.com/vxlan6/vxlan6/overlay/lease"
)

// testCLI runs one command line with env as the whole environment and
// envFile as the default env file; a daemon started by it only records its
// options.
func testCLI(t *testing.T, env map[string]string, envFile string, args ...string) (code int, stdout, stderr string, opts *daemon.Options) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, version: "v9", defaultEnvFile: envFile,
		getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		runDaemon: func(_ context.Context, o daemon.Options, _ *slog.Logger) error {
			opts = &o
			return nil
		}}
	code = c.execute(args)
	return code, out.String(), errb.String(), opts
}

func TestHelpListsEveryCommand(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"-h"}} {
		code, out, errOut, _ := testCLI(t, nil, "", args...)
		if code != ExitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		for _, cmd := range []string{"run", "etcd", "config", "annotate", "leases", "nodes", "lease", "status", "ipam", "completion", "version"} {
			if !strings.Contains(out, "\n  "+cmd+" ") {
				t.Errorf("%v does not list %q:\n%s", args, cmd, out)
			}
		}
		if strings.Contains(out, "\n  man ") {
			t.Errorf("%v lists the hidden man command", args)
		}
	}
	for _, args := range [][]string{{"lease", "--help"}, {"config", "put", "--help"}, {"leases", "-h"}, {"status", "--help"}} {
		if code, out, errOut, _ := testCLI(t, nil, "", args...); code != ExitOK || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d %q %q", args, code, out, errOut)
		}
	}
}

func TestVersionAndCompletion(t *testing.T) {
	if code, out, _, _ := testCLI(t, nil, "", "--version"); code != ExitOK || !strings.Contains(out, "vxlan6d v9") {
		t.Errorf("--version: exit %d %q", code, out)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, errOut, _ := testCLI(t, nil, "", "completion", sh)
		if code != ExitOK || !strings.Contains(out, "vxlan6d") || len(out) < 500 {
			t.Errorf("completion %s: exit %d, %d bytes, %s", sh, code, len(out), errOut)
		}
	}
	// A broken env file on the build host does not stop them.
	bad := filepath.Join(t.TempDir(), "bad.env")
	os.WriteFile(bad, []byte("not a variable\n"), 0o644)
	dir := t.TempDir()
	if code, out, errOut, _ := testCLI(t, nil, bad, "completion", "bash"); code != ExitOK || !strings.Contains(out, "vxlan6d") {
		t.Errorf("completion bash with a bad env file: exit %d %s", code, errOut)
	}
	if code, _, errOut, _ := testCLI(t, nil, bad, "man", dir); code != ExitOK {
		t.Fatalf("man: exit %d %s", code, errOut)
	}
	for _, page := range []string{"vxlan6d.8", "vxlan6d-run.8", "vxlan6d-lease-reserve.8", "vxlan6d-status.8"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil || !bytes.Contains(b, []byte(".TH")) {
			t.Errorf("man page %s: %v", page, err)
		}
	}
}

func TestNoCommandRunsTheDaemon(t *testing.T) {
	for _, args := range [][]string{
		{"--etcd-endpoints", "http://[::1]:1", "--node-name", "n1"},
		{"run", "--etcd-endpoints", "http://[::1]:1", "--node-name", "n1"},
		// Go's flag package accepted one dash; pflag would read -e -t -c...
		{"-etcd-endpoints", "http://[::1]:1", "-node-name=n1"},
		{"run", "-etcd-endpoints=http://[::1]:1", "-node-name", "n1"},
	} {
		code, _, errOut, o := testCLI(t, nil, "", args...)
		if code != ExitOK || o == nil {
			t.Fatalf("%v: exit %d, daemon ran %v: %s", args, code, o != nil, errOut)
		}
		if !reflect.DeepEqual(o.Etcd.Endpoints, []string{"http://[::1]:1"}) || o.NodeName != "n1" {
			t.Errorf("%v: endpoints %v node %q", args, o.Etcd.Endpoints, o.NodeName)
		}
	}
	code, _, errOut, _ := testCLI(t, nil, "", "run", "-bogus-flag", "x")
	if code != ExitUsage || !strings.Contains(errOut, "--bogus-flag") {
		t.Errorf("-bogus-flag: exit %d %q", code, errOut)
	}
	code, _, errOut, _ = testCLI(t, nil, "", "frobnicate")
	if code != ExitUsage || !strings.Contains(errOut, "frobnicate") {
		t.Errorf("unknown command: exit %d %q", code, errOut)
	}
}

func TestEnvFilePrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "vxlan6d.env")
	content := `# comment
; also a comment
VXLAN6D_NODE_NAME=from-file
VXLAN6D_LEASE_TTL="1h"
VXLAN6D_PUBLIC_IPV6 = 2001:db8::5
VXLAN6D_IFACE='eth0,eth1'
VXLAN6D_ETCD_ENDPOINTS=http://[2001:db8::1]:2379,\
  http://[2001:db8::2]:2379
`
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VXLAN6D_NODE_NAME": "from-env", "VXLAN6D_PUBLIC_IPV6": "2001:db8::6"}
	// The default file when present, and --env-file.
	for _, args := range [][]string{{"run", "--public-ipv6", "2001:db8::7"}, {"--env-file", file, "run", "--public-ipv6", "2001:db8::7"}} {
		def := file
		if args[0] == "--env-file" {
			def = "/nonexistent/default.env"
		}
		code, _, errOut, o := testCLI(t, env, def, args...)
		if code != ExitOK || o == nil {
			t.Fatalf("%v: exit %d %s", args, code, errOut)
		}
		if o.PublicIPv6 != "2001:db8::7" || o.NodeName != "from-env" || o.LeaseTTL != time.Hour ||
			!reflect.DeepEqual(o.Iface, []string{"eth0", "eth1"}) || len(o.Etcd.Endpoints) != 2 {
			t.Errorf("%v: want flag > env > file, got public %s node %s ttl %s iface %v endpoints %v",
				args, o.PublicIPv6, o.NodeName, o.LeaseTTL, o.Iface, o.Etcd.Endpoints)
		}
	}
	// A missing default file is fine; a missing --env-file is an error.
	if code, _, errOut, _ := testCLI(t, nil, "/nonexistent/default.env", "run", "--node-name", "n"); code != ExitOK {
		t.Errorf("missing default env file: exit %d %s", code, errOut)
	}
	if code, _, errOut, _ := testCLI(t, nil, "", "--env-file", "/nonexistent/x.env", "run"); code != ExitError || !strings.Contains(errOut, "/nonexistent/x.env") {
		t.Errorf("missing --env-file: exit %d %s", code, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.env")
	os.WriteFile(bad, []byte("VXLAN6D_LEASE_TTL=soon\n"), 0o644)
	if code, _, errOut, _ := testCLI(t, nil, bad, "run"); code != ExitUsage || !strings.Contains(errOut, "VXLAN6D_LEASE_TTL (env file) for flag --lease-ttl") {
		t.Errorf("bad value in env file: exit %d %s", code, errOut)
	}
	// VXLAN6D_ENV_FILE=/dev/null (the lab scripts, e2e) shields a command
	// from the machine's own default env file.
	if code, _, errOut, o := testCLI(t, map[string]string{"VXLAN6D_ENV_FILE": os.DevNull}, bad, "run", "--node-name", "n"); code != ExitOK || o == nil || o.LeaseTTL != lease.DefaultTTL {
		t.Errorf("VXLAN6D_ENV_FILE=/dev/null with a bad default env file: exit %d %s", code, errOut)
	}
}
