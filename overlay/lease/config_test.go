package lease

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	t.Run("IPv6-only defaults", func(t *testing.T) {
		cfg, err := ParseConfig([]byte(`{"IPv6Network":"fd10:244::/48"}`))
		if err != nil {
			t.Fatal(err)
		}
		if !cfg.EnableIPv6 || cfg.EnableIPv4 || cfg.DualStack() {
			t.Fatalf("families: v6=%v v4=%v dual=%v; want IPv6 only", cfg.EnableIPv6, cfg.EnableIPv4, cfg.DualStack())
		}
		want := Backend{Type: "vxlan", VNI: 1, Port: 8472, FastPath: DefaultFastPath}
		if cfg.Networks.V6.String() != "fd10:244::/48" || cfg.SubnetLen.V6 != 64 || cfg.Backend != want || cfg.Networks.V4 != nil {
			t.Fatalf("got %+v backend %+v", cfg, cfg.Backend)
		}
		if cfg.IPv6SubnetCount().String() != "65536" {
			t.Fatalf("IPv6SubnetCount = %s", cfg.IPv6SubnetCount())
		}
	})
	t.Run("dual-stack", func(t *testing.T) {
		cfg, err := ParseConfig([]byte(`{"EnableIPv6":true,"EnableIPv4":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":80,
			"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":42,"Port":4789,"MTU":1400}}`))
		if err != nil {
			t.Fatal(err)
		}
		if !cfg.DualStack() || cfg.Networks.V4.String() != "10.244.0.0/16" || cfg.SubnetLen.V4 != 24 || cfg.SubnetLen.V6 != 80 {
			t.Fatalf("got %+v", cfg)
		}
		if len(cfg.Networks.V4.IP) != 4 {
			t.Fatalf("IPv4 network IP has %d bytes, want 4", len(cfg.Networks.V4.IP))
		}
		if (cfg.Backend != Backend{Type: "vxlan", VNI: 42, Port: 4789, MTU: 1400, FastPath: DefaultFastPath}) {
			t.Fatalf("backend %+v", cfg.Backend)
		}
		// Round trip through the etcd form.
		data, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig(data)
		if err != nil {
			t.Fatalf("re-parse %s: %v", data, err)
		}
		if back.Networks.V4.String() != cfg.Networks.V4.String() || back.Networks.V6.String() != cfg.Networks.V6.String() || back.Backend != cfg.Backend {
			t.Fatalf("round trip %s gave %+v", data, back)
		}
	})
	t.Run("IPv4 fields ignored unless enabled", func(t *testing.T) {
		cfg, err := ParseConfig([]byte(`{"IPv6Network":"fd10:244::/48","Network":"bogus","SubnetLen":99}`))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Networks.V4 != nil || cfg.DualStack() {
			t.Fatalf("IPv4 network set without EnableIPv4: %+v", cfg)
		}
	})

	for _, tc := range []struct {
		name, json, want string
	}{
		{"not JSON", `{"IPv6Network":`, "parse config JSON"},
		{"no IPv6 network", `{"Network":"10.0.0.0/8"}`, "IPv6Network is required"},
		{"IPv6 disabled", `{"EnableIPv6":false,"IPv6Network":"fd10::/48"}`, "EnableIPv6 is false"},
		{"bad IPv6 CIDR", `{"IPv6Network":"fd10::/200"}`, `IPv6Network "fd10::/200" is not a CIDR`},
		{"IPv4 as IPv6 network", `{"IPv6Network":"10.0.0.0/8"}`, "IPv6Network 10.0.0.0/8 is not an IPv6 network"},
		{"host bits", `{"IPv6Network":"fd10::1/48"}`, "IPv6Network fd10::1/48 has host bits set"},
		{"subnet not longer", `{"IPv6Network":"fd10::/64","IPv6SubnetLen":64}`, "IPv6SubnetLen 64 is not longer than IPv6Network fd10::/64"},
		{"subnet shorter", `{"IPv6Network":"fd10::/64","IPv6SubnetLen":60}`, "IPv6SubnetLen 60 is not longer than IPv6Network"},
		{"fewer than 4 subnets", `{"IPv6Network":"fd10::/63","IPv6SubnetLen":64}`, "IPv6SubnetLen 64 gives IPv6Network fd10::/63 only 2 subnets (need at least 4)"},
		{"IPv6 subnet too long", `{"IPv6Network":"fd10::/64","IPv6SubnetLen":127}`, "IPv6SubnetLen 127 is too long"},
		{"IPv4 without network", `{"EnableIPv4":true,"IPv6Network":"fd10::/48","SubnetLen":24}`, "Network (the IPv4 pod network) is missing"},
		{"IPv4 without subnet len", `{"EnableIPv4":true,"IPv6Network":"fd10::/48","Network":"10.0.0.0/8"}`, "SubnetLen (the IPv4 subnet length) is missing"},
		{"IPv6 as IPv4 network", `{"EnableIPv4":true,"IPv6Network":"fd10::/48","Network":"fd11::/48","SubnetLen":64}`, "Network fd11::/48 is not an IPv4 network"},
		{"bad FastPath", `{"IPv6Network":"fd10::/48","Backend":{"FastPath":"on"}}`, `Backend.FastPath "on" is not one of`},
		{"bad IPv4 CIDR", `{"EnableIPv4":true,"IPv6Network":"fd10::/48","Network":"10.0.0/8","SubnetLen":24}`, `Network "10.0.0/8" is not a CIDR`},
		{"IPv4 subnet not longer", `{"EnableIPv4":true,"IPv6Network":"fd10::/48","Network":"10.0.0.0/24","SubnetLen":24}`, "SubnetLen 24 is not longer than Network 10.0.0.0/24"},
		{"IPv4 fewer than 4", `{"EnableIPv4":true,"IPv6Network":"fd10::/48","Network":"10.0.0.0/23","SubnetLen":24}`, "only 2 subnets"},
		{"backend type", `{"IPv6Network":"fd10::/48","Backend":{"Type":"host-gw"}}`, `Backend.Type "host-gw" is not supported`},
		{"VNI too big", `{"IPv6Network":"fd10::/48","Backend":{"VNI":16777216}}`, "Backend.VNI 16777216 is out of range 1..16777215"},
		{"VNI negative", `{"IPv6Network":"fd10::/48","Backend":{"VNI":-1}}`, "Backend.VNI -1 is out of range"},
		{"port", `{"IPv6Network":"fd10::/48","Backend":{"Port":70000}}`, "Backend.Port 70000 is out of range 1..65535"},
		{"MTU", `{"IPv6Network":"fd10::/48","Backend":{"MTU":1200}}`, "Backend.MTU 1200 is out of range 1280..65535"},
		// Issue 8 §2: networks that would capture host traffic.
		{"everything", `{"IPv6Network":"::/0","IPv6SubnetLen":120}`, "IPv6Network ::/0 is shorter than /8"},
		{"too wide", `{"IPv6Network":"2000::/4","IPv6SubnetLen":64}`, "IPv6Network 2000::/4 is shorter than /8"},
		{"link-local", `{"IPv6Network":"fe80::/10"}`, "IPv6Network fe80::/10 overlaps link-local fe80::/10"},
		{"inside link-local", `{"IPv6Network":"fe80:1::/48"}`, "IPv6Network fe80:1::/48 overlaps link-local"},
		{"multicast", `{"IPv6Network":"ff00::/8","IPv6SubnetLen":64}`, "IPv6Network ff00::/8 overlaps multicast ff00::/8"},
		{"loopback", `{"IPv6Network":"::/96","IPv6SubnetLen":120}`, "IPv6Network ::/96 overlaps the unspecified address ::/128"},
		{"IPv4-mapped", `{"IPv6Network":"::ffff:10.0.0.0/104","IPv6SubnetLen":120}`, "IPv6Network ::ffff:10.0.0.0/104 is IPv4-mapped"},
		{"IPv4 everything", `{"EnableIPv4":true,"IPv6Network":"fd10::/48","Network":"0.0.0.0/0","SubnetLen":24}`, "Network 0.0.0.0/0 is shorter than /8"},
		{"IPv4 loopback", `{"EnableIPv4":true,"IPv6Network":"fd10::/48","Network":"127.0.0.0/8","SubnetLen":24}`, "Network 127.0.0.0/8 overlaps loopback 127.0.0.0/8"},
		{"IPv4 link-local", `{"EnableIPv4":true,"IPv6Network":"fd10::/48","Network":"169.254.0.0/16","SubnetLen":24}`, "Network 169.254.0.0/16 overlaps link-local"},
		{"IPv4 multicast", `{"EnableIPv4":true,"IPv6Network":"fd10::/48","Network":"239.0.0.0/8","SubnetLen":24}`, "Network 239.0.0.0/8 overlaps multicast 224.0.0.0/4"},
		{"IPv4 unspecified", `{"EnableIPv4":true,"IPv6Network":"fd10::/48","Network":"0.0.0.0/8","SubnetLen":24}`, "Network 0.0.0.0/8 overlaps the unspecified address"},
		{"IPv4-mapped as IPv4", `{"EnableIPv4":true,"IPv6Network":"fd10::/48","Network":"::ffff:10.0.0.0/104","SubnetLen":24}`, "Network ::ffff:10.0.0.0/104 is IPv4-mapped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json))
			if err == nil {
				t.Fatalf("ParseConfig(%s) succeeded; want error containing %q", tc.json, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseConfig(%s) = %q; want it to contain %q", tc.json, err, tc.want)
			}
		})
	}
}

func TestGetConfig(t *testing.T) {
	v := newEnv(t)
	if _, err := v.r.GetConfig(v.ctx); !errors.Is(err, ErrNoConfig) {
		t.Fatalf("missing config: %v; want ErrNoConfig", err)
	}
	v.put(v.r.ConfigKey(), `{"IPv6Network":"fd10::/64"}`)
	_, err := v.r.GetConfig(v.ctx)
	var ce *ConfigError
	if !errors.Is(err, ErrInvalidConfig) || !errors.As(err, &ce) || ce.Key != v.r.ConfigKey() {
		t.Fatalf("invalid config: %v; want a ConfigError for %s", err, v.r.ConfigKey())
	}
	if _, err := v.r.WaitConfig(v.ctx); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("WaitConfig on an invalid config: %v; want ErrInvalidConfig at once", err)
	}
}

func TestWaitConfig(t *testing.T) {
	v := newEnv(t)
	done := make(chan error, 1)
	go func() {
		cfg, err := v.r.WaitConfig(v.ctx)
		if err == nil && cfg.Networks.V6.String() != "fd10:244::/48" {
			err = errors.New("wrong config " + cfg.Networks.V6.String())
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("WaitConfig returned before the config existed: %v", err)
	case <-timeAfter(300):
	}
	v.put(v.r.ConfigKey(), cfgV6)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-timeAfter(10000):
		t.Fatal("WaitConfig did not return within 10s of the config being written")
	}
}
