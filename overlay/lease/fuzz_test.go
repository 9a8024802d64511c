package lease

import (
	"encoding/json"
	"net"
	"testing"
)

var fuzzConfigs = map[bool]*Config{}

func fuzzConfig(t *testing.T, dual bool) *Config {
	if c := fuzzConfigs[dual]; c != nil {
		return c
	}
	js := `{"IPv6Network":"fd10:244::/48"}`
	if dual {
		js = cfgDual
	}
	c, err := ParseConfig([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	fuzzConfigs[dual] = c
	return c
}

// FuzzParseLease: every record under <prefix>/leases/ is outside input.
// parseLease must not panic; what it accepts is a peer every reader can
// program (VTEP usable, subnets of the configured length inside the
// networks), its record round-trips, and the allocator's view (pool.claim)
// agrees with it on the subnet held.
func FuzzParseLease(f *testing.F) {
	f.Add("2001:db8::1", []byte(rec("2001:db8::1", "fd10:244::/64", "", 1)), false)
	f.Add("2001:db8::1", []byte(rec("2001:db8::1", "fd10:244:0:5::/64", "10.244.5.0/24", 5)), true)
	f.Add("2001:db8::2", []byte(`{"VTEP":"2001:db8::2","IPv6Subnet":"::/0","VtepMAC":"02:00:00:00:00:02"}`), false)
	f.Add("::ffff:1.2.3.4", []byte(`{"VTEP":"::ffff:1.2.3.4","IPv6Subnet":"fd10:244::/64","VtepMAC":"02:00:00:00:00:02"}`), false)
	f.Add("fec0::1", []byte(`{"VTEP":"fec0::1","IPv6Subnet":"fd10:244:0:1::/64","VtepMAC":"02:00:00:00:00:03","PublicIPv4":"1.2.3.4"}`), false)
	f.Add("2001:db8::3", []byte(`{"VTEP":"2001:db8::3","IPv6Subnet":"fd10:244:0:1::1/64","Subnet":"::ffff:10.244.0.0/120","VtepMAC":"02:00:00:00:00:03"}`), true)
	f.Add("x", []byte(`not json`), false)
	f.Fuzz(func(t *testing.T, key string, value []byte, dual bool) {
		cfg := fuzzConfig(t, dual)
		const pfx = "/p/leases/"
		kv := keyValue{key: pfx + key, value: value, createRev: 1, modRev: 2}
		l, err := parseLease(cfg, pfx, kv, func(string) {})
		p6 := &pool{family: "IPv6", network: cfg.Networks.V6, subLen: cfg.SubnetLen.V6}
		var rec record
		if json.Unmarshal(value, &rec) == nil {
			if n := p6.claim(rec.IPv6Subnet); n != nil {
				if ones, _ := n.Mask.Size(); ones != cfg.SubnetLen.V6 || !cfg.Networks.V6.Contains(n.IP) {
					t.Fatalf("claim(%q) = %s: not a /%d of %s", rec.IPv6Subnet, n, cfg.SubnetLen.V6, cfg.Networks.V6)
				}
			}
		}
		if err != nil {
			return
		}
		if err := validatePeerVTEP(cfg, l.VTEP); err != nil || key != l.VTEP.String() {
			t.Fatalf("accepted VTEP %s under key %q: %v", l.VTEP, key, err)
		}
		if err := validateMAC(l.VtepMAC); err != nil {
			t.Fatalf("accepted MAC: %v", err)
		}
		if p6.claim(l.Subnets.V6.String()) == nil {
			t.Fatalf("accepted IPv6 subnet %s holds nothing for the allocator", l.Subnets.V6)
		}
		if l.Subnets.V4 != nil {
			p4 := &pool{family: "IPv4", network: cfg.Networks.V4, subLen: cfg.SubnetLen.V4, v4: true}
			if !dual || p4.claim(l.Subnets.V4.String()) == nil {
				t.Fatalf("accepted IPv4 subnet %s (dual %v) holds nothing for the allocator", l.Subnets.V4, dual)
			}
		}
		out, err := MarshalRecord(&l)
		if err != nil {
			t.Fatalf("marshal accepted lease: %v", err)
		}
		l2, err := parseLease(cfg, pfx, keyValue{key: kv.key, value: out}, func(string) {})
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		out2, _ := MarshalRecord(&l2)
		if string(out) != string(out2) {
			t.Fatalf("round trip changed the record: %s -> %s", out, out2)
		}
	})
}

// FuzzParseConfig: <prefix>/config is outside input (and what `config put`
// reads). ParseConfig must not panic; an accepted config never captures
// host traffic and round-trips through its etcd form.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(cfgV6))
	f.Add([]byte(cfgDual))
	f.Add([]byte(`{"EnableIPv6":true,"EnableIPv4":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":80,"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"VXLAN","VNI":42,"Port":4789,"MTU":1400}}`))
	f.Add([]byte(`{"EnableIPv4":true,"IPv6Network":"fd10:244::/48","IPv6SubnetMin":"fd10:244:0:10::","IPv6SubnetMax":"fd10:244:0:20::","Network":"10.42.0.0/16","SubnetLen":24,"SubnetMin":"10.42.10.0","SubnetMax":"10.42.20.0"}`))
	f.Add([]byte(`{"IPv6Network":"::/0","IPv6SubnetLen":120}`))
	f.Add([]byte(`{"IPv6Network":"::ffff:10.0.0.0/104","IPv6SubnetLen":120}`))
	f.Add([]byte(`{"EnableIPv4":true,"IPv6Network":"fd10::/48","Network":"::ffff:10.0.0.0/104","SubnetLen":120}`))
	f.Add([]byte(`{"IPv6Network":"fe80::/10"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		nets := []*net.IPNet{cfg.Networks.V6}
		if cfg.DualStack() {
			nets = append(nets, cfg.Networks.V4)
		}
		for _, n := range nets {
			if err := checkScope("network", n); err != nil {
				t.Fatalf("accepted %s: %v", n, err)
			}
		}
		if cfg.IPv6SubnetCount().Sign() <= 0 {
			t.Fatalf("accepted a network without subnets: %+v", cfg)
		}
		out, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		out2, _ := json.Marshal(back)
		if string(out) != string(out2) {
			t.Fatalf("round trip changed the config: %s -> %s", out, out2)
		}
	})
}

// FuzzParseNode: <prefix>/nodes/<node> is outside input; the public-ipv6
// annotation read from it chooses the VTEP.
func FuzzParseNode(f *testing.F) {
	f.Add([]byte(`{"annotations":{"vxlan6.io/public-ipv6":"2001:db8::1"}}`))
	f.Add([]byte(`{"annotations":{"flannel.alpha.coreos.com/node-public-ipv6":"2001:db8::2","x":"y"}}`))
	f.Add([]byte(`{"annotations":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ann, err := parseNode("/p/nodes/n", data)
		if err != nil {
			return
		}
		if ann == nil {
			t.Fatal("nil annotations without error")
		}
		if v := PublicIPv6Annotation(ann); v != "" && v != ann[AnnotationPublicIPv6] && v != ann[AnnotationPublicIPv6Flannel] {
			t.Fatalf("annotation %q is in neither key", v)
		}
	})
}
