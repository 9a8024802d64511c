package daemon

import (
	"context"
	"strings"
	"time"

	"github.com/vxlan6/vxlan6/internal/backoff"
)

// retry runs f until it succeeds (nil) or ctx ends (errStopped), counting
// and logging each failure. At most 5s apart: after an etcd outage the
// daemon should not lag.
func (d *daemon) retry(ctx context.Context, what string, f func() error) error {
	op := strings.ReplaceAll(what, " ", "_")
	err := backoff.Retry(ctx, backoff.New(500*time.Millisecond, 5*time.Second), f, func(attempt int, wait time.Duration, err error) {
		d.m.incError(op)
		d.log.Error(what+" failed, retrying", "attempt", attempt, "retryIn", wait.String(), "err", err)
		d.status(what + " failed, retrying: " + err.Error())
		// A retry can hold the loop for a whole etcd outage: waiting is
		// not hanging, so keep the watchdog fed.
		d.notify(d.wd.Ping)
	})
	if err != nil {
		return errStopped
	}
	return nil
}
