package kv

import (
	"context"
	"errors"
	"testing"
)

// Errorf keeps what %w wraps reachable, and the kinds still match.
func TestErrorfWraps(t *testing.T) {
	e := Retryable(503, "shard read failed: %w", context.DeadlineExceeded)
	if e.Message != "shard read failed: context deadline exceeded" || !e.Retryable {
		t.Fatalf("message %q, retryable %v", e.Message, e.Retryable)
	}
	if !errors.Is(e, context.DeadlineExceeded) || !errors.Is(e, ErrUnavailable) || errors.Is(e, ErrInvalid) {
		t.Fatal("errors.Is does not see the cause and the kind")
	}
	if plain := Errorf(400, "key is %d bytes", 2000); plain.Unwrap() != nil || !errors.Is(plain, ErrInvalid) {
		t.Fatalf("without %%w: cause %v", plain.Unwrap())
	}
}
