package backoff

import (
	"context"
	"errors"
	"time"
)

// Retry runs f until it returns nil or ctx ends, waiting b.Next() between
// attempts. failed, when not nil, is told of each failure (its 1-based
// attempt, the wait before the next one and f's error) before the wait.
// It returns nil once f succeeded, ctx's error, or at once the error f
// wrapped with Permanent (unwrapped).
func Retry(ctx context.Context, b *Backoff, f func() error, failed func(attempt int, wait time.Duration, err error)) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		var p *permanent
		if errors.As(err, &p) {
			return p.err
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

// Permanent marks err as one retrying cannot help: Retry returns err at
// once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err: err}
}

type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }
