package ipnet

import (
	"net"
	"strings"
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

func TestSubnetsSame(t *testing.T) {
	a := Subnets{V6: cidr("fd10:0:0:1::/64"), V4: cidr("10.0.1.0/24")}
	for _, c := range []struct {
		b    Subnets
		want bool
	}{
		{Subnets{V6: cidr("fd10:0:0:1::5/64"), V4: cidr("10.0.1.9/24")}, true},
		{Subnets{V6: cidr("fd10:0:0:1::/64")}, false},
		{Subnets{V6: cidr("fd10:0:0:2::/64"), V4: cidr("10.0.1.0/24")}, false},
		{Subnets{V6: cidr("fd10:0:0:1::/64"), V4: cidr("10.0.2.0/24")}, false},
		{Subnets{}, false},
	} {
		if got := a.Same(c.b); got != c.want {
			t.Errorf("%v.Same(%v) = %v, want %v", a, c.b, got, c.want)
		}
	}
	if !(Subnets{}).Same(Subnets{}) || !(Subnets{V6: cidr("fd10::/64")}).Same(Subnets{V6: cidr("fd10::/64")}) {
		t.Error("nil V4 (single-stack) must compare equal")
	}
}

func TestSubnetsAll(t *testing.T) {
	for _, c := range []struct {
		s    Subnets
		want []string
	}{
		{Subnets{}, nil},
		{Subnets{V6: cidr("fd10::/64")}, []string{"fd10::/64"}},
		{Subnets{V4: cidr("10.0.0.0/24")}, []string{"10.0.0.0/24"}},
		{Subnets{V6: cidr("fd10::/64"), V4: cidr("10.0.0.0/24")}, []string{"fd10::/64", "10.0.0.0/24"}},
	} {
		var got []string
		for n := range c.s.All() {
			got = append(got, n.String())
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("All(%v) = %v, want %v", c.s, got, c.want)
		}
	}
	// Stopping early must not yield again.
	n := 0
	for range (Subnets{V6: cidr("fd10::/64"), V4: cidr("10.0.0.0/24")}).All() {
		n++
		break
	}
	if n != 1 {
		t.Errorf("early break yielded %d", n)
	}
}
