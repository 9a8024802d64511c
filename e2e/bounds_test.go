package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
)

// Issue 8 §7: a stuck etcd (its process frozen with SIGSTOP: connections
// stay open, nothing answers) must not hang the daemon's loop. Every etcd
// call is bounded, so the periodic resync keeps reporting the failure
// interval after interval, the data path stays, and once etcd answers again
// the daemon carries on with the same subnet, without a restart.
func TestFrozenEtcdDoesNotHangLoop(t *testing.T) {
	t.Parallel()
	b := testbed.New(t, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	// An etcd process of its own (the bed's is in the test process), which
	// the daemon reaches over the underlay, as on a real host.
	m := b.StartEtcdCluster(testbed.EtcdClusterOptions{}).Members[0]
	t.Cleanup(func() { _ = m.Proc.Signal(syscall.SIGCONT) })
	b.PutConfig(testbed.ConfigJSON(false))
	d := h.StartDaemon("--resync-interval", "1s")
	d.WaitReady(readyTimeout)
	sf := h.WaitSubnetFile(readyTimeout)
	before, err := h.DataPath()
	if err != nil {
		t.Fatal(err)
	}

	const warn = "periodic resync: cannot list leases"
	n0 := strings.Count(d.Log(), warn)
	if err := m.Proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// healListTimeout is 5s: at least two bounded failures in 20s prove
	// the loop is not stuck on the first.
	err = testbed.Eventually(30*time.Second, 200*time.Millisecond, func() error {
		if n := strings.Count(d.Log(), warn) - n0; n < 2 {
			return fmt.Errorf("%d bounded resync failures logged while etcd is frozen, want 2", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Exited() {
		t.Fatalf("daemon exited while etcd was frozen: %v", d.ExitErr())
	}
	if now, err := h.DataPath(); err != nil || now != before {
		t.Errorf("data path changed while etcd was frozen (%v):\nbefore:\n%s\nafter:\n%s", err, before, now)
	}

	if err := m.Proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	n1 := strings.Count(d.Log(), "peers reconciled")
	err = testbed.Eventually(60*time.Second, 200*time.Millisecond, func() error {
		if strings.Count(d.Log(), "peers reconciled") <= n1 {
			return fmt.Errorf("no resync since etcd answers again")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := h.SubnetConfig(); err != nil || c.Subnets.V6.String() != sf.Subnets.V6.String() {
		t.Errorf("subnet after the freeze: %v (%v), want %s", c, err, sf.Subnets.V6)
	}
}
