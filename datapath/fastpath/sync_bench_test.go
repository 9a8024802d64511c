package fastpath

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// BenchmarkSyncPods times one round of the pod sync on a host with 100
// pods on the fast path, nothing pending, no veth gone: ms/round is a plain
// round (the daemon ran one every second; now only after a link change),
// ms/rejudge-round one that judges every pod again (every RejudgeEvery),
// with the real `nft list ruleset`. Rounds alternate.
func BenchmarkSyncPods(b *testing.B) {
	testutil.RequireRoot(b)
	const pods = 100
	host, other := testutil.NewNS(b), testutil.NewNS(b)
	var batch strings.Builder
	for i := 0; i < pods; i++ {
		fmt.Fprintf(&batch, "link add bp%d type veth peer name e%d netns %s\nlink set bp%d up\n", i, i, other.Path(), i)
	}
	f := filepath.Join(b.TempDir(), "batch")
	if err := os.WriteFile(f, []byte(batch.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("nsenter", "--net="+host.Path(), "--", "ip", "-batch", f).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	var n *Node
	err := host.Do(func(ns.NetNS) error {
		var err error
		if n, err = NewNode("vxbench"); err != nil {
			return err
		}
		for i := 0; i < pods; i++ {
			l, err := netlink.LinkByName(fmt.Sprintf("bp%d", i))
			if err != nil {
				return err
			}
			ip := net.ParseIP(fmt.Sprintf("fd00:1::%x", i+2))
			if err := n.PutPod(ip, Pod{Ifindex: uint32(l.Attrs().Index), Flags: FlagSlow | FlagPending}); err != nil {
				return err
			}
		}
		n.Grace = 0
		n.Log = discardLog()
		return n.SyncPods()
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = host.Do(func(ns.NetNS) error { return n.Remove() })
		n.Close()
	})
	var plain, rejudge []float64
	b.ResetTimer()
	err = host.Do(func(ns.NetNS) error {
		for i := 0; i < b.N; i++ {
			re := i%2 == 1
			if re {
				n.judged = time.Time{}
			}
			start := time.Now()
			if err := n.SyncPods(); err != nil {
				return err
			}
			d := float64(time.Since(start).Microseconds()) / 1000
			if re {
				rejudge = append(rejudge, d)
			} else {
				plain = append(plain, d)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(median(plain), "ms/round")
	b.ReportMetric(median(rejudge), "ms/rejudge-round")
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	return xs[len(xs)/2]
}
