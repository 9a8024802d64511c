package ipam

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vxlan6/vxlan6/internal/testutil"

	"golang.org/x/sys/unix"
)

// TestCrashAtEveryStep kills a plugin process at every step of Allocate and
// Release where the on-disk state differs, then checks that the state is
// still safe: every reservation is listed in its owner's record (so Release
// can clean it), no held address can be handed to another pair, and the
// crashed pair can repeat its call or release cleanly.
func TestCrashAtEveryStep(t *testing.T) {
	const old6, new6, v4 = "fd00:c1:0:1::/64", "fd00:c1:0:2::/64", "10.193.0.0/24"
	cases := []struct {
		name     string
		prepare  string // subnets the pair held addresses in before, or ""
		subnets  string // subnets of the crashing call
		op       string
		crashAts []string
	}{
		{"fresh", "", old6 + "," + v4, "alloc",
			[]string{"allocate:record-grown", "allocate:reserved:0", "allocate:reserved:1", "allocate:synced"}},
		{"subnet-change", old6 + "," + v4, new6 + "," + v4, "alloc",
			[]string{"allocate:record-grown", "allocate:reserved:0", "allocate:synced", "allocate:dropped", "allocate:record-shrunk"}},
		{"release", old6 + "," + v4, old6 + "," + v4, "release",
			[]string{"release:unreserved", "release:record-written"}},
	}
	for _, c := range cases {
		for _, crashAt := range c.crashAts {
			t.Run(c.name+"/"+crashAt, func(t *testing.T) {
				dir := t.TempDir()
				if c.prepare != "" {
					s, err := OpenWithOptions(dir, Options{NoSync: true})
					if err != nil {
						t.Fatal(err)
					}
					alloc(t, s, "victim", "eth0", cidrs(t, c.prepare)...)
					alloc(t, s, "bystander", "eth0", cidrs(t, c.prepare)...)
					s.Close()
				}
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|victim|1|%s|%s|%s", childEnv, dir, c.subnets, crashAt, c.op))
				out, err := cmd.CombinedOutput()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != crashExit {
					t.Fatalf("child did not crash at %s: %v: %s", crashAt, err, out)
				}
				checkReservationsListed(t, dir)

				s, err := Open(dir)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				// Nothing held (by anyone) may be handed to a newcomer.
				for addr := range holders(t, dir) {
					_, err := s.Allocate("newcomer", "eth0", cidrs(t, old6+","+new6+","+v4), []net.IP{net.ParseIP(addr)})
					if !errors.Is(err, ErrInUse) {
						t.Fatalf("held %s requested by a newcomer: %v, want ErrInUse", addr, err)
					}
				}
				if c.op == "alloc" {
					ips := alloc(t, s, "victim", "eth0", cidrs(t, c.subnets)...)
					checkReservationsListed(t, dir)
					held := heldBy(t, dir, "victim", "eth0")
					if len(held) != len(ips) {
						t.Fatalf("after the repeat victim holds %v, want exactly %v", held, ips)
					}
				}
				if err := s.Release("victim", "eth0"); err != nil {
					t.Fatal(err)
				}
				if held := heldBy(t, dir, "victim", "eth0"); len(held) != 0 {
					t.Fatalf("after Release victim still holds %v", held)
				}
				if _, err := os.Lstat(filepath.Join(dir, "pairs", recordName("victim", "eth0"))); !os.IsNotExist(err) {
					t.Fatalf("victim's record survived Release: %v", err)
				}
				if c.prepare != "" {
					if a, err := s.Get("bystander", "eth0"); err != nil || a == nil || len(a.IPs) != 2 {
						t.Fatalf("bystander lost its allocation: %+v, %v", a, err)
					}
				}
				checkReservationsListed(t, dir)
			})
		}
	}
}

func cidrs(t testing.TB, list string) []*net.IPNet {
	var out []*net.IPNet
	for _, c := range strings.Split(list, ",") {
		out = append(out, testutil.MustCIDR(c))
	}
	return out
}

// holders maps each reserved address to its owner token, read straight from
// the directory.
func holders(t *testing.T, dir string) map[string]string {
	t.Helper()
	names, err := readDirNames(filepath.Join(dir, "ips"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range names {
		tok, err := os.Readlink(filepath.Join(dir, "ips", n))
		if err != nil {
			continue // not ours (a test's foreign file); owner() treats it as held
		}
		out[n] = tok
	}
	return out
}

func heldBy(t *testing.T, dir, id, ifname string) []string {
	var out []string
	for addr, tok := range holders(t, dir) {
		if tok == token(id, ifname) {
			out = append(out, addr)
		}
	}
	return out
}

// checkReservationsListed asserts the invariant Release relies on.
func checkReservationsListed(t *testing.T, dir string) {
	t.Helper()
	listedBy := map[string]map[string]bool{} // token -> addresses in its record
	names, err := readDirNames(filepath.Join(dir, "pairs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		id, ifname, ok := parseRecordName(n)
		if !ok {
			t.Fatalf("unexpected record name %q", n)
		}
		b, err := os.ReadFile(filepath.Join(dir, "pairs", n))
		if err != nil {
			t.Fatal(err)
		}
		set := map[string]bool{}
		for _, f := range strings.Split(string(b), `"`) {
			set[f] = true // crude, but addresses appear as JSON strings
		}
		listedBy[token(id, ifname)] = set
	}
	for addr, tok := range holders(t, dir) {
		if !listedBy[tok][addr] {
			t.Fatalf("reservation %s (owner %s) is not listed in its owner's record", addr, tok)
		}
	}
}

// A reservation failing half-way (here: something foreign took the second
// address's name after the first was reserved) undoes the whole call.
func TestFailedReservationIsUndone(t *testing.T) {
	s, dir := openTest(t, Options{})
	v6, v4 := testutil.MustCIDR("fd00:c5::/64"), testutil.MustCIDR("10.197.0.0/24")
	foreign := filepath.Join(dir, "ips", "10.197.0.2") // the first pick in a fresh /24
	crashHook = func(point string) {
		if point == "allocate:reserved:0" {
			if err := os.WriteFile(foreign, nil, 0o644); err != nil {
				t.Error(err)
			}
		}
	}
	defer func() { crashHook = nil }()
	if _, err := s.Allocate("p", "eth0", []*net.IPNet{v6, v4}, nil); err == nil || !strings.Contains(err.Error(), "10.197.0.2") {
		t.Fatalf("Allocate = %v, want an error naming 10.197.0.2", err)
	}
	crashHook = nil
	if a, err := s.Get("p", "eth0"); err != nil || a != nil {
		t.Fatalf("after the failure p holds %+v, %v", a, err)
	}
	if held := heldBy(t, dir, "p", "eth0"); len(held) != 0 {
		t.Fatalf("reservations left behind: %v", held)
	}
	if _, err := os.Lstat(filepath.Join(dir, "pairs", recordName("p", "eth0"))); !os.IsNotExist(err) {
		t.Fatalf("record left behind: %v", err)
	}
	// The foreign file is never handed out nor removed; allocation goes on.
	ips := alloc(t, s, "p", "eth0", v6, v4)
	if ips[1].String() == "10.197.0.2" {
		t.Fatal("handed out an address whose name is taken by a foreign file")
	}
	if _, err := os.Lstat(foreign); err != nil {
		t.Fatalf("foreign file removed: %v", err)
	}
}

// A disk whose fsync fails: Allocate reports it and keeps nothing; Release
// reports it too (the addresses are freed regardless: it cannot be undone).
func TestFsyncFailure(t *testing.T) {
	s, dir := openTest(t, Options{})
	v6, v4 := testutil.MustCIDR("fd00:c6::/64"), testutil.MustCIDR("10.198.0.0/24")
	alloc(t, s, "kept", "eth0", v6, v4)
	fsyncFd = func(int) error { return errors.New("injected EIO") }
	defer func() { fsyncFd = unix.Fsync }()

	if _, err := s.Allocate("p", "eth0", []*net.IPNet{v6, v4}, nil); err == nil || !strings.Contains(err.Error(), "injected EIO") {
		t.Fatalf("Allocate = %v, want the fsync error", err)
	}
	if held := heldBy(t, dir, "p", "eth0"); len(held) != 0 {
		t.Fatalf("reservations left behind: %v", held)
	}
	if _, err := os.Lstat(filepath.Join(dir, "pairs", recordName("p", "eth0"))); !os.IsNotExist(err) {
		t.Fatalf("record left behind: %v", err)
	}
	if err := s.Release("kept", "eth0"); err == nil || !strings.Contains(err.Error(), "injected EIO") {
		t.Fatalf("Release = %v, want the fsync error", err)
	}
	if a, err := s.Get("kept", "eth0"); err != nil || a != nil {
		t.Fatalf("after Release kept holds %+v, %v", a, err)
	}
	// An idempotent repeat writes nothing, so it needs no fsync.
	fsyncFd = unix.Fsync
	first := alloc(t, s, "q", "eth0", v6)
	fsyncFd = func(int) error { return errors.New("injected EIO") }
	if again := alloc(t, s, "q", "eth0", v6); !again[0].Equal(first[0]) {
		t.Fatalf("repeat got %s, want %s", again[0], first[0])
	}
}
