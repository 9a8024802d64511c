package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/ipam"
	"github.com/vxlan6/vxlan6/subnetfile"
)

var allVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// env is one test's "node": a host netns holding the bridge, a subnet file,
// an IPAM data dir and a libcni with its own cache dir.
type env struct {
	t          *testing.T
	host       ns.NetNS
	dir        string
	subnetFile string
	dataDir    string
	bridge     string
	netName    string
	pluginDir  string
	cni        *libcni.CNIConfig
	sf         *subnetfile.Config
}

func v6Subnet() *subnetfile.Config {
	return &subnetfile.Config{
		Networks: ipnet.Subnets{V6: testutil.MustCIDR("fd10:244::/48")},
		Subnets:  ipnet.Subnets{V6: testutil.MustCIDR("fd10:244:0:1::/64")},
		MTU:      1430,
	}
}

func dualSubnet() *subnetfile.Config {
	c := v6Subnet()
	c.Networks.V4 = testutil.MustCIDR("10.244.0.0/16")
	c.Subnets.V4 = testutil.MustCIDR("10.244.1.0/24")
	return c
}

func newEnv(t *testing.T, sf *subnetfile.Config) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("kernel test: skipped in -short mode")
	}
	testutil.RequireRoot(t)
	bin := testutil.Binary(t, "vxlan6")
	host := testutil.NewNS(t)
	dir := t.TempDir()
	e := &env{
		t:          t,
		host:       host,
		dir:        dir,
		subnetFile: filepath.Join(dir, "subnet.env"),
		dataDir:    filepath.Join(dir, "ipam"),
		bridge:     testutil.UniqueName("vx6t"),
		netName:    testutil.UniqueName("vx6net"),
		pluginDir:  filepath.Dir(bin),
		sf:         sf,
	}
	e.cni = libcni.NewCNIConfigWithCacheDir(append([]string{e.pluginDir}, testutil.RefPluginDirs...), filepath.Join(dir, "cache"), nil)
	if sf != nil {
		e.writeSubnet(sf)
	}
	return e
}

func (e *env) writeSubnet(sf *subnetfile.Config) {
	e.t.Helper()
	if err := subnetfile.Write(e.subnetFile, sf); err != nil {
		e.t.Fatal(err)
	}
	e.sf = sf
}

// pluginConf is the vxlan6 entry of a conflist; extra keys override.
func (e *env) pluginConf(extra map[string]any) map[string]any {
	m := map[string]any{
		"type":         "vxlan6",
		"subnetFile":   e.subnetFile,
		"dataDir":      e.dataDir,
		"bridge":       e.bridge,
		"capabilities": map[string]bool{"ips": true, "mac": true},
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func (e *env) list(version string, plugins ...map[string]any) *libcni.NetworkConfigList {
	e.t.Helper()
	if len(plugins) == 0 {
		plugins = []map[string]any{e.pluginConf(nil)}
	}
	b, err := json.Marshal(map[string]any{"cniVersion": version, "name": e.netName, "plugins": plugins})
	if err != nil {
		e.t.Fatal(err)
	}
	l, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		e.t.Fatalf("parse conflist %s: %v", b, err)
	}
	return l
}

// container is a container netns.
type container struct {
	id string
	ns ns.NetNS
}

func (e *env) newContainer() *container {
	e.t.Helper()
	return &container{id: testutil.UniqueName("ctr-"), ns: testutil.NewNS(e.t)}
}

func (c *container) rt() *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: c.id, NetNS: c.ns.Path(), IfName: "eth0"}
}

func ctx(t *testing.T) context.Context { return testutil.Context(t, 2*time.Minute) }

// inHost runs f with the calling thread in the host netns, so plugins exec'd
// by libcni start there.
func (e *env) inHost(f func() error) error {
	return e.host.Do(func(ns.NetNS) error { return f() })
}

func (e *env) add(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (*current.Result, error) {
	var res types.Result
	err := e.inHost(func() error {
		var err error
		res, err = e.cni.AddNetworkList(ctx(e.t), l, rt)
		return err
	})
	if err != nil {
		return nil, err
	}
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("convert result %v: %w", res, err)
	}
	return cur, nil
}

func (e *env) mustAdd(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) *current.Result {
	e.t.Helper()
	r, err := e.add(l, rt)
	if err != nil {
		e.t.Fatalf("ADD %s: %v", rt.ContainerID, err)
	}
	return r
}

func (e *env) del(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return e.inHost(func() error { return e.cni.DelNetworkList(ctx(e.t), l, rt) })
}

func (e *env) mustDel(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) {
	e.t.Helper()
	if err := e.del(l, rt); err != nil {
		e.t.Fatalf("DEL %s: %v", rt.ContainerID, err)
	}
}

// delParallel DELs every container at once and reports each failed DEL.
func (e *env) delParallel(l *libcni.NetworkConfigList, cs []*container) {
	e.t.Helper()
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.del(l, cs[i].rt())
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			e.t.Errorf("DEL %d: %v", i, err)
		}
	}
}

func (e *env) check(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return e.inHost(func() error { return e.cni.CheckNetworkList(ctx(e.t), l, rt) })
}

// exec runs the plugin binary directly in the host netns: the way to send
// input libcni would refuse to build (malformed JSON, odd env).
func (e *env) exec(envs map[string]string, stdin []byte) (*types.Error, []byte) {
	e.t.Helper()
	var out bytes.Buffer
	var runErr error
	err := e.inHost(func() error {
		cmd := exec.Command(filepath.Join(e.pluginDir, "vxlan6"))
		cmd.Env = []string{"CNI_PATH=" + e.pluginDir}
		for k, v := range envs {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Stdin = bytes.NewReader(stdin)
		cmd.Stdout = &out
		cmd.Stderr = os.Stderr
		runErr = cmd.Run()
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if runErr == nil {
		return nil, out.Bytes()
	}
	var ee *exec.ExitError
	if !errors.As(runErr, &ee) {
		e.t.Fatalf("run plugin: %v", runErr)
	}
	te := &types.Error{}
	if err := json.Unmarshal(out.Bytes(), te); err != nil {
		e.t.Fatalf("plugin failed (%v) without an error JSON: %q", runErr, out.String())
	}
	return te, out.Bytes()
}

// confBytes is a single plugin config as the plugin sees it on stdin.
func (e *env) confBytes(version string, extra map[string]any) []byte {
	m := e.pluginConf(extra)
	m["cniVersion"] = version
	m["name"] = e.netName
	b, _ := json.Marshal(m)
	return b
}

func wantCode(t *testing.T, err error, code uint) {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("want CNI error code %d, got %v", code, err)
	}
	if te.Code != code {
		t.Fatalf("want CNI error code %d, got %d: %s", code, te.Code, te.Msg)
	}
	if strings.TrimSpace(te.Msg) == "" {
		t.Fatalf("CNI error %d has an empty message", code)
	}
}

// linkNames lists the links in netns n (only veths if vethsOnly).
func linkNames(t *testing.T, n ns.NetNS, vethsOnly bool) []string {
	t.Helper()
	var names []string
	err := n.Do(func(ns.NetNS) error {
		links, err := netlinksafe.LinkList()
		for _, l := range links {
			if !vethsOnly || l.Type() == "veth" {
				names = append(names, l.Attrs().Name)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// hostVeths lists veth links in the host netns.
func (e *env) hostVeths() []string {
	e.t.Helper()
	return linkNames(e.t, e.host, true)
}

// hostLinks lists every link in the host netns.
func (e *env) hostLinks() []string {
	e.t.Helper()
	return linkNames(e.t, e.host, false)
}

// bridgePorts counts the ports of the node bridge.
func (e *env) bridgePorts() int {
	e.t.Helper()
	n := 0
	_ = e.inHost(func() error {
		br, err := netlinksafe.LinkByName(e.bridge)
		if err != nil {
			return nil
		}
		links, _ := netlinksafe.LinkList()
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				n++
			}
		}
		return nil
	})
	return n
}

func (e *env) allocations() []ipam.Allocation {
	e.t.Helper()
	if _, err := os.Stat(e.dataDir); os.IsNotExist(err) {
		return nil
	}
	s, err := ipam.Open(e.dataDir)
	if err != nil {
		e.t.Fatal(err)
	}
	defer s.Close()
	a, err := s.List()
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// assertClean fails unless the node holds exactly want attachments: veths,
// bridge ports and IPAM allocations.
func (e *env) assertClean(want int) {
	e.t.Helper()
	if v := e.hostVeths(); len(v) != want {
		e.t.Errorf("host veths: want %d, got %v", want, v)
	}
	if p := e.bridgePorts(); p != want {
		e.t.Errorf("bridge ports: want %d, got %d", want, p)
	}
	if a := e.allocations(); len(a) != want {
		e.t.Errorf("IPAM allocations: want %d, got %+v", want, a)
	}
}

// links returns the link names inside a container netns.
func (c *container) links(t *testing.T) []string {
	t.Helper()
	return linkNames(t, c.ns, false)
}

// onEth0 runs f on eth0 inside c: how tests damage an attachment.
func (c *container) onEth0(t *testing.T, f func(l netlink.Link) error) {
	t.Helper()
	err := c.ns.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName("eth0")
		if err != nil {
			return err
		}
		return f(l)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// addVeth puts a veth pair (name and a peer) into c, occupying name.
func (c *container) addVeth(t *testing.T, name string) {
	t.Helper()
	err := c.ns.Do(func(ns.NetNS) error {
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ping sends one bounded ping from inside c.
func (c *container) ping(t *testing.T, dst net.IP) {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+c.ns.Path(), "ping", "-c1", "-W1", dst.String()).CombinedOutput()
	if err != nil {
		t.Errorf("ping %s from %s: %v\n%s", dst, c.id, err, out)
	}
}

func resultIPs(r *current.Result) []net.IP {
	var out []net.IP
	for _, ipc := range r.IPs {
		out = append(out, ipc.Address.IP)
	}
	return out
}

// bridgeLinkLocalUsable says why the bridge's link-local address cannot
// yet source neighbour solicitations (missing or tentative), or nil.
func bridgeLinkLocalUsable(name string) error {
	br, err := netlinksafe.LinkByName(name)
	if err != nil {
		return err
	}
	addrs, err := netlinksafe.AddrList(br, netlink.FAMILY_V6)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", name, err)
	}
	for _, a := range addrs {
		if !a.IP.IsLinkLocalUnicast() {
			continue
		}
		if a.Flags&unix.IFA_F_TENTATIVE != 0 {
			return fmt.Errorf("bridge %s: link-local %s still tentative right after ADD", name, a.IP)
		}
		return nil
	}
	return fmt.Errorf("bridge %s has no link-local address after ADD: %v", name, addrs)
}
