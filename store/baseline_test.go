package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/peercache/peercache/internal/testredis"
)

// Plain-Redis references for BenchmarkRedisGet and BenchmarkRedisPut in the
// same run: a go-redis GET and SET of the same 100-byte values, without the
// version header or the conditional Lua write.
//
//	go test -run '^$' -bench 'Redis(Get|Put|RawGet|RawSet)$' ./store/
func BenchmarkRedisRawGet(b *testing.B) {
	c := testredis.Start(b).Client()
	ctx := context.Background()
	for i := 0; i < 10_000; i++ {
		c.Set(ctx, fmt.Sprintf("key-%d", i), make([]byte, 100), 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Get(ctx, fmt.Sprintf("key-%d", i%10_000)).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRedisRawSet(b *testing.B) {
	c := testredis.Start(b).Client()
	ctx := context.Background()
	value := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Set(ctx, fmt.Sprintf("key-%d", rand.IntN(10_000)), value, 0).Err(); err != nil {
			b.Fatal(err)
		}
	}
}
