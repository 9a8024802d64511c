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

func openBoot(t testing.TB, dir, boot string, rc Reclaimer) *Store {
	t.Helper()
	s, err := OpenWithOptions(dir, Options{NoSync: true, BootID: boot, Reclaimer: rc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func owned(id string) Owner {
	return Owner{Netns: "/run/netns/" + id, NetnsDev: 4, NetnsIno: uint64(len(id)) + 4026531840, HostVeth: "vx6" + id}
}

func allocFor(t testing.TB, s *Store, id string, subnets []*net.IPNet, req ...net.IP) []net.IP {
	t.Helper()
	ips, err := s.AllocateFor(id, "eth0", owned(id), subnets, req)
	if err != nil {
		t.Fatalf("allocate %s: %v", id, err)
	}
	return ips
}

// fakeReclaimer finds gone every container whose ID starts with "gone".
type fakeReclaimer struct {
	mu       sync.Mutex
	cleaned  []string
	failFor  string
	released func(id string) bool // reports whether id's addresses were still held at Cleanup
}

func (f *fakeReclaimer) Gone(l Leftover) bool { return strings.HasPrefix(l.ContainerID, "gone") }

func (f *fakeReclaimer) Cleanup(l Leftover) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l.ContainerID == f.failFor {
		return errors.New("injected cleanup failure")
	}
	if f.released != nil && f.released(l.ContainerID) {
		return fmt.Errorf("%s released before its cleanup", l.ContainerID)
	}
	f.cleaned = append(f.cleaned, l.ContainerID)
	return nil
}

// A new boot ID: every allocation of the earlier boot is free, with no
// Release; the records are kept aside, and an older generation is deleted.
func TestBootChangeReleasesEverything(t *testing.T) {
	dir := t.TempDir()
	v6, v4 := testutil.MustCIDR("fd00:b0::/64"), testutil.MustCIDR("10.176.0.0/28")
	s := openBoot(t, dir, "boot-a", nil)
	for i := range 13 {
		allocFor(t, s, fmt.Sprintf("old%d", i), []*net.IPNet{v6, v4})
	}
	if _, err := s.AllocateFor("one-too-many", "eth0", owned("x"), []*net.IPNet{v6, v4}, nil); !errors.Is(err, ErrExhausted) {
		t.Fatalf("14th allocation in a /28: %v, want ErrExhausted", err)
	}
	s.Close()

	s = openBoot(t, dir, "boot-b", nil)
	for i := range 13 {
		allocFor(t, s, fmt.Sprintf("new%d", i), []*net.IPNet{v6, v4})
	}
	list, err := s.List()
	if err != nil || len(list) != 13 {
		t.Fatalf("List after the reboot: %d allocations, %v; want the 13 new ones", len(list), err)
	}
	for _, a := range list {
		if !strings.HasPrefix(a.ContainerID, "new") {
			t.Fatalf("List holds %+v from the earlier boot", a)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "boot")); string(b) != "boot-b\nboot-a\n" {
		t.Fatalf("boot file %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "boots", "boot-a", "pairs", recordName("old0", "eth0"))); err != nil {
		t.Fatalf("record of the earlier boot not kept aside: %v", err)
	}
	s.Close()

	// Two boots on: boot-a's generation goes to trash/ and is removed.
	s = openBoot(t, dir, "boot-c", nil)
	allocFor(t, s, "newest", []*net.IPNet{v6, v4})
	if _, err := os.Stat(filepath.Join(dir, "boots", "boot-a")); !os.IsNotExist(err) {
		t.Fatalf("boot-a's generation still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "trash")); !os.IsNotExist(err) {
		t.Fatalf("trash/ not emptied (26 files < one call's budget): %v", err)
	}
}

// State written without boot tracking (an upgrade on a running node) is
// the current boot's: nothing is released.
func TestNoBootFileKeepsAllocations(t *testing.T) {
	s, dir := openTest(t, Options{NoSync: true})
	v6 := testutil.MustCIDR("fd00:b1::/64")
	ips := alloc(t, s, "running", "eth0", v6)
	s.Close()
	s = openBoot(t, dir, "boot-a", nil)
	if a, err := s.Get("running", "eth0"); err != nil || a == nil || !a.IPs[0].Equal(ips[0]) {
		t.Fatalf("after the upgrade running holds %+v, %v; want %s", a, err, ips[0])
	}
}

// A returning pair gets its last addresses back: after Release (DEL), and
// after a reboot with or without DEL; not when someone else holds them.
func TestReturningPairKeepsAddress(t *testing.T) {
	dir := t.TempDir()
	sn := []*net.IPNet{testutil.MustCIDR("fd00:b2::/64"), testutil.MustCIDR("10.178.0.0/24")}
	s := openBoot(t, dir, "boot-a", nil)
	first := allocFor(t, s, "back", sn)
	allocFor(t, s, "other", sn)
	if err := s.Release("back", "eth0"); err != nil {
		t.Fatal(err)
	}
	allocFor(t, s, "third", sn) // moves the cursor on
	if got := allocFor(t, s, "back", sn); !sameIPs(got, first) {
		t.Fatalf("after DEL back got %v, want %v", got, first)
	}
	s.Close()

	// Reboot without DEL: the previous boot's record is the memory.
	s = openBoot(t, dir, "boot-b", nil)
	allocFor(t, s, "fresh1", sn)
	if got := allocFor(t, s, "back", sn); !sameIPs(got, first) {
		t.Fatalf("after the reboot back got %v, want %v", got, first)
	}
	if err := s.Release("back", "eth0"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Reboot after DEL: the release memory.
	s = openBoot(t, dir, "boot-c", nil)
	allocFor(t, s, "fresh2", sn)
	if got := allocFor(t, s, "back", sn); !sameIPs(got, first) {
		t.Fatalf("after DEL and reboot back got %v, want %v", got, first)
	}
	// Taken by another: back gets another address, nobody loses theirs.
	if err := s.Release("back", "eth0"); err != nil {
		t.Fatal(err)
	}
	allocFor(t, s, "thief", sn, first...)
	if got := allocFor(t, s, "back", sn); sameIPs(got, first) || got[0].Equal(first[0]) || got[1].Equal(first[1]) {
		t.Fatalf("back got %v although thief holds %v", got, first)
	}
}

func sameIPs(a, b []net.IP) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// A static request for an address of an earlier boot, or of a leftover of
// this boot that is gone, succeeds; one held by a live container does not.
func TestStaticRequestForStaleAddress(t *testing.T) {
	dir := t.TempDir()
	sn := []*net.IPNet{testutil.MustCIDR("10.179.0.0/24")}
	rc := &fakeReclaimer{}
	s := openBoot(t, dir, "boot-a", rc)
	earlier := allocFor(t, s, "before-reboot", sn)
	s.Close()
	s = openBoot(t, dir, "boot-b", rc)
	if got := allocFor(t, s, "newcomer", sn, earlier...); !got[0].Equal(earlier[0]) {
		t.Fatalf("got %v, want the earlier boot's %v", got, earlier)
	}
	gone := allocFor(t, s, "gone1", sn)
	live := allocFor(t, s, "live1", sn)
	if got := allocFor(t, s, "wants-gone", sn, gone...); !got[0].Equal(gone[0]) {
		t.Fatalf("got %v, want the leftover's %v", got, gone)
	}
	if len(rc.cleaned) != 1 || rc.cleaned[0] != "gone1" {
		t.Fatalf("cleaned up %v, want [gone1]", rc.cleaned)
	}
	if _, err := s.AllocateFor("wants-live", "eth0", owned("w"), sn, live); !errors.Is(err, ErrInUse) {
		t.Fatalf("request for a live container's address: %v, want ErrInUse", err)
	}
}

// Same-boot leftovers are taken only when the pool is exhausted, cleaned up
// first; live containers and records without a netns are never touched.
func TestLastResortReclaim(t *testing.T) {
	dir := t.TempDir()
	v6, v4 := testutil.MustCIDR("fd00:b4::/64"), testutil.MustCIDR("10.180.0.0/29") // 5 assignable
	sn := []*net.IPNet{v6, v4}
	rc := &fakeReclaimer{failFor: "gone-dirty"}
	s := openBoot(t, dir, "boot-a", rc)
	rc.released = func(id string) bool { a, _ := s.getLocked(id, "eth0"); return a == nil }
	held := map[string][]net.IP{}
	for _, id := range []string{"live1", "gone1", "live2", "gone-dirty", "gone2"} {
		held[id] = allocFor(t, s, id, sn)
	}
	if _, err := s.Allocate("gone-noowner", "eth0", []*net.IPNet{v6}, nil); err != nil {
		t.Fatal(err)
	}
	// Room in the /64 but the /29 is full: reclaim, twice.
	got := map[string]bool{}
	for _, id := range []string{"n1", "n2"} {
		ips := allocFor(t, s, id, sn)
		got[ips[1].String()] = true
	}
	for _, id := range []string{"gone1", "gone2"} {
		if !got[held[id][1].String()] {
			t.Fatalf("%s's %s not reclaimed; new ones got %v", id, held[id][1], got)
		}
		if a, _ := s.Get(id, "eth0"); a != nil {
			t.Fatalf("%s still holds %+v", id, a)
		}
	}
	if fmt.Sprint(rc.cleaned) != "[gone1 gone2]" && fmt.Sprint(rc.cleaned) != "[gone2 gone1]" {
		t.Fatalf("cleaned %v, want gone1 and gone2", rc.cleaned)
	}
	if _, err := s.AllocateFor("n3", "eth0", owned("n3"), sn, nil); !errors.Is(err, ErrExhausted) {
		t.Fatalf("n3: %v, want ErrExhausted (the rest is live or cannot be cleaned)", err)
	}
	for _, id := range []string{"live1", "live2", "gone-dirty"} {
		if a, _ := s.Get(id, "eth0"); a == nil || !sameIPs(a.IPs, held[id]) {
			t.Fatalf("%s holds %+v, want %v", id, a, held[id])
		}
	}
	if a, _ := s.Get("gone-noowner", "eth0"); a == nil {
		t.Fatal("a record without a netns was reclaimed")
	}
	// STATUS: gone-dirty is gone (its cleanup may work next time).
	if free, err := s.Free(v4); err != nil || !free {
		t.Fatalf("Free with a reclaimable leftover = %v, %v; want true", free, err)
	}
}

// Not exhausted: leftovers of this boot keep their addresses.
func TestNoReclaimBeforeExhaustion(t *testing.T) {
	rc := &fakeReclaimer{}
	s := openBoot(t, t.TempDir(), "boot-a", rc)
	sn := []*net.IPNet{testutil.MustCIDR("10.181.0.0/28")}
	gone := allocFor(t, s, "gone1", sn)
	for i := range 12 {
		allocFor(t, s, fmt.Sprintf("n%d", i), sn)
	}
	if a, _ := s.Get("gone1", "eth0"); a == nil || !a.IPs[0].Equal(gone[0]) || len(rc.cleaned) != 0 {
		t.Fatalf("gone1 holds %+v, cleaned %v: reclaimed before exhaustion", a, rc.cleaned)
	}
}

// A repeated ADD in a new netns updates the recorded owner, so the pair is
// not taken for a leftover of its old netns.
func TestRepeatUpdatesOwner(t *testing.T) {
	s := openBoot(t, t.TempDir(), "boot-a", nil)
	sn := []*net.IPNet{testutil.MustCIDR("10.182.0.0/28")}
	first := allocFor(t, s, "c", sn)
	o := Owner{Netns: "/proc/42/ns/net", NetnsDev: 4, NetnsIno: 99, HostVeth: "vx6c", NoMasq: true}
	again, err := s.AllocateFor("c", "eth0", o, sn, nil)
	if err != nil || !again[0].Equal(first[0]) {
		t.Fatalf("repeat: %v, %v", again, err)
	}
	rec, err := s.loadRecordFile(recordName("c", "eth0"))
	if err != nil || rec.Netns != o.Netns || rec.NetnsIno != 99 || rec.Boot != "boot-a" {
		t.Fatalf("record %+v, %v; want owner %+v and boot-a", rec, err, o)
	}
	if rec.Owner != o {
		t.Fatalf("record's owner %+v, want %+v", rec.Owner, o)
	}
	// The record's keys, which records already on disk use.
	raw, err := os.ReadFile(filepath.Join(s.pairs, recordName("c", "eth0")))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"boot":"boot-a"`, `"netns":"/proc/42/ns/net"`, `"netnsDev":4`, `"netnsIno":99`, `"hostVeth":"vx6c"`, `"noMasq":true`} {
		if !strings.Contains(string(raw), k) {
			t.Errorf("record %s lacks %s", raw, k)
		}
	}
}

// The node subnet changed across the reboot: nothing outside the new one is
// handed out, a returning pair gets a new address, the old ones hold nothing.
func TestSubnetChangeAcrossBoot(t *testing.T) {
	dir := t.TempDir()
	old := []*net.IPNet{testutil.MustCIDR("fd00:b6:0:1::/64"), testutil.MustCIDR("10.183.1.0/28")}
	cur := []*net.IPNet{testutil.MustCIDR("fd00:b6:0:2::/64"), testutil.MustCIDR("10.183.2.0/28")}
	s := openBoot(t, dir, "boot-a", nil)
	for i := range 13 {
		allocFor(t, s, fmt.Sprintf("p%d", i), old)
	}
	s.Close()
	s = openBoot(t, dir, "boot-b", nil)
	for i := range 13 { // p0..p12 return; all of the new /28
		ips := allocFor(t, s, fmt.Sprintf("p%d", i), cur)
		for j, ip := range ips {
			if !cur[j].Contains(ip) {
				t.Fatalf("handed out %s outside %s", ip, cur[j])
			}
		}
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		for _, ip := range a.IPs {
			if !cur[0].Contains(ip) && !cur[1].Contains(ip) {
				t.Fatalf("%s/%s still holds %s outside the new subnets", a.ContainerID, a.IfName, ip)
			}
		}
	}
}

// ownerReclaimer finds every leftover gone and records the owners it cleans.
type ownerReclaimer struct{ seen []Owner }

func (r *ownerReclaimer) Gone(Leftover) bool { return true }

func (r *ownerReclaimer) Cleanup(l Leftover) error {
	r.seen = append(r.seen, l.Owner)
	return nil
}

// The Reclaimer gets a leftover's Owner as Allocate recorded it, NoMasq
// included (the plugin skips the masquerade teardown on it).
func TestLeftoverCarriesOwner(t *testing.T) {
	rc := &ownerReclaimer{}
	s := openBoot(t, t.TempDir(), "boot-a", rc)
	sn := []*net.IPNet{testutil.MustCIDR("10.184.0.0/30")} // one assignable address
	o := Owner{Netns: "/run/netns/gone", NetnsDev: 4, NetnsIno: 7, HostVeth: "vx6gone", NoMasq: true}
	first, err := s.AllocateFor("gone", "eth0", o, sn, nil)
	if err != nil {
		t.Fatal(err)
	}
	again := allocFor(t, s, "next", sn)
	if !again[0].Equal(first[0]) || len(rc.seen) != 1 || rc.seen[0] != o {
		t.Fatalf("got %v (leftover had %v); reclaimer saw %+v, want [%+v]", again, first, rc.seen, o)
	}
}
