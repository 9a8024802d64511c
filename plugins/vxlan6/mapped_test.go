package main

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) in a static request is
// refused with code 7 naming the value and where it came from; net.ParseIP
// alone would read it as the IPv4 address a.b.c.d and hand that out.
func TestStaticRefusesIPv4Mapped(t *testing.T) {
	for _, tc := range []struct {
		name, conf, cniArgs, value, source string
	}{
		{"runtimeConfig", `{"runtimeConfig":{"ips":["fd10:244:0:1::5","::ffff:10.244.1.5"]}}`, "", "::ffff:10.244.1.5", "runtimeConfig.ips"},
		{"runtimeConfig CIDR", `{"runtimeConfig":{"ips":["::ffff:10.244.1.5/120"]}}`, "", "::ffff:10.244.1.5/120", "runtimeConfig.ips"},
		{"args.cni", `{"args":{"cni":{"ips":["::FFFF:10.244.1.5"]}}}`, "", "::FFFF:10.244.1.5", "args.cni.ips"},
		{"CNI_ARGS", `{}`, "IgnoreUnknown=1;IP=fd10:244:0:1::5,::ffff:10.244.1.5", "::ffff:10.244.1.5", "CNI_ARGS IP"},
		{"CNI_ARGS hex form", `{}`, "IP=::ffff:af4:105", "::ffff:af4:105", "CNI_ARGS IP"},
		{"CNI_ARGS long form", `{}`, "IP=0:0:0:0:0:ffff:10.244.1.5/24", "0:0:0:0:0:ffff:10.244.1.5/24", "CNI_ARGS IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := loadConf([]byte(tc.conf))
			if err != nil {
				t.Fatal(err)
			}
			req, err := parseStatic(n, tc.cniArgs)
			if err == nil {
				t.Fatalf("accepted as %v", req.IPs)
			}
			if cniCode(err) != types.ErrInvalidNetworkConfig {
				t.Errorf("code %d, want %d: %v", cniCode(err), types.ErrInvalidNetworkConfig, err)
			}
			for _, m := range []string{tc.value, tc.source, "IPv4-mapped"} {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error does not name %q: %v", m, err)
				}
			}
		})
	}
	// IPv4 in IPv4 notation and ordinary IPv6 stay accepted.
	n, _ := loadConf([]byte(`{"runtimeConfig":{"ips":["10.244.1.5/24","fd10:244:0:1::5","::10.244.1.5"]}}`))
	req, err := parseStatic(n, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(req.IPs) != 3 || len(req.IPs[0]) != 4 || req.IPs[0].String() != "10.244.1.5" || req.IPs[2].To4() != nil {
		t.Errorf("parsed %v", req.IPs)
	}
}

// The same through the real plugin and libcni, dual-stack (where the mapped
// address used to be allocated as 10.244.1.5): code 7, nothing allocated, no
// link left; the plain IPv4 request still works.
func TestAddRefusesIPv4Mapped(t *testing.T) {
	e := newEnv(t, dualSubnet())
	l := e.list("1.0.0")
	c := e.newContainer()
	for _, tc := range []struct {
		name string
		set  func(rt *libcni.RuntimeConf)
	}{
		{"runtimeConfig.ips", func(rt *libcni.RuntimeConf) {
			rt.CapabilityArgs = map[string]any{"ips": []string{"::ffff:10.244.1.5/24"}}
		}},
		{"CNI_ARGS IP", func(rt *libcni.RuntimeConf) {
			rt.Args = [][2]string{{"IgnoreUnknown", "1"}, {"IP", "::ffff:10.244.1.5"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := c.rt()
			tc.set(rt)
			_, err := e.add(l, rt)
			wantCode(t, err, types.ErrInvalidNetworkConfig)
			if !strings.Contains(err.Error(), "::ffff:10.244.1.5") || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("error does not name the value and %s: %v", tc.name, err)
			}
			e.assertClean(0)
			if got := c.links(t); len(got) != 1 {
				t.Errorf("container links after the refused ADD: %v", got)
			}
		})
	}
	rt := c.rt()
	rt.CapabilityArgs = map[string]any{"ips": []string{"10.244.1.5/24"}}
	r := e.mustAdd(l, rt)
	if ip := familyAddr(t, r, true); ip.String() != "10.244.1.5" {
		t.Errorf("plain IPv4 request got %s", ip)
	}
	e.mustDel(l, rt)
	e.assertClean(0)
}
