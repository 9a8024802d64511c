package fastpath

import (
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

func run(t *testing.T, n ns.NetNS, args ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + n.Path(), "--"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v: %s", n.Path(), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ping sends 3 echoes; it fails only when none comes back (a loaded
// machine may lose one; a wrong redirect loses all).
func ping(n ns.NetNS, dst string, extra ...string) error {
	args := append([]string{"--net=" + n.Path(), "--", "ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "1"}, extra...)
	out, _ := exec.Command("nsenter", append(args, dst)...).CombinedOutput()
	if !strings.Contains(string(out), " 0 received") && strings.Contains(string(out), " received") {
		return nil
	}
	return &pingErr{dst, string(out)}
}

type pingErr struct{ dst, out string }

func (e *pingErr) Error() string { return "ping " + e.dst + ": " + e.out }

// lab is a host netns with two "pods" on bare veths (no bridge: without the
// programs nothing forwards between them) and a "tunnel" veth to a "remote"
// namespace standing in for the VXLAN device.
type lab struct {
	host, p1, p2, remote ns.NetNS
	maps                 *Maps
	idx                  map[string]int
	mac                  map[string]net.HardwareAddr
}

func mustMAC(s string) [6]byte {
	m, _ := net.ParseMAC(s)
	var a [6]byte
	copy(a[:], m)
	return a
}

func newLab(t *testing.T) *lab {
	testutil.RequireRoot(t)
	l := &lab{host: testutil.NewNS(t), p1: testutil.NewNS(t), p2: testutil.NewNS(t), remote: testutil.NewNS(t),
		idx: map[string]int{}, mac: map[string]net.HardwareAddr{}}
	pods := []struct {
		n         ns.NetNS
		hostEnd   string
		addr, mac string
	}{
		{l.p1, "hp1", "fd00:1::2", "02:00:00:00:01:02"},
		{l.p2, "hp2", "fd00:1::3", "02:00:00:00:01:03"},
		{l.remote, "tun", "fd00:2::2", "02:00:00:00:02:02"},
	}
	for _, p := range pods {
		run(t, l.host, "ip", "link", "add", p.hostEnd, "type", "veth", "peer", "name", "eth0", "address", p.mac, "netns", p.n.Path())
		run(t, l.host, "ip", "link", "set", p.hostEnd, "up")
		run(t, p.n, "ip", "link", "set", "lo", "up")
		run(t, p.n, "ip", "link", "set", "eth0", "up")
		plen := "/64"
		run(t, p.n, "ip", "addr", "add", p.addr+plen, "dev", "eth0", "nodad")
	}
	err := l.host.Do(func(ns.NetNS) error {
		for _, p := range pods {
			lk, err := netlink.LinkByName(p.hostEnd)
			if err != nil {
				return err
			}
			l.idx[p.hostEnd], l.mac[p.hostEnd] = lk.Attrs().Index, lk.Attrs().HardwareAddr
		}
		var err error
		l.maps, err = OpenMaps()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.maps.Remove(); err != nil {
			t.Logf("remove pins: %v", err)
		}
		l.maps.Close()
	})
	// Static neighbours: pods on one /64 reach each other by MAC; the
	// remote reaches fd00:1::/64 and the pods fd00:2::/64 via a gateway
	// whose MAC is the host end of their veth.
	run(t, l.p1, "ip", "neigh", "add", "fd00:1::3", "lladdr", "02:00:00:00:01:03", "dev", "eth0", "nud", "permanent")
	run(t, l.p2, "ip", "neigh", "add", "fd00:1::2", "lladdr", "02:00:00:00:01:02", "dev", "eth0", "nud", "permanent")
	for _, p := range []struct {
		n       ns.NetNS
		hostEnd string
		gw, dst string
	}{{l.p1, "hp1", "fd00:1::1", "fd00:2::/64"}, {l.p2, "hp2", "fd00:1::1", "fd00:2::/64"}, {l.remote, "tun", "fd00:2::1", "fd00:1::/64"}} {
		run(t, p.n, "ip", "neigh", "add", p.gw, "lladdr", l.mac[p.hostEnd].String(), "dev", "eth0", "nud", "permanent")
		run(t, p.n, "ip", "route", "add", p.dst, "via", p.gw, "dev", "eth0")
	}
	return l
}

func (l *lab) pod(t *testing.T, addr, hostEnd, mac string) {
	t.Helper()
	var gw [6]byte
	copy(gw[:], l.mac["tun"])
	if err := l.maps.PutPod(net.ParseIP(addr), Pod{Ifindex: uint32(l.idx[hostEnd]), MAC: mustMAC(mac), GwMAC: gw}); err != nil {
		t.Fatal(err)
	}
}

func (l *lab) attach(t *testing.T, h Hooks) {
	t.Helper()
	err := l.host.Do(func(ns.NetNS) error {
		for _, p := range []string{"hp1", "hp2"} {
			if err := l.maps.AttachFromPod(p, l.idx[p], h); err != nil {
				return err
			}
		}
		return l.maps.AttachFromTunnel("tun", l.idx["tun"])
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRedirects(t *testing.T) {
	l := newLab(t)
	if err := ping(l.p1, "fd00:1::3"); err == nil {
		t.Fatal("pods reach each other without the fast path: the lab proves nothing")
	}
	l.pod(t, "fd00:1::2", "hp1", "02:00:00:00:01:02")
	l.pod(t, "fd00:1::3", "hp2", "02:00:00:00:01:03")
	_, sub, _ := net.ParseCIDR("fd00:2::/64")
	var tunMAC [6]byte
	copy(tunMAC[:], l.mac["tun"])
	if err := l.maps.PutPeer(sub, Peer{Ifindex: uint32(l.idx["tun"]), DstMAC: mustMAC("02:00:00:00:02:02"), SrcMAC: tunMAC, MTU: 1500}); err != nil {
		t.Fatal(err)
	}
	l.attach(t, AllHooks)
	if err := ping(l.p1, "fd00:1::3"); err != nil {
		t.Errorf("local redirect: %v", err)
	}
	if err := ping(l.remote, "fd00:1::2"); err != nil {
		t.Errorf("tunnel → pod and pod → tunnel redirect: %v", err)
	}
	// Attachments outlive the process's handles: they are pinned.
	att, err := l.maps.Attached()
	if err != nil || len(att) != 3 {
		t.Errorf("Attached() = %v, %v; want 3 links", att, err)
	}
	// A slow pod (bandwidth-shaped, portmap target) is left to the stack,
	// which in this bridge-less lab does not reach it.
	if err := l.maps.PutPod(net.ParseIP("fd00:1::3"), Pod{Ifindex: uint32(l.idx["hp2"]), Flags: FlagSlow, MAC: mustMAC("02:00:00:00:01:03")}); err != nil {
		t.Fatal(err)
	}
	if err := ping(l.p1, "fd00:1::3"); err == nil {
		t.Error("a pod flagged slow was still redirected to")
	}
	if err := l.maps.Detach("hp1"); err != nil {
		t.Fatal(err)
	}
	if err := ping(l.remote, "fd00:1::2"); err == nil {
		t.Error("replies still redirected after Detach")
	}
}

// TCP (GSO-sized, checksum-offloaded packets) survives the local redirect.
func TestLocalTCP(t *testing.T) {
	l := newLab(t)
	l.pod(t, "fd00:1::2", "hp1", "02:00:00:00:01:02")
	l.pod(t, "fd00:1::3", "hp2", "02:00:00:00:01:03")
	l.attach(t, Hooks{Local: true})
	srv := exec.Command("nsenter", "--net="+l.p2.Path(), "--", "iperf3", "-s", "-1")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	time.Sleep(500 * time.Millisecond)
	out, err := exec.Command("nsenter", "--net="+l.p1.Path(), "--", "iperf3", "-c", "fd00:1::3", "-t", "2").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "receiver") {
		t.Fatalf("TCP between pods over the local redirect: %v\n%s", err, out)
	}
}

func TestDNATTarget(t *testing.T) {
	rules := "chain CNI-DN-x {\n\ttcp dport 18080 counter packets 0 bytes 0 dnat to [fd10::2]:8080\n}\n" +
		"chain POSTROUTING {\n\tip6 saddr fd10::3 counter packets 0 bytes 0 masquerade\n}\n"
	for addr, want := range map[string]bool{"fd10::2": true, "fd10::3": false, "fd10::20": false, "d10::2": false} {
		if got := dnatTarget(rules, addr); got != want {
			t.Errorf("dnatTarget(%s) = %v, want %v", addr, got, want)
		}
	}
}

// A packet bigger than the VXLAN device's MTU (not GSO) is left to the
// stack, which sends Packet Too Big; in this lab the stack does not forward,
// so it is lost, while smaller ones are redirected.
func TestRemoteMTU(t *testing.T) {
	l := newLab(t)
	l.pod(t, "fd00:1::2", "hp1", "02:00:00:00:01:02")
	_, sub, _ := net.ParseCIDR("fd00:2::/64")
	var tunMAC [6]byte
	copy(tunMAC[:], l.mac["tun"])
	if err := l.maps.PutPeer(sub, Peer{Ifindex: uint32(l.idx["tun"]), DstMAC: mustMAC("02:00:00:00:02:02"), SrcMAC: tunMAC, MTU: 1000}); err != nil {
		t.Fatal(err)
	}
	l.attach(t, AllHooks)
	ping := func(size string) error { return ping(l.remote, "fd00:1::2", "-s", size) }
	if err := ping("900"); err != nil {
		t.Errorf("packets below the MTU: %v", err)
	}
	if err := ping("1100"); err == nil {
		t.Error("replies above the peer MTU were redirected")
	}
}

// The bpf_redirect_neigh variant takes the remote MAC from the gateway's
// (permanent) neighbour entry on the device, as the daemon programs it.
func TestRedirectNeigh(t *testing.T) {
	l := newLab(t)
	l.pod(t, "fd00:1::2", "hp1", "02:00:00:00:01:02")
	_, sub, _ := net.ParseCIDR("fd00:2::/64")
	run(t, l.host, "ip", "-6", "neigh", "add", "fd00:2::", "lladdr", "02:00:00:00:02:02", "dev", "tun", "nud", "permanent")
	p := Peer{Ifindex: uint32(l.idx["tun"]), MTU: 1500}
	copy(p.Gw[:], net.ParseIP("fd00:2::"))
	if err := l.maps.PutPeer(sub, p); err != nil {
		t.Fatal(err)
	}
	l.attach(t, Hooks{Local: true, Remote: true, Neigh: true})
	if err := ping(l.remote, "fd00:1::2"); err != nil {
		t.Errorf("pod → tunnel via bpf_redirect_neigh: %v", err)
	}
}

// node is a Node of the lab's host for a device that does not exist (pods
// only), closed when the test ends.
func (l *lab) node(t *testing.T) *Node {
	t.Helper()
	var n *Node
	err := l.host.Do(func(ns.NetNS) (err error) {
		n, err = NewNode("nodev")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// Node.Due: a pod waiting out its grace period keeps the node due (the
// daemon runs pod rounds while it is); once every pod is judged and nothing
// failed, only a link change or the next re-judgement gives it work.
func TestNodeDue(t *testing.T) {
	l := newLab(t)
	n := l.node(t)
	n.NATTargets = func() (string, error) { return "", nil }
	p := Pod{Ifindex: uint32(l.idx["hp1"]), Flags: FlagSlow | FlagPending, MAC: mustMAC("02:00:00:00:01:02"), Created: uint32(time.Now().Unix())}
	if err := n.PutPod(net.ParseIP("fd00:1::2"), p); err != nil {
		t.Fatal(err)
	}
	syncPods := func() {
		t.Helper()
		if err := l.host.Do(func(ns.NetNS) error { return n.SyncPods() }); err != nil {
			t.Fatal(err)
		}
	}
	n.Grace = time.Hour
	syncPods()
	if !n.Due() {
		t.Error("not due with a pod still in its grace period")
	}
	n.Grace = 0
	syncPods()
	if n.Due() {
		t.Error("due with every pod judged")
	}
	pods, err := n.PodEntries()
	if err != nil || pods["fd00:1::2"].Flags != 0 {
		t.Errorf("pod not put on the fast path: %v, %v", pods, err)
	}
	n.NATTargets = func() (string, error) { return "", errors.New("no nft") }
	p.Flags, p.Created = FlagSlow|FlagPending, 0
	if err := n.PutPod(net.ParseIP("fd00:1::2"), p); err != nil {
		t.Fatal(err)
	}
	if err := l.host.Do(func(ns.NetNS) error { return n.SyncPods() }); err == nil {
		t.Error("SyncPods hid the NAT rules' error")
	}
	if !n.Due() {
		t.Error("not due after a failed judgement")
	}
}

// A pod that a DNAT rule of the legacy ip6tables targets (a host whose
// iptables is the legacy build: portmap's rules are not in nft's ruleset)
// stays on the ordinary path, so its replies are reverse-translated.
func TestLegacyDNATTargetStaysSlow(t *testing.T) {
	l := newLab(t)
	run(t, l.host, "ip6tables-legacy", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "18080",
		"-j", "DNAT", "--to-destination", "[fd00:1::2]:8080")
	n := l.node(t)
	n.Grace = 0
	for addr, hostEnd := range map[string]string{"fd00:1::2": "hp1", "fd00:1::3": "hp2"} {
		if err := n.PutPod(net.ParseIP(addr), Pod{Ifindex: uint32(l.idx[hostEnd]), Flags: FlagSlow | FlagPending}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.host.Do(func(ns.NetNS) error { return n.SyncPods() }); err != nil {
		t.Fatal(err)
	}
	pods, err := n.PodEntries()
	if err != nil {
		t.Fatal(err)
	}
	if f := pods["fd00:1::2"].Flags; f != FlagSlow {
		t.Errorf("DNAT target of a legacy ip6tables rule: flags %d, want slow (%d)", f, FlagSlow)
	}
	if f := pods["fd00:1::3"].Flags; f != 0 {
		t.Errorf("pod no rule names: flags %d, want fast (0)", f)
	}
}

// A pod round reads the NAT rules once however many pods it judges (a
// failure too), and not at all when it judges none.
func TestPodRoundReadsNATOnce(t *testing.T) {
	l := newLab(t)
	n := l.node(t)
	n.Grace = 0
	reads, fail := 0, false
	n.NATTargets = func() (string, error) {
		reads++
		if fail {
			return "", errors.New("no nft")
		}
		return "", nil
	}
	put := func() {
		t.Helper()
		for addr, hostEnd := range map[string]string{"fd00:1::2": "hp1", "fd00:1::3": "hp2"} {
			if err := n.PutPod(net.ParseIP(addr), Pod{Ifindex: uint32(l.idx[hostEnd]), Flags: FlagSlow | FlagPending}); err != nil {
				t.Fatal(err)
			}
		}
	}
	syncPods := func() error { return l.host.Do(func(ns.NetNS) error { return n.SyncPods() }) }
	put()
	if err := syncPods(); err != nil || reads != 1 {
		t.Errorf("two pods judged: %d NAT reads, err %v; want 1, nil", reads, err)
	}
	if err := syncPods(); err != nil || reads != 1 {
		t.Errorf("no pod judged: %d NAT reads in all, err %v; want still 1, nil", reads, err)
	}
	fail = true
	put()
	if err := syncPods(); err == nil || reads != 2 {
		t.Errorf("failing NAT read: %d reads in all, err %v; want 2, an error", reads, err)
	}
}
