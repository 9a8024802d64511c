package ipam

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// The cross-process test re-executes this test binary; with childEnv set the
// binary acts as one plugin process instead of running tests.
const childEnv = "VX6_IPAM_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	if spec := os.Getenv(bootChildEnv); spec != "" {
		os.Exit(runBootChild(spec))
	}
	os.Exit(m.Run())
}

// runChild: spec is "dir|id|count|subnet,subnet[|crashAt|op]". It opens the
// store like a plugin exec would and, count times, allocates (op "alloc",
// the default; prints "id ifname ip...") or releases (op "release") the
// pair (id, eth<i>). With crashAt set it dies with exit code 77 at that
// step, as a killed plugin would.
func runChild(spec string) int {
	parts := strings.Split(spec, "|")
	if len(parts) < 4 {
		fmt.Fprintln(os.Stderr, "bad child spec", spec)
		return 2
	}
	for len(parts) < 6 {
		parts = append(parts, "")
	}
	if crashAt := parts[4]; crashAt != "" {
		crashHook = func(point string) {
			if point == crashAt {
				os.Exit(crashExit)
			}
		}
	}
	var subnets []*net.IPNet
	for _, c := range strings.Split(parts[3], ",") {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		subnets = append(subnets, n)
	}
	var count int
	fmt.Sscan(parts[2], &count)
	for i := range count {
		s, err := Open(parts[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		ifname := fmt.Sprintf("eth%d", i)
		if parts[5] == "release" {
			err = s.Release(parts[1], ifname)
			s.Close()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			continue
		}
		ips, err := s.Allocate(parts[1], ifname, subnets, nil)
		s.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("%s %s", parts[1], ifname)
		for _, ip := range ips {
			fmt.Printf(" %s", ip)
		}
		fmt.Println()
	}
	return 0
}

const crashExit = 77

func TestCrossProcessDistinct(t *testing.T) {
	dir := t.TempDir()
	const procs, each = 50, 2
	// The IPv4 /25 holds 125 addresses: 100 are taken, so the cursor and the
	// reservation checks are exercised near the end of the pool.
	subnets := "fd00:f0::/64,10.240.0.0/25"
	var wg sync.WaitGroup
	outs := make([][]byte, procs)
	errs := make([]error, procs)
	for p := range procs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|proc%d|%d|%s", childEnv, dir, p, each, subnets))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			outs[p], errs[p] = cmd.Output()
			if errs[p] != nil {
				errs[p] = fmt.Errorf("child %d: %w: %s", p, errs[p], stderr.String())
			}
		})
	}
	wg.Wait()
	holder := map[string]string{}
	n := 0
	for p := range procs {
		if errs[p] != nil {
			t.Fatal(errs[p])
		}
		sc := bufio.NewScanner(bytes.NewReader(outs[p]))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 4 {
				t.Fatalf("child %d printed %q", p, sc.Text())
			}
			n++
			for _, ip := range f[2:] {
				if prev, dup := holder[ip]; dup {
					t.Fatalf("%s handed to both %s and %s/%s", ip, prev, f[0], f[1])
				}
				holder[ip] = f[0] + "/" + f[1]
			}
		}
	}
	if n != procs*each {
		t.Fatalf("%d allocations reported, want %d", n, procs*each)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	list, err := s.List()
	if err != nil || len(list) != procs*each {
		t.Fatalf("List has %d allocations, %v; want %d", len(list), err, procs*each)
	}
	for _, a := range list {
		for _, ip := range a.IPs {
			if holder[ip.String()] != a.ContainerID+"/"+a.IfName {
				t.Fatalf("store says %s is %s/%s's, children said %q", ip, a.ContainerID, a.IfName, holder[ip.String()])
			}
		}
	}
}
