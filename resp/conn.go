package resp

import (
	"errors"
	"io"
	"net"
	"runtime/debug"
	"time"

	"github.com/tidwall/redcon"

	"github.com/peercache/peercache/auth"
	"github.com/peercache/peercache/internal/respreader"
)

// conn is one client connection: the request reader (ours, with limits)
// and redcon's reply writer. It implements redcon.Conn, so command
// handlers write replies through the interface they always have; only the
// pipeline methods and Close have meaning beyond writing.
type conn struct {
	nc     net.Conn
	addr   string
	wr     *redcon.Writer
	rd     *respreader.Reader
	ctx    any
	cmds   []redcon.Command // the rest of the pipeline being served
	closed bool             // Close was called: stop after this command
	// loop: the connection is served by the event loop (eventloop.go),
	// which writes the flushed replies and closes the socket itself.
	loop bool
}

var _ redcon.Conn = (*conn)(nil)

func (c *conn) RemoteAddr() string          { return c.addr }
func (c *conn) Context() any                { return c.ctx }
func (c *conn) SetContext(v any)            { c.ctx = v }
func (c *conn) SetReadBuffer(int)           {}
func (c *conn) WriteString(str string)      { c.wr.WriteString(str) }
func (c *conn) WriteBulk(bulk []byte)       { c.wr.WriteBulk(bulk) }
func (c *conn) WriteBulkString(bulk string) { c.wr.WriteBulkString(bulk) }
func (c *conn) WriteInt(num int)            { c.wr.WriteInt(num) }
func (c *conn) WriteInt64(num int64)        { c.wr.WriteInt64(num) }
func (c *conn) WriteUint64(num uint64)      { c.wr.WriteUint64(num) }
func (c *conn) WriteError(msg string)       { c.wr.WriteError(msg) }
func (c *conn) WriteArray(count int)        { c.wr.WriteArray(count) }
func (c *conn) WriteNull()                  { c.wr.WriteNull() }
func (c *conn) WriteRaw(data []byte)        { c.wr.WriteRaw(data) }
func (c *conn) WriteAny(v any)              { c.wr.WriteAny(v) }
func (c *conn) NetConn() net.Conn           { return c.nc }
func (c *conn) PeekPipeline() []redcon.Command {
	return c.cmds
}

func (c *conn) ReadPipeline() []redcon.Command {
	cmds := c.cmds
	c.cmds = nil
	return cmds
}

// Detach is not supported (no command of ours needs it): it panics, which
// the connection's recover turns into a closed connection.
func (c *conn) Detach() redcon.DetachedConn { panic("resp: Detach is not supported") }

// Close flushes the replies written so far and closes the connection; the
// serving loop stops after the current command.
func (c *conn) Close() error {
	c.wr.Flush()
	c.closed = true
	if c.loop {
		return nil // the event loop sends the replies, then closes
	}
	return c.nc.Close()
}

// lingerClose ends a connection whose client may still be sending (the
// rest of an oversized request) so that the error reply just written
// reaches it: closing with unread input would reset the connection and
// discard the reply. It stops sending, then reads and drops what still
// arrives, bounded in bytes and time, as net/http does.
func lingerClose(nc net.Conn) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	nc.SetReadDeadline(time.Now().Add(lingerTime))
	io.CopyN(io.Discard, nc, lingerBytes)
}

const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 4 << 20
)

// acceptLoop accepts connections until the listener is closed.
func (s *Server) acceptLoop() error {
	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// e.g. EMFILE: back off instead of spinning, as net/http does.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			s.log.Warn("resp: accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-s.base.Done():
				return nil
			}
		}
		delay = 0
		s.stats.connections.Add(1)
		cl, ok := s.register(nc)
		if !ok {
			s.stats.rejected.Add(1)
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			nc.Write([]byte("-ERR max number of clients reached\r\n"))
			nc.Close()
			continue
		}
		if s.loop != nil {
			s.loop.enroll(nc, cl)
			continue
		}
		go s.serveConn(nc, cl)
	}
}

// register admits a connection unless MaxClients are open or the server
// is closing.
func (s *Server) register(nc net.Conn) (*client, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || len(s.clients) >= s.opts.MaxClients {
		return nil, false
	}
	cl := &client{id: s.nextID.Add(1), addr: nc.RemoteAddr().String(), laddr: nc.LocalAddr().String(), created: time.Now(), nc: nc}
	if !s.opts.Auth.Enabled() {
		cl.authed, cl.user, cl.role = true, auth.DefaultUser, auth.RoleAdmin
	}
	s.clients[cl] = struct{}{}
	s.conns.Add(1)
	return cl, true
}

// panicked logs and counts a panic recovered while serving cl (its
// connection is then closed).
func (s *Server) panicked(cl *client, p any) {
	s.stats.panics.Add(1)
	s.log.Error("resp: panic while serving a connection; closed it", "addr", cl.addr, "panic", p, "stack", string(debug.Stack()))
}

// unregister forgets a connection that has ended.
func (s *Server) unregister(cl *client) {
	s.mu.Lock()
	delete(s.clients, cl)
	s.mu.Unlock()
	s.conns.Done()
}

// serveConn reads requests and answers them, in order, until the client
// leaves, sends something malformed or oversized, or the server closes.
// Replies to all the requests that arrived together are flushed at once.
// A panic anywhere below closes this connection only.
func (s *Server) serveConn(nc net.Conn, cl *client) {
	c := &conn{nc: nc, addr: cl.addr, wr: redcon.NewWriter(nc), ctx: cl}
	c.rd = respreader.New(nc, s.opts.Limits, cl.authenticated)
	fwd := s.newConnForward(nc, cl)
	defer func() {
		if p := recover(); p != nil {
			s.panicked(cl, p)
		}
		if fwd != nil {
			fwd.wait() // its reply is written (or fails) before the socket closes
		}
		nc.Close()
		s.unregister(cl)
	}()
	var cmds []redcon.Command
	for {
		if s.opts.IdleTimeout > 0 {
			nc.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
		}
		var err error
		cmds, err = c.rd.Read(cmds[:0])
		if fwd != nil {
			fwd.wait() // the reply to a forward goes before anything else
		}
		if err != nil {
			if msg := respreader.ErrorReply(err); msg != "" {
				s.stats.errors.Add(1)
				s.log.Debug("resp: closing a connection after a protocol error", "addr", cl.addr, "err", err)
				c.wr.WriteError(msg)
				nc.SetWriteDeadline(time.Now().Add(time.Second))
				c.wr.Flush()
				lingerClose(nc)
				return
			}
			c.wr.Flush()
			return
		}
		if fwd != nil {
			if len(cmds) == 1 && fwd.start(cmds[0].Args) {
				clear(cmds)
				continue
			}
		}
		if s.serveRound(c, cl, cmds) {
			return
		}
		if err := c.wr.Flush(); err != nil {
			return
		}
	}
}

// serveRound answers, in order, the requests that arrived together, writing
// the replies into c's writer (the caller flushes them). It reports whether
// a command closed the connection (QUIT, a fatal error): the requests after
// it are dropped.
func (s *Server) serveRound(c *conn, cl *client, cmds []redcon.Command) (closed bool) {
	c.cmds = cmds
	for len(c.cmds) > 0 {
		cmd := c.cmds[0]
		c.cmds = c.cmds[1:]
		s.handle(c, cl, cmd)
		if c.closed {
			c.cmds = nil
			return true
		}
	}
	clear(cmds) // let the requests' bytes go before the next read
	return false
}
