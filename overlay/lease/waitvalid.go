package lease

import (
	"context"
	"time"

	"github.com/vxlan6/vxlan6/internal/backoff"
)

// WaitValidConfig is WaitConfig that also waits out an invalid config:
// each time it reads one it tells onInvalid (the error names the key and
// the attempt) and reads again after a pause, until the operator fixes it or
// ctx ends (ctx's error then). One bad write must not stop every node of the
// cluster at once. WaitConfig itself retries everything else.
func (r *Registry) WaitValidConfig(ctx context.Context, onInvalid func(attempt int, retryIn time.Duration, err error)) (*Config, error) {
	var cfg *Config
	err := backoff.Retry(ctx, backoff.New(500*time.Millisecond, 5*time.Second), func() (err error) {
		cfg, err = r.WaitConfig(ctx)
		return err
	}, onInvalid)
	return cfg, err
}
