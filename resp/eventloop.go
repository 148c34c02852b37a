package resp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/panjf2000/gnet/v2"
	gnetErrors "github.com/panjf2000/gnet/v2/pkg/errors"
	"github.com/tidwall/redcon"
	"golang.org/x/sys/unix"

	"github.com/peercache/peercache/internal/respreader"
)

// The event-loop connection layer (Options.EventLoops > 0).
//
// By default every client connection has a goroutine that reads, runs the
// commands and writes (conn.go). Go's runtime then pays, per round of
// requests, a read that finds the socket empty, a park and a wake-up of the
// goroutine; on a small machine that is most of an unpipelined command's
// cost (docs/benchmarks.md: one node answers about 0.65x the SETs of a
// redis-server, at 1.6x its CPU, and a bare Go server the same). With
// EventLoops > 0, connections are served as redis-server serves them: a few
// gnet event loops, each one thread over epoll, read every ready socket,
// run its commands and write the replies in one pass.
//
// A command may run on the loop only if it cannot wait on another process,
// since a wait there would stall every client of that loop. A round of
// requests runs in place when each of them is a PING or ECHO, or a GET or
// SET of a key the backend answers at once (AtOnceBackend: this node owns
// the key, keeps its shard in process, and has no replica, previous owner,
// loader or remote copy to wait for). In proxy mode a round whose other
// requests are a few GETs and plain SETs of keys other members own is
// served on the loop too, the forwards started without a goroutine
// waiting (loopforward.go). Any other round runs on a goroutine of its own
// with the same handlers as the goroutine layer. While a round is out, the
// connection's later requests wait in its buffer until that round's
// replies are written (handBack), so replies stay in order.
//
// Limits hold as in the goroutine layer: the request reader is the same
// (respreader, with Options.Limits); bytes that arrive while a round runs
// elsewhere count against Limits.MaxQueryBytes; a client that does not read
// its replies stops being served once maxPendingReplies are queued for it,
// until it has read them (the goroutine layer blocks in its write instead).
// TLS is not served by the loops (Listen refuses the combination).

// AtOnceBackend is a Backend that can tell when it answers a key at once
// (node.Node.AnswersAtOnce). Without it, the event loop runs only commands
// that touch no key in place.
type AtOnceBackend interface {
	// AnswersAtOnce reports whether a read (write: a write) of key is
	// carried out without waiting on another process.
	AnswersAtOnce(key string, write bool) bool
}

const (
	// maxPendingReplies is how many bytes of replies a connection may have
	// queued before the loop stops running its requests (until the client
	// has read them below resumeBelow).
	maxPendingReplies = 4 << 20
	resumeBelow       = 1 << 20
	// loopTick is how often paused and lingering connections are looked
	// at; idle connections are looked for every idleScan.
	loopTick = 10 * time.Millisecond
	idleScan = 250 * time.Millisecond
)

// loopServer is the event-loop layer of one Server.
type loopServer struct {
	gnet.BuiltinEventEngine
	s      *Server
	cli    *gnet.Client
	atOnce func(key string, write bool) bool // nil: no key command runs in place
	// fwd starts forwards from the loop (loopforward.go; nil: none, as in
	// cluster mode, where a key this node does not own is MOVED).
	fwd          ForwardingBackend
	flushPending atomic.Bool // a FlushStarted task is queued on a loop
	// maxQuery is Limits.MaxQueryBytes (or its default): the most bytes
	// a connection may leave buffered while a round runs elsewhere.
	maxQuery int

	// roundsMu guards the count of rounds served on goroutines: the loops
	// may stop only once they all handed their replies back (a gnet call
	// after Stop would write to a closed descriptor). Once stopping, no
	// round starts (its connection is closed instead), and drained is
	// closed when the last one ends.
	roundsMu sync.Mutex
	rounds   int
	stopping bool
	drained  chan struct{}

	stopOnce sync.Once

	mu       sync.Mutex
	watch    map[*evConn]struct{} // paused or lingering connections
	lastIdle time.Time            // OnTick's last idle scan (its goroutine only)
}

// evConn is one connection served by the event loop. Its fields belong
// to the loop's goroutine, except while busy: then they belong to the
// goroutine serving the round, which hands them back through AsyncWrite.
type evConn struct {
	c   conn // the handlers' redcon.Conn; its writer fills out
	cl  *client
	gc  gnet.Conn
	out outBuf
	// cmds is the reader's scratch slice, reused between rounds.
	cmds []redcon.Command
	// busy: a round is being served by a goroutine (OnTick reads it).
	busy atomic.Bool
	// missed: requests arrived while busy; handBack, clearing busy
	// without serving them, wakes the loop to.
	missed atomic.Bool
	// fd is the socket; the goroutine that ends a round may write its
	// replies to it (handBack), under wmu, unless OnClose (which runs
	// before gnet closes fd) set gone.
	fd   int
	wmu  sync.Mutex
	gone bool
	// lastIO is when requests last arrived (Unix ns; OnTick reads it).
	lastIO atomic.Int64
	// paused: maxPendingReplies are queued; lingerUntil (Unix ns, 0: not
	// lingering): a protocol error was answered and the socket's write
	// side shut; what still arrives is dropped until then.
	paused      bool
	lingerUntil atomic.Int64
	lingered    int
}

// outBuf collects the replies the handlers flush.
type outBuf struct{ b []byte }

func (o *outBuf) Write(p []byte) (int, error) { o.b = append(o.b, p...); return len(p), nil }

// loopInput is the request reader's source on the loop: the bytes gnet has
// buffered for the connection, and errDrained once they are consumed.
type loopInput struct{ gc gnet.Conn }

var errDrained = errors.New("resp: no more input buffered")

func (in loopInput) Read(p []byte) (int, error) {
	n, _ := in.gc.Read(p)
	if n == 0 {
		return 0, errDrained
	}
	return n, nil
}

// newLoopServer starts the event loops.
func newLoopServer(s *Server, n int) (*loopServer, error) {
	l := &loopServer{s: s, watch: map[*evConn]struct{}{}, drained: make(chan struct{}),
		maxQuery: s.opts.Limits.OrDefaults().MaxQueryBytes}
	if b, ok := s.b.(AtOnceBackend); ok {
		l.atOnce = b.AnswersAtOnce
	}
	if b, ok := s.b.(ForwardingBackend); ok && s.cluster == nil {
		l.fwd = b
	}
	cli, err := gnet.NewClient(l,
		gnet.WithNumEventLoop(n),
		gnet.WithTicker(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{s}))
	if err != nil {
		return nil, fmt.Errorf("resp: event loops: %w", err)
	}
	if err := cli.Start(); err != nil {
		return nil, fmt.Errorf("resp: event loops: %w", err)
	}
	l.cli = cli
	return l, nil
}

// enroll hands an accepted connection to a loop. On an error the
// connection is closed and unregistered.
func (l *loopServer) enroll(nc net.Conn, cl *client) {
	lc := &evConn{cl: cl}
	lc.c = conn{addr: cl.addr, wr: redcon.NewWriter(&lc.out), ctx: cl, loop: true}
	lc.lastIO.Store(time.Now().UnixNano())
	if _, err := l.cli.EnrollContext(nc, lc); err != nil { // closes nc in any case
		l.s.log.Warn("resp: could not hand a connection to the event loop", "addr", cl.addr, "err", err)
		l.s.unregister(cl)
	}
}

// OnOpen runs on the loop before any request of the connection.
func (l *loopServer) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	lc := gc.Context().(*evConn)
	lc.gc = gc
	lc.c.nc = gc
	lc.fd = gc.Fd()
	lc.c.rd = respreader.New(loopInput{gc}, l.s.opts.Limits, lc.cl.authenticated)
	l.s.mu.Lock()
	lc.cl.nc = gc // Server.Close closes it
	lc.cl.loop = lc
	l.s.mu.Unlock()
	return nil, gnet.None
}

// OnClose runs once the connection is closed, for whatever reason.
func (l *loopServer) OnClose(gc gnet.Conn, _ error) gnet.Action {
	lc, ok := gc.Context().(*evConn)
	if !ok {
		return gnet.None
	}
	lc.wmu.Lock()
	lc.gone = true // no write to fd from now on: gnet closes it next
	lc.wmu.Unlock()
	l.unwatch(lc)
	l.s.unregister(lc.cl)
	return gnet.None
}

// OnTraffic serves what arrived on a connection (or its Wake).
func (l *loopServer) OnTraffic(gc gnet.Conn) gnet.Action {
	lc := gc.Context().(*evConn)
	lc.lastIO.Store(l.s.clock.Load())
	switch {
	case lc.lingerUntil.Load() != 0:
		n, _ := gc.Discard(-1)
		if lc.lingered += n; lc.lingered > lingerBytes {
			return gnet.Close
		}
		return gnet.None
	case lc.busy.Load():
		if gc.InboundBuffered() > l.maxQuery {
			// A round is out, so no reply can be written now: close.
			l.s.stats.errors.Add(1)
			l.s.log.Debug("resp: closing a connection whose requests pile up while a command runs", "addr", lc.cl.addr)
			return gnet.Close
		}
		lc.missed.Store(true)
		if lc.busy.Load() {
			return gnet.None // the round's end wakes the loop (or serves them)
		}
	case lc.paused && gc.OutboundBuffered() > resumeBelow:
		if gc.InboundBuffered() > l.maxQuery {
			return l.refuse(lc, "ERR Protocol error: query buffer limit reached")
		}
		return gnet.None
	}
	if lc.paused {
		lc.paused = false
		l.unwatch(lc)
	}
	return l.serve(lc)
}

// serve runs the connection's complete requests, round by round, in place
// until one needs a goroutine, and writes the replies.
func (l *loopServer) serve(lc *evConn) (action gnet.Action) {
	s := l.s
	defer func() {
		if p := recover(); p != nil {
			s.panicked(lc.cl, p)
			action = gnet.Close
		}
	}()
	for {
		cmds, err := lc.c.rd.Read(lc.cmds[:0])
		if err != nil {
			if msg := respreader.ErrorReply(err); msg != "" {
				s.log.Debug("resp: closing a connection after a protocol error", "addr", lc.cl.addr, "err", err)
				return l.refuse(lc, msg)
			}
			break // errDrained: wait for more
		}
		lc.cmds = cmds
		closed := false
		switch l.classify(lc.cl, cmds) {
		case roundOffload:
			if !l.offload(lc, cmds) {
				l.flush(lc)
				return gnet.Close // the server is closing
			}
			s.stats.loopOffloaded.Add(1)
			return l.flushed(lc)
		case roundForward:
			s.stats.loopForwarded.Add(1)
			done, started := l.serveForward(lc, cmds)
			if !started {
				l.flush(lc)
				return gnet.Close // the server is closing
			}
			if !done {
				return gnet.None // the round's last answer writes its replies
			}
		default:
			s.stats.loopRounds.Add(1)
			closed = s.serveRound(&lc.c, lc.cl, cmds)
			lc.c.wr.Flush()
		}
		if closed {
			l.flush(lc)
			return gnet.Close
		}
		if len(lc.out.b) >= maxPendingReplies {
			l.flush(lc)
			if l.pauseIfBehind(lc) {
				return gnet.None
			}
		}
	}
	return l.flushed(lc)
}

// flushed writes the replies collected (unless a round elsewhere owns
// them) and pauses the connection if its client is behind.
func (l *loopServer) flushed(lc *evConn) gnet.Action {
	l.flush(lc)
	if !lc.busy.Load() {
		l.pauseIfBehind(lc)
	}
	return gnet.None
}

// pauseIfBehind stops serving a connection whose client leaves
// maxPendingReplies unread; OnTick wakes it to look again, and OnTraffic
// resumes it below resumeBelow.
func (l *loopServer) pauseIfBehind(lc *evConn) bool {
	if lc.gc.OutboundBuffered() < maxPendingReplies {
		return false
	}
	lc.paused = true
	l.watchConn(lc)
	return true
}

// flush writes the replies collected so far (on the loop).
func (l *loopServer) flush(lc *evConn) {
	if lc.busy.Load() || len(lc.out.b) == 0 {
		return
	}
	lc.gc.Write(lc.out.b) // what the socket does not take now, gnet queues
	if cap(lc.out.b) > maxKeptReplyBuf {
		lc.out.b = nil
	} else {
		lc.out.b = lc.out.b[:0]
	}
}

// maxKeptReplyBuf: a larger reply buffer is let go after its write.
const maxKeptReplyBuf = 64 << 10

// refuse answers a fatal protocol error and closes the connection as
// lingerClose does: the write side is shut at once, what the client still
// sends is dropped for lingerTime (or lingerBytes), then it is closed.
func (l *loopServer) refuse(lc *evConn, msg string) gnet.Action {
	l.s.stats.errors.Add(1)
	lc.c.wr.WriteError(msg)
	lc.c.wr.Flush()
	l.flush(lc)
	lc.lingerUntil.Store(time.Now().Add(lingerTime).UnixNano())
	lc.gc.Discard(-1)
	if err := unix.Shutdown(lc.gc.Fd(), unix.SHUT_WR); err != nil {
		return gnet.Close
	}
	l.watchConn(lc)
	return gnet.None
}

// watchConn and unwatch add a paused or lingering connection to what
// OnTick looks at, and remove it.
func (l *loopServer) watchConn(lc *evConn) {
	l.mu.Lock()
	l.watch[lc] = struct{}{}
	l.mu.Unlock()
}

func (l *loopServer) unwatch(lc *evConn) {
	l.mu.Lock()
	delete(l.watch, lc)
	l.mu.Unlock()
}

// unsafeString views b as a string without copying. The request reader
// never writes a request's bytes again once it handed them out, and
// AnswersAtOnce keeps nothing.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// offload serves one round on a goroutine; the connection's later requests
// wait until its replies are queued on the loop. It reports false, and
// starts nothing, once the server is closing.
func (l *loopServer) offload(lc *evConn, cmds []redcon.Command) bool {
	s := l.s
	l.roundsMu.Lock()
	if l.stopping {
		l.roundsMu.Unlock()
		return false
	}
	l.rounds++
	l.roundsMu.Unlock()
	direct := lc.gc.OutboundBuffered() == 0
	lc.busy.Store(true)
	l.noteLeftover(lc)
	go func() {
		defer l.roundDone()
		closed := true
		defer func() {
			if p := recover(); p != nil {
				s.panicked(lc.cl, p)
			}
			lc.c.wr.Flush()
			l.handBack(lc, direct, closed)
		}()
		closed = s.serveRound(&lc.c, lc.cl, cmds)
	}()
	return true
}

// handBack ends a round served off the loop (offload, or forwards from
// it): it writes the connection's replies (lc.out.b) and gives the
// connection back to the loop, which serves what arrived meanwhile, or
// (closing) closes it. direct: gnet held none of the connection's replies
// when the round began (and the loop writes none while it is busy), so
// they are written to the socket from here, sparing the loop a wake-up;
// what the socket does not take goes through the loop.
func (l *loopServer) handBack(lc *evConn, direct, closing bool) {
	out := lc.out.b
	if direct && !closing {
		lc.wmu.Lock()
		n := 0
		if !lc.gone {
			for n < len(out) {
				k, err := unix.Write(lc.fd, out[n:])
				if k <= 0 || err != nil {
					break // EAGAIN, or the connection's end: the loop's write sees it
				}
				n += k
			}
		}
		gone := lc.gone
		lc.wmu.Unlock()
		if n == len(out) || gone {
			lc.out.b = lc.out.b[:0]
			lc.busy.Store(false)
			if lc.missed.Swap(false) && !gone {
				_ = lc.gc.Wake(nil) // requests came meanwhile: the loop serves them
			}
			return
		}
		out = out[n:]
	}
	err := lc.gc.AsyncWrite(out, func(gc gnet.Conn, err error) error {
		// On the loop, after the write: the connection is the loop's again.
		lc.out.b = lc.out.b[:0]
		lc.busy.Store(false)
		lc.missed.Store(false)
		if err != nil {
			return nil // closed meanwhile
		}
		if closing {
			return gc.Close()
		}
		// Serve what arrived meanwhile, now: a Wake would cost the loop
		// another wake-up per round.
		if l.OnTraffic(gc) == gnet.Close {
			return gc.Close()
		}
		return nil
	})
	if err != nil {
		l.s.log.Debug("resp: a reply could not be queued", "addr", lc.cl.addr, "err", err)
	}
}

// noteLeftover, on the loop as a round leaves it, marks the connection as
// having requests waiting (missed) when gnet still buffers input the
// request reader did not take (its buffer was full): no OnTraffic comes
// for those bytes, so the round's end must wake the loop for them.
func (l *loopServer) noteLeftover(lc *evConn) {
	if lc.gc.InboundBuffered() > 0 {
		lc.missed.Store(true)
	}
}

// roundDone counts the end of a round served on a goroutine.
func (l *loopServer) roundDone() {
	l.roundsMu.Lock()
	defer l.roundsMu.Unlock()
	if l.rounds--; l.rounds == 0 && l.stopping {
		close(l.drained)
	}
}

// OnTick wakes paused connections, ends lingering ones and closes idle
// ones (Options.IdleTimeout). It runs on a goroutine of gnet's.
func (l *loopServer) OnTick() (time.Duration, gnet.Action) {
	now := time.Now()
	l.mu.Lock()
	for lc := range l.watch {
		if u := lc.lingerUntil.Load(); u != 0 {
			if now.UnixNano() > u {
				lc.gc.Close()
			}
			continue
		}
		lc.gc.Wake(nil) // paused: OnTraffic looks whether the client read
	}
	l.mu.Unlock()
	if it := l.s.opts.IdleTimeout; it > 0 && now.Sub(l.lastIdle) >= idleScan {
		l.lastIdle = now
		l.s.mu.Lock()
		for cl := range l.s.clients {
			if lc := cl.loop; lc != nil && !lc.busy.Load() && now.UnixNano()-lc.lastIO.Load() > int64(it) {
				lc.gc.Close()
			}
		}
		l.s.mu.Unlock()
	}
	return loopTick, gnet.None
}

// stopLoops ends the event loops, once the rounds on goroutines (whose
// commands Close cancelled) handed their replies back: the connections
// still open are closed (OnClose). No accept may follow.
func (s *Server) stopLoops(ctx context.Context) error {
	l := s.loop
	if l == nil {
		return nil
	}
	l.roundsMu.Lock()
	if !l.stopping {
		l.stopping = true
		if l.rounds == 0 {
			close(l.drained)
		}
	}
	l.roundsMu.Unlock()
	select {
	case <-l.drained:
	case <-ctx.Done():
		return fmt.Errorf("resp: commands still running: %w", ctx.Err())
	}
	l.stopOnce.Do(func() {
		if err := l.cli.Stop(); err != nil && !errors.Is(err, gnetErrors.ErrEngineShutdown) {
			s.log.Debug("resp: event loops stopped", "err", err)
		}
	})
	return nil
}

// gnetLogger passes gnet's own lines to the server's logger (its info
// lines at debug level).
type gnetLogger struct{ s *Server }

func (g gnetLogger) Debugf(format string, args ...any) { g.s.log.Debug(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Infof(format string, args ...any)  { g.s.log.Debug(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.s.log.Warn(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Errorf(format string, args ...any) { g.s.log.Error(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Fatalf(format string, args ...any) { g.s.log.Error(fmt.Sprintf(format, args...)) }
