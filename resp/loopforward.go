package resp

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"
	"github.com/tidwall/redcon"

	"github.com/peercache/peercache/node"
)

// Forwarded rounds on the event loop (proxy mode: Options.Cluster off).
//
// A GET or plain SET of a key another member owns waits for that member's
// answer. Run on a goroutine (offload), each such round costs a goroutine
// start, a wake-up when the answer comes and one more to hand the reply to
// the loop. Instead, when every request of a round is either answered in
// place or such a forward, the loop serves the round itself: it runs the
// in-place requests, starts the forwards (ForwardingBackend: the request
// is queued on the peer connection, no goroutine waits for it) and goes on
// with the other connections. The peer requests of all the rounds of one
// pass of the loop leave together: the first round that starts one asks
// the loop to run FlushStarted after the pass. The answers come back on
// the peer connection's reader, which fills in each one's reply; the last
// of a round assembles the round's replies in request order and hands the
// connection back (handBack: it writes them to the socket itself, or
// through the loop), and the loop serves its next requests.
//
// A forward whose outcome settles nothing (the owner's view of the ring
// differs, or it did not answer) or that could not start (no connection to
// the owner up) runs again on a goroutine through the backend's blocking
// path, which re-routes and dials. A round in which two forwards touch one
// key is offloaded whole, so that they run in order.

// ForwardingBackend is an AtOnceBackend that can start a read or a plain
// write of a key another member owns without a goroutine waiting for the
// answer (node.Node.StartGet).
type ForwardingBackend interface {
	AtOnceBackend
	// Forwards reports whether key goes to another member.
	Forwards(key string) bool
	// StartGet and StartWrite begin the request and return true, or start
	// nothing and return false. done runs once, on another goroutine or
	// (StartGet only) before StartGet returns, and must not block; retry
	// asks for the request to be made again through Get or Write. With
	// now the request is written before they return; else FlushStarted
	// writes it.
	StartGet(key string, now bool, done func(it node.Item, err error, retry bool)) bool
	StartWrite(key string, m node.Mutation, now bool, done func(res node.WriteResult, err error, retry bool)) bool
	// FlushStarted writes the requests started so far.
	FlushStarted()
}

var _ ForwardingBackend = (*node.Node)(nil)

// maxForwards is the most forwards a round served from the loop may
// start; a round with more (a pipeline) is offloaded, where the backend's
// ManyInto sends one request per owner, which costs the owners less than
// a request per key (redis-benchmark -P 16 through node 1 of 3: 2-5%
// more a second, docs/benchmarks.md).
const maxForwards = 4

// forwardable reports whether args (a GET, or a SET with no condition, GET
// option, KEEPTTL or expiry already past) may be forwarded from the loop,
// and the SET's mutation.
func forwardable(spec *cmdSpec, args [][]byte) (node.Mutation, bool) {
	switch spec {
	case specGet:
		return node.Mutation{}, true
	case specSet:
		o, msg := parseSet(args)
		if msg != "" || o.get || o.expired || o.m.IfAbsent || o.m.IfPresent || o.m.KeepTTL {
			return node.Mutation{}, false
		}
		return o.m, true
	}
	return node.Mutation{}, false
}

// fwdRound is one round being served with forwards in flight. Its parts
// are the forwarded requests in order; the other requests' replies are in
// the connection's reply buffer, each part's reply going in at its offset.
type fwdRound struct {
	l       *loopServer
	lc      *evConn
	parts   []fwdPart
	pending atomic.Int32 // parts not yet answered, +1 while the loop issues
	// direct: gnet held no reply of the connection's when the round
	// began, so its last answer may write the replies to the socket itself.
	direct bool
}

type fwdPart struct {
	at    int      // offset in lc.out.b where the reply goes
	args  [][]byte // the request, for a retry
	spec  *cmdSpec
	reply []byte
}

// roundKind is how a round is served.
type roundKind int

const (
	roundInPlace roundKind = iota
	roundForward           // on the loop, with forwards (serveForward)
	roundOffload           // on a goroutine (offload)
)

// classify tells how a round is served: in place when every request is
// PING, ECHO, refused on the spot, or a GET or SET answered at once
// (AtOnceBackend), forwarded when the others are forwards of
// distinct keys, else offloaded.
func (l *loopServer) classify(cl *client, cmds []redcon.Command) roundKind {
	kind := roundInPlace
	var seen [maxForwards]string
	keys := seen[:0]
	for _, cmd := range cmds {
		args := cmd.Args
		spec := lookup(cl, args[0])
		switch {
		case spec == nil || spec.role > cl.role || !spec.arityOK(len(args)):
			// refused on the spot
		case spec == specPing || spec == specEcho:
		case l.answersAtOnce(spec, args):
		case (spec == specGet || spec == specSet) && l.fwd != nil && l.fwd.Forwards(unsafeString(args[1])):
			if _, ok := forwardable(spec, args); !ok {
				return roundOffload
			}
			key := unsafeString(args[1])
			if len(keys) == maxForwards {
				return roundOffload
			}
			for _, k := range keys {
				if k == key {
					return roundOffload
				}
			}
			keys = append(keys, key)
			kind = roundForward
		default:
			return roundOffload
		}
	}
	return kind
}

// answersAtOnce reports whether args (of a role and arity already
// checked) is a GET or SET the backend answers at once.
func (l *loopServer) answersAtOnce(spec *cmdSpec, args [][]byte) bool {
	return (spec == specGet || spec == specSet) && l.atOnce != nil && l.atOnce(unsafeString(args[1]), spec == specSet)
}

// serveForward serves a round classify found forwardable, on the loop. It
// reports whether the round is done (its replies are in lc.out.b); if
// not, the connection is busy until the last answer hands it back. false
// with started false: the server is closing and nothing ran.
func (l *loopServer) serveForward(lc *evConn, cmds []redcon.Command) (done, started bool) {
	s := l.s
	l.roundsMu.Lock()
	if l.stopping {
		l.roundsMu.Unlock()
		return false, false
	}
	l.rounds++
	l.roundsMu.Unlock()
	// The parts are filled in place (answers may come while the loop still
	// issues: nothing they touch moves); r.parts is set once all are.
	parts := make([]fwdPart, len(cmds))
	np := 0
	r := &fwdRound{l: l, lc: lc}
	r.pending.Store(1)
	for _, cmd := range cmds {
		args := cmd.Args
		spec := lookup(lc.cl, args[0])
		if spec != specGet && spec != specSet || spec.role > lc.cl.role || !spec.arityOK(len(args)) || l.answersAtOnce(spec, args) {
			s.dispatch(&lc.c, lc.cl, args)
			continue
		}
		s.stats.commands.Add(1)
		lc.cl.cmd.Store(spec)
		lc.cl.last.Store(s.clock.Load())
		lc.c.wr.Flush()
		p := &parts[np]
		np++
		p.at, p.args, p.spec = len(lc.out.b), args, spec
		r.pending.Add(1)
		key := string(args[1])
		var ok bool
		if spec == specGet {
			ok = l.fwd.StartGet(key, false, func(it node.Item, err error, retry bool) { r.got(p, retry, getReply(s, it, err)) })
		} else {
			m, _ := forwardable(spec, args)
			ok = l.fwd.StartWrite(key, m, false, func(res node.WriteResult, err error, retry bool) { r.got(p, retry, setReply(s, res, err)) })
		}
		if !ok {
			r.got(p, true, nil)
		} else {
			l.scheduleFlush(lc.gc)
		}
	}
	lc.c.wr.Flush()
	clear(cmds)
	r.parts = parts[:np]
	r.direct = lc.gc.OutboundBuffered() == 0
	lc.busy.Store(true)
	l.noteLeftover(lc)
	if r.pending.Add(-1) != 0 {
		return false, true
	}
	// Every answer came while the loop issued (near copies): the round
	// is done here.
	lc.busy.Store(false)
	r.assemble()
	l.roundDone()
	return true, true
}

// got records part p's reply; retry: run its request again on a goroutine
// through the blocking path instead.
func (r *fwdRound) got(p *fwdPart, retry bool, reply []byte) {
	if retry {
		go r.retry(p)
		return
	}
	p.reply = reply
	r.partDone()
}

// retry runs part p's request through the backend's blocking path.
func (r *fwdRound) retry(p *fwdPart) {
	p.reply = r.l.s.runApart(r.lc.cl, p.spec, p.args)
	r.partDone()
}

// runApart runs one request of cl's through its handler, off the
// connection, and returns its reply.
func (s *Server) runApart(cl *client, spec *cmdSpec, args [][]byte) []byte {
	var out outBuf
	c := conn{addr: cl.addr, wr: redcon.NewWriter(&out), ctx: cl, loop: true}
	func() {
		defer func() {
			if v := recover(); v != nil {
				s.panicked(cl, v)
				c.wr.WriteError("ERR internal error")
			}
		}()
		spec.run(s, &c, cl, args)
	}()
	c.wr.Flush()
	return out.b
}

// partDone counts one answered part; the last one hands the round's
// replies to the loop.
func (r *fwdRound) partDone() {
	if r.pending.Add(-1) != 0 {
		return
	}
	defer r.l.roundDone()
	r.assemble()
	r.l.handBack(r.lc, r.direct, false)
}

// assemble puts the parts' replies into the connection's reply buffer at
// their offsets.
func (r *fwdRound) assemble() {
	lc := r.lc
	if len(r.parts) == 0 {
		return
	}
	n := len(lc.out.b)
	for _, p := range r.parts {
		n += len(p.reply)
	}
	out := make([]byte, 0, n)
	prev := 0
	for _, p := range r.parts {
		out = append(out, lc.out.b[prev:p.at]...)
		out = append(out, p.reply...)
		prev = p.at
	}
	lc.out.b = append(out, lc.out.b[prev:]...)
}

// getReply and setReply are the replies GET and SET write (cmdGet,
// cmdSet) for a forwarded request's outcome.
func getReply(s *Server, it node.Item, err error) []byte {
	switch {
	case err == nil:
		s.stats.hits.Add(1)
		return redcon.AppendBulk(nil, it.Value)
	case errors.Is(err, node.ErrNotFound):
		s.stats.misses.Add(1)
		return redcon.AppendNull(nil)
	default:
		s.stats.errors.Add(1)
		return redcon.AppendError(nil, nodeErrMessage(err))
	}
}

func setReply(s *Server, res node.WriteResult, err error) []byte {
	switch {
	case err != nil:
		s.stats.errors.Add(1)
		return redcon.AppendError(nil, nodeErrMessage(err))
	case res.Applied:
		return redcon.AppendOK(nil)
	default:
		return redcon.AppendNull(nil)
	}
}

// scheduleFlush has the loop write the started peer requests once it has
// served the connections of this pass (a task runs after them), unless
// that is scheduled already.
func (l *loopServer) scheduleFlush(gc gnet.Conn) {
	if !l.flushPending.CompareAndSwap(false, true) {
		return
	}
	err := gc.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		l.flushPending.Store(false)
		l.fwd.FlushStarted()
		return nil
	}))
	if err != nil { // the loops are stopping: write now
		l.flushPending.Store(false)
		l.fwd.FlushStarted()
	}
}
