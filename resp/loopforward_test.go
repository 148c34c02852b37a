package resp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/peercache/peercache/node"
)

// flakyForwards is a node whose forwards started from the event loop fail
// in turn: one in three does not start, one in three answers "retry", from
// another goroutine; the rest go through.
type flakyForwards struct {
	*node.Node
	n atomic.Int64
}

func (f *flakyForwards) StartGet(key string, now bool, done func(node.Item, error, bool)) bool {
	switch f.n.Add(1) % 3 {
	case 0:
		return false
	case 1:
		go done(node.Item{}, errors.New("lost"), true)
		return true
	}
	return f.Node.StartGet(key, now, done)
}

func (f *flakyForwards) StartWrite(key string, m node.Mutation, now bool, done func(node.WriteResult, error, bool)) bool {
	switch f.n.Add(1) % 3 {
	case 0:
		return false
	case 1:
		go done(node.WriteResult{}, errors.New("lost"), true)
		return true
	}
	return f.Node.StartWrite(key, m, now, done)
}

// TestEventLoopForwards: through node 0 of 3, in proxy mode, one
// connection sends in pieces cut at random bytes a pipeline of SETs and
// GETs of keys all three own, with PINGs and conditional SETs among them;
// every reply comes back in order, rounds were served with forwards from
// the loop, and so they are when the forwards fail to start or ask for a
// retry (they then run through the blocking path). Many clients at once
// read back what they wrote.
func TestEventLoopForwards(t *testing.T) { testForwards(t, 1) }

// TestGoroutineForwards: the same without event loops, where an
// unpipelined GET or SET of another member's key is forwarded by the
// connection's goroutine without waiting, and the peer connection's
// reader writes the reply (goforward.go).
func TestGoroutineForwards(t *testing.T) { testForwards(t, 0) }

func testForwards(t *testing.T, loops int) {
	nodes := startClusterResp(t, 3, Options{EventLoops: loops}, func(c *node.Config) { c.Migration.HandoffWindow = 100 * time.Millisecond })
	// Until the handoff window of the last join ends, a previous owner may
	// hold node 0's keys: rounds with those go to a goroutine.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 40; i++ {
		if k := "node-k" + strconv.Itoa(i); !nodes[0].Forwards(k) && !nodes[0].AnswersAtOnce(k, true) {
			if time.Now().After(deadline) {
				t.Fatalf("node 0 does not answer its key %s at once", k)
			}
			time.Sleep(20 * time.Millisecond)
			i--
		}
	}
	servers := map[string]*Server{"node": nodes[0].resp}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	flaky, err := Listen(&flakyForwards{Node: nodes[0].Node}, Options{Listener: ln, EventLoops: loops, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	flaky.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		flaky.Close(ctx)
	})
	servers["flaky"] = flaky
	for name, s := range servers {
		t.Run(name, func(t *testing.T) {
			// Requests and their replies, sent in batches of 1 to 12 (a
			// client with a few commands in flight), each batch cut in two
			// at a random byte.
			type exchange struct{ req, reply string }
			var ex []exchange
			add := func(reply string, args ...string) {
				var b strings.Builder
				respCmd(&b, args...)
				ex = append(ex, exchange{b.String(), reply})
			}
			vals := map[string]int{}
			for i := range 3000 {
				k := name + "-k" + strconv.Itoa(i%40)
				add("+OK\r\n", "SET", k, strconv.Itoa(i))
				vals[k] = i
				if i%13 == 0 {
					add("$-1\r\n", "SET", k, "never", "NX")
				}
				g := name + "-k" + strconv.Itoa((i*7)%40)
				if v, ok := vals[g]; ok {
					add(respBulk(strconv.Itoa(v)), "GET", g)
				} else {
					add("$-1\r\n", "GET", g)
				}
				if i%5 == 0 {
					add("+PONG\r\n", "PING")
				}
			}
			c, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			rnd := rand.New(rand.NewPCG(3, 4))
			for len(ex) > 0 {
				n := min(len(ex), 1+rnd.IntN(12))
				var req, want strings.Builder
				for _, e := range ex[:n] {
					req.WriteString(e.req)
					want.WriteString(e.reply)
				}
				ex = ex[n:]
				b := []byte(req.String())
				cut := rnd.IntN(len(b))
				if _, err := c.Write(b[:cut]); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Write(b[cut:]); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, want.Len())
				if _, err := io.ReadFull(c, got); err != nil {
					t.Fatalf("after %d bytes of replies: %v", len(got), err)
				}
				if w := want.String(); string(got) != w {
					t.Fatalf("replies to %q: got %q, want %q", req.String(), got, w)
				}
			}
			if f := s.stats.loopForwarded.Load(); s.opts.EventLoops > 0 && f == 0 {
				t.Fatalf("no round was served with forwards from the loop (in place %d, offloaded %d)", s.stats.loopRounds.Load(), s.stats.loopOffloaded.Load())
			}
			if f := s.stats.connForwards.Load(); s.opts.EventLoops == 0 && f == 0 {
				t.Fatal("no request was forwarded by a connection's goroutine without waiting")
			}

			rdb := redis.NewClient(&redis.Options{Addr: s.Addr().String(), PoolSize: 16})
			defer rdb.Close()
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for w := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 200 {
						k := fmt.Sprintf("%s-c%d-%d", name, w, i%20)
						v := strconv.Itoa(i)
						if err := rdb.Set(ctx, k, v, 0).Err(); err != nil {
							errs <- err
							return
						}
						if got, err := rdb.Get(ctx, k).Result(); err != nil || got != v {
							errs <- fmt.Errorf("GET %s: %q %v, want %q", k, got, err, v)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		})
	}
}

// TestGoroutineForwardReplyBeforeProtocolError: a forwarded GET followed
// at once by a bad request: the GET's reply, written by the peer reader,
// comes first, then the protocol error, then the connection closes.
func TestGoroutineForwardReplyBeforeProtocolError(t *testing.T) {
	nodes := startClusterResp(t, 3, Options{}, func(c *node.Config) { c.Migration.HandoffWindow = 100 * time.Millisecond })
	s := nodes[0].resp
	if s.opts.EventLoops > 0 {
		t.Skip("the event loops serve this server (PEERCACHE_TEST_RESP_EVENT_LOOPS)")
	}
	key := ""
	for i := 0; key == ""; i++ {
		if k := "far-" + strconv.Itoa(i); nodes[0].Forwards(k) {
			key = k
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr().String()})
	defer rdb.Close()
	if err := rdb.Set(context.Background(), key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	apart := 0
	for i := range 20 {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var req strings.Builder
		respCmd(&req, "GET", key)
		if _, err := c.Write([]byte(req.String())); err != nil {
			t.Fatal(err)
		}
		// Apart, so that the GET is read alone (one packet: requests before
		// a protocol error are dropped, as before), and mostly while its
		// forward is out.
		time.Sleep(time.Duration(20+i*10) * time.Microsecond)
		if _, err := c.Write([]byte("*1\r\n$-5\r\n")); err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(c)
		c.Close()
		switch {
		case strings.HasPrefix(string(got), respBulk("v")+"-ERR Protocol error"):
			apart++
		case strings.HasPrefix(string(got), "-ERR Protocol error") && !strings.Contains(string(got), "$1"):
			// Both arrived in one read.
		default:
			t.Fatalf("got %q, want the GET's reply, then the protocol error", got)
		}
	}
	if apart == 0 {
		t.Fatal("the GET was never read apart from the bad request")
	}
}
