// Package plugin benchmarks the vxlan6 CNI plugin against the reference
// bridge + host-local plugins (containernetworking/plugins v1.10.0), both
// driven through libcni the way container runtimes drive them, each on its
// own throwaway "host" network namespace with the same subnet.
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/plugin/
//
// It prints a table; nothing fails on timing.
package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/subnetfile"
)

const (
	sequential = 200 // containers added one after another, then deleted
	parallel   = 50  // containers added at once
)

// stack is one plugin set under test on its own host netns.
type stack struct {
	name string
	host ns.NetNS
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList
}

type subnets struct {
	label             string
	network6, subnet6 string
	network4, subnet4 string
}

func (s subnets) file() *subnetfile.Config {
	c, err := subnetfile.Parse([]byte(fmt.Sprintf("VXLAN6_NETWORK_V6=%s\nVXLAN6_SUBNET_V6=%s\nVXLAN6_MTU=1430\n", s.network6, s.subnet6) +
		func() string {
			if s.subnet4 == "" {
				return ""
			}
			return fmt.Sprintf("VXLAN6_NETWORK_V4=%s\nVXLAN6_SUBNET_V4=%s\n", s.network4, s.subnet4)
		}()))
	if err != nil {
		panic(err)
	}
	return c
}

// refIPAM is host-local configured for the same subnets and routes vxlan6
// installs (default and cluster network via the gateway).
func (s subnets) refIPAM(dataDir string) map[string]any {
	ranges := [][]map[string]any{{{"subnet": s.subnet6}}}
	routes := []map[string]any{{"dst": "::/0"}, {"dst": s.network6}}
	if s.subnet4 != "" {
		ranges = append(ranges, []map[string]any{{"subnet": s.subnet4}})
		routes = append(routes, map[string]any{"dst": "0.0.0.0/0"}, map[string]any{"dst": s.network4})
	}
	return map[string]any{"type": "host-local", "ranges": ranges, "routes": routes, "dataDir": dataDir}
}

func newStack(b *testing.B, name string, plugin map[string]any, paths []string) *stack {
	b.Helper()
	host := testutil.NewNS(b)
	conf, _ := json.Marshal(map[string]any{
		"cniVersion": "1.0.0",
		"name":       testutil.UniqueName("vx6bench"),
		"plugins":    []map[string]any{plugin},
	})
	list, err := libcni.NetworkConfFromBytes(conf)
	if err != nil {
		b.Fatalf("conflist %s: %v", conf, err)
	}
	return &stack{name: name, host: host, cni: libcni.NewCNIConfigWithCacheDir(paths, b.TempDir(), nil), list: list}
}

func (s *stack) op(add bool, rt *libcni.RuntimeConf) (time.Duration, error) {
	var d time.Duration
	err := s.host.Do(func(ns.NetNS) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		var err error
		if add {
			_, err = s.cni.AddNetworkList(ctx, s.list, rt)
		} else {
			err = s.cni.DelNetworkList(ctx, s.list, rt)
		}
		d = time.Since(start)
		if err != nil {
			return fmt.Errorf("%s %s: %w", s.name, map[bool]string{true: "ADD", false: "DEL"}[add], err)
		}
		return nil
	})
	return d, err
}

type figures struct {
	addP50, addP95, delP50, delP95, parallelWall time.Duration
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(p*float64(len(s)-1)+0.5)]
}

func newNetns(b *testing.B, n int) []ns.NetNS {
	out := make([]ns.NetNS, n)
	for i := range out {
		out[i] = testutil.NewNS(b)
	}
	return out
}

func rts(prefix string, nss []ns.NetNS) []*libcni.RuntimeConf {
	out := make([]*libcni.RuntimeConf, len(nss))
	for i, n := range nss {
		out[i] = &libcni.RuntimeConf{ContainerID: fmt.Sprintf("%s-%d", prefix, i), NetNS: n.Path(), IfName: "eth0"}
	}
	return out
}

// measure runs the stacks interleaved container by container, so load from
// elsewhere on the machine hits them alike.
func measure(b *testing.B, stacks []*stack) []figures {
	figs := make([]figures, len(stacks))
	adds := make([][]time.Duration, len(stacks))
	dels := make([][]time.Duration, len(stacks))
	seq := make([][]*libcni.RuntimeConf, len(stacks))
	for si, s := range stacks {
		nss := newNetns(b, sequential+1)
		// Warm-up: the first ADD creates the bridge and pays cold caches.
		warm := rts("warm-"+s.name, nss[:1])[0]
		if _, err := s.op(true, warm); err != nil {
			b.Fatal(err)
		}
		if _, err := s.op(false, warm); err != nil {
			b.Fatal(err)
		}
		seq[si] = rts("seq-"+s.name, nss[1:])
	}
	for _, phase := range []bool{true, false} {
		for i := 0; i < sequential; i++ {
			for si, s := range stacks {
				d, err := s.op(phase, seq[si][i])
				if err != nil {
					b.Fatal(err)
				}
				if phase {
					adds[si] = append(adds[si], d)
				} else {
					dels[si] = append(dels[si], d)
				}
			}
		}
	}
	for si, s := range stacks {
		figs[si].addP50, figs[si].addP95 = pct(adds[si], 0.5), pct(adds[si], 0.95)
		figs[si].delP50, figs[si].delP95 = pct(dels[si], 0.5), pct(dels[si], 0.95)
		par := rts("par-"+s.name, newNetns(b, parallel))
		errs := make([]error, parallel)
		var wg sync.WaitGroup
		start := time.Now()
		for i := range par {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.op(true, par[i])
			}()
		}
		wg.Wait()
		figs[si].parallelWall = time.Since(start)
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		for i := range par {
			if _, err := s.op(false, par[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	return figs
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func ratio(a, b time.Duration) string { return fmt.Sprintf("%.2f", float64(a)/float64(b)) }

func BenchmarkPlugin(b *testing.B) {
	testutil.RequireRoot(b)
	// The reference plugins' own directory (never GOPATH/bin: its bridge
	// shadows iproute2's).
	gobin := testutil.CNIRefDir
	for _, p := range []string{"bridge", "host-local"} {
		if _, err := os.Stat(filepath.Join(gobin, p)); err != nil {
			b.Skipf("reference plugin %s missing in %s (.ci/deps.sh installs it)", p, gobin)
		}
	}
	vx := filepath.Dir(testutil.Binary(b, "vxlan6"))
	// Only the reference directory holds bridge/host-local and only ours
	// holds vxlan6, so each stack runs exactly its own binaries.
	cases := []subnets{
		{label: "IPv6-only", network6: "fd10:244::/48", subnet6: "fd10:244:0:1::/64"},
		{label: "dual-stack", network6: "fd10:244::/48", subnet6: "fd10:244:0:1::/64", network4: "10.244.0.0/16", subnet4: "10.244.1.0/24"},
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\nvxlan6 vs reference bridge+host-local (v1.10.0), via libcni, cniVersion 1.0.0\n")
	fmt.Fprintf(&out, "%d sequential containers (ADD all, then DEL all, interleaved between stacks), then %d parallel ADDs\n\n", sequential, parallel)
	fmt.Fprintf(&out, "%-11s %-10s %10s %10s %10s %10s %14s\n", "subnets", "plugin", "ADD p50", "ADD p95", "DEL p50", "DEL p95", "50 par. ADDs")
	for b.Loop() {
		for _, sn := range cases {
			dir := b.TempDir()
			sfPath := filepath.Join(dir, "subnet.env")
			if err := subnetfile.Write(sfPath, sn.file()); err != nil {
				b.Fatal(err)
			}
			vxs := newStack(b, "vxlan6", map[string]any{
				"type": "vxlan6", "subnetFile": sfPath, "dataDir": filepath.Join(dir, "vx-ipam"), "bridge": "vx6bench0",
			}, []string{vx})
			ref := newStack(b, "reference", map[string]any{
				"type": "bridge", "bridge": "refbench0", "isGateway": true, "mtu": 1430,
				"ipam": sn.refIPAM(filepath.Join(dir, "ref-ipam")),
			}, []string{gobin})
			f := measure(b, []*stack{vxs, ref})
			for i, name := range []string{"vxlan6", "reference"} {
				fmt.Fprintf(&out, "%-11s %-10s %10s %10s %10s %10s %14s\n", sn.label, name,
					ms(f[i].addP50), ms(f[i].addP95), ms(f[i].delP50), ms(f[i].delP95), ms(f[i].parallelWall))
			}
			fmt.Fprintf(&out, "%-11s %-10s %10s %10s %10s %10s %14s\n", sn.label, "ratio",
				ratio(f[0].addP50, f[1].addP50), ratio(f[0].addP95, f[1].addP95),
				ratio(f[0].delP50, f[1].delP50), ratio(f[0].delP95, f[1].delP95),
				ratio(f[0].parallelWall, f[1].parallelWall))
			b.ReportMetric(float64(f[0].addP50)/float64(f[1].addP50), sn.label+"-add-p50-ratio")
		}
	}
	fmt.Println(out.String())
}
