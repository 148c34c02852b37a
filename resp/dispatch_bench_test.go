package resp

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/tidwall/redcon"
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
