package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a long-lived command a test runs inside a network namespace
// (an etcd member, `ip monitor`, a documented command): its output goes to
// a file, it is killed in Cleanup (its log shown when the test failed), and
// it dies with the test process even when Cleanup never runs.
type Proc struct {
	Name    string // for messages: what runs, e.g. "etcd member m1"
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex
	err     error
}

// StartProc runs args in netns (by name; "" for the test's own) with env
// added to the test's environment, output to logPath. On a failed test,
// Cleanup logs the last logTail bytes of the output (none when 0).
func StartProc(t testing.TB, name, netns, logPath string, env []string, logTail int, args ...string) *Proc {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if netns != "" {
		args = append([]string{"nsenter", "--net=" + NetnsPath(netns), "--"}, args...)
	}
	p := &Proc{Name: name, LogPath: logPath, done: make(chan struct{})}
	p.cmd = exec.Command(args[0], args[1:]...)
	if len(env) > 0 {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Its own process group: a signal to the test does not reach it twice.
	// Pdeathsig: gone with the test process if that dies without Cleanup
	// (nsenter execs the command, so the signal reaches the command).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s (%s): %v", name, strings.Join(args, " "), err)
	}
	go func() {
		err := p.cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() && logTail > 0 {
			t.Logf("log of %s (%s):\n%s", name, logPath, Tail(p.Log(), logTail))
		}
	})
	return p
}

// PID is the process's pid (the command's own: nsenter execs it).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process (SIGSTOP freezes it, SIGCONT thaws it).
func (p *Proc) Signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to %s: %w", sig, p.Name, err)
	}
	return nil
}

// Kill sends SIGKILL (a stopped process dies too) and waits until it is
// gone; a no-op once it exited.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Log is everything the process printed so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// ExitErr is the process's wait error (nil for exit 0); only meaningful
// once Exited.
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// ExitCode is the exit status, -1 while running or when killed by a signal.
func (p *Proc) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Wait waits (bounded) for the process to exit and returns its exit code.
func (p *Proc) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		return -1, fmt.Errorf("%s still running after %s", p.Name, timeout)
	}
}
