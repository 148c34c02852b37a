package resp

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/peercache/peercache/node"
)

// Forwards started by a connection's goroutine (proxy mode, no event
// loop).
//
// A request that arrives alone (an unpipelined client) and is a GET or a
// plain SET of a key another member owns would park the connection's
// goroutine until the owner answers, and the peer connection's reader
// would then wake it to write the reply: two hand-offs between goroutines
// per request. Instead the goroutine starts the forward
// (ForwardingBackend.StartGet with now: the request is written at once)
// and goes back to reading the socket, and the peer connection's reader
// writes the reply to the client's socket itself, without blocking: a
// reply the socket does not take at once is written by a goroutine of its
// own, as is a request that settled nothing and runs again through the
// blocking path. The connection's next round waits until the reply is
// written (fwdGate), so replies keep the order of the requests, and
// nothing else writes to the socket meanwhile.

// connForward is a connection's forward state (conn.fwd; nil: the
// connection does not start forwards: TLS, cluster mode, a backend that
// cannot).
type connForward struct {
	s   *Server
	fwd ForwardingBackend
	cl  *client
	nc  net.Conn
	raw syscall.RawConn
	// state: 0 no forward in flight; 1 one in flight; 2 one in flight
	// and the connection's goroutine waits on wake for its reply.
	state atomic.Int32
	wake  chan struct{}
}

// newConnForward returns the forward state of a plain TCP connection of
// a proxy-mode server whose backend forwards, else nil.
func (s *Server) newConnForward(nc net.Conn, cl *client) *connForward {
	if s.fwd == nil {
		return nil
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return &connForward{s: s, fwd: s.fwd, cl: cl, nc: nc, raw: raw, wake: make(chan struct{}, 1)}
}

// wait returns once no forward of the connection is in flight (its
// reply is written).
func (f *connForward) wait() {
	if f.state.Load() != 0 && f.state.CompareAndSwap(1, 2) {
		<-f.wake
	}
}

// start forwards args, the only request of a round, if it is a GET or a
// plain SET of a key another member owns, and reports whether it did: the
// reply is then written when the owner answers. The caller waited for any
// previous forward and has no reply buffered.
func (f *connForward) start(args [][]byte) bool {
	s, cl := f.s, f.cl
	spec := lookup(cl, args[0])
	if spec != specGet && spec != specSet || spec.role > cl.role || !spec.arityOK(len(args)) ||
		!f.fwd.Forwards(unsafeString(args[1])) {
		return false
	}
	m, ok := forwardable(spec, args)
	if !ok {
		return false
	}
	s.stats.commands.Add(1)
	cl.cmd.Store(spec)
	cl.last.Store(s.clock.Load())
	// The request's bytes stay as they are (respreader never writes them
	// again), so a retry may run it after the next read.
	key := string(args[1])
	f.state.Store(1)
	if spec == specGet {
		ok = f.fwd.StartGet(key, true, func(it node.Item, err error, again bool) {
			if again {
				go func() { f.reply(s.runApart(cl, spec, args)) }()
				return
			}
			f.reply(getReply(s, it, err))
		})
	} else {
		ok = f.fwd.StartWrite(key, m, true, func(res node.WriteResult, err error, again bool) {
			if again {
				go func() { f.reply(s.runApart(cl, spec, args)) }()
				return
			}
			f.reply(setReply(s, res, err))
		})
	}
	if !ok {
		f.state.Store(0) // nothing started: the caller serves the request
		return false
	}
	s.stats.connForwards.Add(1)
	return true
}

// reply writes b, the forward's reply, to the socket without blocking;
// what the socket does not take at once a goroutine writes. Then the
// connection's goroutine may serve its next round.
func (f *connForward) reply(b []byte) {
	n, werr := 0, error(nil)
	err := f.raw.Write(func(fd uintptr) bool {
		n, werr = unix.Write(int(fd), b)
		return true // one attempt: never wait here for the socket
	})
	switch {
	case err == nil && werr == nil && n == len(b):
		f.done()
	case err == nil && (werr == nil && n >= 0 || errors.Is(werr, unix.EAGAIN) || errors.Is(werr, unix.EINTR)):
		if n < 0 {
			n = 0
		}
		go func() {
			// A client that stops reading blocks this write as it would
			// block the connection's own (Close closes the socket).
			if _, err := f.nc.Write(b[n:]); err != nil {
				f.nc.Close()
			}
			f.done()
		}()
	default: // the socket is gone: the connection's read fails next
		f.nc.Close()
		f.done()
	}
}

// done marks the forward answered and wakes the connection's goroutine
// if it waits.
func (f *connForward) done() {
	if f.state.Swap(0) == 2 {
		f.wake <- struct{}{}
	}
}
