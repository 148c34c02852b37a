package baseline

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestRESPFloor(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); NewRESPFloor(2).Serve(ln) }()
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

// A request that declares a bulk longer than any limit (the length that
// panicked redcon's reader) is answered with an error and closes only its
// connection; the server goes on.
func TestRESPFloorRefusesHugeLengths(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); NewRESPFloor(10).Serve(ln) }()
	t.Cleanup(func() { ln.Close(); <-done })
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("*2\r\n$3\r\nGET\r\n$9223372036854775807\r\n"))
	buf := make([]byte, 128)
	n, _ := nc.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "-ERR") {
		t.Fatalf("reply %q, want an error", buf[:n])
	}
	c := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), Protocol: 2, DisableIdentity: true})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("the server stopped answering: %v", err)
	}
}
