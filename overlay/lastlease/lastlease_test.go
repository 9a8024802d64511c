package lastlease

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/vxlan6/vxlan6/internal/ipnet"
)

func cidr(s string) *net.IPNet { _, n, _ := net.ParseCIDR(s); return n }

func TestSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "lease.json")
	if _, err := Load(path); !errors.Is(err, ErrNone) {
		t.Fatalf("Load of a missing file: %v, want ErrNone", err)
	}
	in := &Last{NodeName: "n1", VTEP: net.ParseIP("2001:db8::1"), Networks: ipnet.Subnets{V6: cidr("fd10:244::/48"), V4: cidr("10.244.0.0/16")},
		Subnets: ipnet.Subnets{V6: cidr("fd10:244:0:7::/64"), V4: cidr("10.244.7.0/24")}}
	if err := Save(path, in); err != nil {
		t.Fatal(err)
	}
	out, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if out.NodeName != "n1" || !out.VTEP.Equal(in.VTEP) || out.Subnets.V6.String() != "fd10:244:0:7::/64" ||
		out.Networks.V6.String() != "fd10:244::/48" || out.Subnets.V4.String() != "10.244.7.0/24" || out.Networks.V4.String() != "10.244.0.0/16" {
		t.Fatalf("round trip: %+v", out)
	}
	if err := os.WriteFile(path, []byte(`{"VTEP":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil {
		t.Fatal("Load accepted a bad VTEP")
	}
}
