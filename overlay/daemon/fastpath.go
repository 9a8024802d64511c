package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/vxlan6/vxlan6/datapath/fastpath"
	"github.com/vxlan6/vxlan6/overlay/lease"
)

// fastPathInterval is how often the fast path is brought in line with the
// kernel (new peers, new pods). Until then both take the bridge path, which
// is correct, only slower.
const fastPathInterval = time.Second

// startFastPath runs the eBPF fast path (datapath/fastpath) beside the
// daemon, or takes it away when Backend.FastPath is "off" or the kernel
// cannot run it; either way one log line says which data path is in use.
// Programs and maps are pinned: they keep working while the daemon restarts.
// The returned function stops the reconciler (not the fast path).
func (d *daemon) startFastPath(ctx context.Context) func() {
	log := d.log.With("device", d.dev.Name)
	if d.cfg.Backend.FastPath == lease.FastPathOff {
		removeFastPath(d)
		log.Info("data path: bridge path", "reason", "Backend.FastPath is off")
		return func() {}
	}
	node, err := fastpath.NewNode(d.dev.Name)
	if err == nil {
		node.Log = log
		err = node.Sync()
	}
	if errors.Is(err, fastpath.ErrUnsupported) || (err != nil && node == nil) {
		if node != nil {
			_ = node.Remove()
			node.Close()
		}
		log.Warn("data path: bridge path", "reason", "eBPF fast path unavailable", "err", err)
		return func() {}
	}
	if err != nil {
		log.Warn("fast path sync", "err", err)
	}
	if err := node.RemoveOtherVersions(); err != nil {
		log.Warn("remove fast path of other versions", "err", err)
	}
	log.Info("data path: eBPF fast path (TCX)", "pins", node.Dir)
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer node.Close()
		t := time.NewTicker(fastPathInterval)
		defer t.Stop()
		for {
			select {
			case <-fctx.Done():
				return
			case <-t.C:
				if err := node.Sync(); err != nil {
					log.Warn("fast path sync", "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// removeFastPath detaches this host's programs and removes its maps, so every
// pod takes the bridge path.
func removeFastPath(d *daemon) {
	m, err := fastpath.OpenPinnedMaps()
	if err != nil || m == nil {
		return
	}
	defer m.Close()
	if err := m.Remove(); err != nil {
		d.log.Warn("remove fast path", "err", err)
	}
}
