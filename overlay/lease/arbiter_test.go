package lease

import (
	"net"
	"testing"

	"github.com/vxlan6/vxlan6/internal/ipnet"
)

// TestArbiterFirstHolderWinsMAC is the case where the two old meanings of
// "older" disagreed: A is created first, B later with the same VtepMAC,
// then A is rewritten (a renewal of its record, a NodeName change), so B
// has the lower ModRevision. The daemon used to keep B (by ModRevision)
// while lease kept A for subnets (by CreateRevision); now there is one
// answer, the first holder: A, in List and in Watch.
func TestArbiterFirstHolderWinsMAC(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgV6)
	p := v.r.LeasesPrefix()
	const mac = `"VtepMAC":"02:00:00:00:00:aa"`
	v.put(p+"2001:db8::a", `{"VTEP":"2001:db8::a","IPv6Subnet":"fd10:244:0:a::/64",`+mac+`,"NodeName":"a"}`)
	v.put(p+"2001:db8::b", `{"VTEP":"2001:db8::b","IPv6Subnet":"fd10:244:0:b::/64",`+mac+`,"NodeName":"b"}`)
	v.put(p+"2001:db8::a", `{"VTEP":"2001:db8::a","IPv6Subnet":"fd10:244:0:a::/64",`+mac+`,"NodeName":"a-renamed"}`)

	snap := v.list(cfg)
	if got := vteps(snap.Leases); got != "2001:db8::a" || snap.Skipped != 1 {
		t.Fatalf("List = %s (skipped %d); want the first holder 2001:db8::a only", got, snap.Skipped)
	}
	a := snap.Leases[0]
	if a.CreateRevision == 0 || a.CreateRevision >= a.ModRevision {
		t.Fatalf("lease A: CreateRevision %d ModRevision %d; want created before its last write", a.CreateRevision, a.ModRevision)
	}

	// The watch agrees, and keeps agreeing as records change.
	ch := v.r.WatchSnapshot(v.ctx, cfg, snap)
	v.put(p+"2001:db8::a", `{"VTEP":"2001:db8::a","IPv6Subnet":"fd10:244:0:a::/64",`+mac+`,"NodeName":"a-again"}`)
	wantEvents(t, ch, "added 2001:db8::a")
	v.put(p+"2001:db8::b", `{"VTEP":"2001:db8::b","IPv6Subnet":"fd10:244:0:b::/64",`+mac+`,"NodeName":"b-again"}`)
	noMoreEvents(t, ch)
	if _, err := v.cli.Delete(v.ctx, p+"2001:db8::a"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, ch, "removed 2001:db8::a, added 2001:db8::b")
	// A comes back: now B is the first holder.
	v.put(p+"2001:db8::a", `{"VTEP":"2001:db8::a","IPv6Subnet":"fd10:244:0:a::/64",`+mac+`,"NodeName":"a-back"}`)
	noMoreEvents(t, ch)
	if got := vteps(v.list(cfg).Leases); got != "2001:db8::b" {
		t.Fatalf("List after A came back = %s; want 2001:db8::b", got)
	}
}

// TestSelfJudge: what the arbiter refuses because of this node.
func TestSelfJudge(t *testing.T) {
	_, own6, _ := net.ParseCIDR("fd10:244:0:1::/64")
	_, other6, _ := net.ParseCIDR("fd10:244:0:2::/64")
	ourMAC := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	self := Self{
		VTEPs: []net.IP{net.ParseIP("2001:db8::1"), net.ParseIP("2001:db8::100")},
		MAC:   ourMAC,
		Lease: &Lease{Subnets: ipnet.Subnets{V6: own6}},
		Local: func(ip net.IP) bool { return ip.Equal(net.ParseIP("2001:db8::7")) },
	}
	peer := func(vtep string, mac net.HardwareAddr, s *net.IPNet) *Lease {
		return &Lease{VTEP: net.ParseIP(vtep), VtepMAC: mac, Subnets: ipnet.Subnets{V6: s}}
	}
	other := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	for _, tc := range []struct {
		l    *Lease
		want string
	}{
		{peer("2001:db8::2", other, other6), ""},
		{peer("2001:db8::1", other, other6), "claims our own VTEP"},
		{peer("2001:db8::100", other, other6), "claims our own VTEP"},
		{peer("2001:db8::7", other, other6), "VTEP 2001:db8::7 is one of this host's addresses"},
		{peer("2001:db8::2", ourMAC, other6), "claims our VTEP MAC 02:00:00:00:00:01"},
		{peer("2001:db8::2", other, own6), "IPv6 subnet fd10:244:0:1::/64 is ours"},
	} {
		if got := self.Judge(tc.l); got != tc.want {
			t.Errorf("Judge(%s %s %s) = %q, want %q", tc.l.VTEP, tc.l.VtepMAC, tc.l.Subnets.V6, got, tc.want)
		}
	}
}
