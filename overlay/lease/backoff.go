package lease

import (
	"context"
	"math/rand/v2"
	"time"
)

const (
	// opTimeout bounds one etcd call made by a background loop, because
	// clientv3 waits for a connection instead of failing fast.
	opTimeout = 10 * time.Second
	// configLogEvery rate-limits "still waiting" logs.
	configLogEvery = 10 * time.Second
)

// backoff is exponential with full jitter between min and max.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(min, max time.Duration) *backoff {
	return &backoff{min: min, max: max, cur: min}
}

func (b *backoff) reset() { b.cur = b.min }

// next returns the next wait: a random duration in [cur/2, cur], then doubles cur.
func (b *backoff) next() time.Duration {
	d := b.cur/2 + rand.N(b.cur/2+1)
	b.cur *= 2
	if b.cur > b.max {
		b.cur = b.max
	}
	return d
}

func (b *backoff) sleep(ctx context.Context) error {
	return sleepCtx(ctx, b.next())
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
