package daemon

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"

	"github.com/vxlan6/vxlan6/internal/ipnet"
)

// Short names for the many log and table fields that show them.
var (
	ipStr  = ipnet.IPString
	netStr = ipnet.String
)

// releaseMemory returns freed heap to the OS at once instead of letting the
// scavenger do it over minutes, so RSS shows the steady state.
func (d *daemon) releaseMemory() {
	debug.FreeOSMemory()
	if d.log.Enabled(context.Background(), slog.LevelDebug) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		d.log.Debug("memory released", "heapInuseKiB", ms.HeapInuse>>10, "heapReleasedKiB", ms.HeapReleased>>10,
			"stackKiB", ms.StackInuse>>10, "sysKiB", ms.Sys>>10, "goroutines", runtime.NumGoroutine())
	}
}
