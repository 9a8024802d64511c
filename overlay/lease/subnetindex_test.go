package lease

import (
	"math/big"
	"net"
	"testing"
)

// TestSubnetIndex: subnetIndex and nthSubnet are inverses inside the
// network, host bits do not matter, and an address outside the network (or
// of the other family) has no index.
func TestSubnetIndex(t *testing.T) {
	for _, c := range []struct {
		network string
		subLen  int
		ip      string
		want    int64 // -1: nil
		sub     string
	}{
		{"fd10:244::/48", 64, "fd10:244::", 0, "fd10:244::/64"},
		{"fd10:244::/48", 64, "fd10:244:0:ff::", 255, "fd10:244:0:ff::/64"},
		{"fd10:244::/48", 64, "fd10:244:0:ff::1", 255, "fd10:244:0:ff::/64"},
		{"fd10:244::/48", 64, "fd10:244:0:ffff::", 65535, "fd10:244:0:ffff::/64"},
		{"fd10:244::/48", 64, "fd10:244:1::", -1, ""},
		{"fd10:244::/48", 64, "fd10:245::", -1, ""},
		{"fd10:244::/48", 64, "10.244.1.0", -1, ""},
		{"10.244.0.0/16", 24, "10.244.7.0", 7, "10.244.7.0/24"},
		{"10.244.0.0/16", 24, "10.244.7.9", 7, "10.244.7.0/24"},
		{"10.244.0.0/16", 24, "10.245.0.0", -1, ""},
		{"10.244.0.0/16", 24, "fd10:244::", -1, ""},
	} {
		_, network, _ := net.ParseCIDR(c.network)
		got := subnetIndex(network, c.subLen, net.ParseIP(c.ip))
		if c.want < 0 {
			if got != nil {
				t.Errorf("subnetIndex(%s, /%d, %s) = %v, want nil", c.network, c.subLen, c.ip, got)
			}
			continue
		}
		if got == nil || got.Cmp(big.NewInt(c.want)) != 0 {
			t.Errorf("subnetIndex(%s, /%d, %s) = %v, want %d", c.network, c.subLen, c.ip, got, c.want)
			continue
		}
		if n := nthSubnet(network, c.subLen, got); n.String() != c.sub {
			t.Errorf("nthSubnet(%s, /%d, %v) = %s, want %s", c.network, c.subLen, got, n, c.sub)
		}
	}
	if subnetIndex(&net.IPNet{IP: net.ParseIP("fd10::"), Mask: net.CIDRMask(48, 128)}, 64, nil) != nil {
		t.Error("nil IP has an index")
	}
}
