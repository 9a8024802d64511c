package lease

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWatchConfig: the current config first, then each change (a new VNI,
// an invalid write, a deletion); a rewrite of the same value is not sent.
func TestWatchConfig(t *testing.T) {
	v := newEnv(t)
	v.config(cfgV6)
	ctx, cancel := context.WithCancel(v.ctx)
	defer cancel()
	ch := v.r.WatchConfig(ctx)
	next := func(what string) ConfigChange {
		t.Helper()
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatalf("%s: WatchConfig channel closed", what)
			}
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: nothing from WatchConfig within 10s", what)
		}
		return ConfigChange{}
	}
	if c := next("initial"); c.Err != nil || c.Config.Backend.VNI != DefaultVNI {
		t.Fatalf("initial: %+v, want the config with VNI %d", c, DefaultVNI)
	}
	v.put(v.r.ConfigKey(), cfgV6) // the same value again: nothing sent
	v.put(v.r.ConfigKey(), `{"IPv6Network":"fd10:244::/48","Backend":{"Type":"vxlan","VNI":7}}`)
	if c := next("new VNI"); c.Err != nil || c.Config.Backend.VNI != 7 {
		t.Fatalf("after a VNI change: %+v, want VNI 7 (and no event for the unchanged rewrite)", c)
	}
	v.put(v.r.ConfigKey(), `{"IPv6Network":"fd10:244::/48","IPv6SubnetLen":40}`)
	if c := next("invalid"); !errors.Is(c.Err, ErrInvalidConfig) {
		t.Fatalf("after an invalid write: %+v, want ErrInvalidConfig", c)
	}
	if _, err := v.cli.Delete(v.ctx, v.r.ConfigKey()); err != nil {
		t.Fatal(err)
	}
	if c := next("deleted"); !errors.Is(c.Err, ErrNoConfig) {
		t.Fatalf("after a delete: %+v, want ErrNoConfig", c)
	}
	cancel()
	for range ch {
	}
}
