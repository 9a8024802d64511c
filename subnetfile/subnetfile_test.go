package subnetfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTripDualStack(t *testing.T) {
	in := "VXLAN6_NETWORK_V6=fd10:244::/48\nVXLAN6_SUBNET_V6=fd10:244:0:1::/64\n" +
		"VXLAN6_NETWORK_V4=10.244.0.0/16\nVXLAN6_SUBNET_V4=10.244.1.0/24\nVXLAN6_MTU=1430\nVXLAN6_VTEP=2001:db8::2\n"
	c, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if !c.DualStack() || c.MTU != 1430 || c.VTEP.String() != "2001:db8::2" {
		t.Fatalf("unexpected %+v", c)
	}
	path := filepath.Join(t.TempDir(), "subnet.env")
	if err := Write(path, c); err != nil {
		t.Fatal(err)
	}
	c2, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Subnets.V4.String() != "10.244.1.0/24" || c2.Subnets.V6.String() != "fd10:244:0:1::/64" {
		t.Fatalf("round trip mismatch: %+v", c2)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"garbage":        "hello world",
		"missing subnet": "VXLAN6_NETWORK_V6=fd10:244::/48\nVXLAN6_MTU=1430\n",
		"bad cidr":       "VXLAN6_NETWORK_V6=fd10:244::/480\nVXLAN6_SUBNET_V6=fd10:244:0:1::/64\nVXLAN6_MTU=1430\n",
		"outside":        "VXLAN6_NETWORK_V6=fd10:244::/48\nVXLAN6_SUBNET_V6=fd11:244:0:1::/64\nVXLAN6_MTU=1430\n",
		"v4 as v6":       "VXLAN6_NETWORK_V6=10.0.0.0/8\nVXLAN6_SUBNET_V6=10.1.0.0/16\nVXLAN6_MTU=1430\n",
		"small mtu":      "VXLAN6_NETWORK_V6=fd10:244::/48\nVXLAN6_SUBNET_V6=fd10:244:0:1::/64\nVXLAN6_MTU=1000\n",
		"host bits":      "VXLAN6_NETWORK_V6=fd10:244::/48\nVXLAN6_SUBNET_V6=fd10:244:0:1::1/64\nVXLAN6_MTU=1430\n",
		"half v4":        "VXLAN6_NETWORK_V6=fd10:244::/48\nVXLAN6_SUBNET_V6=fd10:244:0:1::/64\nVXLAN6_SUBNET_V4=10.244.1.0/24\nVXLAN6_MTU=1430\n",
		"v4-mapped v4":   "VXLAN6_NETWORK_V6=fd10::/48\nVXLAN6_SUBNET_V6=fd10::/64\nVXLAN6_NETWORK_V4=::ffff:10.0.0.0/104\nVXLAN6_SUBNET_V4=10.0.0.0/24\nVXLAN6_MTU=1500\n",
	}
	for name, in := range cases {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: expected an error", name)
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("%s: empty error", name)
		}
	}
}
