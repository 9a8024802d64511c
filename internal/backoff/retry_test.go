package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRetryUntilSuccess(t *testing.T) {
	calls, told := 0, 0
	err := Retry(context.Background(), New(time.Millisecond, 2*time.Millisecond), func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}, func(attempt int, _ time.Duration, err error) {
		told++
		if attempt != told || err == nil {
			t.Errorf("failed(%d, %v) as call %d", attempt, err, told)
		}
	})
	if err != nil || calls != 3 || told != 2 {
		t.Fatalf("Retry: err %v after %d calls, %d failures told; want nil, 3, 2", err, calls, told)
	}
}

func TestRetryEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Retry(ctx, New(time.Hour, time.Hour), func() error {
		calls++
		cancel()
		return errors.New("down")
	}, nil)
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("Retry on a cancelled context: %v after %d calls, want context.Canceled after 1", err, calls)
	}
}

func TestRetryStopsAtPermanent(t *testing.T) {
	calls, told := 0, 0
	bad := errors.New("bad input")
	err := Retry(context.Background(), New(time.Millisecond, 2*time.Millisecond), func() error {
		calls++
		if calls < 2 {
			return errors.New("not yet")
		}
		return Permanent(bad)
	}, func(int, time.Duration, error) { told++ })
	if err != bad || calls != 2 || told != 1 {
		t.Fatalf("Retry: err %v after %d calls, %d failures told; want %v (unwrapped), 2, 1", err, calls, told, bad)
	}
	if Permanent(nil) != nil {
		t.Fatal("Permanent(nil) is not nil")
	}
}
