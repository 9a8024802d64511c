package datapath

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/vxlan6/vxlan6/datapath/fastpath"
	"github.com/vxlan6/vxlan6/internal/testbed"
)

// cniOps is how many ADD+DEL pairs are timed per mode.
const cniOps = 30

// cniLatency times the plugin's ADD and DEL on host 1 with the fast path's
// maps present (the plugin records the pod) and absent (it does not),
// alternating, after the data-path runs. It removes host 1's fast path.
func (l *lab) cniLatency(b *testing.B) string {
	if len(l.nodes) == 0 {
		return ""
	}
	ch := l.h1.Chain()
	var add, del [2][]float64 // [0] maps absent, [1] present
	for i := 0; i < 2*cniOps; i++ {
		present := i%2 == 1
		l.setMaps(b, present)
		name := fmt.Sprintf("%sl%d", l.h1.Name, i)
		l.bed.AddNetns(name)
		rc := &libcni.RuntimeConf{ContainerID: name, NetNS: testbed.NetnsPath(name), IfName: "eth0"}
		k := map[bool]int{false: 0, true: 1}[present]
		for _, op := range []bool{true, false} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			start := time.Now()
			var err error
			if op {
				_, err = ch.CNI.AddNetworkList(ctx, ch.List, rc)
			} else {
				err = ch.CNI.DelNetworkList(ctx, ch.List, rc)
			}
			d := float64(time.Since(start).Microseconds()) / 1000
			cancel()
			if err != nil {
				b.Fatalf("CNI op on %s: %v", name, err)
			}
			if op {
				add[k] = append(add[k], d)
			} else {
				del[k] = append(del[k], d)
			}
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "plugin ADD/DEL on one host, %d each, alternating (ms, median [min-max])\n", cniOps)
	for k, name := range []string{"no fast-path maps", "fast-path maps"} {
		alo, ahi := spread(add[k])
		dlo, dhi := spread(del[k])
		fmt.Fprintf(&sb, "  %-22s ADD %6.2f [%.2f-%.2f]  DEL %6.2f [%.2f-%.2f]\n", name,
			testbed.Median(add[k]), alo, ahi, testbed.Median(del[k]), dlo, dhi)
	}
	fmt.Fprintf(&sb, "  ratio                  ADD %6.2f            DEL %6.2f\n",
		testbed.Median(add[1])/testbed.Median(add[0]), testbed.Median(del[1])/testbed.Median(del[0]))
	return sb.String()
}

// setMaps creates (present) or removes host 1's fast-path maps.
func (l *lab) setMaps(b *testing.B, present bool) {
	hn := l.nodes[0]
	err := hn.netns.Do(func(ns.NetNS) error {
		if !present {
			return hn.node.Remove()
		}
		m, err := fastpath.OpenMaps()
		if err != nil {
			return err
		}
		m.Close()
		return nil
	})
	if err != nil {
		b.Fatalf("fast-path maps present=%v: %v", present, err)
	}
}
