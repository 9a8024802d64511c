package lease

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

func TestParseFlannelConfig(t *testing.T) {
	// flannel's documented dual-stack example, with the IPv6 keys.
	pc, err := ParseFlannelConfig([]byte(`{"Network":"10.42.0.0/16","IPv6Network":"fd10:244::/48","SubnetMin":"10.42.10.0",
		"SubnetMax":"10.42.20.0","IPv6SubnetMin":"fd10:244:0:10::","IPv6SubnetMax":"fd10:244:0:20::","EnableNFTables":false,
		"Backend":{"Type":"vxlan","VNI":4096,"Port":4789,"GBP":false}}`))
	if err != nil {
		t.Fatal(err)
	}
	c := pc.Config
	if !c.DualStack() || c.SubnetLen.V4 != 24 || c.SubnetLen.V6 != 64 || c.Backend.VNI != 4096 || c.Backend.Port != 4789 {
		t.Errorf("flannel defaults not applied: %+v", c)
	}
	if c.SubnetMin.V4.String() != "10.42.10.0" || c.SubnetMax.V4.String() != "10.42.20.0" || c.SubnetMin.V6.String() != "fd10:244:0:10::" || c.SubnetMax.V6.String() != "fd10:244:0:20::" {
		t.Errorf("ranges: %s-%s %s-%s", c.SubnetMin.V4, c.SubnetMax.V4, c.SubnetMin.V6, c.SubnetMax.V6)
	}
	if len(pc.Unknown) != 0 || !strings.Contains(strings.Join(pc.Notes, "\n"), "EnableNFTables") {
		t.Errorf("unknown %v notes %v", pc.Unknown, pc.Notes)
	}
	// vxlan6's own shipped shape still parses the same.
	if pc, err := ParseFlannelConfig([]byte(cfgV6)); err != nil || pc.DualStack() || len(pc.Notes) != 0 {
		t.Errorf("vxlan6 config: %v %+v", err, pc)
	}
	pc, err = ParseFlannelConfig([]byte(`{"IPv6Network":"fd10:244::/48","Bogus":1,"backend":{"type":"VXLAN","Frob":2}}`))
	if err != nil || strings.Join(pc.Unknown, ",") != "Backend.Frob,Bogus" || pc.Backend.Type != "vxlan" {
		t.Errorf("unknown keys: %v %+v", err, pc)
	}
	for cfg, want := range map[string]string{
		`{"Network":"10.42.0.0/16","IPv6Network":"fd10:244::/48","Backend":{"Type":"udp"}}`:                 `Backend.Type "udp" cannot apply`,
		`{"Network":"10.42.0.0/16","Backend":{"Type":"vxlan"}}`:                                             "IPv4-only",
		`{"Network":"10.42.0.0/16"}`:                                                                        "IPv4-only",
		`{"IPv6Network":"fd10:244::/48","Backend":{"Type":"host-gw"}}`:                                      "host-gw",
		`{"IPv6Network":"fd10:244::/48","Backend":{"DirectRouting":true}}`:                                  "DirectRouting",
		`{"IPv6Network":"fd10:244::/48","IPv6SubnetMin":"fd10:244:0:10::1"}`:                                "IPv6SubnetMin",
		`{"IPv6Network":"fd10:244::/48","IPv6SubnetMin":"fd10:245::"}`:                                      "IPv6SubnetMin",
		`{"IPv6Network":"fd10:244::/48","IPv6SubnetMin":"fd10:244:0:9::","IPv6SubnetMax":"fd10:244:0:8::"}`: "above",
		`{"IPv6Network":"fd10:244::/48","SubnetMin":"10.0.0.0"}`:                                            "IPv4 is off",
	} {
		if _, err := ParseFlannelConfig([]byte(cfg)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want %q", cfg, err, want)
		}
	}
}

// TestConfigRangesRoundTrip: a Config written in its etcd form
// (MarshalJSON) and read back (json.Unmarshal, or GetConfig's flannel
// reader) keeps its subnet ranges: a tool that rewrites the config must not
// widen the range to the whole network.
func TestConfigRangesRoundTrip(t *testing.T) {
	pc, err := ParseFlannelConfig([]byte(`{"Network":"10.42.0.0/16","IPv6Network":"fd10:244::/48","SubnetMin":"10.42.10.0",
		"SubnetMax":"10.42.20.0","IPv6SubnetMin":"fd10:244:0:10::","IPv6SubnetMax":"fd10:244:0:20::","Backend":{"Type":"vxlan"}}`))
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(pc.Config)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("re-read %s: %v", data, err)
	}
	again, err := ParseFlannelConfig(data)
	if err != nil {
		t.Fatalf("re-read %s: %v", data, err)
	}
	for _, c := range []*Config{&back, again.Config} {
		if got := fmt.Sprint(c.SubnetMin.V6, c.SubnetMax.V6, c.SubnetMin.V4, c.SubnetMax.V4); got != "fd10:244:0:10:: fd10:244:0:20:: 10.42.10.0 10.42.20.0" {
			t.Errorf("ranges after the round trip through %s: %s", data, got)
		}
	}
	if _, err := ParseConfig([]byte(`{"IPv6Network":"fd10:244::/48","SubnetMax":"10.0.0.0"}`)); err == nil || !strings.Contains(err.Error(), "IPv4 is off") {
		t.Errorf("SubnetMax without IPv4: %v", err)
	}
}

// TestSubnetMinMaxAllocation: Acquire against real etcd hands out only
// subnets inside IPv6SubnetMin..IPv6SubnetMax (and SubnetMin..SubnetMax),
// and says the range is full after that.
func TestSubnetMinMaxAllocation(t *testing.T) {
	v := newEnv(t)
	js := `{"Network":"10.42.0.0/16","IPv6Network":"fd10:244::/48","IPv6SubnetMin":"fd10:244:0:10::","IPv6SubnetMax":"fd10:244:0:12::",
		"SubnetMin":"10.42.5.0","SubnetMax":"10.42.7.0","Backend":{"Type":"vxlan"}}`
	v.put(v.r.ConfigKey(), js)
	cfg, err := v.r.GetConfig(v.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got6, got4 []string
	for i := 1; i <= 3; i++ {
		vtep := net.ParseIP(fmt.Sprintf("2001:db8::%d", i))
		l, err := v.r.Acquire(v.ctx, cfg, Attrs{VTEP: vtep, VtepMAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(i)}, NodeName: fmt.Sprint("n", i)}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		got6, got4 = append(got6, l.Subnets.V6.String()), append(got4, l.Subnets.V4.String())
	}
	if strings.Join(got6, " ") != "fd10:244:0:10::/64 fd10:244:0:11::/64 fd10:244:0:12::/64" || strings.Join(got4, " ") != "10.42.5.0/24 10.42.6.0/24 10.42.7.0/24" {
		t.Errorf("allocated %v %v", got6, got4)
	}
	_, err = v.r.Acquire(v.ctx, cfg, Attrs{VTEP: net.ParseIP("2001:db8::9"), VtepMAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}}, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "IPv6") {
		t.Errorf("a 4th node in a range of 3: %v", err)
	}
}

// TestSubnetMinMaxRandom: the random pick (the default) stays inside the
// range too.
func TestSubnetMinMaxRandom(t *testing.T) {
	v := newEnv(t)
	v.r.lowestFirst = false
	v.put(v.r.ConfigKey(), `{"IPv6Network":"fd10:244::/48","IPv6SubnetMin":"fd10:244:0:10::","IPv6SubnetMax":"fd10:244:0:13::","Backend":{"Type":"vxlan"}}`)
	cfg, err := v.r.GetConfig(v.ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := 1; i <= 4; i++ {
		l, err := v.r.Acquire(v.ctx, cfg, Attrs{VTEP: net.ParseIP(fmt.Sprintf("2001:db8::%d", i)), VtepMAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(i)}}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		seen[l.Subnets.V6.String()] = true
	}
	for _, want := range []string{"fd10:244:0:10::/64", "fd10:244:0:11::/64", "fd10:244:0:12::/64", "fd10:244:0:13::/64"} {
		if !seen[want] {
			t.Errorf("random picks %v miss %s", seen, want)
		}
	}
}
