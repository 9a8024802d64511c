package main

import (
	"encoding/json"
	"net"
	"reflect"
	"testing"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/vxlan6/vxlan6/subnetfile"
)

// rawAdd runs ADD through invoke (no libcni cache in between) and returns
// the result as the plugin printed it, in the conf's cniVersion.
func (e *env) rawAdd(c *container, id string, conf []byte) (types.Result, error) {
	var res types.Result
	err := e.inHost(func() error {
		var err error
		res, err = invoke.ExecPluginWithResult(ctx(e.t), e.pluginDir+"/vxlan6", conf, &invoke.Args{
			Command:     "ADD",
			ContainerID: id,
			NetNS:       c.ns.Path(),
			IfName:      "eth0",
			Path:        e.pluginDir,
		}, nil)
		return err
	})
	return res, err
}

func resultJSON(t *testing.T, r types.Result) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A repeated ADD of the same pair into the same netns (a runtime retrying
// after a timeout) returns the same attachment and changes nothing.
func TestRepeatedAddIdempotent(t *testing.T) {
	for name, sf := range map[string]*subnetfile.Config{"v6": v6Subnet(), "dual": dualSubnet()} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, sf)
			l := e.list("1.0.0")
			c := e.newContainer()
			r1 := e.mustAdd(l, c.rt())
			r2 := e.mustAdd(l, c.rt())
			if a, b := resultJSON(t, r1), resultJSON(t, r2); a != b {
				t.Errorf("repeated ADD through libcni:\nfirst  %s\nsecond %s", a, b)
			}
			for _, v := range allVersions {
				raw, err := e.rawAdd(c, c.id, e.confBytes(v, nil))
				if err != nil {
					t.Fatalf("raw ADD %s: %v", v, err)
				}
				if raw.Version() != v {
					t.Errorf("raw ADD in %s returned a %s result", v, raw.Version())
				}
				want, err := r1.GetAsVersion(v)
				if err != nil {
					t.Fatal(err)
				}
				if a, b := resultJSON(t, want), resultJSON(t, raw); a != b {
					t.Errorf("raw ADD %s:\nwant %s\ngot  %s", v, a, b)
				}
			}
			e.assertClean(1)
			if got := c.links(t); len(got) != 2 {
				t.Errorf("container has %v, want lo and eth0", got)
			}
			for _, ipc := range r1.IPs {
				c.ping(t, ipc.Gateway)
			}
			if err := e.check(l, c.rt()); err != nil {
				t.Errorf("CHECK after repeated ADD: %v", err)
			}
			e.mustDel(l, c.rt())
			e.assertClean(0)
		})
	}
}

// A route missing from an otherwise intact attachment is put back.
func TestRepeatedAddRestoresRoute(t *testing.T) {
	e := newEnv(t, v6Subnet())
	l := e.list("1.0.0")
	c := e.newContainer()
	r1 := e.mustAdd(l, c.rt())
	c.onEth0(t, func(l netlink.Link) error {
		_, def, _ := net.ParseCIDR("::/0")
		return netlink.RouteDel(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: def, Gw: r1.IPs[0].Gateway})
	})
	if err := e.check(l, c.rt()); err == nil {
		t.Fatal("CHECK passed without the default route")
	}
	r2 := e.mustAdd(l, c.rt())
	if a, b := resultJSON(t, r1), resultJSON(t, r2); a != b {
		t.Errorf("repeated ADD:\nfirst  %s\nsecond %s", a, b)
	}
	if err := e.check(l, c.rt()); err != nil {
		t.Errorf("CHECK after repeated ADD: %v", err)
	}
	e.assertClean(1)
}

// snapshot is what must not change when an ADD is refused: the host veths,
// the allocations and the container's interfaces with their addresses.
func (e *env) snapshot(c *container) string {
	e.t.Helper()
	s := map[string]any{"veths": e.hostVeths(), "allocs": e.allocations()}
	var ifs []string
	err := c.ns.Do(func(ns.NetNS) error {
		links, err := netlinksafe.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			addrs, err := netlinksafe.AddrList(l, netlink.FAMILY_ALL)
			if err != nil {
				return err
			}
			desc := l.Attrs().Name + " " + l.Attrs().HardwareAddr.String() + " " + l.Attrs().Flags.String()
			for _, a := range addrs {
				desc += " " + a.IPNet.String()
			}
			ifs = append(ifs, desc)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	s["ifs"] = ifs
	b, _ := json.Marshal(s)
	return string(b)
}

// Another container ID with the same netns and ifname finds eth0 taken by
// an attachment that is not its own: code 4, and the first one survives.
func TestAddOtherContainerSameIfname(t *testing.T) {
	e := newEnv(t, dualSubnet())
	l := e.list("1.0.0")
	c := e.newContainer()
	r1 := e.mustAdd(l, c.rt())
	before := e.snapshot(c)
	other := *c
	other.id = c.id + "-other"
	_, err := e.add(l, other.rt())
	wantCode(t, err, types.ErrInvalidEnvironmentVariables)
	_, err = e.rawAdd(c, other.id, e.confBytes("0.4.0", nil))
	wantCode(t, err, types.ErrInvalidEnvironmentVariables)
	if after := e.snapshot(c); after != before {
		t.Errorf("refused ADD changed the node:\nbefore %s\nafter  %s", before, after)
	}
	if a := e.allocations(); len(a) != 1 || a[0].ContainerID != c.id {
		t.Errorf("allocations %+v, want only %s's", a, c.id)
	}
	for _, ipc := range r1.IPs {
		c.ping(t, ipc.Gateway)
	}
	if err := e.check(l, c.rt()); err != nil {
		t.Errorf("CHECK of the first attachment: %v", err)
	}
}

// State that is not exactly the pair's attachment, and static requests the
// attachment does not satisfy, are refused with code 4 and change nothing.
func TestRepeatedAddRefused(t *testing.T) {
	e := newEnv(t, dualSubnet())
	l := e.list("1.0.0")
	cases := []struct {
		name   string
		damage func(t *testing.T, c *container, r *current.Result)
		caps   map[string]any
	}{
		{name: "other static IP", caps: map[string]any{"ips": []string{"fd10:244:0:1::99"}}},
		{name: "other static MAC", caps: map[string]any{"mac": "02:00:00:00:00:99"}},
		{name: "address removed", damage: func(t *testing.T, c *container, r *current.Result) {
			c.onEth0(t, func(l netlink.Link) error {
				return netlink.AddrDel(l, &netlink.Addr{IPNet: &r.IPs[1].Address})
			})
		}},
		{name: "eth0 replaced by a foreign veth", damage: func(t *testing.T, c *container, r *current.Result) {
			c.onEth0(t, func(l netlink.Link) error {
				if err := netlink.LinkSetName(l, "old0"); err != nil {
					return err
				}
				return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "eth0p"})
			})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.newContainer()
			r := e.mustAdd(l, c.rt())
			if tc.damage != nil {
				tc.damage(t, c, r)
			}
			before := e.snapshot(c)
			rt := c.rt()
			rt.CapabilityArgs = tc.caps
			_, err := e.add(l, rt)
			wantCode(t, err, types.ErrInvalidEnvironmentVariables)
			t.Logf("refused: %v", err)
			if after := e.snapshot(c); after != before {
				t.Errorf("refused ADD changed the node:\nbefore %s\nafter  %s", before, after)
			}
			if err := e.del(l, c.rt()); err != nil {
				t.Fatal(err)
			}
		})
	}
	e.assertClean(0)
}

// A repeated ADD whose static request matches the attachment succeeds.
func TestRepeatedAddSameStatic(t *testing.T) {
	e := newEnv(t, dualSubnet())
	l := e.list("1.0.0")
	c := e.newContainer()
	rt := c.rt()
	rt.CapabilityArgs = map[string]any{"ips": []string{"10.244.1.50"}, "mac": "02:00:00:00:00:50"}
	r1 := e.mustAdd(l, rt)
	r2 := e.mustAdd(l, rt)
	if !reflect.DeepEqual(resultJSON(t, r1), resultJSON(t, r2)) {
		t.Errorf("repeated ADD:\nfirst  %s\nsecond %s", resultJSON(t, r1), resultJSON(t, r2))
	}
	e.assertClean(1)
}
