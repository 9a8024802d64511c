package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/internal/testutil"
)

// Compatibility of the eBPF fast path: each test runs with Backend.FastPath
// auto and off, and proves the feature works the same either way.

// A pod on another host reaches a hostPort (portmap DNAT); the replies must
// be reverse-NATed, so the target pod stays on the bridge path. With either
// of portmap's backends: iptables (iptables-nft here) and native nftables,
// whose rules the daemon reads in a form of their own.
func TestFastPathPortmapFromOtherHost(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, mode string) {
		for _, backend := range []string{"iptables", "nftables"} {
			t.Run("backend="+backend, func(t *testing.T) {
				t.Parallel()
				testPortmapFromOtherHost(t, mode, backend)
			})
		}
	})
}

func testPortmapFromOtherHost(t *testing.T, mode, backend string) {
	f := newFastPathHosts(t, mode, testbed.Options{})
	ch := f.h1.Chain(map[string]any{"type": "portmap", "backend": backend, "capabilities": map[string]any{"portMappings": true}})
	k1 := ch.Add(map[string]any{"portMappings": []map[string]any{{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"}}})
	c2 := f.h2.AddContainer()
	f.waitFast(t, c2)
	if f.fast {
		line := f.h1.WaitLogPod(testbed.FastPathSlowMsg, k1, 30*time.Second)
		t.Logf("portmap target: %s", line)
	}
	testbed.StartIperfServerPort(t, k1.Name, 8080)
	for _, dst := range []*testbed.Host{f.h1} {
		gbps, err := testbed.IperfPort(c2.Name, dst.Addr1, 18080, 1, 2*time.Second)
		if err != nil {
			t.Fatalf("TCP from pod %s to hostPort 18080 on %s: %v", c2.Name, dst.Name, err)
		}
		t.Logf("pod on %s → hostPort on %s: %.2f Gbit/s", f.h2.Name, dst.Name, gbps)
	}
}

var natPackets = regexp.MustCompile(`\[(\d+):\d+\] -A \S+ .*MASQUERADE`)

// Egress masquerade: a pod reaching an address outside the cluster network
// is masqueraded (the fast path takes only pod-to-pod traffic), while
// pod-to-pod traffic still takes the path of the mode.
func TestFastPathMasquerade(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, mode string) {
		f := newFastPathBed(t, mode, testbed.Options{PluginExtra: map[string]any{"ipMasq": true}})
		if out, err := f.c1.Ping(f.h2.Addr1, 5); err != nil {
			t.Fatalf("pod → other host's underlay address: %v\n%s", err, out)
		}
		out, err := f.h1.Exec("ip6tables-save", "-c", "-t", "nat")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		for _, m := range natPackets.FindAllStringSubmatch(out, -1) {
			v, _ := strconv.Atoi(m[1])
			n += v
		}
		if n == 0 {
			t.Errorf("no packet went through a MASQUERADE rule on %s:\n%s", f.h1.Name, out)
		}
		const count = 20
		f.checkPath(t, "pod to pod with ipMasq", f.pingCounted(t, f.c1, f.c2, count), count)
	})
}

// Hosts with an operator's FORWARD policy DROP (set before vxlan6d starts,
// as Docker or firewalld leave it): pods reach each other across hosts on
// either path — the bridge path through vxlan6d's VXLAN6-FWD accept rules,
// the fast path without passing FORWARD at all.
// (Pods on one host are not checked: where br_netfilter is loaded, the
// bridge sends their neighbour discovery through FORWARD as well.)
func TestFastPathForwardDrop(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, mode string) {
		drop := func(h *testbed.Host) { h.MustExec("ip6tables", "-P", "FORWARD", "DROP") }
		f := newFastPathBed(t, mode, testbed.Options{}, drop)
		if err := waitReach(f.c1.Name, f.c2.IPv6, meshTimeout); err != nil {
			t.Fatal(err)
		}
		const count = 20
		f.checkPath(t, "across hosts, FORWARD DROP", f.pingCounted(t, f.c1, f.c2, count), count)
		if out := f.h1.MustExec("ip6tables", "-S", "FORWARD"); !strings.Contains(out, "-P FORWARD DROP") {
			t.Errorf("FORWARD policy changed:\n%s", out)
		}
	})
}

// An attachment shaped by the bandwidth plugin keeps its qdiscs and stays
// on the bridge path (redirected packets would skip the shaping).
func TestFastPathBandwidthStaysOnBridge(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, mode string) {
		f := newFastPathHosts(t, mode, testbed.Options{})
		ch := f.h1.Chain(map[string]any{"type": "bandwidth", "capabilities": map[string]any{"bandwidth": true}})
		bw := map[string]any{"bandwidth": map[string]any{
			"ingressRate": 100_000_000, "ingressBurst": 1_000_000, "egressRate": 100_000_000, "egressBurst": 1_000_000}}
		k1 := ch.Add(bw)
		c2 := f.h2.AddContainer()
		f.waitFast(t, c2)
		if f.fast {
			t.Logf("shaped pod: %s", f.h1.WaitLogPod(testbed.FastPathSlowMsg, k1, 30*time.Second))
		}
		f.c1, f.c2 = c2, k1
		const count = 20
		sent := f.pingCounted(t, c2, k1, count)
		if sent < count {
			t.Errorf("echoes to the shaped pod passed its host veth only %d times for %d echoes", sent, count)
		}
		if err := ch.Check(k1, bw); err != nil {
			t.Errorf("CHECK of the shaped pod: %v", err)
		}
		out := f.h1.MustExec("tc", "qdisc", "show")
		if !strings.Contains(out, "tbf") {
			t.Errorf("bandwidth plugin's tbf qdisc gone:\n%s", out)
		}
	})
}

// CHECK passes on a fast-path pod; GC of a pod removes its map entry and
// program pin (vxlan6d notices the veth is gone); DEL without a netns
// removes the pod's entry at once.
func TestFastPathCheckGCDel(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, mode string) {
		f := newFastPathHosts(t, mode, testbed.Options{CNIVersion: "1.1.0"})
		ch := f.h1.Chain()
		k1, k2 := ch.Add(nil), ch.Add(nil)
		c2 := f.h2.AddContainer()
		f.waitFast(t, k1, k2, c2)
		if err := ch.Check(k1, nil); err != nil {
			t.Errorf("CHECK: %v", err)
		}
		if out, err := c2.Ping(k1.IPv6, 3); err != nil {
			t.Fatalf("ping: %v\n%s", err, out)
		}
		if err := ch.GC(k1); err != nil {
			t.Fatalf("GC keeping only %s: %v", k1.Name, err)
		}
		f.waitPods(t, []*testbed.Container{k1}, []*testbed.Container{k2})
		if out, err := c2.Ping(k1.IPv6, 3); err != nil {
			t.Errorf("ping after GC: %v\n%s", err, out)
		}
		if err := ch.Del(k1, ""); err != nil {
			t.Fatalf("DEL without netns: %v", err)
		}
		pods, err := f.h1.FastPathPods()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := pods[k1.IPv6.String()]; ok {
			t.Errorf("DEL left %s in the fast path's map", k1.IPv6)
		}
		if out, err := c2.Ping(k1.IPv6, 2); err == nil {
			t.Errorf("deleted pod still answers:\n%s", out)
		}
	})
}

// waitPods waits until host 1's pod map holds in and not out (with the
// fast path off there is no map: nothing to wait for).
func (f *fastPathBed) waitPods(t *testing.T, in, out []*testbed.Container) {
	t.Helper()
	if !f.fast {
		return
	}
	err := testbed.Eventually(30*time.Second, 200*time.Millisecond, func() error {
		pods, err := f.h1.FastPathPods()
		if err != nil {
			return err
		}
		for _, c := range in {
			if _, ok := pods[c.IPv6.String()]; !ok {
				return fmt.Errorf("%s missing from the map: %v", c.IPv6, pods)
			}
		}
		for _, c := range out {
			if _, ok := pods[c.IPv6.String()]; ok {
				return fmt.Errorf("%s still in the map", c.IPv6)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Established flows (ping both ways, a TCP stream) survive restarts of both
// daemons: programs and maps are pinned, and the new daemon adopts them.
func TestFastPathDaemonRestart(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, mode string) {
		f := newFastPathBed(t, mode, testbed.Options{})
		f.survives(t, "daemon restarts", func() {
			for _, h := range []*testbed.Host{f.h1, f.h2} {
				if code := h.Daemon().Stop(); code != 0 {
					t.Errorf("vxlan6d on %s exited %d on SIGTERM", h.Name, code)
				}
				time.Sleep(500 * time.Millisecond)
				h.StartDaemon().WaitReady(readyTimeout)
			}
		})
		const count = 20
		f.checkPath(t, "after restarts", f.pingCounted(t, f.c1, f.c2, count), count)
	})
}

// survives runs change while a TCP stream c1 → c2 and echoes c1 → c2 and
// c2 → c1b are under way; none of them may break across what.
func (f *fastPathBed) survives(t *testing.T, what string, change func()) {
	t.Helper()
	testbed.StartIperfServer(t, f.c2.Name)
	tcp := make(chan error, 1)
	go func() {
		_, err := testbed.Iperf(f.c1.Name, f.c2.IPv6, 1, 8*time.Second)
		tcp <- err
	}()
	tr := f.c1.StartPing(f.c2.IPv6, 40)
	tr2 := f.c2.StartPing(f.c1b.IPv6, 40)
	time.Sleep(time.Second)
	change()
	for _, x := range []*testbed.Traffic{tr, tr2} {
		if out, err := x.Wait(); err != nil {
			t.Errorf("echoes lost across %s: %v\n%s", what, err, out)
		}
	}
	if err := <-tcp; err != nil {
		t.Errorf("TCP stream across %s: %v", what, err)
	}
}

// A host where the fast path cannot load falls back to the bridge path by
// itself, with a log line saying so: the daemons are restarted without
// CAP_BPF (setpriv drops it, with CAP_SYS_ADMIN and CAP_PERFMON, from the
// bounding set), as on a host that forbids BPF. Programs and maps pinned
// by the earlier daemon go with it (else they would go on redirecting with
// a peers map nobody keeps), pods old and new reach each other over the
// bridges, and the plugin, finding no maps, records nothing.
func TestFastPathFallbackWithoutBPF(t *testing.T) {
	t.Parallel()
	f := newFastPathBed(t, "auto", testbed.Options{})
	withCaps(t, f.b, "-bpf,-perfmon,-sys_admin")
	for _, h := range f.b.Hosts {
		if code := h.Daemon().Stop(); code != 0 {
			t.Errorf("vxlan6d on %s exited %d on SIGTERM", h.Name, code)
		}
		d := h.StartDaemon()
		d.WaitReady(readyTimeout)
		for _, msg := range []string{`msg="data path: bridge path"`, `reason="eBPF fast path unavailable"`} {
			if err := d.WaitLog(msg, readyTimeout); err != nil {
				t.Fatal(err)
			}
		}
		if pods, err := h.FastPathPods(); err != nil || pods != nil {
			t.Errorf("fast-path maps of %s after the fallback: %v, %v", h.Name, pods, err)
		}
	}
	f.fast = false
	const count = 20
	f.checkPath(t, "across hosts after the fallback", f.pingCounted(t, f.c1, f.c2, count), count)
	f.checkPath(t, "one host after the fallback", f.pingCounted(t, f.c1, f.c1b, count), count)
	c3 := f.h2.AddContainer()
	f.checkPath(t, "new pod after the fallback", f.pingCounted(t, f.c1, c3, count), count)
	if pods, err := f.h2.FastPathPods(); err != nil || pods != nil {
		t.Errorf("the plugin recorded a pod without the daemon's maps: %v, %v", pods, err)
	}
}

// withCaps makes the bed's daemons start from now on with these changes to
// their capabilities (setpriv syntax: "-bpf,..." or "-all,+net_admin,...").
func withCaps(t *testing.T, b *testbed.Bed, caps string) {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatalf("setpriv (util-linux) is needed to drop capabilities: %v", err)
	}
	if b.DaemonBin == "" {
		b.DaemonBin = testutil.Binary(t, "vxlan6d")
	}
	wrapper := filepath.Join(t.TempDir(), "vxlan6d-caps")
	script := "#!/bin/sh\nexec setpriv --inh-caps=" + caps + " --bounding-set=" + caps + " -- " + b.DaemonBin + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	b.DaemonBin = wrapper
}

// The capabilities vxlan6d.service leaves the daemon (its
// CapabilityBoundingSet: no CAP_SYS_ADMIN) are enough for the fast path:
// pods go on it and reach each other over it.
func TestFastPathServiceCapabilities(t *testing.T) {
	t.Parallel()
	f := newFastPathHosts(t, "auto", testbed.Options{}, func(h *testbed.Host) {
		if h == h.Bed.Hosts[0] { // once: the daemon binary is the bed's
			withCaps(t, h.Bed, "-all,+net_admin,+net_raw,+net_bind_service,+bpf,+perfmon")
		}
	})
	f.c1, f.c1b, f.c2 = f.h1.AddContainer(), f.h1.AddContainer(), f.h2.AddContainer()
	f.waitFast(t, f.c1, f.c1b, f.c2)
	const count = 20
	f.checkPath(t, "across hosts", f.pingCounted(t, f.c1, f.c2, count), count)
	f.checkPath(t, "one host", f.pingCounted(t, f.c1, f.c1b, count), count)
}
