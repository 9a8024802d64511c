package daemon

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
)

func ipStr(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}

func netStr(n *net.IPNet) string {
	if n == nil {
		return ""
	}
	return n.String()
}

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
