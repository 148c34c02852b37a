package warm

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/peercache/peercache/kv"
)

// Keys reads distinct keys in batches and counts each answer once.
func TestKeys(t *testing.T) {
	var batches [][]string
	read := func(ctx context.Context, keys []string) []Read {
		batches = append(batches, keys)
		out := make([]Read, len(keys))
		for i, k := range keys {
			switch k {
			case "o1", "o2":
				out[i].Origin = true
			case "gone":
				out[i].Err = fmt.Errorf("read: %w", kv.ErrNotFound)
			case "bad":
				out[i].Err = errors.New("boom")
			}
		}
		return out
	}
	res := Keys(context.Background(), []string{"a", "a", "o1", "gone", "bad", "o2", "b", "b"}, 4, read)
	want := Result{Keys: 6, Present: 2, Loaded: 2, Missing: 1, Failed: 1, Error: "boom"}
	if res != want {
		t.Fatalf("Keys = %+v, want %+v", res, want)
	}
	if len(batches) != 2 || len(batches[0]) != 3 || len(batches[1]) != 3 {
		t.Fatalf("batches %v, want two of three distinct keys each", batches)
	}
}
