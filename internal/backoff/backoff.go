// Package backoff is the retry pacing shared by the daemon and the lease
// registry: exponential with full jitter, so that nodes which lost etcd at
// the same moment do not all come back at the same moment.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff hands out waits from min doubling up to max. Not safe for
// concurrent use; each retry loop has its own.
type Backoff struct {
	min, max, cur time.Duration
}

// New returns a Backoff whose first wait is at most min.
func New(min, max time.Duration) *Backoff {
	return &Backoff{min: min, max: max, cur: min}
}

// Reset starts again from min (after a success).
func (b *Backoff) Reset() { b.cur = b.min }

// Next returns the next wait, a random duration in [cur/2, cur], and
// doubles cur up to max.
func (b *Backoff) Next() time.Duration {
	d := b.cur/2 + rand.N(b.cur/2+1)
	b.cur = min(b.cur*2, b.max)
	return d
}

// Sleep waits Next(), or until ctx ends (then it returns ctx.Err()).
func (b *Backoff) Sleep(ctx context.Context) error {
	return SleepCtx(ctx, b.Next())
}

// SleepCtx waits d, or until ctx ends (then it returns ctx.Err()).
func SleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
