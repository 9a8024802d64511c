package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/overlay/lease"
)

func confdDir(t *testing.T) string {
	t.Helper()
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "conf.d")
}

// TestConfdFilesParse: every example in conf.d is valid for what reads it.
func TestConfdFilesParse(t *testing.T) {
	dir := confdDir(t)
	lists, _ := filepath.Glob(filepath.Join(dir, "*.conflist"))
	if len(lists) < 2 {
		t.Fatalf("want the IPv6-only and dual-stack conflists in %s, found %v", dir, lists)
	}
	for _, f := range lists {
		l, err := libcni.ConfListFromFile(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		// Podman 4.3 and nerdctl 1.7 refuse 1.1.0 results.
		if l.CNIVersion != "1.0.0" || l.Name != "vxlan6" || len(l.Plugins) == 0 || l.Plugins[0].Network.Type != "vxlan6" {
			t.Errorf("%s: want cniVersion 1.0.0, name vxlan6, vxlan6 first; got %s %s %d plugins", f, l.CNIVersion, l.Name, len(l.Plugins))
		}
	}
	nets, _ := filepath.Glob(filepath.Join(dir, "network*.json"))
	if len(nets) < 2 {
		t.Fatalf("want network.json and network-dualstack.json in %s, found %v", dir, nets)
	}
	for _, f := range nets {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lease.ParseConfig(b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}

	// Every variable in the env file (set or commented out) is a flag of
	// `vxlan6d run`.
	help, _ := exec.Command(testutil.Binary(t, "vxlan6d"), "run", "-h").CombinedOutput()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-[a-z], )?--([a-z0-9-]+)`).FindAllStringSubmatch(string(help), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 10 {
		t.Fatalf("could not read the flags of vxlan6d run -h:\n%s", help)
	}
	f, err := os.Open(filepath.Join(dir, "vxlan6d.env"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	re := regexp.MustCompile(`^#?(VXLAN6D_[A-Z0-9_]+)=`)
	n := 0
	for sc.Scan() {
		m := re.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		n++
		flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(m[1], "VXLAN6D_")), "_", "-")
		if !flags[flag] {
			t.Errorf("vxlan6d.env: %s is no flag of vxlan6d run (--%s)", m[1], flag)
		}
	}
	if n == 0 {
		t.Error("vxlan6d.env sets no VXLAN6D_ variable")
	}
}

// TestConfdConflistsWork: the example conflists, with only the host's paths
// filled in, attach containers through vxlan6 chained with the reference
// portmap plugin (a port mapping on ADD, gone on DEL), and the containers
// reach each other across hosts.
func TestConfdConflistsWork(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	portmap := refPlugin(t, "portmap")
	for _, tc := range []struct {
		file string
		dual bool
	}{{"10-vxlan6.conflist", false}, {"10-vxlan6-dualstack.conflist", true}} {
		t.Run(tc.file, func(t *testing.T) {
			b := newBed(t, 2, tc.dual)
			b.StartDaemons(readyTimeout, nil)
			binDir := shippedBinDir(t, portmap)
			var cs []*testbed.Container
			for _, h := range b.Hosts {
				c := shippedContainer(t, h, tc.file, binDir, map[string]any{
					"portMappings": []map[string]any{{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}},
				})
				if c.IPv6 == nil || tc.dual && c.IPv4 == nil {
					t.Fatalf("%s on %s: addresses %s %s, want IPv6 (dual: and IPv4)", c.Name, h.Name, c.IPv6, c.IPv4)
				}
				cs = append(cs, c)
				// portmap ran after vxlan6 with its prevResult: its DNAT
				// chain for the mapping exists in the host's ip6tables.
				out, err := h.Exec("ip6tables-save", "-t", "nat")
				if err != nil || !strings.Contains(out, "18080") {
					t.Errorf("%s: no ip6tables port mapping for 18080 after ADD (%v):\n%s", h.Name, err, out)
				}
			}
			meshPing(t, targets(cs, false))
			if tc.dual {
				meshPing(t, targets(cs, true))
			}
		})
	}
}

// shippedBinDir is a CNI bin dir holding vxlan6 and the reference portmap
// plugin at path portmap, what the shipped conflists chain.
func shippedBinDir(t *testing.T, portmap string) string {
	t.Helper()
	binDir := t.TempDir()
	for src, name := range map[string]string{testutil.Binary(t, "vxlan6"): "vxlan6", portmap: "portmap"} {
		if err := os.Symlink(src, filepath.Join(binDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return binDir
}

// shippedContainer attaches a container on h through conflist file from
// conf.d with only the host's paths filled in (chained portmap included),
// plugins from binDir, run inside the host's netns (the node bridge, the
// host-side veths and portmap's rules live there), with capability args
// caps (may be nil). DEL runs in Cleanup.
func shippedContainer(t *testing.T, h *testbed.Host, file, binDir string, caps map[string]any) *testbed.Container {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(confdDir(t), file))
	if err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := json.Unmarshal(raw, &conf); err != nil {
		t.Fatal(err)
	}
	p := conf["plugins"].([]any)[0].(map[string]any)
	p["subnetFile"], p["dataDir"], p["bridge"] = h.SubnetFile, h.DataDir, h.Bridge
	list, _ := json.Marshal(conf)
	cl, err := libcni.ConfListFromBytes(list)
	if err != nil {
		t.Fatal(err)
	}
	c := &testbed.Container{Host: h, Name: testutil.UniqueName(h.Name[:4] + "sc")}
	h.Bed.AddNetns(c.Name)
	rc := &libcni.RuntimeConf{ContainerID: c.Name, NetNS: testbed.NetnsPath(c.Name), IfName: "eth0", CapabilityArgs: caps}
	cn := libcni.NewCNIConfigWithCacheDir([]string{binDir}, filepath.Join(h.Dir, "shipped-cache"), h.PluginExec())
	res, err := cn.AddNetworkList(testutil.Context(t, time.Minute), cl, rc)
	t.Cleanup(func() {
		if err := cn.DelNetworkList(testutil.Context(t, time.Minute), cl, rc); err != nil {
			t.Errorf("DEL %s: %v", c.Name, err)
		}
	})
	if err != nil {
		t.Fatalf("ADD through %s on %s: %v", file, h.Name, err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range r.IPs {
		if ip.Address.IP.To4() != nil {
			c.IPv4 = ip.Address.IP
		} else {
			c.IPv6 = ip.Address.IP
		}
	}
	return c
}

// refPlugin finds a reference CNI plugin (portmap...): testutil.RefPlugin.
func refPlugin(t *testing.T, name string) string {
	t.Helper()
	return testutil.RefPlugin(t, name)
}
