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
)

// bootChildEnv makes the test binary one plugin process that allocates for
// "newcomer" under a boot ID, with the fake reclaimer, and dies at a step:
// "dir|boot|crashAt".
const bootChildEnv = "VX6_IPAM_TEST_BOOT_CHILD"

var crashSubnets = "fd00:cc::/64,10.204.0.0/29" // 5 assignable IPv4 addresses

func runBootChild(spec string) int {
	p := strings.Split(spec, "|")
	if len(p) != 3 {
		fmt.Fprintln(os.Stderr, "bad boot child spec", spec)
		return 2
	}
	crashHook = func(point string) {
		if point == p[2] {
			os.Exit(crashExit)
		}
	}
	s, err := OpenWithOptions(p[0], Options{NoSync: true, BootID: p[1], Reclaimer: &fakeReclaimer{}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	var sn []*net.IPNet
	for _, c := range strings.Split(crashSubnets, ",") {
		_, n, _ := net.ParseCIDR(c)
		sn = append(sn, n)
	}
	if _, err := s.AllocateFor("newcomer", "eth0", owned("newcomer"), sn, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func crashChild(t *testing.T, dir, boot, crashAt string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%s", bootChildEnv, dir, boot, crashAt))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != crashExit {
		t.Fatalf("child did not crash at %s: %v: %s", crashAt, err, out)
	}
}

// fillAfterCrash allocates for newcomer (repeating the crashed call) and
// then new pairs until the IPv4 pool is exhausted, and checks that no
// IPv4 address is handed to two pairs, including those in keep.
func fillAfterCrash(t *testing.T, s *Store, keep map[string]string, want int) {
	t.Helper()
	sn := cidrs(t, crashSubnets)
	seen := map[string]string{}
	for id, ip := range keep {
		seen[ip] = id
	}
	n := 0
	for i := 0; ; i++ {
		id := "newcomer"
		if i > 0 {
			id = fmt.Sprintf("after%d", i)
		}
		ips, err := s.AllocateFor(id, "eth0", owned(id), sn, nil)
		if errors.Is(err, ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatalf("allocate %s: %v", id, err)
		}
		if prev, dup := seen[ips[1].String()]; dup {
			t.Fatalf("%s handed to %s although %s holds it", ips[1], id, prev)
		}
		seen[ips[1].String()] = id
		n++
		if n > 5 {
			t.Fatal("more allocations than addresses")
		}
	}
	if n != want {
		t.Fatalf("%d allocations after the crash, want %d", n, want)
	}
}

// A crash at every step of retiring an earlier boot: the next operation
// finishes the move, nothing of the earlier boot is held, and every address
// is handed out once.
func TestCrashDuringBootRetire(t *testing.T) {
	for _, crashAt := range []string{"boot:moved-ips", "boot:moved-pairs", "boot:dirs-made", "boot:file-written", "allocate:record-grown"} {
		t.Run(crashAt, func(t *testing.T) {
			dir := t.TempDir()
			s := openBoot(t, dir, "boot-a", nil)
			for i := range 5 {
				allocFor(t, s, fmt.Sprintf("old%d", i), cidrs(t, crashSubnets))
			}
			s.Close()
			crashChild(t, dir, "boot-b", crashAt)
			s = openBoot(t, dir, "boot-b", &fakeReclaimer{})
			if _, err := s.Get("old0", "eth0"); err != nil { // finishes the move
				t.Fatal(err)
			}
			checkReservationsListed(t, dir)
			fillAfterCrash(t, s, nil, 5)
			for i := range 5 {
				if a, _ := s.Get(fmt.Sprintf("old%d", i), "eth0"); a != nil {
					t.Fatalf("old%d of the earlier boot holds %+v", i, a)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "boots", "boot-a", "pairs", recordName("old0", "eth0"))); err != nil {
				t.Fatalf("earlier boot's records not kept aside: %v", err)
			}
			checkReservationsListed(t, dir)
		})
	}
}

// A crash at every step of a last-resort reclaim and of the allocation that
// follows: live containers keep their addresses, no address is handed out
// twice, and the remaining leftover is still reclaimable.
func TestCrashDuringReclaim(t *testing.T) {
	points := []string{"reclaim:cleaned", "release:unreserved", "release:record-written", "reclaim:released",
		"allocate:record-grown", "allocate:reserved:0", "allocate:reserved:1", "allocate:synced"}
	for _, crashAt := range points {
		t.Run(crashAt, func(t *testing.T) {
			dir := t.TempDir()
			s := openBoot(t, dir, "boot-a", nil)
			live := map[string]string{}
			for _, id := range []string{"live1", "gone1", "live2", "gone2", "live3"} {
				ips := allocFor(t, s, id, cidrs(t, crashSubnets))
				if strings.HasPrefix(id, "live") {
					live[id] = ips[1].String()
				}
			}
			s.Close()
			crashChild(t, dir, "boot-a", crashAt)
			checkReservationsListed(t, dir)
			s = openBoot(t, dir, "boot-a", &fakeReclaimer{})
			fillAfterCrash(t, s, live, 2)
			for id, ip := range live {
				if a, _ := s.Get(id, "eth0"); a == nil || a.IPs[1].String() != ip {
					t.Fatalf("%s holds %+v, want %s", id, a, ip)
				}
			}
			checkReservationsListed(t, dir)
		})
	}
}
