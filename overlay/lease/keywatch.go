package lease

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/backoff"
)

// watchKey passes the value of key to recv (nil: absent or deleted): once
// read, then on every change, and again from a fresh read after each broken
// watch (etcd away, compaction, lost leader), so no change is missed while
// the watch was down. A failed read is retried with backoff (onReadErr, if
// set, hears of each failure); so is a watch that breaks before it was up
// for stableHold, so a flapping etcd is not hammered. It returns when ctx
// ends or recv returns false. WatchConfig and WatchNode are this loop with
// their own parsing.
func (r *Registry) watchKey(ctx context.Context, key string, recv func(raw []byte) bool, onReadErr func(error)) {
	bo := backoff.New(200*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		var raw []byte
		var rev int64
		if backoff.Retry(ctx, bo, func() (err error) {
			raw, rev, err = r.readKey(ctx, key)
			return err
		}, func(_ int, _ time.Duration, err error) {
			if onReadErr != nil {
				onReadErr(err)
			}
		}) != nil {
			return
		}
		if !recv(raw) {
			return
		}
		start := time.Now()
		if !r.watchKeyFrom(ctx, key, rev, recv) {
			return
		}
		if time.Since(start) >= stableHold {
			bo.Reset()
		}
		if bo.Sleep(ctx) != nil {
			return
		}
	}
}

// readKey reads key's value (nil if absent) and the revision read.
func (r *Registry) readKey(ctx context.Context, key string) ([]byte, int64, error) {
	opCtx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	resp, err := r.cli.Get(opCtx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, resp.Header.Revision, nil
	}
	return resp.Kvs[0].Value, resp.Header.Revision, nil
}

// watchKeyFrom passes every change of key after rev to recv until the
// watch breaks (true: read again) or ctx ends or recv returns false (false).
func (r *Registry) watchKeyFrom(ctx context.Context, key string, rev int64, recv func([]byte) bool) bool {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wr := range r.cli.Watch(clientv3.WithRequireLeader(wctx), key, clientv3.WithRev(rev+1)) {
		if wr.Err() != nil || wr.CompactRevision != 0 {
			break
		}
		for _, ev := range wr.Events {
			var raw []byte
			if ev.Type != clientv3.EventTypeDelete {
				raw = ev.Kv.Value
			}
			if !recv(raw) {
				return false
			}
		}
	}
	return ctx.Err() == nil
}

// changeSender returns a send for a watchKey consumer: it passes conv(v) to
// ch unless v is the same as the last value sent, and returns false once ctx
// ended. v must not be changed after the call (it is kept to compare).
func changeSender[K, V any](ctx context.Context, ch chan<- V, same func(a, b K) bool, conv func(K) V) func(K) bool {
	var last K
	sent := false
	return func(v K) bool {
		if sent && same(v, last) {
			return true
		}
		select {
		case ch <- conv(v):
			last, sent = v, true
			return true
		case <-ctx.Done():
			return false
		}
	}
}
