package e2e

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
)

const (
	readyTimeout = 30 * time.Second
	// meshTimeout bounds how long one pair may take to become reachable;
	// a fresh container's address or a fresh peer can take a moment.
	meshTimeout = 20 * time.Second
)

// newBed builds hosts with the underlay address order reversed: Addr1 is
// then both the lowest address (what autodetection picks) and the one the
// kernel lists first (what flannel fell back to), so a host that ends up
// with Addr2 got it only because the operator named it.
func newBed(t *testing.T, hosts int, dual bool) *testbed.Bed {
	t.Helper()
	b := testbed.New(t, testbed.Options{Hosts: hosts, ReverseAddrOrder: true})
	b.PutConfig(testbed.ConfigJSON(dual))
	return b
}

// pingOnce is one echo with a 1 s wait.
func pingOnce(ns string, dst net.IP) error {
	fam := "-6"
	if dst.To4() != nil {
		fam = "-4"
	}
	_, err := testbed.ExecTimeout(10*time.Second, ns, "ping", fam, "-n", "-q", "-c", "1", "-W", "1", dst.String())
	return err
}

// waitReach pings dst from ns until one echo comes back (bounded).
func waitReach(ns string, dst net.IP, timeout time.Duration) error {
	return testbed.Eventually(timeout, 100*time.Millisecond, func() error {
		if err := pingOnce(ns, dst); err != nil {
			return fmt.Errorf("%s cannot reach %s", ns, dst)
		}
		return nil
	})
}

// target is one address of one container.
type target struct {
	c  *testbed.Container
	ip net.IP
}

func targets(cs []*testbed.Container, v4 bool) []target {
	var ts []target
	for _, c := range cs {
		ip := c.IPv6
		if v4 {
			ip = c.IPv4
		}
		ts = append(ts, target{c, ip})
	}
	return ts
}

// meshPing pings every target from every other container (in parallel,
// each pair bounded by meshTimeout) and fails the test listing every
// unreachable pair.
func meshPing(t *testing.T, ts []target) {
	t.Helper()
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		fails []string
	)
	for _, src := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, dst := range ts {
				if src.c == dst.c {
					continue
				}
				if err := waitReach(src.c.Name, dst.ip, meshTimeout); err != nil {
					mu.Lock()
					fails = append(fails, fmt.Sprintf("%s (%s on %s) -> %s (%s on %s)",
						src.c.Name, src.ip, src.c.Host.Name, dst.c.Name, dst.ip, dst.c.Host.Name))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(fails) > 0 {
		t.Fatalf("%d of %d pairs unreachable:\n  %s", len(fails), len(ts)*(len(ts)-1), strings.Join(fails, "\n  "))
	}
	t.Logf("all %d pairs reachable", len(ts)*(len(ts)-1))
}

// snmp6 reads one counter of /proc/net/snmp6 as seen from netns ns.
func snmp6(t *testing.T, ns, key string) int64 {
	t.Helper()
	out, err := testbed.ExecTimeout(10*time.Second, ns, "cat", "/proc/net/snmp6")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatalf("snmp6 %s=%q in %s", key, f[1], ns)
			}
			return v
		}
	}
	t.Fatalf("no %s in /proc/net/snmp6 of %s", key, ns)
	return 0
}

// linkMTU reads a link's MTU in netns ns, from netlink: under nsenter /sys
// still shows the caller's namespace.
func linkMTU(t *testing.T, ns, dev string) int {
	t.Helper()
	out, err := testbed.ExecTimeout(10*time.Second, ns, "ip", "-o", "link", "show", "dev", dev)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "mtu" {
			if v, err := strconv.Atoi(f[i+1]); err == nil {
				return v
			}
		}
	}
	t.Fatalf("no mtu for %s in %s: %s", dev, ns, out)
	return 0
}

// envOr returns the environment variable or def.
func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// startAll starts a daemon on every host and waits until each is ready;
// extra holds per-host flags by 0-based host index (may be nil).
func startAll(t *testing.T, b *testbed.Bed, extra map[int][]string) {
	t.Helper()
	b.StartDaemons(readyTimeout, func(h *testbed.Host) []string { return extra[h.ID-1] })
}
