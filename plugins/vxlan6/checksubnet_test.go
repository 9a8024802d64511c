package main

import (
	"net"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/subnetfile"
)

// When vxlan6d cannot get the node's earlier subnet back it writes another
// one into the subnet file: CHECK of a container still on the old subnet
// fails with errOutsideNodeSubnet, naming the container's address and the
// node subnet now in the file; with the old subnet back, CHECK passes again.
func TestCheckOutsideNodeSubnet(t *testing.T) {
	orig := dualSubnet()
	e := newEnv(t, orig)
	l := e.list("1.0.0")
	c := e.newContainer()
	r := e.mustAdd(l, c.rt())
	if err := e.check(l, c.rt()); err != nil {
		t.Fatalf("CHECK right after ADD: %v", err)
	}
	v6, v4 := familyAddr(t, r, false), familyAddr(t, r, true)

	lostV6 := dualSubnet()
	lostV6.Subnets.V6 = testutil.MustCIDR("fd10:244:0:7::/64")
	lostV4 := dualSubnet()
	lostV4.Subnets.V4 = testutil.MustCIDR("10.244.7.0/24")
	for _, tc := range []struct {
		name     string
		sf       *subnetfile.Config
		mentions []string // what the error must name
	}{
		{"IPv6 subnet lost", lostV6, []string{v6.String(), "fd10:244:0:7::/64", e.subnetFile}},
		{"IPv4 subnet lost", lostV4, []string{v4.String(), "10.244.7.0/24", e.subnetFile}},
		{"no IPv4 subnet now", v6Subnet(), []string{v4.String(), "fd10:244:0:1::/64", e.subnetFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.writeSubnet(tc.sf)
			err := e.check(l, c.rt())
			wantCode(t, err, errOutsideNodeSubnet)
			for _, m := range tc.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("CHECK error does not name %s: %v", m, err)
				}
			}
			e.writeSubnet(orig)
			if err := e.check(l, c.rt()); err != nil {
				t.Errorf("CHECK with the original subnet back: %v", err)
			}
		})
	}
	// The attachment is untouched by the failed CHECKs.
	c.ping(t, r.IPs[0].Gateway)
	e.mustDel(l, c.rt())
	e.assertClean(0)
}

// familyAddr is the result's address of one family.
func familyAddr(t *testing.T, r *current.Result, v4 bool) net.IP {
	t.Helper()
	for _, ipc := range r.IPs {
		if (ipc.Address.IP.To4() != nil) == v4 {
			return ipc.Address.IP
		}
	}
	t.Fatalf("result %v has no address with v4=%v", r, v4)
	return nil
}
