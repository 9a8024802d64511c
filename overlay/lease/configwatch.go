package lease

import (
	"bytes"
	"context"
	"fmt"
)

// ConfigChange is one value of <prefix>/config seen by WatchConfig: the
// parsed config, or why there is none to use (invalid: a *ConfigError;
// deleted: ErrNoConfig).
type ConfigChange struct {
	Config *Config
	Err    error
}

// WatchConfig sends the network config when the watch starts and each time
// <prefix>/config changes, until ctx ends (the channel is closed then). A
// broken watch (etcd away, compaction) is restarted from a fresh read; a
// value equal to the last one sent is not sent again.
func (r *Registry) WatchConfig(ctx context.Context) <-chan ConfigChange {
	ch := make(chan ConfigChange, 1)
	go func() {
		defer close(ch)
		r.watchKey(ctx, r.ConfigKey(), changeSender(ctx, ch, bytes.Equal, r.configChange), nil)
	}()
	return ch
}

func (r *Registry) configChange(raw []byte) ConfigChange {
	if raw == nil {
		return ConfigChange{Err: fmt.Errorf("%w at %s (deleted)", ErrNoConfig, r.ConfigKey())}
	}
	cfg, err := parseStoredConfig(r.ConfigKey(), raw, r.log)
	if err != nil {
		return ConfigChange{Err: &ConfigError{Key: r.ConfigKey(), Err: err}}
	}
	return ConfigChange{Config: cfg}
}
