package ipam

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

func openTest(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := OpenWithOptions(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func alloc(t testing.TB, s *Store, id, ifname string, subnets ...*net.IPNet) []net.IP {
	t.Helper()
	ips, err := s.Allocate(id, ifname, subnets, nil)
	if err != nil {
		t.Fatalf("allocate %s/%s: %v", id, ifname, err)
	}
	if len(ips) != len(subnets) {
		t.Fatalf("allocate %s/%s: got %d addresses for %d subnets", id, ifname, len(ips), len(subnets))
	}
	for i, ip := range ips {
		if !subnets[i].Contains(ip) {
			t.Fatalf("allocate %s/%s: %s not in %s", id, ifname, ip, subnets[i])
		}
	}
	return ips
}

func TestGateway(t *testing.T) {
	for in, want := range map[string]string{
		"fd00:1:2:3::/64": "fd00:1:2:3::1",
		"10.1.2.0/24":     "10.1.2.1",
		"10.1.2.128/25":   "10.1.2.129",
	} {
		if got := Gateway(testutil.MustCIDR(in)); got.String() != want {
			t.Errorf("Gateway(%s) = %s, want %s", in, got, want)
		}
	}
	if got := Gateway(testutil.MustCIDR("10.1.2.0/24")); len(got) != net.IPv4len {
		t.Errorf("Gateway of an IPv4 subnet has %d bytes, want 4", len(got))
	}
}

func TestRoundTrip(t *testing.T) {
	s, _ := openTest(t, Options{})
	v6 := testutil.MustCIDR("fd00:10::/64")
	ips := alloc(t, s, "c1", "eth0", v6)
	if ips[0].Equal(v6.IP) || ips[0].Equal(Gateway(v6)) {
		t.Fatalf("handed out reserved address %s", ips[0])
	}
	a, err := s.Get("c1", "eth0")
	if err != nil || a == nil || a.ContainerID != "c1" || a.IfName != "eth0" || len(a.IPs) != 1 || !a.IPs[0].Equal(ips[0]) {
		t.Fatalf("Get = %+v, %v; want c1/eth0 %s", a, err, ips[0])
	}
	if a, err := s.Get("c1", "eth1"); err != nil || a != nil {
		t.Fatalf("Get of another ifname = %+v, %v; want nil", a, err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].ContainerID != "c1" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	for range 2 { // idempotent
		if err := s.Release("c1", "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	if a, err := s.Get("c1", "eth0"); err != nil || a != nil {
		t.Fatalf("Get after Release = %+v, %v; want nil", a, err)
	}
	if list, err := s.List(); err != nil || len(list) != 0 {
		t.Fatalf("List after Release = %+v, %v", list, err)
	}
	if err := s.Release("never", "eth0"); err != nil {
		t.Fatalf("Release of an unknown pair: %v", err)
	}
}

func TestIdempotentRepeat(t *testing.T) {
	s, _ := openTest(t, Options{})
	v6, v4 := testutil.MustCIDR("fd00:10::/64"), testutil.MustCIDR("10.10.0.0/24")
	first := alloc(t, s, "c1", "eth0", v6, v4)
	alloc(t, s, "c2", "eth0", v6, v4)
	for range 3 {
		again := alloc(t, s, "c1", "eth0", v6, v4)
		if !again[0].Equal(first[0]) || !again[1].Equal(first[1]) {
			t.Fatalf("repeat gave %v, first %v", again, first)
		}
	}
	// Same ID, other interface: a separate allocation.
	other := alloc(t, s, "c1", "net1", v6, v4)
	if other[0].Equal(first[0]) || other[1].Equal(first[1]) {
		t.Fatalf("c1/net1 got c1/eth0's addresses %v", other)
	}
}

func TestDualStackOrder(t *testing.T) {
	s, _ := openTest(t, Options{})
	v6, v4 := testutil.MustCIDR("fd00:10::/64"), testutil.MustCIDR("10.10.0.0/24")
	ips := alloc(t, s, "a", "eth0", v6, v4)
	if ips[0].To4() != nil || ips[1].To4() == nil || len(ips[1]) != net.IPv4len {
		t.Fatalf("v6,v4 order: got %v", ips)
	}
	ips = alloc(t, s, "b", "eth0", v4, v6)
	if ips[0].To4() == nil || ips[1].To4() != nil {
		t.Fatalf("v4,v6 order: got %v", ips)
	}
}

func TestReservedAddresses(t *testing.T) {
	s, _ := openTest(t, Options{})
	// /30: .0 network, .1 gateway, .3 broadcast: only .2 is assignable.
	v4 := testutil.MustCIDR("10.20.0.0/30")
	if ips := alloc(t, s, "a", "eth0", v4); ips[0].String() != "10.20.0.2" {
		t.Fatalf("got %s, want 10.20.0.2", ips[0])
	}
	if _, err := s.Allocate("b", "eth0", []*net.IPNet{v4}, nil); !errors.Is(err, ErrExhausted) {
		t.Fatalf("second allocation in a /30: %v, want ErrExhausted", err)
	}
	// /126: ::0 network, ::1 gateway; ::2 and ::3 (no broadcast in IPv6).
	v6 := testutil.MustCIDR("fd00:20::/126")
	got := map[string]bool{}
	for _, id := range []string{"a", "b"} {
		got[alloc(t, s, id, "eth0", v6)[0].String()] = true
	}
	if !got["fd00:20::2"] || !got["fd00:20::3"] {
		t.Fatalf("got %v, want fd00:20::2 and ::3", got)
	}
	if _, err := s.Allocate("c", "eth0", []*net.IPNet{v6}, nil); !errors.Is(err, ErrExhausted) {
		t.Fatalf("third allocation in a /126: %v, want ErrExhausted", err)
	}
	for _, tc := range []struct{ subnet, ip, why string }{
		{"10.30.0.0/24", "10.30.0.0", "network"},
		{"10.30.0.0/24", "10.30.0.1", "gateway"},
		{"10.30.0.0/24", "10.30.0.255", "broadcast"},
		{"fd00:30::/64", "fd00:30::", "network"},
		{"fd00:30::/64", "fd00:30::1", "gateway"},
	} {
		_, err := s.Allocate("r", "eth0", []*net.IPNet{testutil.MustCIDR(tc.subnet)}, []net.IP{net.ParseIP(tc.ip)})
		if !errors.Is(err, ErrOutsideSubnet) || !strings.Contains(err.Error(), tc.ip) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("request %s in %s: %v, want ErrOutsideSubnet naming it the %s address", tc.ip, tc.subnet, err, tc.why)
		}
	}
	for _, n := range []string{"10.0.0.0/31", "10.0.0.0/32", "fd00::/127", "fd00::/128"} {
		if _, err := s.Allocate("t", "eth0", []*net.IPNet{testutil.MustCIDR(n)}, nil); err == nil {
			t.Errorf("allocation from %s (nothing assignable) succeeded", n)
		}
	}
}

func TestStaticRequests(t *testing.T) {
	s, _ := openTest(t, Options{})
	v6, v4 := testutil.MustCIDR("fd00:40::/64"), testutil.MustCIDR("10.40.0.0/24")
	want := []net.IP{net.ParseIP("10.40.0.77"), net.ParseIP("fd00:40::77")}
	ips, err := s.Allocate("a", "eth0", []*net.IPNet{v6, v4}, want)
	if err != nil {
		t.Fatal(err)
	}
	if !ips[0].Equal(want[1]) || !ips[1].Equal(want[0]) {
		t.Fatalf("got %v, want fd00:40::77 10.40.0.77 (in subnet order)", ips)
	}
	// Repeating the same request is idempotent.
	if again, err := s.Allocate("a", "eth0", []*net.IPNet{v6, v4}, want); err != nil || !again[0].Equal(ips[0]) {
		t.Fatalf("repeat: %v, %v", again, err)
	}
	// Taken by another pair.
	_, err = s.Allocate("b", "eth0", []*net.IPNet{v6}, []net.IP{net.ParseIP("fd00:40::77")})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "fd00:40::77") || !strings.Contains(err.Error(), "fd00:40::/64") {
		t.Fatalf("request of a held address: %v, want ErrInUse naming address and subnet", err)
	}
	// Outside every subnet.
	_, err = s.Allocate("b", "eth0", []*net.IPNet{v6, v4}, []net.IP{net.ParseIP("10.41.0.5")})
	if !errors.Is(err, ErrOutsideSubnet) || !strings.Contains(err.Error(), "10.41.0.5") || !strings.Contains(err.Error(), "10.40.0.0/24") {
		t.Fatalf("request outside: %v, want ErrOutsideSubnet naming address and subnets", err)
	}
	// Dual-stack where the second subnet fails: nothing stays for b.
	_, err = s.Allocate("b", "eth0", []*net.IPNet{v6, v4}, []net.IP{net.ParseIP("10.40.0.77")})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("got %v, want ErrInUse", err)
	}
	if a, err := s.Get("b", "eth0"); err != nil || a != nil {
		t.Fatalf("after a failed Allocate b holds %+v, %v", a, err)
	}
	// Two requests in one subnet.
	if _, err := s.Allocate("c", "eth0", []*net.IPNet{v6}, []net.IP{net.ParseIP("fd00:40::5"), net.ParseIP("fd00:40::6")}); err == nil {
		t.Fatal("two requested addresses in one subnet accepted")
	}
	// A pair that asks for a different address gets it; its old one is freed.
	if _, err := s.Allocate("a", "eth0", []*net.IPNet{v6, v4}, []net.IP{net.ParseIP("fd00:40::78")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Allocate("b", "eth0", []*net.IPNet{v6}, []net.IP{net.ParseIP("fd00:40::77")}); err != nil {
		t.Fatalf("fd00:40::77 should be free again: %v", err)
	}
}

func TestExhaustionIPv4(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true})
	v4 := testutil.MustCIDR("10.50.0.0/24")
	seen := map[string]string{}
	for i := range 253 {
		id := fmt.Sprintf("c%d", i)
		ip := alloc(t, s, id, "eth0", v4)[0].String()
		if prev, dup := seen[ip]; dup {
			t.Fatalf("%s handed to %s and %s", ip, prev, id)
		}
		if ip == "10.50.0.0" || ip == "10.50.0.1" || ip == "10.50.0.255" {
			t.Fatalf("reserved %s handed out", ip)
		}
		seen[ip] = id
	}
	if free, err := s.Free(v4); err != nil || free {
		t.Fatalf("Free on a full /24 = %v, %v", free, err)
	}
	_, err := s.Allocate("full", "eth0", []*net.IPNet{v4}, nil)
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "10.50.0.0/24") {
		t.Fatalf("254th allocation: %v, want ErrExhausted naming the subnet", err)
	}
	if a, _ := s.Get("full", "eth0"); a != nil {
		t.Fatalf("failed allocation left %+v", a)
	}
	if err := s.Release("c100", "eth0"); err != nil {
		t.Fatal(err)
	}
	if free, err := s.Free(v4); err != nil || !free {
		t.Fatalf("Free after one release = %v, %v", free, err)
	}
	ip := alloc(t, s, "full", "eth0", v4)[0].String()
	if seen[ip] != "c100" {
		t.Fatalf("got %s, want c100's freed address", ip)
	}
}

func TestIPv6Thousands(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true})
	v6 := testutil.MustCIDR("fd00:60:0:1::/64")
	const n = 5000
	seen := make(map[string]bool, n)
	for i := range n {
		ip := alloc(t, s, fmt.Sprintf("c%d", i), "eth0", v6)[0].String()
		if seen[ip] {
			t.Fatalf("%s handed out twice", ip)
		}
		seen[ip] = true
	}
	if free, err := s.Free(v6); err != nil || !free {
		t.Fatalf("Free = %v, %v", free, err)
	}
	for i := 0; i < n; i += 2 {
		if err := s.Release(fmt.Sprintf("c%d", i), "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List()
	if err != nil || len(list) != n/2 {
		t.Fatalf("List: %d allocations, %v; want %d", len(list), err, n/2)
	}
	// The cursor moves on: fresh addresses, not the ones just freed.
	for i := range 100 {
		ip := alloc(t, s, fmt.Sprintf("d%d", i), "eth0", v6)[0].String()
		if seen[ip] {
			t.Fatalf("%s reused right after release", ip)
		}
		seen[ip] = true
	}
}

func TestCursorWrapsAndSkipsHeld(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true})
	v4 := testutil.MustCIDR("10.70.0.0/28") // .2 .. .14: 13 addresses
	for i := range 13 {
		alloc(t, s, fmt.Sprintf("c%d", i), "eth0", v4)
	}
	for _, id := range []string{"c3", "c9"} {
		if err := s.Release(id, "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	for _, id := range []string{"x", "y"} {
		got[alloc(t, s, id, "eth0", v4)[0].String()] = true
	}
	if !got["10.70.0.5"] || !got["10.70.0.11"] {
		t.Fatalf("got %v, want the two freed addresses .5 and .11", got)
	}
	if _, err := s.Allocate("z", "eth0", []*net.IPNet{v4}, nil); !errors.Is(err, ErrExhausted) {
		t.Fatalf("got %v, want ErrExhausted", err)
	}
}

func TestSubnetChange(t *testing.T) {
	s, _ := openTest(t, Options{})
	oldNet, newNet := testutil.MustCIDR("fd00:80:0:1::/64"), testutil.MustCIDR("fd00:80:0:2::/64")
	old := alloc(t, s, "moved", "eth0", oldNet)
	stay := alloc(t, s, "stayed", "eth0", oldNet)

	// The node got a new subnet: the same pair gets a fresh address from it.
	fresh := alloc(t, s, "moved", "eth0", newNet)
	if a, _ := s.Get("moved", "eth0"); a == nil || len(a.IPs) != 1 || !a.IPs[0].Equal(fresh[0]) {
		t.Fatalf("after the change moved holds %+v, want only %s", a, fresh[0])
	}
	// Its old address is free again, so a requester may have it.
	if _, err := s.Allocate("other", "eth0", []*net.IPNet{oldNet}, []net.IP{old[0]}); err != nil {
		t.Fatalf("old address %s not freed: %v", old[0], err)
	}
	// Allocations in the old subnet stay listed and releasable.
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range list {
		found = found || a.ContainerID == "stayed" && a.IPs[0].Equal(stay[0])
	}
	if !found {
		t.Fatalf("List lost stayed/eth0 (%s): %+v", stay[0], list)
	}
	for range 50 {
		ip := alloc(t, s, "n", "eth0", newNet)[0]
		if err := s.Release("n", "eth0"); err != nil {
			t.Fatal(err)
		}
		if oldNet.Contains(ip) {
			t.Fatalf("handed out %s from the old subnet", ip)
		}
	}
	if err := s.Release("stayed", "eth0"); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Get("stayed", "eth0"); a != nil {
		t.Fatalf("stayed still holds %+v", a)
	}
}

func TestPersistenceAcrossOpen(t *testing.T) {
	dir := t.TempDir()
	v6, v4 := testutil.MustCIDR("fd00:90::/64"), testutil.MustCIDR("10.90.0.0/24")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	first := alloc(t, s, "p", "eth0", v6, v4)
	alloc(t, s, "q", "eth0", v6, v4)
	if err := s.Release("q", "eth0"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	again := alloc(t, s, "p", "eth0", v6, v4)
	if !again[0].Equal(first[0]) || !again[1].Equal(first[1]) {
		t.Fatalf("after reopen got %v, want %v", again, first)
	}
	// The cursor persisted too: the next pair does not get q's freed address.
	r := alloc(t, s, "r", "eth0", v6)
	if r[0].Equal(first[0]) || r[0].String() == "fd00:90::3" {
		t.Fatalf("after reopen r got %s", r[0])
	}
}

func TestLeftoverTempFileIsHarmless(t *testing.T) {
	dir := t.TempDir()
	v6 := testutil.MustCIDR("fd00:a0::/64")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ip := alloc(t, s, "p", "eth0", v6)
	s.Close()

	// A process died between writing a temp record and renaming it.
	leftover := filepath.Join(dir, "tmp", "12345.1")
	if err := os.WriteFile(leftover, []byte(`{"containerID":"ghost","ifName":"eth0","ips":["fd00:a0::9"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].ContainerID != "p" || !list[0].IPs[0].Equal(ip[0]) {
		t.Fatalf("List = %+v, %v; want only p", list, err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("leftover temp file not removed by the first operation: %v", err)
	}
	if _, err := s.Allocate("x", "eth0", []*net.IPNet{v6}, []net.IP{net.ParseIP("fd00:a0::9")}); err != nil {
		t.Fatalf("address named only in a temp file is not free: %v", err)
	}
}

// A crash after the record grew but before the reservation was made: the
// address is not held (another pair may take it), and the pair can repeat or
// release without trouble.
func TestCrashBeforeReserve(t *testing.T) {
	s, dir := openTest(t, Options{})
	v6 := testutil.MustCIDR("fd00:b0::/64")
	rec := `{"containerID":"p","ifName":"eth0","ips":["fd00:b0::42"]}`
	if err := os.WriteFile(filepath.Join(dir, "pairs", recordName("p", "eth0")), []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Get("p", "eth0"); err != nil || a != nil {
		t.Fatalf("Get = %+v, %v; want nil (nothing is reserved)", a, err)
	}
	// The repeat takes the listed address back.
	if ip := alloc(t, s, "p", "eth0", v6); ip[0].String() != "fd00:b0::42" {
		t.Fatalf("repeat got %s, want fd00:b0::42", ip[0])
	}
	if err := s.Release("p", "eth0"); err != nil {
		t.Fatal(err)
	}
	// Same crash, but another pair took the address meanwhile.
	if err := os.WriteFile(filepath.Join(dir, "pairs", recordName("p", "eth0")), []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Allocate("q", "eth0", []*net.IPNet{v6}, []net.IP{net.ParseIP("fd00:b0::42")}); err != nil {
		t.Fatal(err)
	}
	if ip := alloc(t, s, "p", "eth0", v6); ip[0].String() == "fd00:b0::42" {
		t.Fatal("p got q's address")
	}
	if err := s.Release("p", "eth0"); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Get("q", "eth0"); a == nil || a.IPs[0].String() != "fd00:b0::42" {
		t.Fatalf("p's release touched q: %+v", a)
	}
}

// Power loss can leave a renamed record with no content; the reservations
// still name their owner, so Get, List and Release recover.
func TestTornRecord(t *testing.T) {
	s, dir := openTest(t, Options{})
	v6, v4 := testutil.MustCIDR("fd00:c0::/64"), testutil.MustCIDR("10.0.192.0/24")
	ips := alloc(t, s, "p", "eth0", v6, v4)
	if err := os.WriteFile(filepath.Join(dir, "pairs", recordName("p", "eth0")), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Get("p", "eth0"); err != nil || a == nil || len(a.IPs) != 2 {
		t.Fatalf("Get = %+v, %v; want both %v", a, err, ips)
	}
	if list, err := s.List(); err != nil || len(list) != 1 || len(list[0].IPs) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if again := alloc(t, s, "p", "eth0", v6, v4); !again[0].Equal(ips[0]) || !again[1].Equal(ips[1]) {
		t.Fatalf("repeat got %v, want %v", again, ips)
	}
	if err := os.WriteFile(filepath.Join(dir, "pairs", recordName("p", "eth0")), []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Release("p", "eth0"); err != nil {
		t.Fatal(err)
	}
	if names, _ := readDirNames(filepath.Join(dir, "ips")); len(names) != 0 {
		t.Fatalf("reservations left after Release: %v", names)
	}
}

func TestUnusualIdentifiers(t *testing.T) {
	s, _ := openTest(t, Options{})
	v6 := testutil.MustCIDR("fd00:d0::/64")
	pairs := [][2]string{
		{strings.Repeat("a", 300), "eth0"}, // record name would be too long: hashed
		{"x+y/z%.", "eth+0"},
		{".hidden", "net1"},
		{"k8s_pod.ns-1", "eth0"},
	}
	for _, p := range pairs {
		alloc(t, s, p[0], p[1], v6)
	}
	list, err := s.List()
	if err != nil || len(list) != len(pairs) {
		t.Fatalf("List = %d entries, %v; want %d", len(list), err, len(pairs))
	}
	got := map[[2]string]bool{}
	for _, a := range list {
		got[[2]string{a.ContainerID, a.IfName}] = true
	}
	for _, p := range pairs {
		if !got[p] {
			t.Errorf("List lost %q/%q", p[0], p[1])
		}
		if err := s.Release(p[0], p[1]); err != nil {
			t.Error(err)
		}
	}
}

func TestBadInput(t *testing.T) {
	s, _ := openTest(t, Options{})
	v6 := testutil.MustCIDR("fd00:e0::/64")
	cases := []struct {
		name    string
		id, ifn string
		subnets []*net.IPNet
	}{
		{"empty id", "", "eth0", []*net.IPNet{v6}},
		{"empty ifname", "c", "", []*net.IPNet{v6}},
		{"no subnets", "c", "eth0", nil},
		{"nil subnet", "c", "eth0", []*net.IPNet{nil}},
		{"overlap", "c", "eth0", []*net.IPNet{v6, testutil.MustCIDR("fd00:e0::/96")}},
		{"bad mask", "c", "eth0", []*net.IPNet{{IP: net.ParseIP("fd00::"), Mask: net.IPMask{0xff, 0x00, 0xff}}}},
	}
	for _, tc := range cases {
		if _, err := s.Allocate(tc.id, tc.ifn, tc.subnets, nil); err == nil {
			t.Errorf("%s: Allocate succeeded", tc.name)
		}
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Fatalf("bad input left %+v", list)
	}
}

// Goroutines of one process, on one Store and on two Stores of one dir.
func TestConcurrentGoroutines(t *testing.T) {
	dir := t.TempDir()
	s1, err := OpenWithOptions(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := OpenWithOptions(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	v4 := testutil.MustCIDR("10.99.0.0/25")
	const n = 120
	got := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s := s1
			if i%2 == 1 {
				s = s2
			}
			ips, err := s.Allocate(fmt.Sprintf("g%d", i), "eth0", []*net.IPNet{v4}, nil)
			if err == nil {
				got[i] = ips[0].String()
				if i%3 == 0 {
					err = s.Release(fmt.Sprintf("g%d", i), "eth0")
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("g%d: %v", i, errs[i])
		}
		if j, dup := seen[got[i]]; dup && i%3 != 0 && j%3 != 0 {
			t.Fatalf("%s held by both g%d and g%d", got[i], j, i)
		}
		if i%3 != 0 {
			seen[got[i]] = i
		}
	}
	list, err := s1.List()
	if err != nil || len(list) != n-n/3 {
		t.Fatalf("List: %d, %v; want %d", len(list), err, n-n/3)
	}
}

func TestClosedStore(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Allocate("c", "eth0", []*net.IPNet{testutil.MustCIDR("fd00::/64")}, nil); err == nil {
		t.Fatal("Allocate on a closed store succeeded")
	}
}

// When every candidate the cursor probes is taken (here: statics right after
// it), a /64 falls back to counting its allocations, not scanning the subnet.
func TestLargeSubnetFallbackPastTakenRun(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true})
	v6 := testutil.MustCIDR("fd00:e1::/64")
	for i := 2; i < 2+probeAllocate+5; i++ {
		ip := net.ParseIP(fmt.Sprintf("fd00:e1::%x", i))
		if _, err := s.Allocate(fmt.Sprintf("static%d", i), "eth0", []*net.IPNet{v6}, []net.IP{ip}); err != nil {
			t.Fatal(err)
		}
	}
	ip := alloc(t, s, "dyn", "eth0", v6)[0]
	if want := fmt.Sprintf("fd00:e1::%x", 2+probeAllocate+5); ip.String() != want {
		t.Fatalf("got %s, want %s (first free after the run)", ip, want)
	}
}

// Dual-stack with the IPv4 subnet full: the call fails with ErrExhausted and
// the IPv6 address it would have taken stays free.
func TestDualStackPartialExhaustion(t *testing.T) {
	s, dir := openTest(t, Options{NoSync: true})
	v6, v4 := testutil.MustCIDR("fd00:e2::/64"), testutil.MustCIDR("10.226.0.0/29") // 5 IPv4 addresses
	for i := range 5 {
		alloc(t, s, fmt.Sprintf("c%d", i), "eth0", v6, v4)
	}
	before := len(holders(t, dir))
	if _, err := s.Allocate("late", "eth0", []*net.IPNet{v6, v4}, nil); !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "10.226.0.0/29") {
		t.Fatalf("got %v, want ErrExhausted naming 10.226.0.0/29", err)
	}
	if after := len(holders(t, dir)); after != before {
		t.Fatalf("failed call left reservations: %d before, %d after", before, after)
	}
	if a, _ := s.Get("late", "eth0"); a != nil {
		t.Fatalf("late holds %+v", a)
	}
	if free, err := s.Free(v4); err != nil || free {
		t.Fatalf("Free(v4) = %v, %v", free, err)
	}
	if free, err := s.Free(v6); err != nil || !free {
		t.Fatalf("Free(v6) = %v, %v", free, err)
	}
}

// A fresh record is written in place; a crash mid-write leaves it torn
// before any reservation exists. That reads as "holds nothing".
func TestTornFreshRecord(t *testing.T) {
	s, dir := openTest(t, Options{})
	v6 := testutil.MustCIDR("fd00:c2::/64")
	if err := os.WriteFile(filepath.Join(dir, "pairs", recordName("z", "eth0")), []byte(`{"containerID":"z","ifN`), 0o644); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Get("z", "eth0"); err != nil || a != nil {
		t.Fatalf("Get = %+v, %v; want nil", a, err)
	}
	if list, err := s.List(); err != nil || len(list) != 0 {
		t.Fatalf("List = %+v, %v; want empty", list, err)
	}
	ip := alloc(t, s, "z", "eth0", v6)
	if a, err := s.Get("z", "eth0"); err != nil || a == nil || !a.IPs[0].Equal(ip[0]) {
		t.Fatalf("after Allocate Get = %+v, %v", a, err)
	}
	if err := s.Release("z", "eth0"); err != nil {
		t.Fatal(err)
	}
	if names, _ := readDirNames(filepath.Join(dir, "pairs")); len(names) != 0 {
		t.Fatalf("records left: %v", names)
	}
}
