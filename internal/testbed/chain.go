package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// Chain is a conflist of the host's vxlan6 plugin followed by reference
// plugins (portmap, bandwidth, ...), run through libcni inside the host's
// netns, for tests of what chained plugins do to an attachment.
type Chain struct {
	Host *Host
	List *libcni.NetworkConfigList
	CNI  *libcni.CNIConfig
	n    int
}

// Chain builds the host's vxlan6 conflist with more plugins after vxlan6
// (each a plugin config with at least "type").
func (h *Host) Chain(more ...map[string]any) *Chain {
	t := h.Bed.T
	t.Helper()
	var conf map[string]any
	_ = json.Unmarshal(h.ConfList(), &conf)
	plugins := conf["plugins"].([]any)
	bin := filepath.Join(h.Dir, fmt.Sprintf("chainbin%d", len(plugins)+len(more)))
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	link := func(src, name string) {
		if err := os.Symlink(src, filepath.Join(bin, name)); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	link(testutil.Binary(t, "vxlan6"), "vxlan6")
	for _, p := range more {
		name := p["type"].(string)
		link(testutil.RefPlugin(t, name), name)
		plugins = append(plugins, p)
	}
	conf["plugins"] = plugins
	raw, _ := json.Marshal(conf)
	list, err := libcni.ConfListFromBytes(raw)
	if err != nil {
		t.Fatalf("chained conflist: %v: %s", err, raw)
	}
	return &Chain{Host: h, List: list,
		CNI: libcni.NewCNIConfigWithCacheDir([]string{bin}, filepath.Join(h.Dir, "chaincache"), h.PluginExec())}
}

// RuntimeConf is the runtime config of container c through this chain.
func (ch *Chain) RuntimeConf(c *Container, capArgs map[string]any) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: c.Name, NetNS: NetnsPath(c.Name), IfName: "eth0", CapabilityArgs: capArgs}
}

func ctx1m() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Minute)
}

// Add creates a netns and attaches it through the chain with capArgs
// (portMappings, bandwidth, ...); the chain's DEL runs in Cleanup.
func (ch *Chain) Add(capArgs map[string]any) *Container {
	h := ch.Host
	t := h.Bed.T
	t.Helper()
	ch.n++
	c := &Container{Host: h, Name: fmt.Sprintf("%sk%d", h.Name, ch.n)}
	h.Bed.AddNetns(c.Name)
	rc := ch.RuntimeConf(c, capArgs)
	ctx, cancel := ctx1m()
	defer cancel()
	res, err := ch.CNI.AddNetworkList(ctx, ch.List, rc)
	t.Cleanup(func() {
		ctx, cancel := ctx1m()
		defer cancel()
		if err := ch.CNI.DelNetworkList(ctx, ch.List, rc); err != nil {
			t.Logf("chain DEL of %s: %v", c.Name, err)
		}
	})
	if err != nil {
		t.Fatalf("chain ADD of %s on %s: %v", c.Name, h.Name, err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		t.Fatalf("CNI result of %s: %v", c.Name, err)
	}
	for _, ip := range r.IPs {
		if ip.Address.IP.To4() == nil {
			c.IPv6 = ip.Address.IP
		} else {
			c.IPv4 = ip.Address.IP
		}
	}
	t.Logf("%s: chained container %s has %s", h.Name, c.Name, c.IPv6)
	return c
}

// Check runs CNI CHECK for c through the chain.
func (ch *Chain) Check(c *Container, capArgs map[string]any) error {
	ctx, cancel := ctx1m()
	defer cancel()
	return ch.CNI.CheckNetworkList(ctx, ch.List, ch.RuntimeConf(c, capArgs))
}

// GC runs CNI GC through the chain with only keep as valid attachments.
func (ch *Chain) GC(keep ...*Container) error {
	var valid []types.GCAttachment
	for _, c := range keep {
		valid = append(valid, types.GCAttachment{ContainerID: c.Name, IfName: "eth0"})
	}
	ctx, cancel := ctx1m()
	defer cancel()
	return ch.CNI.GCNetworkList(ctx, ch.List, &libcni.GCArgs{ValidAttachments: valid})
}

// Del runs CNI DEL for c through the chain with the given netns path (""
// for a runtime that no longer has one).
func (ch *Chain) Del(c *Container, netns string) error {
	rc := ch.RuntimeConf(c, nil)
	rc.NetNS = netns
	ctx, cancel := ctx1m()
	defer cancel()
	return ch.CNI.DelNetworkList(ctx, ch.List, rc)
}
