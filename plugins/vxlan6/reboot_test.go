package main

// Reboots and leftovers (issue 9): the IPAM store outlives the node's
// containers, netns and links; runtimes (Podman 4, nerdctl) send no DEL or
// GC for what a reboot killed. The plugin gets its addresses back without
// ever touching a live container.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/ipam"
	"github.com/vxlan6/vxlan6/plugins/vxlan6/link"
	"github.com/vxlan6/vxlan6/subnetfile"
)

// small28 is dual-stack with an IPv4 node subnet of 13 assignable addresses.
func small28(v6, v4 string) *subnetfile.Config {
	c := dualSubnet()
	c.Subnets.V6 = testutil.MustCIDR(v6)
	c.Subnets.V4 = testutil.MustCIDR(v4)
	return c
}

// bootEnv is an env whose plugin reads its boot ID from a file the test
// controls, so that a reboot can be simulated.
type bootEnv struct {
	*env
	bootFile string
}

func newBootEnv(t *testing.T, sf *subnetfile.Config) *bootEnv {
	e := &bootEnv{env: newEnv(t, sf)}
	e.bootFile = filepath.Join(e.dir, "boot_id")
	e.setBoot("11111111-1111-1111-1111-111111111111")
	return e
}

func (e *bootEnv) setBoot(id string) {
	e.t.Helper()
	if err := os.WriteFile(e.bootFile, []byte(id+"\n"), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *bootEnv) conf(extra map[string]any) *libcni.NetworkConfigList {
	m := map[string]any{"bootIDFile": e.bootFile}
	for k, v := range extra {
		m[k] = v
	}
	return e.list("1.1.0", e.pluginConf(m))
}

// dropNS removes a container's netns (its veth pair goes with it).
func dropNS(t *testing.T, n ns.NetNS) {
	t.Helper()
	_ = n.Close()
	if err := testutils.UnmountNS(n); err != nil {
		t.Fatalf("remove netns %s: %v", n.Path(), err)
	}
}

// droppableNS is testutil.NewNS for a netns the test may drop itself.
func droppableNS(t *testing.T) ns.NetNS {
	t.Helper()
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() {
		_ = n.Close()
		if _, err := os.Stat(n.Path()); err == nil {
			_ = testutils.UnmountNS(n)
		}
	})
	return n
}

func newPod(t *testing.T, id string) *container {
	return &container{id: id, ns: droppableNS(t)}
}

// reboot simulates a node reboot: every container netns and the host's
// links (bridge, veths, firewall rules: a fresh host netns) are gone; the
// dataDir and the subnet file stay. newBoot changes the boot ID.
func (e *bootEnv) reboot(cs []*container, newBoot string) {
	e.t.Helper()
	for _, c := range cs {
		dropNS(e.t, c.ns)
	}
	old := e.host
	e.host = droppableNS(e.t)
	dropNS(e.t, old)
	if newBoot != "" {
		e.setBoot(newBoot)
	}
}

func (e *bootEnv) addPods(l *libcni.NetworkConfigList, n int, prefix string) ([]*container, map[string]string) {
	e.t.Helper()
	var cs []*container
	owner := map[string]string{}
	for i := range n {
		c := newPod(e.t, fmt.Sprintf("%s-%d-%s", prefix, i, testutil.UniqueName("")))
		r := e.mustAdd(l, c.rt())
		for _, ip := range resultIPs(r) {
			if prev, dup := owner[ip.String()]; dup {
				e.t.Fatalf("%s handed to %s and %s", ip, prev, c.id)
			}
			owner[ip.String()] = c.id
		}
		cs = append(cs, c)
	}
	return cs, owner
}

// The scenario: dual-stack, IPv4 /28, 10 pods, a reboot, 10 new
// ADDs. With a new boot ID the earlier boot's records are released at once;
// with the same boot ID (a runtime-only restart, or a simulated reboot) the
// leftovers are reclaimed one by one once the /28 is exhausted.
func TestRebootReleasesAddresses(t *testing.T) {
	for _, tc := range []struct {
		name, newBoot string
		rewrite       bool
	}{
		{"boot-id-changed", "22222222-2222-2222-2222-222222222222", true},
		{"same-boot-last-resort", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sf := small28("fd10:244:0:1::/64", "10.244.1.0/28")
			e := newBootEnv(t, sf)
			l := e.conf(nil)
			pods, _ := e.addPods(l, 10, "before")
			e.reboot(pods, tc.newBoot)
			if tc.rewrite {
				e.writeSubnet(sf)
			}
			after, _ := e.addPods(l, 10, "after")
			for _, c := range after {
				if a := e.alloc(c.id); a == nil || len(a.IPs) != 2 || !sf.Subnets.V4.Contains(a.IPs[1]) {
					t.Fatalf("%s holds %+v, want one address per node subnet", c.id, a)
				}
			}
			after[9].ping(t, ipam.Gateway(sf.Subnets.V4))
			after[9].ping(t, ipam.Gateway(sf.Subnets.V6))
			if v := e.hostVeths(); len(v) != 10 {
				t.Errorf("host veths after the reboot: %v, want 10", v)
			}
		})
	}
}

func (e *env) alloc(id string) *ipam.Allocation {
	e.t.Helper()
	for _, a := range e.allocations() {
		if a.ContainerID == id && a.IfName == "eth0" {
			return &a
		}
	}
	return nil
}

func ipStrings(r []net.IP) string {
	var s []string
	for _, ip := range r {
		s = append(s, ip.String())
	}
	return strings.Join(s, ",")
}

// A container that comes back with its ID gets its addresses back: after a
// reboot without DEL, after a DEL, after DEL and reboot. A static request for
// an earlier boot's address succeeds.
func TestReturningContainerKeepsAddress(t *testing.T) {
	sf := small28("fd10:244:0:1::/64", "10.244.1.0/28")
	e := newBootEnv(t, sf)
	l := e.conf(nil)
	pods, owner := e.addPods(l, 4, "pod")
	had := map[string]string{} // "v6,v4" by container ID
	for _, c := range pods {
		had[c.id] = ipStrings(e.alloc(c.id).IPs)
	}
	want := func(c *container, r []net.IP, when string) {
		t.Helper()
		got := ipStrings(r)
		for _, ip := range r {
			if owner[ip.String()] != c.id {
				t.Errorf("%s: %s got %s, it had %s", when, c.id, got, had[c.id])
				return
			}
		}
	}
	// Reboot without DEL; they return in reverse order (the allocator's
	// own order would hand out other addresses) after a newcomer.
	e.reboot(pods, "22222222-2222-2222-2222-222222222222")
	e.mustAdd(l, e.newContainer().rt())
	back := map[string]*container{}
	for i := 3; i >= 1; i-- {
		c := newPod(t, pods[i].id)
		back[c.id] = c
		want(c, resultIPs(e.mustAdd(l, c.rt())), "after the reboot")
	}
	// pods[0] did not come back: a static request may take its address.
	static := e.newContainer()
	rt := static.rt()
	old0 := strings.Split(had[pods[0].id], ",")
	rt.Args = [][2]string{{"IgnoreUnknown", "1"}, {"IP", old0[0] + "," + old0[1]}}
	if r := e.mustAdd(l, rt); ipStrings(resultIPs(r)) != had[pods[0].id] {
		t.Errorf("static request for %s got %v", had[pods[0].id], resultIPs(r))
	}
	// DEL, another container, then back: same addresses.
	c1 := back[pods[1].id]
	e.mustDel(l, c1.rt())
	e.mustAdd(l, e.newContainer().rt())
	c1 = newPod(t, pods[1].id)
	want(c1, resultIPs(e.mustAdd(l, c1.rt())), "after DEL")
	// DEL, reboot, back.
	e.mustDel(l, c1.rt())
	var live []*container
	for _, c := range back {
		live = append(live, c)
	}
	e.reboot(live, "33333333-3333-3333-3333-333333333333")
	c1 = newPod(t, pods[1].id)
	want(c1, resultIPs(e.mustAdd(l, c1.rt())), "after DEL and a reboot")
	// A static request through runtimeConfig.ips for an earlier boot's
	// address (pods[2] does not return).
	c := e.newContainer()
	rt = c.rt()
	rt.CapabilityArgs = map[string]any{"ips": strings.Split(had[pods[2].id], ",")}
	r := e.mustAdd(l, rt)
	for _, ip := range resultIPs(r) {
		if !strings.Contains(","+had[pods[2].id]+",", ","+ip.String()+",") {
			t.Errorf("runtimeConfig.ips %s got %v", had[pods[2].id], resultIPs(r))
		}
	}
}

// procContainer is a container whose CNI_NETNS is /proc/PID/ns/net of a
// process in it (how Podman's rootful netavark-less path and some runtimes
// name it), with its own bind-mounted netns kept only until it runs.
type procContainer struct {
	*container
	cmd *exec.Cmd
}

func startProcContainer(t *testing.T, id string) *procContainer {
	t.Helper()
	n := droppableNS(t)
	cmd := exec.Command("nsenter", "--net="+n.Path(), "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a process in %s: %v", n.Path(), err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var want unix.Stat_t
	if err := unix.Fstat(int(n.Fd()), &want); err != nil {
		t.Fatal(err)
	}
	path := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/net"
	// nsenter joins the netns and then execs: wait (bounded) for the join.
	for i := 0; ; i++ {
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil && st.Ino == want.Ino && st.Dev == want.Dev {
			break
		}
		if i == 500 {
			t.Fatalf("process %d never joined netns %s", cmd.Process.Pid, n.Path())
		}
		time.Sleep(10 * time.Millisecond)
	}
	pn, err := ns.GetNS(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pn.Close() })
	// Only the process holds the netns now: when it dies, the netns goes.
	// (Detached: nsenter may pass its open netns file on to sleep.)
	_ = n.Close()
	if err := unix.Unmount(n.Path(), unix.MNT_DETACH); err != nil {
		t.Fatalf("unmount %s: %v", n.Path(), err)
	}
	_ = os.Remove(n.Path())
	return &procContainer{container: &container{id: id, ns: pn}, cmd: cmd}
}

func (p *procContainer) stop(t *testing.T) {
	t.Helper()
	_ = p.ns.Close()
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// A live container next to stale ones of the same boot keeps its address,
// whichever way its netns is named; a leftover whose netns is gone but whose
// host veth is still there is kept too; a /run/netns path that now holds
// another netns counts as gone. The leftovers' masquerade rules go with
// them.
func TestLiveContainerNextToStale(t *testing.T) {
	for _, style := range []string{"run-netns", "proc-pid"} {
		t.Run(style, func(t *testing.T) {
			sf := small28("fd10:244:0:1::/64", "10.244.1.0/28")
			e := newBootEnv(t, sf)
			l := e.conf(map[string]any{"ipMasq": true})
			type pod struct {
				c    *container
				proc *procContainer
			}
			var pods []pod
			for i := range 13 {
				id := fmt.Sprintf("%s-%d-%s", style, i, testutil.UniqueName(""))
				p := pod{c: newPod(t, id)}
				if style == "proc-pid" {
					p.proc = startProcContainer(t, id)
					p.c = p.proc.container
				}
				e.mustAdd(l, p.c.rt())
				pods = append(pods, p)
			}
			if _, err := e.add(l, e.newContainer().rt()); err == nil {
				t.Fatal("a 14th ADD in the /28 succeeded")
			}
			live, vethKept := pods[0], pods[1]
			// Made while pods[2]'s netns still exists: the kernel reuses
			// the inode numbers of freed namespaces, and one equal to the
			// recorded inode would (rightly) count as the same netns.
			var other ns.NetNS
			if style == "run-netns" {
				other = testutil.NewNS(t)
			}
			liveIPs := e.alloc(live.c.id).IPs
			keptIPs := e.alloc(vethKept.c.id).IPs
			for _, p := range pods[1:] {
				if p.proc != nil {
					p.proc.stop(t)
				} else {
					dropNS(t, p.c.ns)
				}
			}
			// The kernel destroys a netns, and the veths in it, in a work
			// queue: wait (bounded) until only the live pod's veth is left.
			e.waitHostVeths(1)
			if style == "run-netns" {
				// Another netns is bind-mounted where pods[2]'s was.
				path := pods[2].c.ns.Path()
				if err := os.WriteFile(path, nil, 0o444); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = unix.Unmount(path, unix.MNT_DETACH); _ = os.Remove(path) })
				if err := unix.Mount(other.Path(), path, "none", unix.MS_BIND, ""); err != nil {
					t.Fatalf("bind %s at %s: %v", other.Path(), path, err)
				}
			}
			// vethKept's netns is gone but a link with its host veth's name
			// exists: not provably gone.
			err := e.inHost(func() error {
				return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: link.HostVethName(vethKept.c.id, "eth0")},
					PeerName: testutil.UniqueName("vx6k")})
			})
			if err != nil {
				t.Fatal(err)
			}
			chainsBefore := e.masqChains()
			var fresh []*container
			for range 11 {
				c := e.newContainer()
				e.mustAdd(l, c.rt())
				fresh = append(fresh, c)
			}
			_, err = e.add(l, e.newContainer().rt())
			wantCode(t, err, types.ErrTryAgainLater)
			if a := e.alloc(live.c.id); a == nil || ipStrings(a.IPs) != ipStrings(liveIPs) {
				t.Fatalf("live container holds %+v, want %v", a, liveIPs)
			}
			if a := e.alloc(vethKept.c.id); a == nil || ipStrings(a.IPs) != ipStrings(keptIPs) {
				t.Fatalf("leftover with a host veth holds %+v, want %v", a, keptIPs)
			}
			if err := e.check(l, live.c.rt()); err != nil {
				t.Errorf("CHECK of the live container: %v", err)
			}
			live.c.ping(t, ipam.Gateway(sf.Subnets.V4))
			// One chain per family and attachment: the 11 leftovers' are
			// replaced by the 11 new ones'.
			if before, after := len(chainsBefore), len(e.masqChains()); before != 26 || after != 26 {
				t.Errorf("masquerade chains: %d before, %d after; want 26 and 26", before, after)
			}
			err = e.inHost(func() error {
				l, err := netlinksafe.LinkByName(link.HostVethName(vethKept.c.id, "eth0"))
				if err != nil {
					return err
				}
				return netlink.LinkDel(l)
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range append(fresh, live.c) {
				e.mustDel(l, c.rt())
			}
			for _, p := range pods[1:] {
				e.mustDel(l, p.c.rt())
			}
			if c := e.masqChains(); len(c) != 0 {
				t.Errorf("masquerade chains left: %v", c)
			}
			e.assertClean(0)
		})
	}
}

// masqChains lists the VX6- chains of both families in the host netns.
func (e *env) masqChains() []string {
	e.t.Helper()
	var out []string
	for _, bin := range []string{"iptables", "ip6tables"} {
		var b []byte
		err := e.inHost(func() error {
			var err error
			b, err = exec.Command(bin, "-w", "-t", "nat", "-S").Output()
			return err
		})
		if err != nil {
			e.t.Fatalf("%s -S: %v", bin, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "-N VX6-") {
				out = append(out, bin+":"+strings.TrimPrefix(line, "-N "))
			}
		}
	}
	return out
}

// The node subnet changed across the reboot: every ADD gets addresses from
// the new subnets, returning containers too; nothing outside them is held.
func TestRebootSubnetChange(t *testing.T) {
	e := newBootEnv(t, small28("fd10:244:0:1::/64", "10.244.1.0/28"))
	l := e.conf(nil)
	pods, _ := e.addPods(l, 10, "old")
	e.reboot(pods, "22222222-2222-2222-2222-222222222222")
	sf := small28("fd10:244:0:2::/64", "10.244.2.0/28")
	e.writeSubnet(sf)
	var after []*container
	for i := range 10 {
		c := e.newContainer()
		if i < 3 {
			c.id = pods[i].id // returning containers
		}
		r := e.mustAdd(l, c.rt())
		for _, ip := range resultIPs(r) {
			if !sf.Subnets.V6.Contains(ip) && !sf.Subnets.V4.Contains(ip) {
				t.Fatalf("%s got %s outside the new node subnets", c.id, ip)
			}
		}
		after = append(after, c)
	}
	for _, a := range e.allocations() {
		for _, ip := range a.IPs {
			if !sf.Subnets.V6.Contains(ip) && !sf.Subnets.V4.Contains(ip) {
				t.Errorf("%s/%s holds %s outside the new node subnets", a.ContainerID, a.IfName, ip)
			}
		}
	}
	after[0].ping(t, ipam.Gateway(sf.Subnets.V4))
	err := e.inHost(func() error {
		br, err := netlinksafe.LinkByName(e.bridge)
		if err != nil {
			return err
		}
		addrs, err := netlinksafe.AddrList(br, netlink.FAMILY_ALL)
		for _, a := range addrs {
			if !a.IP.IsLinkLocalUnicast() && !sf.Subnets.V6.Contains(a.IP) && !sf.Subnets.V4.Contains(a.IP) {
				t.Errorf("bridge holds %s outside the new subnets", a.IPNet)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.assertClean(10)
}

// waitHostVeths waits, bounded, until the host netns holds n veths.
func (e *env) waitHostVeths(n int) {
	e.t.Helper()
	for i := 0; ; i++ {
		v := e.hostVeths()
		if len(v) == n {
			return
		}
		if i == 600 {
			e.t.Fatalf("host veths after 60 s: %v, want %d", v, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
