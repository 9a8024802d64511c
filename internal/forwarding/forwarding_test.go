package forwarding

import (
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

func nsRun(t *testing.T, n ns.NetNS, args ...string) { t.Helper(); nsRunT(t, n, args...) }

func nsRunT(t testing.TB, n ns.NetNS, args ...string) {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + n.Path(), "--"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func get(t *testing.T, n ns.NetNS, key string) string {
	t.Helper()
	var v string
	_ = n.Do(func(ns.NetNS) error {
		var err error
		v, err = sysctl.Sysctl(key)
		if err != nil {
			t.Errorf("read %s: %v", key, err)
		}
		return nil
	})
	return strings.TrimSpace(v)
}

// Each kind of link the rules tell apart, in a fresh netns (accept_ra 1 on
// every new link, forwarding 0).
func TestEnableKeepsRA(t *testing.T) {
	testutil.RequireRoot(t)
	n := testutil.NewNS(t)
	// This kernel has no dummy links: macvlans on a bridge stand in for
	// uplinks.
	nsRun(t, n, "ip", "link", "add", "par0", "type", "bridge")
	nsRun(t, n, "ip", "link", "set", "par0", "up")
	for _, c := range [][]string{
		// slaac0: a SLAAC-like dynamic global address.
		{"ip", "link", "add", "slaac0", "link", "par0", "type", "macvlan"},
		{"ip", "addr", "add", "2001:db8:a::1/64", "dev", "slaac0", "valid_lft", "3600", "preferred_lft", "3600", "nodad"},
		// ra0: an RA-learned default route.
		{"ip", "link", "add", "ra0", "link", "par0", "type", "macvlan"},
		// static0: static addresses only; nothing learned from RAs.
		{"ip", "link", "add", "static0", "link", "par0", "type", "macvlan"},
		{"ip", "addr", "add", "2001:db8:c::1/64", "dev", "static0", "nodad"},
		// op0: the operator turned RAs off (or a userspace daemon has them).
		{"ip", "link", "add", "op0", "link", "par0", "type", "macvlan"},
		{"ip", "addr", "add", "2001:db8:d::1/64", "dev", "op0", "valid_lft", "3600", "preferred_lft", "3600", "nodad"},
		// br0 and veth0: container-facing, even with a dynamic address.
		{"ip", "link", "add", "br0", "type", "bridge"},
		{"ip", "addr", "add", "2001:db8:e::1/64", "dev", "br0", "valid_lft", "3600", "preferred_lft", "3600", "nodad"},
		{"ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1"},
		{"ip", "addr", "add", "2001:db8:f::1/64", "dev", "veth0", "valid_lft", "3600", "preferred_lft", "3600", "nodad"},
		// ul0: the underlay, a bridge holding the VTEP address.
		{"ip", "link", "add", "ul0", "type", "bridge"},
		{"ip", "addr", "add", "2001:db8:1::5/64", "dev", "ul0", "nodad"},
	} {
		nsRun(t, n, c...)
	}
	for _, l := range []string{"slaac0", "ra0", "static0", "op0", "br0", "veth0", "veth1", "ul0"} {
		nsRun(t, n, "ip", "link", "set", l, "up")
	}
	nsRun(t, n, "ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "ra0", "proto", "ra")
	nsRun(t, n, "sysctl", "-qw", "net.ipv6.conf.op0.accept_ra=0")

	var changed []string
	err := n.Do(func(ns.NetNS) error {
		var err error
		changed, err = Enable(false, Underlay{Addr: net.ParseIP("2001:db8:1::5")})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(changed)
	if want := []string{"ra0", "slaac0", "ul0"}; !slices.Equal(changed, want) {
		t.Errorf("changed %v, want %v", changed, want)
	}
	for l, want := range map[string]string{
		"slaac0": "2", "ra0": "2", "ul0": "2",
		"static0": "1", "op0": "0", "br0": "1", "par0": "1", "veth0": "1", "veth1": "1",
	} {
		if got := get(t, n, "net/ipv6/conf/"+l+"/accept_ra"); got != want {
			t.Errorf("%s accept_ra = %s, want %s", l, got, want)
		}
	}
	if got := get(t, n, fwd6); got != "1" {
		t.Errorf("IPv6 forwarding %s, want 1", got)
	}
	// IPv6-only: IPv4 forwarding stays off.
	if got := get(t, n, fwd4); got != "0" {
		t.Errorf("IPv4 forwarding %s for an IPv6-only network, want 0", got)
	}
	// The RA route survived the forwarding write.
	out, _ := exec.Command("nsenter", "--net="+n.Path(), "--", "ip", "-6", "route", "show", "default").CombinedOutput()
	if !strings.Contains(string(out), "proto ra") {
		t.Errorf("RA default route gone after enabling forwarding: %q", out)
	}

	// Forwarding on already: a link recreated since (accept_ra 1 again) is
	// still raised; an operator's 2 is left as is and not reported.
	nsRun(t, n, "ip", "link", "del", "ra0")
	nsRun(t, n, "ip", "link", "add", "ra0", "link", "par0", "type", "macvlan")
	nsRun(t, n, "ip", "link", "set", "ra0", "up")
	nsRun(t, n, "ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "ra0", "proto", "ra")
	err = n.Do(func(ns.NetNS) error {
		var err error
		changed, err = Enable(true, Underlay{Addr: net.ParseIP("2001:db8:1::5")})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(changed, []string{"ra0"}) {
		t.Errorf("second call changed %v, want [ra0]", changed)
	}
	if got := get(t, n, fwd4); got != "1" {
		t.Errorf("IPv4 forwarding %s for a dual-stack network, want 1", got)
	}
}
