package admin

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vxlan6/vxlan6/overlay/etcdserver/etcdconf"
)

// EtcdProgram is the program that runs `vxlan6d etcd`: the same CLI with
// etcd's server linked. vxlan6d itself leaves the server out, because its
// package inits and pages cost every daemon ~7 MiB of RSS (28.0 → 20.5
// MiB idle) for a command only labs use.
const EtcdProgram = "vxlan6d-etcd"

// EtcdServer is a running embedded etcd member (an *etcdserver.Server).
type EtcdServer interface {
	// Err reports a fatal error of the running member.
	Err() <-chan error
	// Close stops the member.
	Close()
}

// StartEtcdFunc starts the member of cfg and waits until it serves clients.
type StartEtcdFunc func(cfg etcdconf.Config) (EtcdServer, error)

// MainWithEtcd is Main with the embedded etcd linked: `etcd` serves in this
// process through start (vxlan6d-etcd's main), where Main's `etcd` replaces
// the process with vxlan6d-etcd.
func MainWithEtcd(args []string, version string, stdout, stderr io.Writer, start StartEtcdFunc) int {
	c := newCLI(args, version, stdout, stderr)
	c.startEtcd = start
	return c.execute(args)
}

// execEtcdProgram replaces this process with vxlan6d-etcd, given the same
// arguments and environment: it parses them exactly as vxlan6d did. The
// PID stays, so systemd (Type=simple, ExecStart=vxlan6d etcd) and whoever
// started `vxlan6d etcd` signal the member itself; argv[0] stays too, so
// its command line still reads "vxlan6d etcd ..." (scripts/testbed.sh
// checks that before it signals a pid).
func (c *cli) execEtcdProgram(cmd *cobra.Command) error {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	if filepath.Base(self) == EtcdProgram {
		// A vxlan6d copied over vxlan6d-etcd would exec itself forever.
		return c.fail(cmd, fmt.Errorf("%s has no embedded etcd linked (it is a copy of vxlan6d?)", self))
	}
	prog, err := findEtcdProgram(self)
	if err != nil {
		return c.fail(cmd, err)
	}
	run := c.exec
	if run == nil {
		run = syscall.Exec
	}
	argv := append([]string{os.Args[0]}, c.args...)
	if err := run(prog, argv, os.Environ()); err != nil {
		return c.fail(cmd, fmt.Errorf("run %s: %w", prog, err))
	}
	return nil
}

// findEtcdProgram looks for vxlan6d-etcd beside the running executable
// self (where make install and the packages put it), then on PATH.
func findEtcdProgram(self string) (string, error) {
	beside := filepath.Join(filepath.Dir(self), EtcdProgram)
	if fi, err := os.Stat(beside); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return beside, nil
	}
	p, err := exec.LookPath(EtcdProgram)
	if err == nil {
		return filepath.Abs(p)
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	msg := fmt.Sprintf("the embedded etcd is the program %s, shipped beside vxlan6d (kept out of the daemon's memory); not found beside %s or on PATH", EtcdProgram, self)
	if err != nil {
		return "", fmt.Errorf("%s: %w", msg, err)
	}
	return "", errors.New(msg)
}
