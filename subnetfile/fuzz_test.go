package subnetfile

import (
	"bytes"
	"testing"
)

// FuzzParse: the plugin reads this file on every ADD; whatever is in it,
// Parse must not panic, and what it accepts is valid and survives a
// Marshal/Parse round trip unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte("VXLAN6_NETWORK_V6=fd10:244::/48\nVXLAN6_SUBNET_V6=fd10:244:0:1::/64\nVXLAN6_MTU=1430\nVXLAN6_VTEP=2001:db8::2\n"))
	f.Add([]byte("VXLAN6_NETWORK_V6=fd10:244::/48\nVXLAN6_SUBNET_V6=fd10:244:0:1::/64\nVXLAN6_NETWORK_V4=10.244.0.0/16\nVXLAN6_SUBNET_V4=10.244.1.0/24\nVXLAN6_MTU=1430\n"))
	f.Add([]byte("# comment\n\nVXLAN6_NETWORK_V6=\"fd10::/48\"\nVXLAN6_SUBNET_V6='fd10::/64'\nVXLAN6_MTU=65535\nUNKNOWN=1\n"))
	f.Add([]byte("VXLAN6_NETWORK_V6=::ffff:0:0/96\nVXLAN6_SUBNET_V6=::ffff:10.0.0.0/120\nVXLAN6_MTU=1500\n"))
	f.Add([]byte("VXLAN6_NETWORK_V6=fd10::/48\nVXLAN6_SUBNET_V6=fd10::/64\nVXLAN6_NETWORK_V4=::ffff:10.0.0.0/104\nVXLAN6_SUBNET_V4=10.0.0.0/24\nVXLAN6_MTU=1500\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate refuses: %v\n%q", err, data)
		}
		out := c.Marshal()
		c2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse of Marshal output %q: %v (input %q)", out, err, data)
		}
		if out2 := c2.Marshal(); !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the file:\n%s\n---\n%s", out, out2)
		}
	})
}
