package admin

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// TestEtcdCommandRunsEtcdProgram: `vxlan6d etcd` (built without etcd's
// server) serves through the vxlan6d-etcd beside it, in the same process
// (the PID and the "vxlan6d etcd" command line stay, which systemd and
// scripts/testbed.sh rely on), and a SIGTERM stops it with exit 0.
func TestEtcdCommandRunsEtcdProgram(t *testing.T) {
	bin := testutil.Binary(t, "vxlan6d")
	// A short directory: a unix socket path is at most 107 bytes.
	dir, err := os.MkdirTemp("", "vx6etcd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "etcd.sock")
	var out bytes.Buffer
	cmd := exec.Command(bin, "etcd", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "unix://"+sock, "--unsafe-no-fsync")
	cmd.Stdout, cmd.Stderr = &out, &out
	// The environment reaches the program: it logs JSON.
	cmd.Env = append(os.Environ(), "VXLAN6D_LOG_FORMAT=json")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	})
	waitSocket(t, sock, done, &out)

	exe, err := os.Readlink("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/exe")
	if err != nil || filepath.Base(exe) != EtcdProgram {
		t.Errorf("pid %d runs %q (%v), want %s", cmd.Process.Pid, exe, err, EtcdProgram)
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cmdline"); err != nil ||
		!strings.HasPrefix(strings.ReplaceAll(string(b), "\x00", " "), bin+" etcd --data-dir") {
		t.Errorf("command line %q (%v), want it to start with %q", b, err, bin+" etcd --data-dir")
	}
	putGet(t, "unix://"+sock)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("vxlan6d etcd after SIGTERM: %v, want exit 0\n%s", err, out.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("vxlan6d etcd still runs 2m after SIGTERM\n%s", out.String())
	}
	if !strings.Contains(out.String(), `"msg":"embedded etcd ready"`) {
		t.Errorf("no JSON 'embedded etcd ready' line: VXLAN6D_LOG_FORMAT did not reach %s\n%s", EtcdProgram, out.String())
	}
}

// waitSocket waits (bounded) until the member's socket exists.
func waitSocket(t *testing.T, sock string, done <-chan error, out *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("vxlan6d etcd exited at start: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 90s\n%s", sock, out.String())
		}
	}
}

// putGet writes a key through ep and reads it back.
func putGet(t *testing.T, ep string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("connect to %s: %v", ep, err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cli.Put(ctx, "/launch-test", "served"); err != nil {
		t.Fatalf("put through %s: %v", ep, err)
	}
	resp, err := cli.Get(ctx, "/launch-test")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "served" {
		t.Fatalf("get through %s: %v %v", ep, resp, err)
	}
}

// TestEtcdCommandWithoutEtcdProgram: a vxlan6d with no vxlan6d-etcd beside
// it or on PATH says where it looked (exit 1); usage errors still come from
// vxlan6d itself (exit 2), before it looks.
func TestEtcdCommandWithoutEtcdProgram(t *testing.T) {
	src := testutil.Binary(t, "vxlan6d")
	dir := t.TempDir()
	bin := filepath.Join(dir, "vxlan6d")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH="}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("run %s: %v", bin, err)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	code, out := run("etcd", "--data-dir", filepath.Join(dir, "data"), "--listen-client-urls", "unix://"+filepath.Join(dir, "e.sock"))
	want := "vxlan6d etcd: the embedded etcd is the program vxlan6d-etcd, shipped beside vxlan6d (kept out of the daemon's memory); not found beside " + bin + " or on PATH"
	if code != ExitError || !strings.Contains(out, want) {
		t.Errorf("exit %d, output %q; want exit %d and %q", code, out, ExitError, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("the data dir was created although no etcd ran")
	}
	code, out = run("etcd", "--listen-client-urls", "unix://"+filepath.Join(dir, "e.sock"))
	if code != ExitUsage || !strings.Contains(out, "--data-dir is required") {
		t.Errorf("without --data-dir: exit %d, output %q; want exit %d and the usage error", code, out, ExitUsage)
	}
}

// TestEtcdCommandExecArgs: vxlan6d's etcd hands vxlan6d-etcd (here found on
// PATH) its whole command line, argv[0] included, and its environment; a
// usage error never gets that far.
func TestEtcdCommandExecArgs(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, EtcdProgram)
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	t.Setenv("VXLAN6D_LOG_LEVEL", "debug")
	args := []string{"etcd", "-data-dir", "/d", "--listen-client-urls", "unix:///run/e.sock", "--unsafe-no-fsync"}
	var gotProg string
	var gotArgv, gotEnv []string
	var out, errb bytes.Buffer
	c := newCLI(args, "v9", &out, &errb)
	c.defaultEnvFile = ""
	c.exec = func(argv0 string, argv, envv []string) error {
		gotProg, gotArgv, gotEnv = argv0, argv, envv
		return nil
	}
	if code := c.execute(args); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if gotProg != prog {
		t.Errorf("execed %q, want %q", gotProg, prog)
	}
	if want := append([]string{os.Args[0]}, args...); !reflect.DeepEqual(gotArgv, want) {
		t.Errorf("argv %q, want %q (as given, before vxlan6d's own rewriting)", gotArgv, want)
	}
	if !slices.Contains(gotEnv, "VXLAN6D_LOG_LEVEL=debug") {
		t.Errorf("environment lacks VXLAN6D_LOG_LEVEL=debug: %q", gotEnv)
	}

	gotProg = ""
	bad := []string{"etcd", "--data-dir", "/d", "--listen-client-urls", "ftp://x"}
	c = newCLI(bad, "v9", &out, &errb)
	c.defaultEnvFile = ""
	c.exec = func(argv0 string, _, _ []string) error { gotProg = argv0; return nil }
	if code := c.execute(bad); code != ExitUsage || gotProg != "" {
		t.Errorf("bad URL: exit %d, execed %q; want exit %d and no exec", code, gotProg, ExitUsage)
	}
}
