package peer

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"time"
)

// frameWriter batches the frames of one connection without a goroutine
// of its own: senders append whole frames to a buffer under a lock, and the
// sender that finds no write in progress writes the buffer, and again
// whatever others appended meanwhile, until it is empty. Under load many
// frames share one system call (and, with TLS, one record); an idle
// connection writes at once; and no goroutine has to be woken to write,
// which on a busy machine costs more than the write.
type frameWriter struct {
	nc      net.Conn
	timeout time.Duration   // per write; a peer that stops reading is cut off
	fail    func(err error) // called once when a write fails

	mu      sync.Mutex
	buf     []byte
	spare   []byte
	writing bool
	closed  bool
	err     error
}

// maxSpare is the largest buffer kept for reuse after a write.
const maxSpare = 1 << 20

func newFrameWriter(nc net.Conn, timeout time.Duration, fail func(error)) *frameWriter {
	return &frameWriter{nc: nc, timeout: timeout, fail: fail}
}

// errWriterClosed is returned by enqueue after the connection failed.
var errWriterClosed = errors.New("connection closed")

// enqueue appends one frame built by build (called under the writer's
// lock: keep it to copying) and, unless another sender is writing already,
// writes it (and what others append meanwhile) before returning.
func (w *frameWriter) enqueue(build func([]byte) []byte) error {
	w.mu.Lock()
	if err := w.appendLocked(build); err != nil || w.writing {
		w.mu.Unlock()
		return err
	}
	w.writing = true
	// Let the goroutines that are about to send add their frames first:
	// under load they then share this write; when nothing else is
	// runnable this returns at once.
	// While others keep adding frames, yield again (a few times at most).
	for range 4 {
		n := len(w.buf)
		w.mu.Unlock()
		runtime.Gosched()
		w.mu.Lock()
		if len(w.buf) == n {
			break
		}
	}
	return w.writeLocked()
}

// add appends one frame without writing it: a sender with more frames to
// come (a server answering requests already read) adds them all, then
// calls flush once. A write in progress carries the frame along; past
// maxAdded bytes waiting, add writes them itself.
func (w *frameWriter) add(build func([]byte) []byte) error {
	w.mu.Lock()
	if err := w.appendLocked(build); err != nil || w.writing || len(w.buf) < maxAdded {
		w.mu.Unlock()
		return err
	}
	w.writing = true
	return w.writeLocked()
}

// maxAdded is how many bytes add lets wait for a flush.
const maxAdded = 64 << 10

// flush writes what add left waiting, unless a write in progress does.
func (w *frameWriter) flush() error {
	w.mu.Lock()
	if w.closed || w.writing || len(w.buf) == 0 {
		w.mu.Unlock()
		return nil
	}
	w.writing = true
	return w.writeLocked()
}

func (w *frameWriter) appendLocked(build func([]byte) []byte) error {
	if w.closed {
		if w.err != nil {
			return w.err
		}
		return errWriterClosed
	}
	w.buf = build(w.buf)
	return nil
}

// writeLocked writes the buffer, and again what others appended
// meanwhile, until it is empty; the caller set w.writing and holds the
// lock, which is released on return.
func (w *frameWriter) writeLocked() error {
	for {
		out := w.buf
		w.buf = w.spare[:0]
		w.spare = nil
		w.mu.Unlock()
		if w.timeout > 0 {
			_ = w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
		}
		_, err := w.nc.Write(out)
		w.mu.Lock()
		if err != nil {
			w.writing = false
			w.closeLocked(err)
			w.mu.Unlock()
			w.fail(err)
			return err
		}
		if cap(out) <= maxSpare {
			w.spare = out[:0]
		}
		if len(w.buf) == 0 || w.closed {
			w.writing = false
			w.mu.Unlock()
			return nil
		}
	}
}

// close makes later enqueues fail with err.
func (w *frameWriter) close(err error) {
	w.mu.Lock()
	w.closeLocked(err)
	w.mu.Unlock()
}

func (w *frameWriter) closeLocked(err error) {
	if !w.closed {
		w.closed, w.err, w.buf = true, err, nil
	}
}

// setNoLinger makes Close drop unsent bytes (RST) instead of retransmitting
// them: a request whose sender gave up never reaches the peer late.
func setNoLinger(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}
