package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testutil"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxlan6/vxlan6/ipam"
	"github.com/vxlan6/vxlan6/plugins/vxlan6/link"
	"github.com/vxlan6/vxlan6/subnetfile"
)

// Every supported version through libcni: ADD, result in that version,
// CHECK where the version has it, DEL twice, nothing left.
func TestEveryVersionLibcni(t *testing.T) {
	for _, dual := range []bool{false, true} {
		for _, v := range allVersions {
			name := v + "/v6"
			if dual {
				name = v + "/dual"
			}
			t.Run(name, func(t *testing.T) {
				sf := v6Subnet()
				if dual {
					sf = dualSubnet()
				}
				e := newEnv(t, sf)
				c := e.newContainer()
				l := e.list(v)
				var raw types.Result
				err := e.inHost(func() error {
					var err error
					raw, err = e.cni.AddNetworkList(ctx(t), l, c.rt())
					return err
				})
				if err != nil {
					t.Fatalf("ADD: %v", err)
				}
				if raw.Version() != v {
					t.Errorf("result version %s, want %s", raw.Version(), v)
				}
				r, err := current.NewResultFromResult(raw)
				if err != nil {
					t.Fatal(err)
				}
				wantIPs := 1
				if dual {
					wantIPs = 2
				}
				if len(r.IPs) != wantIPs || len(r.Interfaces) != 2 {
					t.Fatalf("result %+v: want %d ips, 2 interfaces", r, wantIPs)
				}
				if r.Interfaces[0].Name != link.HostVethName(c.id, "eth0") || r.Interfaces[1].Sandbox != c.ns.Path() {
					t.Errorf("interfaces %v %v", r.Interfaces[0], r.Interfaces[1])
				}
				for _, ipc := range r.IPs {
					if ipc.Gateway == nil || ipc.Interface == nil || *ipc.Interface != 1 {
						t.Errorf("ip config %v lacks gateway or interface 1", ipc)
					}
				}
				if len(r.Routes) != 2*wantIPs {
					t.Errorf("routes %v: want default + cluster route per family", r.Routes)
				}
				// The address is usable right away (no DAD wait): ping the gateway.
				c.ping(t, r.IPs[0].Gateway)
				if dual {
					c.ping(t, r.IPs[1].Gateway)
				}
				if v >= "0.4.0" {
					if err := e.check(l, c.rt()); err != nil {
						t.Errorf("CHECK: %v", err)
					}
				}
				if v >= "1.1.0" {
					if err := e.inHost(func() error { return e.cni.GetStatusNetworkList(ctx(t), l) }); err != nil {
						t.Errorf("STATUS: %v", err)
					}
				}
				e.assertClean(1)
				e.mustDel(l, c.rt())
				e.mustDel(l, c.rt())
				e.assertClean(0)
				if got := c.links(t); len(got) != 1 {
					t.Errorf("container still has %v", got)
				}
			})
		}
	}
}

// Two containers on one node reach each other and the gateway, IPv6-only
// and dual-stack.
func TestTwoContainersPing(t *testing.T) {
	t.Run("v6", func(t *testing.T) { testTwoContainersPing(t, v6Subnet()) })
	t.Run("dual", func(t *testing.T) { testTwoContainersPing(t, dualSubnet()) })
}

func testTwoContainersPing(t *testing.T, sf *subnetfile.Config) {
	// uplink0 holds the VTEP the subnet file names: the underlay.
	sf.VTEP = net.ParseIP("2001:db8:77::1")
	e := newEnv(t, sf)
	l := e.list("1.0.0")
	// An uplink that learns its route from RAs must keep doing so once the
	// plugin turns forwarding on (accept_ra 1 -> 2).
	err := e.inHost(func() error {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "uplink0"}}
		if err := netlink.LinkAdd(br); err != nil {
			return err
		}
		return netlink.AddrAdd(br, &netlink.Addr{IPNet: &net.IPNet{IP: sf.VTEP, Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD})
	})
	if err != nil {
		t.Fatal(err)
	}
	a, b := e.newContainer(), e.newContainer()
	ra := e.mustAdd(l, a.rt())
	// Checked at once, before DAD could have finished on its own: a
	// tentative bridge link-local means no neighbour solicitation for
	// traffic forwarded from other hosts (see link.EnsureBridge).
	if err := e.inHost(func() error { return bridgeLinkLocalUsable(e.bridge) }); err != nil {
		t.Error(err)
	}
	rb := e.mustAdd(l, b.rt())
	// Host veths are bare bridge ports: no IPv6 address of their own
	// (see link.SetupVeth).
	for _, name := range e.hostVeths() {
		err := e.inHost(func() error {
			v, err := netlinksafe.LinkByName(name)
			if err != nil {
				return err
			}
			addrs, err := netlinksafe.AddrList(v, netlink.FAMILY_ALL)
			if err == nil && len(addrs) > 0 {
				err = fmt.Errorf("host veth %s has addresses %v", name, addrs)
			}
			return err
		})
		if err != nil {
			t.Error(err)
		}
	}
	for i := range ra.IPs {
		a.ping(t, rb.IPs[i].Address.IP)
		b.ping(t, ra.IPs[i].Address.IP)
		a.ping(t, ra.IPs[i].Gateway)
	}
	// The bridge holds exactly the gateways, with the overlay MTU.
	err = e.inHost(func() error {
		sysctl := func(p string) string {
			b, _ := os.ReadFile("/proc/sys/net/ipv6/conf/" + p)
			return strings.TrimSpace(string(b))
		}
		if v := sysctl("uplink0/accept_ra"); v != "2" {
			t.Errorf("uplink0 accept_ra %s, want 2", v)
		}
		if v := sysctl(e.bridge + "/accept_ra"); v != "0" {
			t.Errorf("bridge accept_ra %s, want 0", v)
		}
		br, err := netlinksafe.LinkByName(e.bridge)
		if err != nil {
			return err
		}
		if br.Attrs().MTU != 1430 {
			t.Errorf("bridge MTU %d, want 1430", br.Attrs().MTU)
		}
		fwd, _ := os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding")
		v4fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		if strings.TrimSpace(string(fwd)) != "1" || (sf.DualStack() && strings.TrimSpace(string(v4fwd)) != "1") {
			t.Errorf("forwarding v6=%q v4=%q, want 1", fwd, v4fwd)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*container{a, b} {
		e.mustDel(l, c.rt())
	}
	e.assertClean(0)
}

func TestParallelAddDel(t *testing.T) {
	e := newEnv(t, dualSubnet())
	l := e.list("1.1.0")
	const n = 50
	cs := make([]*container, n)
	for i := range cs {
		cs[i] = e.newContainer()
	}
	results := make([]*current.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.add(l, cs[i].rt())
		}()
	}
	wg.Wait()
	seen := map[string]string{}
	for i, err := range errs {
		if err != nil {
			t.Errorf("ADD %d: %v", i, err)
			continue
		}
		for _, ip := range resultIPs(results[i]) {
			if other, dup := seen[ip.String()]; dup {
				t.Errorf("%s given to %s and %s", ip, other, cs[i].id)
			}
			seen[ip.String()] = cs[i].id
		}
	}
	if len(seen) != 2*n {
		t.Errorf("want %d distinct addresses, got %d", 2*n, len(seen))
	}
	e.assertClean(n)
	e.delParallel(l, cs)
	e.assertClean(0)
}

// Static IP and MAC from runtimeConfig, args.cni and CNI_ARGS, with the
// conventions' precedence, and Podman's CNI_ARGS shape.
func TestStaticRequests(t *testing.T) {
	e := newEnv(t, dualSubnet())
	cases := []struct {
		name    string
		rtArgs  [][2]string
		caps    map[string]any
		args    map[string]any
		wantIPs []string
		wantMAC string
	}{
		{
			name:    "podman CNI_ARGS",
			rtArgs:  [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAME", "x"}, {"IP", "fd10:244:0:1::77,10.244.1.77"}, {"MAC", "02:00:00:00:00:77"}},
			wantIPs: []string{"fd10:244:0:1::77", "10.244.1.77"},
			wantMAC: "02:00:00:00:00:77",
		},
		{
			name:    "unknown keys without IgnoreUnknown",
			rtArgs:  [][2]string{{"K8S_POD_NAMESPACE", "default"}, {"IP", "fd10:244:0:1::78"}},
			wantIPs: []string{"fd10:244:0:1::78"},
		},
		{
			name:    "runtimeConfig beats args and CNI_ARGS",
			rtArgs:  [][2]string{{"IP", "fd10:244:0:1::79"}, {"MAC", "02:00:00:00:00:79"}},
			args:    map[string]any{"cni": map[string]any{"ips": []string{"fd10:244:0:1::80"}, "mac": "02:00:00:00:00:80"}},
			caps:    map[string]any{"ips": []string{"fd10:244:0:1::81/64"}, "mac": "02:00:00:00:00:81"},
			wantIPs: []string{"fd10:244:0:1::81"},
			wantMAC: "02:00:00:00:00:81",
		},
		{
			name:    "args beat CNI_ARGS",
			rtArgs:  [][2]string{{"IP", "fd10:244:0:1::82"}, {"MAC", "02:00:00:00:00:82"}},
			args:    map[string]any{"cni": map[string]any{"ips": []string{"fd10:244:0:1::83", "10.244.1.83"}, "mac": "02:00:00:00:00:83"}},
			wantIPs: []string{"fd10:244:0:1::83", "10.244.1.83"},
			wantMAC: "02:00:00:00:00:83",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			extra := map[string]any{}
			if tc.args != nil {
				extra["args"] = tc.args
			}
			l := e.list("1.0.0", e.pluginConf(extra))
			c := e.newContainer()
			rt := c.rt()
			rt.Args = tc.rtArgs
			rt.CapabilityArgs = tc.caps
			r := e.mustAdd(l, rt)
			got := map[string]bool{}
			for _, ip := range resultIPs(r) {
				got[ip.String()] = true
			}
			for _, w := range tc.wantIPs {
				if !got[w] {
					t.Errorf("want %s in %v", w, resultIPs(r))
				}
			}
			if tc.wantMAC != "" && r.Interfaces[1].Mac != tc.wantMAC {
				t.Errorf("container MAC %s, want %s", r.Interfaces[1].Mac, tc.wantMAC)
			}
			if err := e.del(l, rt); err != nil {
				t.Fatal(err)
			}
			e.assertClean(0)
		})
	}
}

// Bad input: the spec's code, a message naming the culprit, nothing left.
func TestBadInput(t *testing.T) {
	e := newEnv(t, dualSubnet())
	good := e.newContainer()
	l := e.list("1.0.0")
	e.mustAdd(l, good.rt()) // one live attachment that must survive every failure

	type tc struct {
		name    string
		env     map[string]string
		stdin   []byte
		code    uint
		mention string
		setup   func(t *testing.T, c *container)
	}
	base := func(c *container) map[string]string {
		return map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": c.id, "CNI_NETNS": c.ns.Path(), "CNI_IFNAME": "eth0"}
	}
	with := func(m map[string]string, k, v string) map[string]string { m[k] = v; return m }
	goodIP := func() string {
		a := e.allocations()
		return a[0].IPs[0].String()
	}
	// envCase is ADD with the default config and one environment variable
	// set to v.
	envCase := func(name, k, v string, code uint, mention string) func(c *container) tc {
		return func(c *container) tc {
			return tc{name: name, env: with(base(c), k, v), stdin: e.confBytes("1.0.0", nil), code: code, mention: mention}
		}
	}
	cases := []func(c *container) tc{
		func(c *container) tc {
			return tc{name: "malformed JSON", env: base(c), stdin: []byte(`{"cniVersion":"1.0.0","name":`), code: types.ErrDecodingFailure}
		},
		func(c *container) tc {
			return tc{name: "unsupported cniVersion", env: base(c), stdin: e.confBytes("0.2.0", nil), code: types.ErrIncompatibleCNIVersion}
		},
		func(c *container) tc {
			return tc{name: "future cniVersion", env: base(c), stdin: e.confBytes("9.9.9", nil), code: types.ErrIncompatibleCNIVersion}
		},
		func(c *container) tc {
			return tc{name: "missing subnet file", env: base(c), stdin: e.confBytes("1.0.0", map[string]any{"subnetFile": filepath.Join(e.dir, "nope.env")}),
				code: types.ErrTryAgainLater, mention: "nope.env"}
		},
		func(c *container) tc {
			p := filepath.Join(e.dir, "garbage.env")
			_ = os.WriteFile(p, []byte("hello world\n"), 0o644)
			return tc{name: "garbage subnet file", env: base(c), stdin: e.confBytes("1.0.0", map[string]any{"subnetFile": p}),
				code: types.ErrTryAgainLater, mention: "vxlan6d"}
		},
		func(c *container) tc {
			p := filepath.Join(e.dir, "badcidr.env")
			_ = os.WriteFile(p, []byte("VXLAN6_NETWORK_V6=fd10:244::/480\nVXLAN6_SUBNET_V6=fd10:244:0:1::/64\nVXLAN6_MTU=1430\n"), 0o644)
			return tc{name: "invalid CIDR in subnet file", env: base(c), stdin: e.confBytes("1.0.0", map[string]any{"subnetFile": p}),
				code: types.ErrTryAgainLater, mention: "badcidr.env"}
		},
		func(c *container) tc {
			return tc{name: "invalid CIDR in runtimeConfig.ips", env: base(c),
				stdin: e.confBytes("1.0.0", map[string]any{"runtimeConfig": map[string]any{"ips": []string{"fd10:244:0:1::zz/64"}}}),
				code:  types.ErrInvalidNetworkConfig, mention: "fd10:244:0:1::zz/64"}
		},
		envCase("invalid IP in CNI_ARGS", "CNI_ARGS", "IgnoreUnknown=1;IP=10.244.1.300", types.ErrInvalidNetworkConfig, "10.244.1.300"),
		envCase("invalid MAC", "CNI_ARGS", "MAC=zz:00:00:00:00:01", types.ErrInvalidNetworkConfig, "zz:00"),
		envCase("all-zero MAC", "CNI_ARGS", "MAC=00:00:00:00:00:00", types.ErrInvalidNetworkConfig, "00:00:00:00:00:00"),
		func(c *container) tc {
			return tc{name: "invalid mtu", env: base(c), stdin: e.confBytes("1.0.0", map[string]any{"mtu": 500}),
				code: types.ErrInvalidNetworkConfig, mention: "500"}
		},
		envCase("requested IP outside subnet", "CNI_ARGS", "IP=fd99::5", types.ErrInvalidNetworkConfig, "fd99::5"),
		envCase("requested gateway", "CNI_ARGS", "IP=fd10:244:0:1::1", types.ErrInvalidNetworkConfig, "fd10:244:0:1::1"),
		envCase("two requested IPs in one subnet", "CNI_ARGS", "IP=fd10:244:0:1::5,fd10:244:0:1::6", types.ErrInvalidNetworkConfig, "fd10:244:0:1::6"),
		func(c *container) tc {
			ip := goodIP()
			return tc{name: "requested IP taken", env: with(base(c), "CNI_ARGS", "IP="+ip),
				stdin: e.confBytes("1.0.0", nil), code: types.ErrTryAgainLater, mention: ip}
		},
		envCase("invalid CNI_IFNAME", "CNI_IFNAME", "eth/0", types.ErrInvalidEnvironmentVariables, ""),
		envCase("too long CNI_IFNAME", "CNI_IFNAME", "eth0123456789abcdef", types.ErrInvalidEnvironmentVariables, ""),
		func(c *container) tc {
			return tc{name: "CNI_IFNAME already in netns", env: base(c), stdin: e.confBytes("1.0.0", nil),
				code: types.ErrInvalidEnvironmentVariables, mention: "eth0", setup: func(t *testing.T, c *container) { c.addVeth(t, "eth0") }}
		},
		envCase("nonexistent netns", "CNI_NETNS", "/var/run/netns/vx6-does-not-exist", types.ErrUnknownContainer, "vx6-does-not-exist"),
		func(c *container) tc {
			// e.exec gives the plugin no PATH: masquerading, the very last
			// step of ADD, fails, and everything before it must be undone.
			return tc{name: "failure after the veth exists (no iptables in PATH)", env: base(c),
				stdin: e.confBytes("1.0.0", map[string]any{"ipMasq": true}), code: types.ErrInternal, mention: "masquerade"}
		},
		envCase("CNI_NETNS not a network namespace", "CNI_NETNS", "/proc/self/ns/ipc", types.ErrInvalidEnvironmentVariables, "/proc/self/ns/ipc"),
		envCase("host netns as CNI_NETNS", "CNI_NETNS", e.host.Path(), types.ErrInvalidEnvironmentVariables, e.host.Path()),
		envCase("unknown verb", "CNI_COMMAND", "FROB", types.ErrInvalidEnvironmentVariables, "FROB"),
		// The kernel reads % in a name as a template (eth%d -> eth0):
		// the pair would be born with another name than CNI_IFNAME.
		envCase("% in CNI_IFNAME", "CNI_IFNAME", "eth%d", types.ErrInvalidEnvironmentVariables, "eth%d"),
		func(c *container) tc {
			// ... and a bridge named vx6%d would be created as vx60, then
			// not found, on every ADD: a new stray bridge each time.
			return tc{name: "% in bridge name", env: base(c), stdin: e.confBytes("1.0.0", map[string]any{"bridge": "vx6%d"}),
				code: types.ErrInvalidNetworkConfig, mention: "vx6%d"}
		},
		func(c *container) tc {
			return tc{name: "bridge name too long", env: base(c), stdin: e.confBytes("1.0.0", map[string]any{"bridge": "vx6-much-too-long-name"}),
				code: types.ErrInvalidNetworkConfig, mention: "vx6-much-too-long-name"}
		},
	}
	for _, mk := range cases {
		c := e.newContainer()
		tc := mk(c)
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t, c)
			}
			before, hostBefore := c.links(t), e.hostLinks()
			te, out := e.exec(tc.env, tc.stdin)
			if te == nil {
				t.Fatalf("ADD succeeded: %s", out)
			}
			wantCode(t, te, tc.code)
			if tc.mention != "" && !strings.Contains(te.Msg+te.Details, tc.mention) {
				t.Errorf("message %q does not name %q", te.Msg, tc.mention)
			}
			e.assertClean(1)
			if after := c.links(t); len(after) != len(before) {
				t.Errorf("container links before %v, after %v", before, after)
			}
			if after := e.hostLinks(); len(after) != len(hostBefore) {
				t.Errorf("host links before %v, after %v", hostBefore, after)
			}
		})
	}
	good.ping(t, net.ParseIP("fd10:244:0:1::1"))
	e.mustDel(l, good.rt())
	e.assertClean(0)
}

// nerdctl sends DEL with an empty CNI_NETNS and no prevResult, also while the
// container still runs: the host veth (and so the container end) must go.
func TestDelEmptyNetnsLiveContainer(t *testing.T) {
	e := newEnv(t, v6Subnet())
	c := e.newContainer()
	e.mustAdd(e.list("1.0.0"), c.rt())
	for i := 0; i < 2; i++ {
		te, out := e.exec(map[string]string{"CNI_COMMAND": "DEL", "CNI_CONTAINERID": c.id, "CNI_NETNS": "", "CNI_IFNAME": "eth0"}, e.confBytes("1.0.0", nil))
		if te != nil {
			t.Fatalf("DEL %d: %v %s", i, te, out)
		}
	}
	e.assertClean(0)
	if got := c.links(t); len(got) != 1 {
		t.Errorf("container still has %v", got)
	}
}

// A config edited into an invalid state after ADD (here an mtu below 1280)
// must not stop DEL from cleaning up: DEL does not use the mtu.
func TestDelWithConfigInvalidSinceAdd(t *testing.T) {
	e := newEnv(t, v6Subnet())
	c := e.newContainer()
	e.mustAdd(e.list("1.0.0"), c.rt())
	for i := 0; i < 2; i++ {
		te, out := e.exec(map[string]string{"CNI_COMMAND": "DEL", "CNI_CONTAINERID": c.id, "CNI_NETNS": c.ns.Path(), "CNI_IFNAME": "eth0"},
			e.confBytes("1.0.0", map[string]any{"mtu": 500}))
		if te != nil {
			t.Fatalf("DEL %d: %v %s", i, te, out)
		}
	}
	e.assertClean(0)
}

// A second ADD of the same (container ID, ifname) into a new netns, without
// DEL in between (the old netns leaked), replaces the stale host veth.
func TestReAddReplacesStaleVeth(t *testing.T) {
	e := newEnv(t, v6Subnet())
	l := e.list("1.0.0")
	old, fresh := e.newContainer(), e.newContainer()
	fresh.id = old.id
	r1 := e.mustAdd(l, old.rt())
	r2 := e.mustAdd(l, fresh.rt())
	if !r1.IPs[0].Address.IP.Equal(r2.IPs[0].Address.IP) {
		t.Errorf("same pair got %s then %s", r1.IPs[0].Address.IP, r2.IPs[0].Address.IP)
	}
	e.assertClean(1)
	if got := old.links(t); len(got) != 1 {
		t.Errorf("old netns still has %v", got)
	}
	fresh.ping(t, r2.IPs[0].Gateway)
	e.mustDel(l, fresh.rt())
	e.assertClean(0)
}

// DEL releases the addresses even when the netns is gone and the subnet
// file has vanished.
func TestDelNetnsGone(t *testing.T) {
	e := newEnv(t, v6Subnet())
	c := e.newContainer()
	l := e.list("1.0.0")
	e.mustAdd(l, c.rt())
	path := c.ns.Path()
	c.ns.Close()
	if err := exec.Command("umount", path).Run(); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	os.Remove(e.subnetFile)
	e.mustDel(l, c.rt())
	e.assertClean(0)
}

// A changed subnet file: the bridge's old gateway is replaced, CHECK of a
// container from the old subnet fails, DEL still releases it.
func TestSubnetChange(t *testing.T) {
	e := newEnv(t, v6Subnet())
	l := e.list("1.0.0")
	old := e.newContainer()
	e.mustAdd(l, old.rt())
	if err := e.check(l, old.rt()); err != nil {
		t.Fatalf("CHECK before change: %v", err)
	}
	sf := v6Subnet()
	sf.Subnets.V6 = testutil.MustCIDR("fd10:244:0:2::/64")
	e.writeSubnet(sf)
	if err := e.check(l, old.rt()); err == nil {
		t.Errorf("CHECK passed although the address left the node subnet")
	}
	c := e.newContainer()
	r := e.mustAdd(l, c.rt())
	if !sf.Subnets.V6.Contains(r.IPs[0].Address.IP) {
		t.Errorf("new address %s outside new subnet", r.IPs[0].Address.IP)
	}
	err := e.inHost(func() error {
		br, err := netlinksafe.LinkByName(e.bridge)
		if err != nil {
			return err
		}
		addrs, err := netlinksafe.AddrList(br, netlink.FAMILY_V6)
		for _, a := range addrs {
			if !a.IP.IsLinkLocalUnicast() && !a.IP.Equal(ipam.Gateway(sf.Subnets.V6)) {
				t.Errorf("bridge still holds %s", a.IPNet)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c.ping(t, ipam.Gateway(sf.Subnets.V6))
	for _, x := range []*container{old, c} {
		e.mustDel(l, x.rt())
	}
	e.assertClean(0)
}

// CHECK notices a missing address, route and allocation.
func TestCheckDetectsDamage(t *testing.T) {
	e := newEnv(t, v6Subnet())
	l := e.list("1.0.0")
	c := e.newContainer()
	r := e.mustAdd(l, c.rt())
	c.onEth0(t, func(lk netlink.Link) error {
		a := r.IPs[0].Address
		return netlink.AddrDel(lk, &netlink.Addr{IPNet: &a})
	})
	if err := e.check(l, c.rt()); err == nil {
		t.Errorf("CHECK passed without the address")
	}
	e.mustDel(l, c.rt())
	e.assertClean(0)
}

func TestGC(t *testing.T) {
	for _, key := range []string{"cni.dev/valid-attachments", "cni.dev/attachments"} {
		t.Run(key, func(t *testing.T) {
			e := newEnv(t, v6Subnet())
			l := e.list("1.1.0")
			cs := []*container{e.newContainer(), e.newContainer(), e.newContainer()}
			for _, c := range cs {
				e.mustAdd(l, c.rt())
			}
			valid := []types.GCAttachment{{ContainerID: cs[0].id, IfName: "eth0"}}
			if key == "cni.dev/valid-attachments" {
				err := e.inHost(func() error {
					return e.cni.GCNetworkList(ctx(t), l, &libcni.GCArgs{ValidAttachments: valid})
				})
				if err != nil {
					t.Fatalf("GC: %v", err)
				}
			} else {
				te, out := e.exec(map[string]string{"CNI_COMMAND": "GC"}, e.confBytes("1.1.0", map[string]any{key: valid}))
				if te != nil {
					t.Fatalf("GC: %v %s", te, out)
				}
			}
			e.assertClean(1)
			if v := e.hostVeths(); len(v) != 1 || v[0] != link.HostVethName(cs[0].id, "eth0") {
				t.Errorf("survivor %v", v)
			}
			cs[0].ping(t, net.ParseIP("fd10:244:0:1::1"))
			e.mustDel(l, cs[0].rt())
			e.assertClean(0)
		})
	}
}

func TestStatus(t *testing.T) {
	sf := v6Subnet()
	sf.Subnets.V6 = testutil.MustCIDR("fd10:244:0:1::/126") // network, gateway and 2 addresses
	e := newEnv(t, sf)
	l := e.list("1.1.0")
	status := func() error {
		return e.inHost(func() error { return e.cni.GetStatusNetworkList(ctx(t), l) })
	}
	if err := status(); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	var cs []*container
	for i := 0; i < 2; i++ {
		c := e.newContainer()
		e.mustAdd(l, c.rt())
		cs = append(cs, c)
	}
	wantCode(t, status(), types.ErrPluginNotAvailable)
	_, err := e.add(l, e.newContainer().rt())
	wantCode(t, err, types.ErrTryAgainLater)
	for _, c := range cs {
		e.mustDel(l, c.rt())
	}
	if err := status(); err != nil {
		t.Fatalf("STATUS after DEL: %v", err)
	}
	os.Remove(e.subnetFile)
	wantCode(t, status(), types.ErrPluginNotAvailable)
	e.assertClean(0)
}

// vxlan6 first, then the reference portmap, bandwidth and tuning.
func TestChaining(t *testing.T) {
	for _, p := range []string{"portmap", "bandwidth", "tuning"} {
		testutil.RefPlugin(t, p)
	}
	for _, v := range []string{"0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			e := newEnv(t, dualSubnet())
			l := e.list(v,
				e.pluginConf(nil),
				map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
				map[string]any{"type": "bandwidth", "capabilities": map[string]bool{"bandwidth": true}},
				map[string]any{"type": "tuning", "sysctl": map[string]string{"net.ipv6.conf.eth0.hop_limit": "63"}},
			)
			c := e.newContainer()
			rt := c.rt()
			rt.CapabilityArgs = map[string]any{
				"portMappings": []map[string]any{{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}},
				"bandwidth":    map[string]any{"ingressRate": 10000000, "ingressBurst": 100000, "egressRate": 10000000, "egressBurst": 100000},
			}
			r := e.mustAdd(l, rt)
			if len(r.IPs) != 2 {
				t.Errorf("chained result lost addresses: %+v", r)
			}
			hl, _ := exec.Command("nsenter", "--net="+c.ns.Path(), "cat", "/proc/sys/net/ipv6/conf/eth0/hop_limit").Output()
			if strings.TrimSpace(string(hl)) != "63" {
				t.Errorf("tuning did not apply: hop_limit %q", hl)
			}
			c.ping(t, r.IPs[0].Gateway)
			if err := e.check(l, rt); err != nil {
				t.Errorf("CHECK: %v", err)
			}
			e.mustDel(l, rt)
			e.mustDel(l, rt)
			// bandwidth leaves an ifb per container; it removes it on DEL.
			for _, v := range e.hostVeths() {
				t.Errorf("veth left: %s", v)
			}
			e.assertClean(0)
		})
	}
}

// ipMasq: a container reaches an "outside" address that has no route back to
// the pod network (only masquerading makes the reply come back); GC and DEL
// remove the rules.
func TestIPMasq(t *testing.T) {
	if _, err := exec.LookPath("ip6tables"); err != nil {
		t.Skip("ip6tables not installed")
	}
	e := newEnv(t, v6Subnet())
	ext := e.newContainer()
	err := e.inHost(func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vx6up", Flags: net.FlagUp},
			PeerName: "up0", PeerNamespace: netlink.NsFd(int(ext.ns.Fd()))}); err != nil {
			return err
		}
		up, err := netlinksafe.LinkByName("vx6up")
		if err != nil {
			return err
		}
		return netlink.AddrAdd(up, &netlink.Addr{IPNet: testutil.MustAddrCIDR("2001:db8:ff::1/64"), Flags: 0x02 /* IFA_F_NODAD */})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = ext.ns.Do(func(ns.NetNS) error {
		up, err := netlinksafe.LinkByName("up0")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(up, &netlink.Addr{IPNet: testutil.MustAddrCIDR("2001:db8:ff::2/64"), Flags: 0x02}); err != nil {
			return err
		}
		return netlink.LinkSetUp(up)
	})
	if err != nil {
		t.Fatal(err)
	}
	l := e.list("1.1.0", e.pluginConf(map[string]any{"ipMasq": true}))
	a, b := e.newContainer(), e.newContainer()
	e.mustAdd(l, a.rt())
	e.mustAdd(l, b.rt())
	// The fresh uplink's carrier comes up asynchronously (linkwatch):
	// wait, bounded, until the host itself reaches the outside.
	for i := 0; i < 5; i++ {
		if exec.Command("nsenter", "--net="+e.host.Path(), "ping", "-c1", "-W1", "2001:db8:ff::2").Run() == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	a.ping(t, net.ParseIP("2001:db8:ff::2"))
	chains := func() string {
		var out []byte
		_ = e.inHost(func() error {
			out, _ = exec.Command("ip6tables", "-t", "nat", "-S").Output()
			return nil
		})
		return string(out)
	}
	if s := chains(); strings.Count(s, "-N VX6-") != 2 {
		t.Errorf("want 2 masquerade chains:\n%s", s)
	}
	// A repeated ADD rewrites a's rules as they were, without duplicates.
	before := chains()
	e.mustAdd(l, a.rt())
	if after := chains(); after != before {
		t.Errorf("repeated ADD changed the masquerade rules:\nbefore\n%s\nafter\n%s", before, after)
	}
	a.ping(t, net.ParseIP("2001:db8:ff::2"))
	err = e.inHost(func() error {
		return e.cni.GCNetworkList(ctx(t), l, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: a.id, IfName: "eth0"}}})
	})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if s := chains(); strings.Count(s, "-N VX6-") != 1 {
		t.Errorf("want 1 masquerade chain after GC:\n%s", s)
	}
	e.mustDel(l, a.rt())
	if s := chains(); strings.Contains(s, "VX6-") {
		t.Errorf("masquerade rules left:\n%s", s)
	}
	_ = e.inHost(func() error { return link.DelHostVeth("vx6up") })
	e.assertClean(0)
}

// cnitool drives add, check, status, del and gc.
func TestCnitool(t *testing.T) {
	home, _ := os.UserHomeDir()
	cnitool := filepath.Join(home, "go", "bin", "cnitool")
	if _, err := os.Stat(cnitool); err != nil {
		t.Skipf("cnitool not installed: go install github.com/containernetworking/cni/cnitool@v1.3.0")
	}
	e := newEnv(t, dualSubnet())
	confDir := filepath.Join(e.dir, "net.d")
	_ = os.MkdirAll(confDir, 0o755)
	b := fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"plugins":[{"type":"vxlan6","subnetFile":%q,"dataDir":%q,"bridge":%q}]}`,
		e.netName, e.subnetFile, e.dataDir, e.bridge)
	if err := os.WriteFile(filepath.Join(confDir, "10-vxlan6.conflist"), []byte(b), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m, _ := filepath.Glob("/var/lib/cni/results/" + e.netName + "-*")
		for _, f := range m {
			os.Remove(f)
		}
	})
	c := e.newContainer()
	run := func(verb string) (string, error) {
		cmd := exec.Command("nsenter", "--net="+e.host.Path(), cnitool, verb, e.netName, c.ns.Path())
		cmd.Env = append(os.Environ(), "CNI_PATH="+e.pluginDir, "NETCONFPATH="+confDir)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, verb := range []string{"add", "check", "status"} {
		if out, err := run(verb); err != nil {
			t.Fatalf("cnitool %s: %v\n%s", verb, err, out)
		}
	}
	e.assertClean(1)
	// gc first DELs every cached attachment, then sends GC.
	if out, err := run("gc"); err != nil {
		t.Fatalf("cnitool gc: %v\n%s", err, out)
	}
	e.assertClean(0)
	if out, err := run("add"); err != nil {
		t.Fatalf("cnitool add: %v\n%s", err, out)
	}
	for _, verb := range []string{"del", "del"} {
		if out, err := run(verb); err != nil {
			t.Fatalf("cnitool %s: %v\n%s", verb, err, out)
		}
	}
	e.assertClean(0)
}

// Parallel DELs with ipMasq remove exactly their own rules: none is left
// behind and no other rule of POSTROUTING goes with them.
func TestIPMasqParallelDel(t *testing.T) {
	if _, err := exec.LookPath("ip6tables"); err != nil {
		t.Skip("ip6tables not installed")
	}
	e := newEnv(t, v6Subnet())
	nat := func(args ...string) string {
		var out []byte
		err := e.inHost(func() error {
			var err error
			out, err = exec.Command("ip6tables", append([]string{"-w", "-t", "nat"}, args...)...).CombinedOutput()
			return err
		})
		if err != nil {
			t.Fatalf("ip6tables %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	// Someone else's rule, at the end of POSTROUTING: it must survive.
	nat("-A", "POSTROUTING", "-s", "2001:db8:99::/64", "-j", "ACCEPT", "-m", "comment", "--comment", "foreign")
	l := e.list("1.1.0", e.pluginConf(map[string]any{"ipMasq": true}))
	const n = 12
	cs := make([]*container, n)
	for i := range cs {
		cs[i] = e.newContainer()
		e.mustAdd(l, cs[i].rt())
	}
	if s := nat("-S"); strings.Count(s, "-N VX6-") != n {
		t.Fatalf("want %d masquerade chains:\n%s", n, s)
	}
	e.delParallel(l, cs)
	s := nat("-S")
	if strings.Contains(s, "VX6-") {
		t.Errorf("masquerade rules left after parallel DEL:\n%s", s)
	}
	if !strings.Contains(s, "foreign") {
		t.Errorf("a foreign POSTROUTING rule was deleted:\n%s", s)
	}
	e.assertClean(0)
}
