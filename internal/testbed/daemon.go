package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// Daemon is one vxlan6d process on a host (PID, Exited, ExitErr,
// ExitCode, Wait, Kill, Log and LogPath, its stdout+stderr, come from Proc).
type Daemon struct {
	*Proc
	Host *Host
	Args []string // the full vxlan6d argument list
}

// DaemonArgs are the flags StartDaemon passes before the caller's: the bed's
// etcd, the host's node name, subnet file and lease file, debug logging. Later flags win
// (the flag package keeps the last value).
func (h *Host) DaemonArgs() []string {
	return append(h.Bed.EtcdFlags(), "--node-name", h.Name, "--subnet-file", h.SubnetFile,
		"--lease-file", filepath.Join(h.Dir, "lease.json"), "--log-level", "debug")
}

// StartDaemon starts `vxlan6d run` in the host's netns with DaemonArgs plus
// args. The process is killed in Cleanup, and its log dumped if the test
// failed. It does not wait for readiness: see WaitReady / WaitSubnetFile.
func (h *Host) StartDaemon(args ...string) *Daemon {
	t := h.Bed.T
	t.Helper()
	if h.Bed.DaemonBin == "" {
		h.Bed.DaemonBin = testutil.Binary(t, "vxlan6d")
	}
	full := append([]string{"run"}, append(h.DaemonArgs(), args...)...)
	n := len(h.daemons) + 1
	d := &Daemon{Host: h, Args: full}
	// Killed in Cleanup, its last 24 KiB logged if the test failed.
	d.Proc = StartProc(t, fmt.Sprintf("vxlan6d #%d on %s", n, h.Name), h.Name,
		filepath.Join(h.Dir, fmt.Sprintf("vxlan6d-%d.log", n)), h.DaemonEnv, 24<<10, append([]string{h.Bed.DaemonBin}, full...)...)
	h.daemons = append(h.daemons, d)
	t.Logf("%s: started vxlan6d (pid %d): %s", h.Name, d.PID(), strings.Join(full, " "))
	return d
}

// Daemon returns the host's most recently started daemon, or nil.
func (h *Host) Daemon() *Daemon {
	if len(h.daemons) == 0 {
		return nil
	}
	return h.daemons[len(h.daemons)-1]
}

// Stop sends SIGTERM and waits up to 10s (then SIGKILL). It returns the
// exit code.
func (d *Daemon) Stop() int {
	if d.Exited() {
		return d.ExitCode()
	}
	_ = d.Signal(syscall.SIGTERM)
	if code, err := d.Wait(10 * time.Second); err == nil {
		return code
	}
	d.Host.Bed.T.Logf("vxlan6d on %s ignored SIGTERM for 10s, killing it", d.Host.Name)
	d.Kill()
	return -1
}

// WaitLog waits (bounded) until the log contains substr. It fails fast if
// the process exits first.
func (d *Daemon) WaitLog(substr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(d.Log(), substr) {
			return nil
		}
		if d.Exited() {
			if strings.Contains(d.Log(), substr) {
				return nil
			}
			return fmt.Errorf("vxlan6d on %s exited (%v) before logging %q:\n%s", d.Host.Name, d.ExitErr(), substr, Tail(d.Log(), 4<<10))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vxlan6d on %s did not log %q within %s:\n%s", d.Host.Name, substr, timeout, Tail(d.Log(), 4<<10))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ReadyMsg is what vxlan6d logs once lease, device and subnet file are ready.
const ReadyMsg = "msg=ready "

// WaitReady waits until this daemon process is ready (not merely until some
// subnet file exists: after a restart the old one is still there).
func (d *Daemon) WaitReady(timeout time.Duration) {
	d.Host.Bed.T.Helper()
	if err := d.WaitLog(ReadyMsg, timeout); err != nil {
		d.Host.Bed.T.Fatal(err)
	}
}

// StartDaemons starts a daemon on every host, with extra(h) appended to its
// flags (extra may be nil), and only then waits up to timeout for each to be
// ready: starting them all first lets the daemons find each other while the
// test waits.
func (b *Bed) StartDaemons(timeout time.Duration, extra func(h *Host) []string) {
	b.T.Helper()
	for _, h := range b.Hosts {
		var args []string
		if extra != nil {
			args = extra(h)
		}
		h.StartDaemon(args...)
	}
	for _, h := range b.Hosts {
		h.Daemon().WaitReady(timeout)
	}
}

// Annotate sets node annotations (KEY=VALUE, or KEY- to remove) for this
// host through `vxlan6d annotate`, the way an operator would, and fails the
// test if that does not exit 0.
func (h *Host) Annotate(kv ...string) {
	t := h.Bed.T
	t.Helper()
	args := append(append([]string{"annotate", h.Name}, kv...), h.Bed.EtcdFlags()...)
	if out, errOut, code := h.Run(20*time.Second, nil, args...); code != 0 {
		t.Fatalf("vxlan6d annotate %s %v: exit %d: %s%s", h.Name, kv, code, out, errOut)
	}
}

// Run runs a one-shot vxlan6d command (e.g. "annotate", "leases", or "run"
// with flags expected to fail) in the host's netns, bounded by timeout, and
// returns stdout, stderr and the exit code (-1 if it did not end in time).
func (h *Host) Run(timeout time.Duration, env []string, args ...string) (stdout, stderr string, code int) {
	t := h.Bed.T
	t.Helper()
	if h.Bed.DaemonBin == "" {
		h.Bed.DaemonBin = testutil.Binary(t, "vxlan6d")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + h.NetnsPath(), "--", h.Bed.DaemonBin}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code = 0
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ctx.Err() == nil {
			code = ee.ExitCode()
		} else {
			code = -1
		}
	}
	return so.String(), se.String(), code
}
