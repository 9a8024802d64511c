package testutil

import "net"

// MustCIDR parses a CIDR literal of a test into its network (the address
// masked: "fd10:244:0:1::5/64" gives fd10:244:0:1::/64); it panics on a
// malformed literal, like regexp.MustCompile.
func MustCIDR(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// MustAddrCIDR parses a CIDR literal into the address with its mask, as an
// interface address is written ("2001:db8::1/64" keeps ::1); it panics on a
// malformed literal.
func MustAddrCIDR(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}
