package e2e

import (
	"slices"
	"testing"

	"github.com/vxlan6/vxlan6/internal/testbed"
)

// An upgrade to a vxlan6d whose fast-path maps have another Version (the
// plugin↔daemon contract changed): the old version's pins stay in charge
// while the daemons are down, the new daemon builds its own maps and only
// after its first sync removes the old programs and maps. Established flows
// go on without a lost echo; the old pods, whose entries were in the old
// maps, carry on over the bridge path, and pods the new plugin adds go on
// the new fast path.
func TestFastPathVersionUpgrade(t *testing.T) {
	t.Parallel()
	f := newFastPathBed(t, "auto", testbed.Options{})
	f.survives(t, "the upgrade", func() {
		for _, h := range []*testbed.Host{f.h1, f.h2} {
			if code := h.Daemon().Stop(); code != 0 {
				t.Errorf("vxlan6d on %s exited %d on SIGTERM", h.Name, code)
			}
			h.RenameFastPathPins(0)
			d := h.StartDaemon()
			d.WaitReady(readyTimeout)
			if err := d.WaitLog(`msg="removed fast path of another version"`, readyTimeout); err != nil {
				t.Fatal(err)
			}
			if vs := h.FastPathVersions(); !slices.Equal(vs, []string{"v1"}) {
				t.Errorf("pinned versions on %s after the upgrade: %v, want only v1", h.Name, vs)
			}
		}
	})
	const count = 20
	f.fast = false
	f.checkPath(t, "old pods after the upgrade", f.pingCounted(t, f.c1, f.c2, count), count)
	f.fast = true
	c3, c4 := f.h1.AddContainer(), f.h2.AddContainer()
	f.waitFast(t, c3, c4)
	f.checkPath(t, "new pods after the upgrade", f.pingCounted(t, c3, c4, count), count)
}
