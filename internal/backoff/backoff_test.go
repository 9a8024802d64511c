package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNextDoublesWithJitterUpToMax(t *testing.T) {
	b := New(100*time.Millisecond, time.Second)
	for round := 0; round < 2; round++ {
		cur := 100 * time.Millisecond
		for i := 0; i < 8; i++ {
			d := b.Next()
			if d < cur/2 || d > cur {
				t.Fatalf("round %d wait %d: %s, want within [%s, %s]", round, i, d, cur/2, cur)
			}
			cur = min(cur*2, time.Second)
		}
		b.Reset()
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New(time.Hour, time.Hour).Sleep(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context: %v, want context.Canceled", err)
	}
	if err := SleepCtx(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("SleepCtx: %v", err)
	}
}
