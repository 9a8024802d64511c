package lease

import (
	"context"
	"errors"
	"time"

	"github.com/vxlan6/vxlan6/internal/backoff"
)

// maxAcquireAttempts bounds the retries after lost races; every round some
// contender wins, so this only ends pathological contention.
const maxAcquireAttempts = 100

// errLostRace is what an optimistic read-compare-write returns when another
// writer got in between: read again and retry.
var errLostRace = errors.New("lost a race")

// retryRaces runs attempt, one optimistic read-compare-write, until it wins
// (nil) or fails. After errLostRace it waits (backoff) and tries again, at
// most maxAcquireAttempts times. attempt's other errors are returned as they
// are; ctx's error, or errLostRace once the attempts are used up, go through
// wrap, which names the operation.
func retryRaces(ctx context.Context, attempt func() error, wrap func(error) error) error {
	var failed error
	n := 0
	err := backoff.Retry(ctx, backoff.New(10*time.Millisecond, time.Second), func() error {
		n++
		err := attempt()
		switch {
		case err == nil || errors.Is(err, errLostRace) && n < maxAcquireAttempts:
			return err
		case !errors.Is(err, errLostRace):
			failed = err
		}
		return backoff.Permanent(err)
	}, nil)
	switch {
	case failed != nil:
		return failed
	case err != nil:
		return wrap(err)
	}
	return nil
}
