package node_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/peercache/peercache/node"
)

// Conditional and read-modify-write mutations behave alike whether the
// receiving node owns the key or forwards it.
func TestMutations(t *testing.T) {
	nodes := startCluster(t, 2, false)
	ctx := context.Background()
	for _, via := range nodes {
		for _, owner := range nodes {
			key := ""
			for i := 0; ; i++ {
				key = fmt.Sprintf("m-%s-%d", via.Name(), i)
				if via.RingForTest().Owner(key) == owner.Name() {
					break
				}
			}
			t.Run(fmt.Sprintf("via_%s_owner_%s", via.Name(), owner.Name()), func(t *testing.T) {
				res, err := via.Write(ctx, key, node.Mutation{Value: []byte("a"), IfPresent: true})
				if err != nil || res.Applied || res.Existed {
					t.Fatalf("XX on a missing key: %+v %v", res, err)
				}
				res, err = via.Write(ctx, key, node.Mutation{Value: []byte("a"), IfAbsent: true, TTL: time.Hour})
				if err != nil || !res.Applied || res.Existed {
					t.Fatalf("NX on a missing key: %+v %v", res, err)
				}
				res, err = via.Write(ctx, key, node.Mutation{Value: []byte("b"), IfAbsent: true})
				if err != nil || res.Applied || !res.Existed {
					t.Fatalf("NX on an existing key: %+v %v", res, err)
				}
				res, err = via.Write(ctx, key, node.Mutation{Value: []byte("c"), KeepTTL: true})
				if err != nil || !res.Applied {
					t.Fatalf("KEEPTTL set: %+v %v", res, err)
				}
				it, err := via.Get(ctx, key)
				if ttl, ok := it.TTL(); err != nil || string(it.Value) != "c" || !ok || ttl < 59*time.Minute {
					t.Fatalf("after KEEPTTL: %q ttl %v %v", it.Value, ttl, err)
				}
				if res, err = via.Write(ctx, key, node.Mutation{Expire: true}); err != nil || !res.Applied {
					t.Fatalf("persist: %+v %v", res, err)
				}
				if it, _ = via.Get(ctx, key); !it.ExpireAt.IsZero() || string(it.Value) != "c" {
					t.Fatalf("after persist: %q expires %v", it.Value, it.ExpireAt)
				}
				if res, err = via.Write(ctx, key, node.Mutation{Expire: true, TTL: 200 * time.Millisecond}); err != nil || !res.Applied {
					t.Fatalf("expire: %+v %v", res, err)
				}
				waitFor(t, 3*time.Second, "the key expires", func() bool { _, err := via.Get(ctx, key); return err == node.ErrNotFound })
				if res, err = via.Write(ctx, key, node.Mutation{Expire: true, TTL: time.Second}); err != nil || res.Applied {
					t.Fatalf("expire of a missing key: %+v %v", res, err)
				}
				via.Set(ctx, key, []byte("d"), 0)
				if res, err = via.Write(ctx, key, node.Mutation{Delete: true}); err != nil || !res.Existed {
					t.Fatalf("delete of an existing key: %+v %v", res, err)
				}
				if res, err = via.Write(ctx, key, node.Mutation{Delete: true}); err != nil || res.Existed {
					t.Fatalf("delete of a missing key: %+v %v", res, err)
				}
			})
		}
	}
	// Over HTTP: if=absent answers 412 when the key exists.
	a := nodes[0]
	if r := a.put(t, "h", "1", "if=absent"); r.status != http.StatusNoContent {
		t.Fatalf("first if=absent: %s", r)
	}
	if r := nodes[1].put(t, "h", "2", "if=absent"); r.status != http.StatusPreconditionFailed {
		t.Fatalf("second if=absent: %s", r)
	}
	if r := a.put(t, "nope", "2", "if=present"); r.status != http.StatusPreconditionFailed {
		t.Fatalf("if=present on a missing key: %s", r)
	}
	if r := a.put(t, "h", "3", "if=sometimes"); r.status != http.StatusBadRequest {
		t.Fatalf("bad if: %s", r)
	}
	if r := a.get(t, "h"); string(r.body) != "1" {
		t.Fatalf("value after refused writes: %s", r)
	}
}
