package e2e

import (
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
)

// fastPathBed is two hosts with Backend.FastPath = mode, daemons ready, and
// containers c1, c1b on host 1 and c2 on host 2; with the fast path on, all
// three are on it when it returns.
type fastPathBed struct {
	b       *testbed.Bed
	h1, h2  *testbed.Host
	c1, c1b *testbed.Container
	c2      *testbed.Container
	fast    bool
}

func newFastPathBed(t *testing.T, mode string, opts testbed.Options, prep ...func(*testbed.Host)) *fastPathBed {
	t.Helper()
	f := newFastPathHosts(t, mode, opts, prep...)
	f.c1, f.c1b, f.c2 = f.h1.AddContainer(), f.h1.AddContainer(), f.h2.AddContainer()
	f.waitFast(t, f.c1, f.c1b, f.c2)
	return f
}

// newFastPathHosts is two hosts with Backend.FastPath = mode and their
// daemons ready, no containers yet.
func newFastPathHosts(t *testing.T, mode string, opts testbed.Options, prep ...func(*testbed.Host)) *fastPathBed {
	t.Helper()
	opts.Hosts = 2
	b := testbed.New(t, opts)
	for _, h := range b.Hosts {
		for _, p := range prep {
			p(h)
		}
	}
	b.PutConfig(testbed.ConfigJSONFastPath(false, mode))
	b.StartDaemons(readyTimeout, nil)
	f := &fastPathBed{b: b, h1: b.Hosts[0], h2: b.Hosts[1], fast: mode != "off"}
	want := map[bool]string{true: "data path: eBPF fast path", false: "data path: bridge path"}[f.fast]
	for _, h := range b.Hosts {
		if err := h.Daemon().WaitLog(want, readyTimeout); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// waitFast waits until the containers are on the fast path (if it is on).
func (f *fastPathBed) waitFast(t *testing.T, cs ...*testbed.Container) {
	t.Helper()
	if f.fast {
		for _, c := range cs {
			c.Host.WaitFastPath(c, 30*time.Second)
		}
		for _, h := range f.b.Hosts {
			h.WaitFastPathPeers(len(f.b.Hosts)-1, 30*time.Second)
		}
	}
}

// pingCounted pings dst from c (count echoes, none may be lost) and returns
// how many packets the host ends of both containers' veths sent meanwhile.
func (f *fastPathBed) pingCounted(t *testing.T, c *testbed.Container, dst *testbed.Container, count int) uint64 {
	t.Helper()
	total := func() uint64 {
		var sum uint64
		for _, x := range []*testbed.Container{c, dst} {
			n, err := x.HostVethTxPackets()
			if err != nil {
				t.Fatal(err)
			}
			sum += n
		}
		return sum
	}
	before := total()
	if out, err := c.Ping(dst.IPv6, count); err != nil {
		t.Fatalf("%s → %s: %v\n%s", c.Name, dst.Name, err, out)
	}
	return total() - before
}

// checkPath says whether the echoes went past the host veths (fast) or
// through them (bridge path: every request and reply is sent by one).
func (f *fastPathBed) checkPath(t *testing.T, what string, sent uint64, count int) {
	t.Helper()
	switch {
	case f.fast && sent >= uint64(count/2):
		t.Errorf("%s: fast path on, but the host veths sent %d packets for %d echoes", what, sent, count)
	case !f.fast && sent < uint64(2*count):
		t.Errorf("%s: fast path off, but the host veths sent only %d packets for %d echoes", what, sent, count)
	}
}

func forModes(t *testing.T, f func(t *testing.T, mode string)) {
	for _, mode := range []string{"auto", "decap", "off"} {
		t.Run("fastpath="+mode, func(t *testing.T) {
			t.Parallel()
			f(t, mode)
		})
	}
}

// Pod → pod across hosts and on one host, ICMP and TCP, with the fast path
// on (also with underlay decapsulation) and off; the host veths' counters
// show which path carried them, the decap counters who decapsulated.
func TestFastPathPodToPod(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, mode string) {
		f := newFastPathBed(t, mode, testbed.Options{})
		const n = 20
		decapBefore := f.h1.FastPathDecapCount() + f.h2.FastPathDecapCount()
		f.checkPath(t, "across hosts", f.pingCounted(t, f.c1, f.c2, n), n)
		f.checkPath(t, "one host", f.pingCounted(t, f.c1, f.c1b, n), n)
		f.checkPath(t, "across hosts, reverse", f.pingCounted(t, f.c2, f.c1b, n), n)
		// Two cross-host runs of n echoes: 4n packets to decapsulate.
		decap := f.h1.FastPathDecapCount() + f.h2.FastPathDecapCount() - decapBefore
		switch {
		case mode == "decap" && decap < 2*n:
			t.Errorf("underlay decap on, but it took %d of the %d cross-host packets", decap, 4*n)
		case mode != "decap" && decap != 0:
			t.Errorf("underlay decap off, but it took %d packets", decap)
		}
		for _, dst := range []*testbed.Container{f.c2, f.c1b} {
			testbed.StartIperfServer(t, dst.Name)
			gbps, err := testbed.Iperf(f.c1.Name, dst.IPv6, 1, 2*time.Second)
			if err != nil || gbps <= 0 {
				t.Errorf("TCP %s → %s: %.2f Gbit/s, %v", f.c1.Name, dst.Name, gbps, err)
			}
		}
	})
}

// A conflist with "fastPath": "off" keeps its pods on the bridge path on a
// host whose daemon runs the fast path.
func TestFastPathPluginOptOut(t *testing.T) {
	t.Parallel()
	f := newFastPathHosts(t, "auto", testbed.Options{PluginExtra: map[string]any{"fastPath": "off"}})
	f.c1, f.c2 = f.h1.AddContainer(), f.h2.AddContainer()
	time.Sleep(3 * time.Second) // past the daemon's grace period
	pods, err := f.h1.FastPathPods()
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 0 {
		t.Errorf("opted-out pods in the fast path's map: %v", pods)
	}
	f.fast = false
	const count = 20
	f.checkPath(t, "opted out", f.pingCounted(t, f.c1, f.c2, count), count)
}
