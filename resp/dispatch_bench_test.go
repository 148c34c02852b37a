package resp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/redcon"

	"github.com/peercache/peercache/node"
)

// fakeConn is a redcon.Conn writing replies to a buffer, for benchmarks of
// the command path without the network.
type fakeConn struct {
	w   *redcon.Writer
	ctx any
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func newFakeConn() *fakeConn { return &fakeConn{w: redcon.NewWriter(discard{})} }

func (c *fakeConn) RemoteAddr() string             { return "127.0.0.1:1" }
func (c *fakeConn) Close() error                   { return nil }
func (c *fakeConn) WriteError(msg string)          { c.w.WriteError(msg) }
func (c *fakeConn) WriteString(str string)         { c.w.WriteString(str) }
func (c *fakeConn) WriteBulk(bulk []byte)          { c.w.WriteBulk(bulk) }
func (c *fakeConn) WriteBulkString(bulk string)    { c.w.WriteBulkString(bulk) }
func (c *fakeConn) WriteInt(num int)               { c.w.WriteInt(num) }
func (c *fakeConn) WriteInt64(num int64)           { c.w.WriteInt64(num) }
func (c *fakeConn) WriteUint64(num uint64)         { c.w.WriteUint64(num) }
func (c *fakeConn) WriteArray(count int)           { c.w.WriteArray(count) }
func (c *fakeConn) WriteNull()                     { c.w.WriteNull() }
func (c *fakeConn) WriteRaw(data []byte)           { c.w.WriteRaw(data) }
func (c *fakeConn) WriteAny(any interface{})       { c.w.WriteAny(any) }
func (c *fakeConn) Context() interface{}           { return c.ctx }
func (c *fakeConn) SetContext(v interface{})       { c.ctx = v }
func (c *fakeConn) SetReadBuffer(bytes int)        {}
func (c *fakeConn) Detach() redcon.DetachedConn    { return nil }
func (c *fakeConn) ReadPipeline() []redcon.Command { return nil }
func (c *fakeConn) PeekPipeline() []redcon.Command { return nil }
func (c *fakeConn) NetConn() net.Conn              { return nil }

func benchCommand(b *testing.B, setup [][]byte, args [][]byte) {
	n := startNode(b, "bench", nil)
	c := newFakeConn()
	cl := &client{}
	if setup != nil {
		n.resp.dispatch(c, cl, setup)
	}
	c.w.Flush()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n.resp.dispatch(c, cl, args)
		if i%64 == 0 {
			c.w.Flush()
		}
	}
}

func bs(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, x := range s {
		out[i] = []byte(x)
	}
	return out
}

func BenchmarkDispatchGet(b *testing.B) {
	benchCommand(b, bs("SET", "key:000000000042", "xxx"), bs("GET", "key:000000000042"))
}

func BenchmarkDispatchSet(b *testing.B) {
	benchCommand(b, nil, bs("SET", "key:000000000042", "xxx"))
}

func BenchmarkDispatchPing(b *testing.B) {
	benchCommand(b, nil, bs("PING"))
}

func BenchmarkContextWithTimeout(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cancel()
	}
}

// loopConn is a net.Conn that hands its reader the same bytes (a pipeline)
// a fixed number of times, then io.EOF, and discards what is written: the
// whole connection loop (read, parse, route, run, reply) without a socket.
type loopConn struct {
	net.Conn // nil: only the methods below are called
	data     []byte
	left     int
	off      int
}

func (c *loopConn) Read(p []byte) (int, error) {
	if c.off == len(c.data) {
		if c.left == 0 {
			return 0, io.EOF
		}
		c.left--
		c.off = 0
	}
	n := copy(p, c.data[c.off:])
	c.off += n
	return n, nil
}
func (c *loopConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *loopConn) Close() error                     { return nil }
func (c *loopConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *loopConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (c *loopConn) SetDeadline(time.Time) error      { return nil }
func (c *loopConn) SetReadDeadline(time.Time) error  { return nil }
func (c *loopConn) SetWriteDeadline(time.Time) error { return nil }

// benchPipelined serves b.N commands of kind cmd ("SET" or "GET") in
// pipelines of depth 16 over keys key:000000000000..999 (redis-benchmark
// -P 16 -r 1000), in cluster mode on a node that owns every slot, set up
// as bench/cluster.sh runs its nodes: no near cache, and the handoff window
// of its first ring over.
func benchPipelined(b *testing.B, cmd string) {
	const depth, keys = 16, 1000
	n := startNodeResp(b, "bench", nil, Options{Cluster: true}, func(c *node.Config) {
		c.Tier.NearTTL = -1
		c.Migration.HandoffWindow = time.Nanosecond
	})
	var pipes [][]byte // 1000 pipelines of 16 distinct keys each
	for p := 0; p < keys; p++ {
		var buf bytes.Buffer
		for i := 0; i < depth; i++ {
			k := fmt.Sprintf("key:%012d", (p*depth+i*61)%keys)
			if cmd == "SET" {
				fmt.Fprintf(&buf, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$32\r\n%s\r\n", len(k), k, strings.Repeat("x", 32))
			} else {
				fmt.Fprintf(&buf, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(k), k)
			}
		}
		pipes = append(pipes, buf.Bytes())
	}
	serve := func(data []byte, times int) {
		nc := &loopConn{data: data, left: times, off: len(data)}
		cl, ok := n.resp.register(nc)
		if !ok {
			b.Fatal("register refused")
		}
		n.resp.serveConn(nc, cl)
	}
	for k := 0; k < keys; k++ { // every key set once, for GET to hit
		serve(fmt.Appendf(nil, "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$3\r\nxxx\r\n", k), 1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	rounds := b.N / depth
	for p := 0; rounds > 0; p = (p + 1) % len(pipes) {
		chunk := min(rounds, 64)
		serve(pipes[p], chunk)
		rounds -= chunk
	}
}

func BenchmarkServePipelinedSet(b *testing.B) { benchPipelined(b, "SET") }

func BenchmarkServePipelinedGet(b *testing.B) { benchPipelined(b, "GET") }
