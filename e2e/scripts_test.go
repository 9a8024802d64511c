package e2e

// The scripts a newcomer runs (make demo, scripts/testbed.sh) are tested
// here too, so they cannot rot: the demo end to end, the testbed's
// subcommands, and its promise to leave nothing behind after a failure or
// Ctrl-C.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/internal/testutil"
)

// script runs a script of scripts/ with env, bounded; output is stdout+stderr.
func script(t *testing.T, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	t.Helper()
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(root, "scripts", name)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	// Its own process group, so a timeout kill reaches what it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err = cmd.Run()
	return buf.String(), err
}

// scriptEnv points the scripts at this run's binaries (testutil.Binary puts
// vxlan6 and vxlan6d in one directory) and a unique testbed prefix.
func scriptEnv(t *testing.T) (prefix string, env []string) {
	t.Helper()
	testutil.Binary(t, "vxlan6")
	bin := filepath.Dir(testutil.Binary(t, "vxlan6d"))
	prefix = testutil.UniqueName("t")
	env = []string{"BIN=" + bin, "PREFIX=" + prefix, "STATE_DIR=/tmp/vxlan6-testbed-" + prefix}
	// The scripts attach their containers with cnitool.
	env = append(env, "CNITOOL="+cnitoolPath(t))
	// Whatever happens, the testbed goes.
	t.Cleanup(func() {
		if out, err := script(t, time.Minute, env, "testbed.sh", "down", "-q"); err != nil {
			t.Logf("testbed.sh down: %v\n%s", err, out)
		}
	})
	return prefix, env
}

// assertNoTestbed: no namespace, no process and no state dir of prefix.
func assertNoTestbed(t *testing.T, prefix string) {
	t.Helper()
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, prefix+"-") {
			t.Errorf("netns left behind: %s", l)
		}
	}
	state := "/tmp/vxlan6-testbed-" + prefix
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(state)) {
			t.Errorf("process left behind: %s: %s", p, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
	if _, err := os.Stat(state); err == nil {
		t.Errorf("state dir %s left behind", state)
	}
}

// TestDemoScript runs what `make demo` runs (dual-stack, to cover both
// families) and checks its verdict, its table and that it tears down.
func TestDemoScript(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	prefix, env := scriptEnv(t)
	start := time.Now()
	out, err := script(t, 4*time.Minute, append(env, "DUAL=1"), "demo.sh")
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	t.Logf("figure: demo (3 hosts x 2 containers, dual-stack) took %.1fs", time.Since(start).Seconds())
	for _, want := range []string{
		"OK: all 30 pairs reachable across 3 hosts",
		"operator: --public-ipv6 (honoured)",
		"operator: --iface <address> (honoured)",
		"autodetected",
		"h1/c1",
		"vxlan6d status --probe on h1:", "(flag --public-ipv6, the operator's choice)", "PEER VTEP", "0%",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	assertNoTestbed(t, prefix)
}

// TestTestbedScript drives every subcommand of scripts/testbed.sh.
func TestTestbedScript(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	prefix, env := scriptEnv(t)
	tb := func(args ...string) string {
		t.Helper()
		out, err := script(t, 2*time.Minute, env, "testbed.sh", append(args, "-q")...)
		if err != nil {
			t.Fatalf("testbed.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(out)
	}
	tb("up", "-n", "2", "--lease-ttl", "3s")
	// A second testbed with the same prefix is refused, the first untouched.
	if out, err := script(t, time.Minute, env, "testbed.sh", "up", "-q"); err == nil || !strings.Contains(out, "exists") {
		t.Errorf("second up with prefix %s: err=%v\n%s", prefix, err, out)
	}
	if h := tb("add-host"); h != "h3" {
		t.Fatalf("add-host printed %q, want h3", h)
	}
	// h1 named its second address, h3 autodetected (the mode cycle).
	if v := tb("vtep", "h1"); v != "2001:db8:1::12" {
		t.Errorf("h1 VTEP %s, want the named 2001:db8:1::12", v)
	}
	if v := tb("vtep", "h3"); v != "2001:db8:1::31" {
		t.Errorf("h3 VTEP %s, want the autodetected 2001:db8:1::31", v)
	}
	a := strings.Fields(tb("add-container", "h1", "a"))
	c := strings.Fields(tb("add-container", "h3", "c"))
	if len(a) < 2 || len(c) < 2 {
		t.Fatalf("add-container output: %v %v", a, c)
	}
	if err := waitReach(a[0], parseIP(t, c[1]), meshTimeout); err != nil {
		t.Fatal(err)
	}
	tr := make(chan error, 1)
	go func() {
		_, err := testbed.ExecTimeout(30*time.Second, a[0], "ping", "-6", "-q", "-c", "25", "-i", "0.2", "-w", "15", c[1])
		tr <- err
	}()
	tb("stop-daemon", "h1")
	tb("start-daemon", "h1")
	if err := <-tr; err != nil {
		t.Errorf("echoes lost across testbed.sh stop-daemon/start-daemon: %v", err)
	}
	status := tb("status")
	for _, h := range []string{"h1", "h2", "h3"} {
		if !strings.Contains(status, h+" ") {
			t.Errorf("status lacks %s:\n%s", h, status)
		}
	}
	tb("del-container", "h3", "c")
	tb("remove-host", "h3")
	if _, err := os.Stat(testbed.NetnsPath(prefix + "-h3")); err == nil {
		t.Error("remove-host h3 left its netns")
	}
	tb("down")
	assertNoTestbed(t, prefix)
}

// TestTestbedScriptInterrupted: Ctrl-C in the middle of `up`, and an `up`
// that fails half-way, both leave nothing behind.
func TestTestbedScriptInterrupted(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	t.Run("SIGINT", func(t *testing.T) {
		prefix, env := scriptEnv(t)
		root, _ := testutil.ModuleRoot()
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "testbed.sh"), "up", "-n", "3")
		cmd.Env = append(os.Environ(), env...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Interrupt once hosts exist and daemons may be starting.
		err := testbed.Eventually(60*time.Second, 20*time.Millisecond, func() error {
			if _, err := os.Stat(testbed.NetnsPath(prefix + "-h2")); err != nil {
				return fmt.Errorf("no host h2 yet")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, buf.String())
		}
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err = <-done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			t.Fatalf("testbed.sh up ignored SIGINT for a minute\n%s", buf.String())
		}
		if err == nil && !strings.Contains(buf.String(), "tearing down") {
			t.Logf("up finished before the signal landed:\n%s", buf.String())
			return
		}
		assertNoTestbed(t, prefix)
	})
	t.Run("failure", func(t *testing.T) {
		prefix, env := scriptEnv(t)
		// An unknown VTEP mode for host 2 fails `up` after host 1 is running.
		out, err := script(t, 2*time.Minute, env, "testbed.sh", "up", "-n", "2", "--vtep-modes", "public,bogus")
		if err == nil {
			t.Fatalf("up with a bogus VTEP mode succeeded:\n%s", out)
		}
		if !strings.Contains(out, "bogus") || !strings.Contains(out, "tearing down") {
			t.Errorf("want an error naming the bad mode and a teardown:\n%s", out)
		}
		assertNoTestbed(t, prefix)
	})
}

func parseIP(t *testing.T, s string) net.IP {
	t.Helper()
	ip := net.ParseIP(s)
	if ip == nil {
		t.Fatalf("%q is not an IP address", s)
	}
	return ip
}
