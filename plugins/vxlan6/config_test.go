package main

import (
	"errors"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/vxlan6/vxlan6/plugins/vxlan6/link"
)

func TestLoadConfDefaultsAndErrors(t *testing.T) {
	n, err := loadConf([]byte(`{"cniVersion":"1.0.0","name":"x","type":"vxlan6"}`))
	if err != nil {
		t.Fatal(err)
	}
	if n.SubnetFile != "/run/vxlan6/subnet.env" || n.DataDir != defaultDataDir || n.Bridge != defaultBridge || n.MTU != 0 || n.IPMasq {
		t.Errorf("defaults: %+v", n)
	}
	for in, code := range map[string]uint{
		`{"name":`:                                 types.ErrDecodingFailure,
		`{"name":"x","mtu":1000}`:                  types.ErrInvalidNetworkConfig,
		`{"name":"x","bridge":"a/b"}`:              types.ErrInvalidNetworkConfig,
		`{"name":"x","bridge":"abcdefghijklmnop"}`: types.ErrInvalidNetworkConfig,
	} {
		_, err := loadConf([]byte(in))
		var te *types.Error
		if !errors.As(err, &te) || te.Code != code {
			t.Errorf("%s: want code %d, got %v", in, code, err)
		}
	}
	n, err = loadConf([]byte(`{"name":"x","cni.dev/attachments":[{"containerID":"c","ifname":"eth0"}]}`))
	if err != nil || len(n.ValidAttachments) != 1 {
		t.Errorf("old attachments key not accepted: %+v %v", n, err)
	}
}

func TestStaticPrecedence(t *testing.T) {
	n, err := loadConf([]byte(`{"name":"x",
		"runtimeConfig":{"ips":["fd00::3/64"],"mac":"02:00:00:00:00:03"},
		"args":{"cni":{"ips":["fd00::2"],"mac":"02:00:00:00:00:02"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseStatic(n, "IgnoreUnknown=1;K8S_POD_NAME=p;IP=fd00::1;MAC=02:00:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.IPs) != 1 || r.IPs[0].String() != "fd00::3" || r.MAC.String() != "02:00:00:00:00:03" {
		t.Errorf("runtimeConfig must win: %+v", r)
	}
	n.RuntimeConfig.IPs, n.RuntimeConfig.Mac = nil, ""
	r, _ = parseStatic(n, "IP=fd00::1;MAC=02:00:00:00:00:01")
	if r.IPs[0].String() != "fd00::2" || r.MAC.String() != "02:00:00:00:00:02" {
		t.Errorf("args must beat CNI_ARGS: %+v", r)
	}
	n.Args.Cni.IPs, n.Args.Cni.Mac = nil, ""
	r, _ = parseStatic(n, "K8S_POD_NAMESPACE=ns;IP=fd00::1,10.0.0.1;MAC=02:00:00:00:00:01")
	if len(r.IPs) != 2 || r.IPs[1].String() != "10.0.0.1" || r.MAC.String() != "02:00:00:00:00:01" {
		t.Errorf("CNI_ARGS: %+v", r)
	}
	for _, bad := range []string{"IP=fd00::zz", "MAC=01:00:00:00:00:01", "MAC=nope", "garbage"} {
		if _, err := parseStatic(n, bad); err == nil {
			t.Errorf("%s: want an error", bad)
		}
	}
}

func TestHostVethName(t *testing.T) {
	a := link.HostVethName("cid", "eth0")
	if a != link.HostVethName("cid", "eth0") || a == link.HostVethName("cid", "eth1") || len(a) != 15 {
		t.Errorf("host veth name %q not deterministic per (cid, ifname) or not 15 chars", a)
	}
	if !link.IsHostVethName(a) || link.IsHostVethName("vx6br0") || link.IsHostVethName("vx6zzzzzzzzzzzz") {
		t.Errorf("IsHostVethName")
	}
}
