package e2e

// Real container runtimes on testbed hosts: Podman 4.3 (CNI backend), containerd
// 1.6 + nerdctl v1.7.7, and cnitool, each driving the vxlan6 plugin inside
// one host's network namespace (nsenter --net, never `ip netns exec`, which
// remounts /sys and hides the cgroup mounts runc needs). Their images and
// configs come from scripts/runtimes-setup.sh, which the tests run themselves
// (idempotent, seconds once done) when its output is missing. A runtime whose
// binaries are not installed is skipped with the command that installs it.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/ipam"
)

const runtimeTimeout = 2 * time.Minute

var (
	setupMu   sync.Mutex
	setupDone = map[string]error{}
)

// runtimeSetup runs `scripts/runtimes-setup.sh <component>` once per test
// process and returns the env file it writes (paths of the image, configs,
// nerdctl).
func runtimeSetup(t *testing.T, component string) map[string]string {
	t.Helper()
	setupMu.Lock()
	defer setupMu.Unlock()
	err, done := setupDone[component]
	if !done {
		root, rerr := testutil.ModuleRoot()
		if rerr != nil {
			t.Fatal(rerr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "runtimes-setup.sh"), component)
		out, cerr := cmd.CombinedOutput()
		if cerr != nil {
			err = fmt.Errorf("scripts/runtimes-setup.sh %s: %w\n%s", component, cerr, out)
		} else if d := time.Since(start); d > 5*time.Second {
			t.Logf("runtimes-setup.sh %s took %.1fs:\n%s", component, d.Seconds(), out)
		}
		setupDone[component] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	envPath := filepath.Join(envOr("VXLAN6_RT_DIR", "/var/lib/vxlan6-rt"), "env")
	f, ferr := os.Open(envPath)
	if ferr != nil {
		t.Fatalf("runtime env: %v", ferr)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env
}

func requireBinaries(t *testing.T, install string, bins ...string) {
	t.Helper()
	for _, b := range bins {
		testutil.RequireTool(t, b, install)
	}
}

// peer is one container started by a real runtime.
type peer struct {
	runtime string
	host    *testbed.Host
	ip      net.IP
	// exec runs a command inside the container.
	exec func(args ...string) (string, error)
	// remove deletes the container through its runtime.
	remove func() error
}

// hostCmd runs a program inside a testbed host's netns with extra env,
// bounded; output is stdout+stderr.
func hostCmd(h *testbed.Host, env []string, name string, args ...string) (string, error) {
	return testbed.ExecEnv(runtimeTimeout, env, h.Name, append([]string{name}, args...)...)
}

// conflist writes h's vxlan6 conflist at cniVersion into dir.
func conflist(t *testing.T, h *testbed.Host, dir, cniVersion string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "10-vxlan6.conflist"), h.ConfListVersion(cniVersion), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pluginDir is a CNI_PATH holding the vxlan6 plugin built for this test run.
func pluginDir(t *testing.T) string {
	return filepath.Dir(testutil.Binary(t, "vxlan6"))
}

// assertNothingLeft: no veth on the host's node bridge and no address held
// in the plugin's IPAM store.
func assertNothingLeft(t *testing.T, h *testbed.Host, who string) {
	t.Helper()
	out, err := h.Exec("ip", "-o", "link", "show", "master", h.Bridge)
	if err == nil && strings.TrimSpace(out) != "" {
		t.Errorf("%s: veths still on bridge %s of %s after the containers were removed:\n%s", who, h.Bridge, h.Name, out)
	}
	st, err := ipam.Open(h.DataDir)
	if err != nil {
		t.Fatalf("open IPAM store %s: %v", h.DataDir, err)
	}
	defer st.Close()
	as, err := st.List()
	if err != nil {
		t.Fatalf("list IPAM store %s: %v", h.DataDir, err)
	}
	for _, a := range as {
		t.Errorf("%s: address still reserved on %s after removal: %s/%s %v", who, h.Name, a.ContainerID, a.IfName, a.IPs)
	}
}

// TestRuntimes: one testbed, three hosts, one runtime each (Podman on h1,
// containerd+nerdctl on h2, cnitool on h3). Each runtime's container pings
// the others across hosts from inside, and removing the containers leaves
// no veth and no reserved address.
func TestRuntimes(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	b := newBed(t, 3, false)
	b.StartDaemons(readyTimeout, nil)
	// Containers outlive the subtest that starts them: their cleanups hang
	// off the parent.
	parent := t
	var peers []*peer
	t.Run("cnitool", func(t *testing.T) {
		if p := runCnitool(t, parent, b.Hosts[2]); p != nil {
			peers = append(peers, p)
		}
	})
	t.Run("podman", func(t *testing.T) {
		if p := runPodman(t, parent, b.Hosts[0]); p != nil {
			peers = append(peers, p)
		}
	})
	t.Run("nerdctl", func(t *testing.T) {
		if p := runNerdctl(t, parent, b.Hosts[1]); p != nil {
			peers = append(peers, p)
		}
	})
	t.Run("cross-host", func(t *testing.T) {
		if len(peers) < 2 {
			t.Skipf("only %d runtime container(s) running; need two on different hosts", len(peers))
		}
		for _, src := range peers {
			for _, dst := range peers {
				if src == dst {
					continue
				}
				err := testbed.Eventually(meshTimeout, 200*time.Millisecond, func() error {
					_, err := src.exec("ping", "-6", "-c", "1", "-W", "1", dst.ip.String())
					return err
				})
				if err != nil {
					t.Errorf("%s container on %s cannot ping %s container %s on %s: %v", src.runtime, src.host.Name, dst.runtime, dst.ip, dst.host.Name, err)
				} else {
					t.Logf("%s on %s -> %s on %s (%s): ok", src.runtime, src.host.Name, dst.runtime, dst.host.Name, dst.ip)
				}
			}
		}
	})
	t.Run("remove", func(t *testing.T) {
		for _, p := range peers {
			if err := p.remove(); err != nil {
				t.Errorf("remove %s container: %v", p.runtime, err)
				continue
			}
			assertNothingLeft(t, p.host, p.runtime)
		}
	})
}

// --- cnitool ---------------------------------------------------------------------

func cnitoolPath(t *testing.T) string {
	t.Helper()
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	return testutil.RequireTool(t, "cnitool", "go install github.com/containernetworking/cni/cnitool@v1.3.0",
		filepath.Join(strings.TrimSpace(string(gopath)), "bin"))
}

// The run* functions start one runtime's container on h; t is the subtest
// (assertions), owner the parent test (cleanups: the container must live on
// for the cross-host pings).

// runCnitool: add, check, status, del (nothing left), add + gc (gc DELs every
// cached attachment first: nothing left), then add once more and leave that
// container up for the cross-host pings.
func runCnitool(t, owner *testing.T, h *testbed.Host) *peer {
	tool := cnitoolPath(t)
	confDir := filepath.Join(h.Dir, "cnitool-net.d")
	// 1.1.0: cnitool sends STATUS and GC only at >= 1.1.0.
	conflist(t, h, confDir, "1.1.0")
	cns := testutil.UniqueName(h.Name[:4] + "ct")
	h.Bed.AddNetns(cns)
	env := []string{"CNI_PATH=" + pluginDir(t), "NETCONFPATH=" + confDir}
	nsPath := testbed.NetnsPath(cns)
	run := func(verb string) (string, error) {
		return hostCmd(h, env, tool, verb, testbed.NetworkName, nsPath)
	}
	added := false
	owner.Cleanup(func() {
		if added {
			if _, err := run("del"); err != nil {
				owner.Logf("cnitool del in cleanup: %v", err)
			}
		}
	})
	add := func() net.IP {
		t.Helper()
		out, err := run("add")
		if err != nil {
			t.Fatalf("cnitool add: %v", err)
		}
		added = true
		var res types100.Result
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("cnitool add result %q: %v", out, err)
		}
		for _, ip := range res.IPs {
			if ip.Address.IP.To4() == nil {
				return ip.Address.IP
			}
		}
		t.Fatalf("cnitool add gave no IPv6 address: %s", out)
		return nil
	}
	ip := add()
	t.Logf("cnitool add: %s", ip)
	for _, verb := range []string{"check", "status"} {
		if out, err := run(verb); err != nil {
			t.Errorf("cnitool %s: %v\n%s", verb, err, out)
		}
	}
	if _, err := run("del"); err != nil {
		t.Fatalf("cnitool del: %v", err)
	}
	added = false
	assertNothingLeft(t, h, "cnitool del")
	// del twice is fine (CNI: DEL is idempotent).
	if _, err := run("del"); err != nil {
		t.Errorf("second cnitool del: %v", err)
	}

	add()
	if out, err := run("gc"); err != nil {
		t.Fatalf("cnitool gc: %v\n%s", err, out)
	}
	added = false
	assertNothingLeft(t, h, "cnitool gc")

	ip = add()
	return &peer{
		runtime: "cnitool", host: h, ip: ip,
		exec: func(args ...string) (string, error) {
			return testbed.ExecTimeout(30*time.Second, cns, args...)
		},
		remove: func() error {
			_, err := run("del")
			if err == nil {
				added = false
			}
			return err
		},
	}
}

// --- Podman ----------------------------------------------------------------------

// runPodman starts a container on h with a static IPv6 address (Podman sends
// it as CNI_ARGS IP=), checks it got exactly that address, and stops and
// starts it once (DEL on stop, ADD on start).
func runPodman(t, owner *testing.T, h *testbed.Host) *peer {
	requireBinaries(t, "apt-get install -y podman runc", "podman", "runc", "conmon")
	rt := runtimeSetup(t, "podman")
	image := rt["VXLAN6_IMAGE"]
	confDir := filepath.Join(h.Dir, "podman-net.d")
	// Podman 4.3 rejects a 1.1.0 result ("unsupported CNI result version").
	conflist(t, h, confDir, "1.0.0")
	base, err := os.ReadFile(rt["VXLAN6_PODMAN_CONTAINERS_CONF"])
	if err != nil {
		t.Fatalf("read Podman config from runtimes-setup.sh: %v", err)
	}
	// Keep its [containers]/[engine] (ulimits, runc, cgroupfs, tmp_dir: the
	// libpod DB insists on the same paths), replace its [network].
	engine, _, _ := strings.Cut(string(base), "[network]")
	conf := filepath.Join(h.Dir, "containers.conf")
	netSection := fmt.Sprintf("[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [%q]\nnetwork_config_dir = %q\n", pluginDir(t), confDir)
	if err := os.WriteFile(conf, []byte(engine+netSection), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"CONTAINERS_CONF=" + conf, "CONTAINERS_STORAGE_CONF=" + rt["VXLAN6_PODMAN_STORAGE_CONF"]}
	podman := func(args ...string) (string, error) { return hostCmd(h, env, "podman", args...) }

	sub := h.WaitSubnetFile(readyTimeout).Subnets.V6
	static := make(net.IP, len(sub.IP))
	copy(static, sub.IP)
	static[15] = 0x99
	name := testutil.UniqueName("vx6pod")
	owner.Cleanup(func() { podman("rm", "-f", "-t", "0", name) })
	start := time.Now()
	if out, err := podman("run", "-d", "--name", name, "--network", testbed.NetworkName, "--ip6", static.String(), image, "sleep", "600"); err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	t.Logf("figure: podman run with vxlan6 took %.2fs", time.Since(start).Seconds())
	inspect := func() net.IP {
		out, err := podman("inspect", name, "--format", "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}")
		if err != nil {
			t.Fatalf("podman inspect: %v", err)
		}
		return net.ParseIP(strings.TrimSpace(out))
	}
	if got := inspect(); !got.Equal(static) {
		t.Fatalf("podman container %s has %v, asked for --ip6 %s", name, got, static)
	}
	// stop sends DEL: the address is free again; start ADDs it back.
	if out, err := podman("stop", "-t", "0", name); err != nil {
		t.Fatalf("podman stop: %v\n%s", err, out)
	}
	assertNothingLeft(t, h, "podman stop")
	if out, err := podman("start", name); err != nil {
		t.Fatalf("podman start: %v\n%s", err, out)
	}
	if got := inspect(); !got.Equal(static) {
		t.Errorf("after stop/start podman container %s has %v, want %s", name, got, static)
	}
	t.Logf("podman: %s on %s has the requested %s", name, h.Name, static)
	return &peer{
		runtime: "podman", host: h, ip: static,
		exec: func(args ...string) (string, error) {
			return podman(append([]string{"exec", name}, args...)...)
		},
		remove: func() error {
			_, err := podman("rm", "-f", "-t", "0", name)
			return err
		},
	}
}

// --- containerd + nerdctl ------------------------------------------------------------

// runNerdctl starts containerd inside h's netns (nerdctl's CNI calls run from
// its OCI hook, i.e. in containerd's namespace), then a container with
// nerdctl. nerdctl v1.7.7 DELs with an empty CNI_NETNS on rm.
func runNerdctl(t, owner *testing.T, h *testbed.Host) *peer {
	requireBinaries(t, "apt-get install -y containerd runc", "containerd", "ctr", "containerd-shim-runc-v2", "runc")
	runtimeSetup(t, "containerd")
	rt := runtimeSetup(t, "nerdctl")
	nerdctlBin := rt["VXLAN6_NERDCTL"]
	if nerdctlBin == "" {
		t.Fatal("runtimes-setup.sh wrote no VXLAN6_NERDCTL")
	}
	// containerd's state (sockets) must be short: unix socket paths are
	// limited to 108 bytes.
	state := filepath.Join("/run", testutil.UniqueName("vx6ctrd"))
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	owner.Cleanup(func() { os.RemoveAll(state) })
	sock := filepath.Join(state, "c.sock")
	cfg := filepath.Join(h.Dir, "containerd.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, rt["VXLAN6_CONTAINERD_ROOT"], state, sock, sock+".ttrpc")), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(h.Dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	ctrd := exec.Command("nsenter", "--net="+h.NetnsPath(), "--", "containerd", "--config", cfg)
	ctrd.Stdout, ctrd.Stderr = logf, logf
	ctrd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := ctrd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	exited := make(chan struct{})
	go func() { ctrd.Wait(); logf.Close(); close(exited) }()
	stopCtrd := func() {
		_ = ctrd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = ctrd.Process.Kill()
			<-exited
		}
	}
	owner.Cleanup(func() {
		stopCtrd()
		if owner.Failed() {
			b, _ := os.ReadFile(logf.Name())
			owner.Logf("containerd log:\n%s", testbed.Tail(string(b), 8<<10))
		}
	})
	if err := testbed.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		_, err := exec.Command("ctr", "-a", sock, "version").CombinedOutput()
		return err
	}); err != nil {
		t.Fatalf("containerd in %s did not answer on %s: %v", h.Name, sock, err)
	}

	// nerdctl insists on bridge/portmap/firewall/tuning for its own default
	// network, even when a container uses ours: they sit next to vxlan6.
	cniDir := filepath.Join(h.Dir, "nerdctl-cni-bin")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(testutil.Binary(t, "vxlan6"), filepath.Join(cniDir, "vxlan6")); err != nil {
		t.Fatal(err)
	}
	extras, _ := filepath.Glob(filepath.Join(rt["VXLAN6_CNI_EXTRA"], "*"))
	for _, e := range extras {
		if err := os.Symlink(e, filepath.Join(cniDir, filepath.Base(e))); err != nil {
			t.Fatal(err)
		}
	}
	confDir := filepath.Join(h.Dir, "nerdctl-net.d")
	// nerdctl v1.7.7 accepts at most 1.0.0.
	conflist(t, h, confDir, "1.0.0")
	toml := filepath.Join(h.Dir, "nerdctl.toml")
	if err := os.WriteFile(toml, []byte(fmt.Sprintf(`address = %q
namespace = %q
data_root = %q
cni_path = %q
cni_netconfpath = %q
cgroup_manager = "cgroupfs"
snapshotter = %q
`, sock, rt["VXLAN6_CONTAINERD_NAMESPACE"], filepath.Join(h.Dir, "nerdctl"), cniDir, confDir, envOrDefault(rt, "VXLAN6_SNAPSHOTTER", "overlayfs"))), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"NERDCTL_TOML=" + toml}
	nerdctl := func(args ...string) (string, error) { return hostCmd(h, env, nerdctlBin, args...) }

	name := testutil.UniqueName("vx6nerd")
	removed := false
	owner.Cleanup(func() {
		if !removed {
			nerdctl("rm", "-f", name)
		}
	})
	start := time.Now()
	if out, err := nerdctl("run", "-d", "--name", name, "--net", testbed.NetworkName, rt["VXLAN6_IMAGE"], "sleep", "600"); err != nil {
		t.Fatalf("nerdctl run: %v\n%s", err, out)
	}
	t.Logf("figure: nerdctl run with vxlan6 took %.2fs", time.Since(start).Seconds())
	out, err := nerdctl("exec", name, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
	if err != nil {
		t.Fatalf("nerdctl exec ip addr: %v", err)
	}
	var ip net.IP
	if f := strings.Fields(out); len(f) >= 4 {
		ip, _, _ = net.ParseCIDR(f[3])
	}
	sub := h.WaitSubnetFile(readyTimeout).Subnets.V6
	if ip == nil || !sub.Contains(ip) {
		t.Fatalf("nerdctl container %s: IPv6 %v not in %s's subnet %s (%q)", name, ip, h.Name, sub, out)
	}
	t.Logf("nerdctl: %s on %s has %s", name, h.Name, ip)
	return &peer{
		runtime: "nerdctl", host: h, ip: ip,
		exec: func(args ...string) (string, error) {
			return nerdctl(append([]string{"exec", name}, args...)...)
		},
		remove: func() error {
			_, err := nerdctl("rm", "-f", name)
			if err == nil {
				removed = true
			}
			return err
		},
	}
}

func envOrDefault(env map[string]string, k, def string) string {
	if v := env[k]; v != "" {
		return v
	}
	return def
}
