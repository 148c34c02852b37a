package baseline

import (
	"context"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/tidwall/redcon"
)

func TestRESPFloor(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); redcon.Serve(ln, NewRESPFloor(2).Handle, nil, nil) }()
	t.Cleanup(func() { ln.Close(); <-done })
	c := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	if err := c.Set(ctx, "a", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "a").Result(); err != nil || v != "1" {
		t.Fatalf("GET a = %q, %v", v, err)
	}
	if err := c.Get(ctx, "missing").Err(); err != redis.Nil {
		t.Fatalf("GET missing: %v, want nil reply", err)
	}
	c.Set(ctx, "b", "2", 0)
	if err := c.Set(ctx, "c", "3", 0).Err(); err == nil {
		t.Fatal("SET beyond the key limit succeeded")
	}
	if err := c.Set(ctx, "a", "again", 0).Err(); err != nil {
		t.Fatalf("overwrite at the limit: %v", err)
	}
}
