package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// cniCode is the CNI error code of err, or 0 if it is not a *types.Error.
func cniCode(err error) uint {
	var e *types.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// FuzzLoadConf: the network config on stdin, with its runtimeConfig and
// args.cni, is outside input. loadConf and parseStatic must not panic, and
// every refusal is a CNI error with a code; an accepted config has a bridge
// name the kernel takes and an MTU in range.
func FuzzLoadConf(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","type":"vxlan6","subnetFile":"/run/vxlan6/subnet.env","bridge":"br0","mtu":1400}`), "")
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"n","type":"vxlan6","runtimeConfig":{"ips":["fd10:244::5/64","10.244.0.5"],"mac":"02:00:00:00:00:01"}}`), "IP=fd10:244::9;MAC=02:00:00:00:00:02")
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"n","type":"vxlan6","args":{"cni":{"ips":["::ffff:10.0.0.1"],"mac":"ff:ff:ff:ff:ff:ff"}}}`), "IgnoreUnknown=1;K8S_POD_NAME=x")
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","type":"vxlan6","bridge":"eth%d","prevResult":{"cniVersion":"1.1.0","ips":[{"address":"fd10::2/64"}]}}`), "IP")
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","type":"vxlan6","cni.dev/attachments":[{"containerID":"c","ifname":"eth0"}]}`), ";;IP=;")
	f.Fuzz(func(t *testing.T, data []byte, cniArgs string) {
		n, err := loadConf(data)
		if err != nil {
			if cniCode(err) == 0 {
				t.Fatalf("loadConf error without a CNI code: %v", err)
			}
			return
		}
		if validIfName(n.Bridge) != nil || (n.MTU != 0 && (n.MTU < 1280 || n.MTU > 65535)) {
			t.Fatalf("accepted bridge %q mtu %d", n.Bridge, n.MTU)
		}
		req, err := parseStatic(n, cniArgs)
		if err != nil {
			if cniCode(err) == 0 {
				t.Fatalf("parseStatic error without a CNI code: %v", err)
			}
			return
		}
		for _, ip := range req.IPs {
			if ip == nil || (len(ip) != 4 && len(ip) != 16) {
				t.Fatalf("parsed IP %v", ip)
			}
		}
		if req.MAC != nil && (len(req.MAC) != 6 || req.MAC[0]&1 == 1) {
			t.Fatalf("accepted MAC %v", req.MAC)
		}
	})
}

// FuzzParseCNIArgs: CNI_ARGS from the runtime's environment.
func FuzzParseCNIArgs(f *testing.F) {
	f.Add("IP=fd10:244::5;MAC=02:00:00:00:00:01")
	f.Add("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;IP=10.0.0.1,fd10::1")
	f.Add("novalue;IP=")
	f.Add("IP==x;;MAC")
	f.Fuzz(func(t *testing.T, s string) {
		ip, mac, err := parseCNIArgs(s)
		if err != nil {
			if cniCode(err) != types.ErrInvalidEnvironmentVariables {
				t.Fatalf("error %v, want code %d", err, types.ErrInvalidEnvironmentVariables)
			}
			return
		}
		if (ip != "" && !strings.Contains(s, "IP="+ip)) || (mac != "" && !strings.Contains(s, "MAC="+mac)) {
			t.Fatalf("parseCNIArgs(%q) = %q, %q: not from the input", s, ip, mac)
		}
		// Whatever it returns, the static request built from it is sane.
		n := &NetConf{}
		_ = json.Unmarshal([]byte(`{"cniVersion":"1.1.0","name":"n","type":"vxlan6"}`), n)
		req, err := parseStatic(n, s)
		if err != nil {
			if cniCode(err) == 0 {
				t.Fatalf("parseStatic(%q) error without a CNI code: %v", s, err)
			}
			return
		}
		// An address in IPv6 notation is never handed out as IPv4
		// (::ffff:a.b.c.d is refused, not turned into a.b.c.d).
		for i, part := range strings.Split(ip, ",") {
			if ip != "" && strings.Contains(part, ":") && req.IPs[i].To4() != nil {
				t.Fatalf("parseStatic(%q): %q accepted as IPv4 %s", s, part, req.IPs[i])
			}
		}
	})
}
