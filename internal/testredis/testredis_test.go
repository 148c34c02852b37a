package testredis_test

import (
	"context"
	"testing"
	"time"

	"github.com/peercache/peercache/internal/testredis"
)

func TestStartClientFlushRestartKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	s := testredis.Start(t, testredis.WithMaxMemory("8mb", "allkeys-lru"))
	c := s.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	mm, err := c.ConfigGet(ctx, "maxmemory").Result()
	if err != nil || mm["maxmemory"] != "8388608" {
		t.Fatalf("maxmemory = %v, %v; want 8388608", mm, err)
	}
	save, err := c.ConfigGet(ctx, "save").Result()
	if err != nil || save["save"] != "" {
		t.Fatalf("save = %q, %v; want empty", save, err)
	}

	s.FlushAll()
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE after FlushAll = %d, %v", n, err)
	}

	addr := s.Addr()
	c.Set(ctx, "k", "v", 0)
	s.Restart()
	if s.Addr() != addr {
		t.Fatalf("Addr changed across Restart: %s -> %s", addr, s.Addr())
	}
	// The client reconnects by itself; the dataset is empty after a restart.
	var n int64
	for i := 0; i < 5; i++ {
		if n, err = c.Exists(ctx, "k").Result(); err == nil {
			break
		}
	}
	if err != nil || n != 0 {
		t.Fatalf("EXISTS after Restart = %d, %v; want 0, nil", n, err)
	}

	s.Kill()
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if err := c.Ping(short).Err(); err == nil {
		t.Fatal("PING after Kill succeeded")
	}
	s.Kill() // idempotent
	s.Stop() // idempotent
}

func TestPassword(t *testing.T) {
	s := testredis.Start(t, testredis.WithPassword("s3cret"))
	if err := s.Client().Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING with password: %v", err)
	}
}

func TestManyServers(t *testing.T) {
	a, b := testredis.Start(t), testredis.Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share %s", a.Addr())
	}
}
