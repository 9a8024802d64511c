package datapath

import (
	"errors"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/vxlan6/vxlan6/datapath/fastpath"
	"github.com/vxlan6/vxlan6/internal/testbed"
)

// The daemons run with Backend.FastPath off, so they leave the programs
// alone; the benchmark drives the same fastpath.Node the daemon runs, one
// per host, and switches modes by detaching everything and syncing again
// with other hooks. The maps exist before the containers are added, so the
// plugin records the pods in them as it would under a fast-path daemon.

type hostNode struct {
	netns ns.NetNS
	node  *fastpath.Node
}

// openNodes creates each host's fastpath.Node; called before the
// containers are added. ok is false (with the reason) where it cannot load.
func (l *lab) openNodes(b *testing.B) (ok bool) {
	for _, h := range l.bed.Hosts {
		n, err := ns.GetNS(h.NetnsPath())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		var node *fastpath.Node
		err = n.Do(func(ns.NetNS) (err error) {
			node, err = fastpath.NewNode(testbed.Device)
			return err
		})
		if err != nil {
			l.fastPathSkipReason = err.Error()
			return false
		}
		node.Grace = 0
		b.Cleanup(func() {
			_ = n.Do(func(ns.NetNS) error { return node.Remove() })
			node.Close()
		})
		l.nodes = append(l.nodes, hostNode{n, node})
	}
	return true
}

// fastMode switches every host to hooks h (+ the tunnel program if tunnel).
func (l *lab) fastMode(h fastpath.Hooks, tunnel bool) func(b *testing.B) {
	return func(b *testing.B) {
		for _, hn := range l.nodes {
			err := hn.netns.Do(func(ns.NetNS) error {
				hn.node.Hooks, hn.node.Tunnel = h, tunnel
				return errors.Join(hn.node.DetachAll(), hn.node.Sync())
			})
			if err != nil {
				b.Fatalf("fast path mode %+v tunnel=%v: %v", h, tunnel, err)
			}
		}
	}
}

// bridgePath switches every host back to today's path (no programs).
func (l *lab) bridgePath(b *testing.B) {
	for _, hn := range l.nodes {
		if err := hn.netns.Do(func(ns.NetNS) error { return hn.node.DetachAll() }); err != nil {
			b.Fatalf("bridge path: %v", err)
		}
	}
}

// addFastPathColumns adds the fast path, and each of its hooks alone,
// where it loads (openNodes ran before the containers were added).
func (l *lab) addFastPathColumns(b *testing.B) {
	if len(l.nodes) == 0 {
		return
	}
	// Let the first Sync see the pods and peers before measuring.
	l.fastMode(fastpath.AllHooks, true)(b)
	time.Sleep(100 * time.Millisecond)
	if err := l.checkFast(); err != nil {
		l.fastPathSkipReason = err.Error()
		l.bridgePath(b)
		return
	}
	l.fastPathAvailable = true
	l.columns = append(l.columns,
		column{name: "fast path", setup: l.fastMode(fastpath.AllHooks, true)},
		column{name: "fast, redirect_neigh", setup: l.fastMode(fastpath.Hooks{Local: true, Remote: true, Neigh: true}, true)},
		column{name: "fast: pod hook only", setup: l.fastMode(fastpath.AllHooks, false)},
		column{name: "fast: tunnel hook only", setup: l.fastMode(fastpath.Hooks{}, true)},
		column{name: "fast: local hook only", setup: l.fastMode(fastpath.Hooks{Local: true}, false)},
		column{name: "fast + underlay decap", setup: l.fastMode(fastpath.Hooks{Local: true, Remote: true, Decap: true}, true)},
		column{name: "fast + decap incl. GSO", setup: l.fastMode(fastpath.Hooks{Local: true, Remote: true, Decap: true, DecapGSO: true}, true)},
	)
}

// checkFast proves the pods are on the fast path: every one is in a map,
// none left slow.
func (l *lab) checkFast() error {
	for _, hn := range l.nodes {
		pods, err := hn.node.PodEntries()
		if err != nil {
			return err
		}
		if len(pods) == 0 {
			return errors.New("the plugin recorded no pods in the fast path's map")
		}
		for a, p := range pods {
			if p.Flags != 0 {
				return errors.New("pod " + a + " is not on the fast path")
			}
		}
	}
	return nil
}
