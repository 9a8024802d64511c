package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// NetworkName is the CNI network name of the conflists AddContainer uses.
const NetworkName = "vxlan6"

// Container is a network namespace attached through the vxlan6 plugin.
type Container struct {
	Host  *Host
	Name  string // its netns name, also the CNI container ID
	IPv6  net.IP
	IPv4  net.IP // dual-stack only
	added bool
}

// nsExec runs CNI plugins inside a host's netns, so the node bridge and the
// host ends of the veths land there and not in the test's namespace.
type nsExec struct {
	netns string
}

// PluginExec runs CNI plugins inside the host's netns, for a
// libcni.CNIConfig of the test's own (other conflists, other plugins).
func (h *Host) PluginExec() invoke.Exec { return &nsExec{netns: h.NetnsPath()} }

func (e *nsExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, "nsenter", "--net="+e.netns, "--", pluginPath)
	c.Env, c.Stdin, c.Stdout, c.Stderr = environ, bytes.NewReader(stdin), &stdout, &stderr
	if err := c.Run(); err != nil {
		// Like invoke.RawExec: the plugin's stdout holds the CNI error JSON.
		emsg := types.Error{}
		if stdout.Len() == 0 {
			emsg.Msg = fmt.Sprintf("plugin %s failed: %v: %s", filepath.Base(pluginPath), err, stderr.String())
		} else if perr := json.Unmarshal(stdout.Bytes(), &emsg); perr != nil {
			emsg.Msg = fmt.Sprintf("plugin %s failed, unparsable error %q: %v", filepath.Base(pluginPath), stdout.String(), perr)
		}
		return nil, &emsg
	}
	return stdout.Bytes(), nil
}

func (e *nsExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (e *nsExec) Decode(jsonBytes []byte) (version.PluginInfo, error) {
	var d version.PluginDecoder
	return d.Decode(jsonBytes)
}

// ConfList is the host's vxlan6 conflist: its subnet file, data dir and
// bridge, plus Options.PluginExtra, at Options.CNIVersion.
func (h *Host) ConfList() []byte { return h.ConfListVersion(h.Bed.opts.CNIVersion) }

// ConfListVersion is ConfList at another cniVersion, for runtimes that accept
// only some versions.
func (h *Host) ConfListVersion(cniVersion string) []byte {
	plugin := map[string]any{
		"type":       "vxlan6",
		"subnetFile": h.SubnetFile,
		"dataDir":    h.DataDir,
		"bridge":     h.Bridge,
	}
	for k, v := range h.Bed.opts.PluginExtra {
		plugin[k] = v
	}
	conf := map[string]any{
		"cniVersion": cniVersion,
		"name":       NetworkName,
		"plugins":    []map[string]any{plugin},
	}
	b, _ := json.Marshal(conf)
	return b
}

func (h *Host) cni() (*libcni.CNIConfig, *libcni.NetworkConfigList) {
	t := h.Bed.T
	t.Helper()
	if h.Bed.PluginBin == "" {
		h.Bed.PluginBin = testutil.Binary(t, "vxlan6")
	}
	list, err := libcni.ConfListFromBytes(h.ConfList())
	if err != nil {
		t.Fatalf("conflist of %s: %v", h.Name, err)
	}
	cn := libcni.NewCNIConfigWithCacheDir([]string{filepath.Dir(h.Bed.PluginBin)}, filepath.Join(h.Dir, "cnicache"), h.PluginExec())
	return cn, list
}

// AddContainer creates a netns and attaches it with the vxlan6 plugin (ADD
// through libcni, ifname eth0). The host's daemon must be ready (the subnet
// file must exist). DEL and netns removal happen in Cleanup.
func (h *Host) AddContainer() *Container {
	t := h.Bed.T
	t.Helper()
	c, err := h.TryAddContainer()
	if err != nil {
		t.Fatal(err)
	}
	if c.IPv6 == nil {
		t.Fatalf("CNI ADD of %s gave no IPv6 address", c.Name)
	}
	t.Logf("%s: container %s has %s %s", h.Name, c.Name, c.IPv6, ipOrEmpty(c.IPv4))
	return c
}

// TryAddContainer is AddContainer for tests of a refused ADD: it returns
// the ADD error (a *types.Error from the plugin) instead of failing the
// test. The netns goes in Cleanup either way, DEL after a successful ADD.
func (h *Host) TryAddContainer() (*Container, error) {
	t := h.Bed.T
	t.Helper()
	h.nContainers++
	c := &Container{Host: h, Name: fmt.Sprintf("%sc%d", h.Name, h.nContainers)}
	h.Bed.AddNetns(c.Name)
	t.Cleanup(func() {
		if err := c.Remove(); err != nil {
			t.Logf("remove container %s: %v", c.Name, err)
		}
	})
	cn, list := h.cni()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := cn.AddNetworkList(ctx, list, c.runtimeConf())
	if err != nil {
		return c, fmt.Errorf("CNI ADD of %s on %s: %w", c.Name, h.Name, err)
	}
	c.added = true
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return c, fmt.Errorf("CNI result of %s: %w", c.Name, err)
	}
	for _, ip := range r.IPs {
		if ip.Address.IP.To4() != nil {
			c.IPv4 = ip.Address.IP
		} else {
			c.IPv6 = ip.Address.IP
		}
	}
	return c, nil
}

func ipOrEmpty(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}

func (c *Container) runtimeConf() *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: c.Name, NetNS: NetnsPath(c.Name), IfName: "eth0"}
}

// Remove sends CNI DEL (once); the netns itself goes in Cleanup.
func (c *Container) Remove() error {
	if !c.added {
		return nil
	}
	cn, list := c.Host.cni()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cn.DelNetworkList(ctx, list, c.runtimeConf()); err != nil {
		return fmt.Errorf("CNI DEL of %s on %s: %w", c.Name, c.Host.Name, err)
	}
	c.added = false
	return nil
}

// Exec runs a command in the container's netns.
func (c *Container) Exec(args ...string) (string, error) { return c.Host.Bed.Exec(c.Name, args...) }

// Ping pings dst count times from the container (bounded).
func (c *Container) Ping(dst net.IP, count int) (string, error) {
	return c.Host.Bed.Ping(c.Name, dst, count)
}

// Traffic is a ping running in the background for the length of a
// disruption (a daemon restart, an etcd outage).
type Traffic struct {
	done chan struct{}
	out  string
	err  error
}

// StartPing starts Ping(dst, count) in the background: count echoes 0.2 s
// apart, so it covers count/5 seconds.
func (c *Container) StartPing(dst net.IP, count int) *Traffic {
	tr := &Traffic{done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		tr.out, tr.err = c.Ping(dst, count)
	}()
	return tr
}

// Wait returns ping's output and error (an error when any echo was lost).
func (tr *Traffic) Wait() (string, error) {
	<-tr.done
	return tr.out, tr.err
}
