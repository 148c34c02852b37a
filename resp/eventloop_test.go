package resp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// respCmd appends one request in RESP multibulk form.
func respCmd(b *strings.Builder, args ...string) {
	fmt.Fprintf(b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(b, "$%d\r\n%s\r\n", len(a), a)
	}
}

func respBulk(v string) string { return "$" + strconv.Itoa(len(v)) + "\r\n" + v + "\r\n" }

// TestEventLoopKeepsOrderAcrossGoroutines: one connection sends, in pieces
// cut at random bytes, a pipeline that mixes commands the loop answers in
// place (SET, GET, PING, ECHO) with commands it hands to a goroutine (INCR,
// MGET): every reply comes back in order, and both kinds of round were
// served.
func TestEventLoopKeepsOrderAcrossGoroutines(t *testing.T) {
	n := startNodeResp(t, "n0", nil, Options{EventLoops: 1})
	var req, want strings.Builder
	for i := range 2000 {
		k := "k" + strconv.Itoa(i%7)
		v := 1000 + i
		respCmd(&req, "SET", k, strconv.Itoa(v))
		want.WriteString("+OK\r\n")
		if i%50 == 0 {
			v++
			respCmd(&req, "INCR", k)
			want.WriteString(":" + strconv.Itoa(v) + "\r\n")
		}
		respCmd(&req, "GET", k)
		want.WriteString(respBulk(strconv.Itoa(v)))
		respCmd(&req, "PING")
		want.WriteString("+PONG\r\n")
		if i%77 == 0 {
			respCmd(&req, "MGET", k, "absent")
			want.WriteString("*2\r\n" + respBulk(strconv.Itoa(v)) + "$-1\r\n")
		}
		respCmd(&req, "ECHO", k)
		want.WriteString(respBulk(k))
	}
	c, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	sent := make(chan error, 1)
	go func() {
		b := []byte(req.String())
		rnd := rand.New(rand.NewPCG(1, 2))
		for len(b) > 0 {
			k := min(len(b), 1+rnd.IntN(700))
			if _, err := c.Write(b[:k]); err != nil {
				sent <- err
				return
			}
			b = b[k:]
			if rnd.IntN(4) == 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
		sent <- nil
	}()
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("after %d bytes of replies: %v", len(got), err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		i := 0
		for i < len(got) && got[i] == want.String()[i] {
			i++
		}
		t.Fatalf("replies differ at byte %d: got %q, want %q", i, got[i:min(len(got), i+80)], want.String()[i:min(len(got), i+80)])
	}
	if r, o := n.resp.stats.loopRounds.Load(), n.resp.stats.loopOffloaded.Load(); r == 0 || o == 0 {
		t.Fatalf("rounds in place %d, handed to a goroutine %d: want both", r, o)
	}
}

// TestEventLoopWaitsForASlowReader: a client that sends GETs of a 512 KiB
// value and reads nothing stops being served once its replies pile up (the
// goroutine layer would block in its write), and gets every reply once it
// reads.
func TestEventLoopWaitsForASlowReader(t *testing.T) {
	n := startNodeResp(t, "n0", nil, Options{EventLoops: 1})
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: n.addr})
	defer rdb.Close()
	val := bytes.Repeat([]byte("0123456789abcdef"), 512<<10/16)
	if err := rdb.Set(ctx, "big", val, 0).Err(); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	const gets = 128 // 64 MiB of replies
	before := n.resp.stats.commands.Load()
	for range gets {
		if _, err := c.Write([]byte("*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // one round each
	}
	// Wait until the server stops running them.
	last := int64(-1)
	for cur := n.resp.stats.commands.Load(); cur != last; cur = n.resp.stats.commands.Load() {
		last = cur
		time.Sleep(200 * time.Millisecond)
	}
	if ran := last - before; ran >= gets {
		t.Fatalf("all %d GETs ran while their client read nothing: their replies were all held in memory", ran)
	} else {
		t.Logf("%d of %d GETs ran before the client read", ran, gets)
	}
	br := bufio.NewReaderSize(c, 1<<20)
	head := "$" + strconv.Itoa(len(val)) + "\r\n"
	got := make([]byte, len(head)+len(val)+2)
	for i := range gets {
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if string(got[:len(head)]) != head || !bytes.Equal(got[len(head):len(head)+len(val)], val) {
			t.Fatalf("reply %d is not the value", i)
		}
	}
}

// TestEventLoopCloseEndsCommandsInFlight: Close returns while a command
// handed to a goroutine is still waiting on the backend (Close cancels
// it), and the connection is closed.
func TestEventLoopCloseEndsCommandsInFlight(t *testing.T) {
	b := &slowBackend{delay: time.Hour, vals: map[string][]byte{}}
	s, err := Listen(b, Options{Addr: "127.0.0.1:0", EventLoops: 2, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")) // slowBackend: not an AtOnceBackend, so a goroutine
	deadline := time.Now().Add(5 * time.Second)
	for s.stats.loopOffloaded.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	t.Logf("Close took %v", time.Since(start))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("the connection was not closed: %v", err)
	}
}

// TestEventLoopIdleTimeout: the loops close connections idle for longer
// than Options.IdleTimeout, and keep busy ones.
func TestEventLoopIdleTimeout(t *testing.T) {
	n := startNodeResp(t, "n0", nil, Options{EventLoops: 1, IdleTimeout: 300 * time.Millisecond})
	idle, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	busy := redis.NewClient(&redis.Options{Addr: n.addr, PoolSize: 1, MaxRetries: -1})
	defer busy.Close()
	ctx := context.Background()
	start := time.Now()
	for time.Since(start) < time.Second {
		if err := busy.Ping(ctx).Err(); err != nil {
			t.Fatalf("a busy connection was closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(idle); err != nil {
		t.Fatalf("the idle connection was not closed: %v", err)
	}
}

// TestEventLoopRefusesTLS: the loops serve plain TCP only.
func TestEventLoopRefusesTLS(t *testing.T) {
	_, err := Listen(&slowBackend{vals: map[string][]byte{}}, Options{Addr: "127.0.0.1:0", EventLoops: 1, TLS: &tls.Config{}, Logger: testLogger()})
	if err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("Listen with TLS and event loops: %v, want a refusal", err)
	}
}
