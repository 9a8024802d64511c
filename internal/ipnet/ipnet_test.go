package ipnet

import (
	"net"
	"testing"
)

func cidr(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

func TestSame(t *testing.T) {
	if !Same(nil, nil) || Same(nil, cidr("fd10::/64")) || Same(cidr("fd10::/64"), nil) {
		t.Error("nil handling")
	}
	if !Same(cidr("fd10::/64"), cidr("fd10::5/64")) || Same(cidr("fd10::/64"), cidr("fd10::/48")) {
		t.Error("prefix comparison")
	}
}

func TestContainsAndFits(t *testing.T) {
	n := cidr("fd10:244::/48")
	in, out, wrongLen := cidr("fd10:244:0:5::/64"), cidr("fd10:245:0:5::/64"), cidr("fd10:244:0:4::/62")
	if !Fits(n, 64, in) || Fits(n, 64, out) || Fits(n, 64, wrongLen) || Fits(n, 64, nil) || Fits(nil, 64, in) {
		t.Error("Fits is wrong")
	}
	if !Contains(n, wrongLen) || Contains(n, out) || Contains(in, n) || Contains(cidr("10.0.0.0/8"), cidr("::/120")) {
		t.Error("Contains is wrong")
	}
}

func TestOverlaps(t *testing.T) {
	v4 := cidr("10.0.0.0/8")
	v4.IP = v4.IP.To4()
	for _, c := range []struct {
		a, b *net.IPNet
		want bool
	}{
		{cidr("fd10:244::/48"), cidr("fd10:244:0:5::/64"), true},
		{cidr("fd10:244:0:5::/64"), cidr("fd10:244::/48"), true},
		{cidr("fd10:244::/48"), cidr("fd10:245::/48"), false},
		// The family is the mask's: an IPv4 net never overlaps IPv6 space,
		// not even IPv4-mapped.
		{cidr("::ffff:0:0/96"), v4, false},
		{v4, cidr("10.1.0.0/16"), true},
	} {
		if got := Overlaps(c.a, c.b); got != c.want {
			t.Errorf("Overlaps(%s, %s) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
