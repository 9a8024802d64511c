package backoff

import (
	"context"
	"time"
)

// Retry runs f until it returns nil or ctx ends, waiting b.Next() between
// attempts. failed, when not nil, is told of each failure (its 1-based
// attempt, the wait before the next one and f's error) before the wait.
// It returns nil once f succeeded, or ctx's error.
func Retry(ctx context.Context, b *Backoff, f func() error, failed func(attempt int, wait time.Duration, err error)) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := b.Next()
		if failed != nil {
			failed(attempt, wait, err)
		}
		if err := SleepCtx(ctx, wait); err != nil {
			return err
		}
	}
}
