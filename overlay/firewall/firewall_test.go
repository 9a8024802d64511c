package firewall

import (
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

func cidr(s string) *net.IPNet { _, n, _ := net.ParseCIDR(s); return n }

func needTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"ip6tables-nft", "iptables-legacy", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

// Inside a fresh netns: IPv6 drops in the nft backend, IPv4 in the legacy
// one (a REJECT rule, as firewalld's iptables backend has): each family's
// rules land where its drop is; a second run changes nothing; a firewall
// reload (our chain flushed, the jump gone) is repaired; Remove undoes it.
func TestEnsureWhereTheDropIs(t *testing.T) {
	testutil.RequireRoot(t)
	needTools(t)
	n := testutil.NewNS(t)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("nsenter", append([]string{"--net=" + n.Path(), "--"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("ip6tables-nft", "-P", "FORWARD", "DROP")
	run("iptables-legacy", "-A", "FORWARD", "-j", "REJECT")
	nets := []*net.IPNet{cidr("fd10:244::/48"), cidr("10.244.0.0/16")}
	ensure := func() Result {
		t.Helper()
		var res Result
		err := n.Do(func(ns.NetNS) error {
			var err error
			res, err = Ensure(nets)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := ensure()
	if want := []string{"ip6tables-nft", "iptables-legacy"}; !slices.Equal(res.Backends, want) || !slices.Equal(res.Changed, want) {
		t.Fatalf("first Ensure: %+v, want backends and changed %v", res, want)
	}
	v6 := run("ip6tables-nft", "-S", "FORWARD")
	if !strings.Contains(v6, "-A FORWARD -j "+Chain) {
		t.Errorf("ip6tables-nft FORWARD has no jump:\n%s", v6)
	}
	if c := run("ip6tables-nft", "-S", Chain); !strings.Contains(c, "-A VXLAN6-FWD -s fd10:244::/48 -j ACCEPT") ||
		!strings.Contains(c, "-A VXLAN6-FWD -d fd10:244::/48 -j ACCEPT") || strings.Contains(c, "10.244") {
		t.Errorf("ip6tables-nft %s:\n%s", Chain, c)
	}
	// The jump comes before the REJECT.
	v4 := strings.Split(strings.TrimSpace(run("iptables-legacy", "-S", "FORWARD")), "\n")
	if len(v4) != 3 || v4[1] != "-A FORWARD -j "+Chain {
		t.Errorf("iptables-legacy FORWARD:\n%s", strings.Join(v4, "\n"))
	}
	if c := run("iptables-legacy", "-S", Chain); !strings.Contains(c, "-s 10.244.0.0/16 -j ACCEPT") {
		t.Errorf("iptables-legacy %s:\n%s", Chain, c)
	}
	// The IPv4 nft backend does not drop: untouched.
	if c := run("iptables-nft", "-S"); strings.Contains(c, Chain) {
		t.Errorf("iptables-nft got rules though it drops nothing:\n%s", c)
	}

	if res := ensure(); len(res.Changed) != 0 {
		t.Errorf("second Ensure changed %v", res.Changed)
	}
	run("ip6tables-nft", "-D", "FORWARD", "-j", Chain)
	run("ip6tables-nft", "-F", Chain)
	if res := ensure(); !slices.Equal(res.Changed, []string{"ip6tables-nft"}) {
		t.Errorf("after a reload Ensure changed %v, want [ip6tables-nft]", res.Changed)
	}
	if c := run("ip6tables-nft", "-S"); !strings.Contains(c, "-A FORWARD -j "+Chain) || !strings.Contains(c, "-s fd10:244::/48 -j ACCEPT") {
		t.Errorf("not repaired:\n%s", c)
	}

	if err := n.Do(func(ns.NetNS) error { return Remove() }); err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{"ip6tables-nft", "iptables-legacy"} {
		if c := run(bin, "-S"); strings.Contains(c, Chain) {
			t.Errorf("%s still has %s after Remove:\n%s", bin, Chain, c)
		}
	}
}

// No backend drops: the default one gets the rules, so a firewall started
// later is covered.
func TestEnsureDefaultBackend(t *testing.T) {
	testutil.RequireRoot(t)
	needTools(t)
	n := testutil.NewNS(t)
	var res Result
	err := n.Do(func(ns.NetNS) error {
		var err error
		res, err = Ensure([]*net.IPNet{cidr("fd10:244::/48")})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Backends) != 1 || !strings.HasPrefix(res.Backends[0], "ip6tables") {
		t.Fatalf("Ensure = %+v, want the default ip6tables backend only", res)
	}
	out, err := exec.Command("nsenter", "--net="+n.Path(), "--", res.Backends[0], "-S", "FORWARD").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-j "+Chain) {
		t.Fatalf("%s -S FORWARD: %v: %s", res.Backends[0], err, out)
	}
	// Looking for a drop did not create legacy tables (iptables-nft would
	// warn about them on every listing from then on).
	if res.Backends[0] != "ip6tables-legacy" {
		names, _ := exec.Command("nsenter", "--net="+n.Path(), "--", "cat", "/proc/thread-self/net/ip6_tables_names").CombinedOutput()
		if strings.TrimSpace(string(names)) != "" {
			t.Errorf("legacy ip6tables tables created: %q", names)
		}
	}
}

// A host without any iptables binary (an nftables-only install) has no
// iptables drop to work around: Ensure does nothing and reports no error,
// rather than failing on every resync.
func TestEnsureWithoutIptables(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	res, err := Ensure([]*net.IPNet{cidr("fd10:244::/48"), cidr("10.244.0.0/16")})
	if err != nil || len(res.Backends) != 0 || len(res.Changed) != 0 {
		t.Fatalf("Ensure without iptables = %+v, %v; want nothing and no error", res, err)
	}
}
