package admin

import (
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/ipam"
	"github.com/vxlan6/vxlan6/plugins/vxlan6/link"
)

// TestIPAMListAndRelease: allocations made through the ipam package are
// listed live while their host veth exists (a real veth in a throwaway
// netns) and stale otherwise; a live one is released only with --force.
func TestIPAMListAndRelease(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	s, err := ipam.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, subnet, _ := net.ParseCIDR("fd10:244:0:1::/64")
	for _, id := range []string{"live1", "stale1"} {
		if _, err := s.Allocate(id, "eth0", []*net.IPNet{subnet}, nil); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	netns := testutil.NewNS(t)
	err = netns.Do(func(ns.NetNS) error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: link.HostVethName("live1", "eth0")}, PeerName: "peer1"}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		code, out, errOut, _ := testCLI(t, nil, "", "ipam", "list", "--data-dir", dir, "-o", "json")
		var views []allocationView
		if err := json.Unmarshal([]byte(out), &views); code != 0 || err != nil || len(views) != 2 {
			t.Fatalf("ipam list: exit %d %v %q %s", code, err, out, errOut)
		}
		for _, v := range views {
			want := map[string]string{"live1": "live", "stale1": "stale"}[v.ContainerID]
			if v.State != want || v.IfName != "eth0" || len(v.Addresses) != 1 || !subnet.Contains(net.ParseIP(v.Addresses[0])) {
				t.Errorf("allocation %+v, want state %s", v, want)
			}
		}
		if code, out, _, _ := testCLI(t, nil, "", "ipam", "--data-dir", dir); code != 0 || !strings.Contains(out, "CONTAINER ID") || !strings.Contains(out, "stale") {
			t.Errorf("ipam list table: %d %s", code, out)
		}
		if code, _, errOut, _ := testCLI(t, nil, "", "ipam", "release", "--data-dir", dir, "live1", "eth0"); code != ExitError || !strings.Contains(errOut, "--force") {
			t.Errorf("release live without --force: exit %d %s", code, errOut)
		}
		for _, args := range [][]string{{"stale1", "eth0"}, {"--force", "live1", "eth0"}} {
			if code, out, errOut, _ := testCLI(t, nil, "", append([]string{"ipam", "release", "--data-dir", dir}, args...)...); code != 0 || !strings.Contains(out, "released fd10:244:0:1::") {
				t.Errorf("release %v: exit %d %s%s", args, code, out, errOut)
			}
		}
		missing := dir + "/nonexistent"
		if code, _, errOut, _ := testCLI(t, nil, "", "ipam", "--data-dir", missing); code != ExitError || !strings.Contains(errOut, missing) {
			t.Errorf("ipam on a missing dataDir: exit %d %s", code, errOut)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Errorf("ipam list created %s", missing)
		}
		if code, _, errOut, _ := testCLI(t, nil, "", "ipam", "release", "--data-dir", dir, "stale1", "eth0"); code != ExitError || !strings.Contains(errOut, "no allocation") {
			t.Errorf("release twice: exit %d %s", code, errOut)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
