package plugin

// ADD latency with stale IPAM records (issue 9): the same vxlan6 ADD on a
// fresh dataDir (baseline), on one holding 500 records of an earlier boot
// (what a reboot leaves), and on one whose IPv4 pool is full of leftovers of
// this boot whose containers are gone (every ADD reclaims one: the last
// resort), with and without masquerade rules to remove. Stacks are measured
// interleaved, ADD by ADD, in one run.
//
//	go test -run '^$' -bench AddStale -benchtime 1x ./bench/plugin/

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/ipam"
	"github.com/vxlan6/vxlan6/plugins/vxlan6/link"
	"github.com/vxlan6/vxlan6/subnetfile"
)

const (
	staleRecords = 500
	staleAdds    = 100 // measured ADDs per stack
)

// staleSubnets: an IPv4 /23 holds 509 assignable addresses, room for the
// 500 stale records plus the measured ADDs only once they are reclaimed.
var staleSubnets = subnets{label: "dual-stack", network6: "fd10:244::/48", subnet6: "fd10:244:0:1::/64",
	network4: "10.244.0.0/16", subnet4: "10.244.2.0/23"}

// populate writes n allocations of gone containers (no such netns, no such
// host veth) under boot into dataDir, as the plugin would have with ipMasq
// set to masq.
func populate(b *testing.B, dataDir, boot string, n int, masq bool) {
	b.Helper()
	s, err := ipam.OpenWithOptions(dataDir, ipam.Options{NoSync: true, BootID: boot})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sf := staleSubnets.file()
	for i := range n {
		id := fmt.Sprintf("stale-%04d", i)
		o := ipam.Owner{Netns: "/run/netns/vx6bench-gone-" + id, NetnsDev: 4, NetnsIno: uint64(4026530000 + i),
			HostVeth: link.HostVethName(id, "eth0"), NoMasq: !masq}
		if _, err := s.AllocateFor(id, "eth0", o, []*net.IPNet{sf.Subnets.V6, sf.Subnets.V4}, nil); err != nil {
			b.Fatalf("populate %s: %v", dataDir, err)
		}
	}
}

type staleRow struct {
	label string
	stack *stack
	adds  []time.Duration
}

func BenchmarkAddStaleRecords(b *testing.B) {
	testutil.RequireRoot(b)
	vx := filepath.Dir(testutil.Binary(b, "vxlan6"))
	boot, err := ipam.ReadBootID("/proc/sys/kernel/random/boot_id")
	if err != nil {
		b.Fatal(err)
	}
	var out strings.Builder
	for b.Loop() {
		dir := b.TempDir()
		sfPath := filepath.Join(dir, "subnet.env")
		if err := subnetfile.Write(sfPath, staleSubnets.file()); err != nil {
			b.Fatal(err)
		}
		mk := func(label, name string) *staleRow {
			dataDir := filepath.Join(dir, name)
			if err := os.MkdirAll(dataDir, 0o755); err != nil {
				b.Fatal(err)
			}
			return &staleRow{label: label, stack: newStack(b, name, map[string]any{
				"type": "vxlan6", "subnetFile": sfPath, "dataDir": dataDir, "bridge": "vx6stale0",
			}, []string{vx})}
		}
		rows := []*staleRow{
			mk("0 stale records (baseline)", "fresh"),
			mk(fmt.Sprintf("%d records of an earlier boot", staleRecords), "reboot"),
			mk(fmt.Sprintf("%d leftovers of this boot, pool full", staleRecords+9), "leftover"),
			// Their masquerade chains are looked for (two iptables execs
			// per reclaim): ipMasq was on, or the record predates noMasq.
			mk("the same, without noMasq", "leftover-masq"),
		}
		// Warm-up on a throwaway stack: the first exec of the binary pays
		// cold caches, which would land on the baseline's first ADD.
		warm := mk("warm-up", "warm")
		if _, err := warm.stack.op(true, rts("stale-bench-warm", newNetns(b, 1))[0]); err != nil {
			b.Fatal(err)
		}
		populate(b, filepath.Join(dir, "reboot"), "bench-earlier-boot-id", staleRecords, false)
		populate(b, filepath.Join(dir, "leftover"), boot, staleRecords+9, false)
		populate(b, filepath.Join(dir, "leftover-masq"), boot, staleRecords+9, true)
		conts := make([][]*libcni.RuntimeConf, len(rows))
		for i, r := range rows {
			conts[i] = rts("stale-bench-"+r.stack.name, newNetns(b, staleAdds))
		}
		for n := range staleAdds {
			// Rotated, so that no row is always the first after a pause.
			for k := range rows {
				i := (n + k) % len(rows)
				r := rows[i]
				d, err := r.stack.op(true, conts[i][n])
				if err != nil {
					b.Fatal(err)
				}
				r.adds = append(r.adds, d)
			}
		}
		fmt.Fprintf(&out, "\nvxlan6 ADD with stale IPAM records (%s, IPv4 %s), via libcni, %d ADDs per row, interleaved (order rotated)\n\n",
			staleSubnets.label, staleSubnets.subnet4, staleAdds)
		fmt.Fprintf(&out, "%-36s %10s %10s %10s %12s %12s\n", "dataDir", "first ADD", "ADD p50", "ADD p95", "p50 ratio", "p95 ratio")
		base := rows[0].adds[1:]
		for _, r := range rows {
			rest := r.adds[1:]
			fmt.Fprintf(&out, "%-36s %10s %10s %10s %12s %12s\n", r.label, ms(r.adds[0]), ms(pct(rest, 0.5)), ms(pct(rest, 0.95)),
				ratio(pct(rest, 0.5), pct(base, 0.5)), ratio(pct(rest, 0.95), pct(base, 0.95)))
		}
		b.ReportMetric(float64(pct(rows[1].adds[1:], 0.5))/float64(pct(base, 0.5)), "reboot-500-p50-ratio")
	}
	fmt.Println(out.String())
}
