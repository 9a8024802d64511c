package lease

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/backoff"
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
		var last []byte
		sent := false
		send := func(raw []byte, c ConfigChange) bool {
			if sent && bytes.Equal(raw, last) {
				return true
			}
			select {
			case ch <- c:
				last, sent = raw, true
				return true
			case <-ctx.Done():
				return false
			}
		}
		bo := backoff.New(200*time.Millisecond, 5*time.Second)
		for ctx.Err() == nil {
			var rev int64
			if backoff.Retry(ctx, bo, func() error {
				var ok bool
				if rev, ok = r.readConfigOnce(ctx, send); !ok {
					return errNotRead
				}
				return nil
			}, nil) != nil {
				return
			}
			bo.Reset()
			if !r.watchConfigFrom(ctx, rev, send) {
				return
			}
		}
	}()
	return ch
}

// errNotRead is readConfigOnce's failure: etcd could not be read (or ctx
// ended while sending).
var errNotRead = errors.New("config not read")

// readConfigOnce reads the config and sends it; it returns the revision to
// watch from, and false when etcd could not be read.
func (r *Registry) readConfigOnce(ctx context.Context, send func([]byte, ConfigChange) bool) (int64, bool) {
	opCtx, cancel := context.WithTimeout(ctx, opTimeout)
	resp, err := r.cli.Get(opCtx, r.ConfigKey())
	cancel()
	if err != nil {
		return 0, false
	}
	var raw []byte
	if len(resp.Kvs) > 0 {
		raw = resp.Kvs[0].Value
	}
	return resp.Header.Revision, send(raw, r.configChange(raw))
}

// watchConfigFrom sends every change after rev until the watch breaks
// (true: read again) or ctx ends (false).
func (r *Registry) watchConfigFrom(ctx context.Context, rev int64, send func([]byte, ConfigChange) bool) bool {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wr := range r.cli.Watch(clientv3.WithRequireLeader(wctx), r.ConfigKey(), clientv3.WithRev(rev+1)) {
		if wr.Err() != nil || wr.CompactRevision != 0 {
			return ctx.Err() == nil
		}
		for _, ev := range wr.Events {
			var raw []byte
			if ev.Type != clientv3.EventTypeDelete {
				raw = ev.Kv.Value
			}
			if !send(raw, r.configChange(raw)) {
				return false
			}
		}
	}
	return ctx.Err() == nil
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
