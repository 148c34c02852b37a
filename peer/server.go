package peer

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/store"
)

// Handler carries out the requests of members. It is called only for
// connections that proved the cluster's credentials (Auth) and named a
// member Admit accepted, on many goroutines at once. from is the calling
// member's name.
type Handler interface {
	// Admit reports whether a member named from may call this node now
	// (it is a current member). It is asked when a connection opens and
	// again for every request.
	Admit(from string) bool
	// Get answers a forwarded read (replica: read this node's own copy as
	// one of the key's replicas); it must not forward again. nearTTL is how
	// long from may keep a copy (0: none).
	Get(ctx context.Context, from, key string, replica bool) (it kv.Item, nearTTL time.Duration, err error)
	// Write applies a forwarded write; it must not forward again.
	Write(ctx context.Context, from, key string, m kv.Mutation) (kv.WriteResult, error)
	// Multi applies a forwarded change of several keys of one slot; it
	// must not forward again.
	Multi(ctx context.Context, from string, m kv.Multi) (kv.MultiResult, error)
	// Scan is one step of a scan of the live keys this node owns: about
	// count keys from cursor and the next cursor (0: done).
	Scan(ctx context.Context, from string, cursor uint64, count int) ([]string, uint64, error)
	// Handoff returns this node's raw entry for key, whatever owns it now.
	Handoff(ctx context.Context, from, key string) (e store.Entry, found bool, err error)
	// Import writes entries that are newer than what this node holds
	// (migration, replica copies, repair), one result per entry.
	Import(ctx context.Context, from string, entries []store.Entry) ([]kv.ImportResult, error)
	// Invalidate drops this node's copies of keys that from changed.
	Invalidate(ctx context.Context, from string, keys []string)
	// Many serves forwarded reads and writes of distinct keys together (a
	// client's pipeline), one Result per Request, in order. A Result's Err
	// is kv.ErrNotFound, a *kv.Error, or nil.
	Many(ctx context.Context, from string, reqs []Request) []Result
	// Warm loads keys, which from found hot before they moved to this
	// node, into this node's local tier (from its own shard); it returns
	// how many it loaded.
	Warm(ctx context.Context, from string, keys []string) int
	// Status returns this node's status report, encoded by the caller's
	// package (the peer protocol carries it as opaque bytes, at most
	// MaxStatusBytes).
	Status(ctx context.Context, from string) ([]byte, error)
}

// AtOnceHandler is a Handler that can tell which reads and writes it
// carries out without waiting on another process (node.Node.AnswersAtOnce).
// A server serves such requests on the goroutine that reads their
// connection, and answers all the requests read together in one write:
// no goroutine is woken per request, which on a busy machine costs more
// than the request. The others run on the connection's workers.
type AtOnceHandler interface {
	Handler
	// AnswersAtOnce reports whether a read (write: a write) of key is
	// carried out without waiting on another process. It is a prediction:
	// a request it admits may still wait (briefly), holding up the
	// requests behind it on its connection.
	AnswersAtOnce(key string, write bool) bool
	// ImportsAtOnce reports whether an import (of a few entries: a
	// replica's copy of a write) is carried out without waiting on
	// another process: the shard is in process.
	ImportsAtOnce() bool
}

// maxImportAtOnce is the largest import payload served by the reader; a
// migration batch is larger and goes to a worker, so that it holds up no
// request behind it.
const maxImportAtOnce = 16 << 10

// Request is one key's forwarded read or write in a Many call.
type Request struct {
	Key string
	// Write: apply Mutation; else read the key.
	Write    bool
	Mutation kv.Mutation
}

// Result answers one Request.
type Result struct {
	kv.WriteResult               // a write's result; a read's item (Item) only
	NearTTL        time.Duration // a read: how long the caller may keep a copy
	Err            error         // kv.ErrNotFound, a *kv.Error, or nil
}

// Limits bound what a peer may send.
type Limits struct {
	MaxKeyBytes   int
	MaxValueBytes int
	// MaxBatchEntries and MaxBatchBytes bound one import request.
	MaxBatchEntries int
	MaxBatchBytes   int
}

// Defaults for zero Limits fields.
const (
	DefaultMaxBatchEntries = 10000
	DefaultMaxBatchBytes   = 32 << 20
	maxInvalidateKeys      = 4096
)

func (l Limits) withDefaults() Limits {
	if l.MaxKeyBytes <= 0 {
		l.MaxKeyBytes = 1 << 10
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = 1 << 20
	}
	if l.MaxBatchEntries <= 0 {
		l.MaxBatchEntries = DefaultMaxBatchEntries
	}
	if l.MaxBatchBytes <= 0 {
		l.MaxBatchBytes = DefaultMaxBatchBytes
	}
	return l
}

// frameLimit is the largest frame either side accepts once the hello was
// accepted: the larger of an import batch and one value with its key.
func (l Limits) frameLimit() int {
	return max(l.MaxBatchBytes+64, l.MaxValueBytes+l.MaxKeyBytes+64)
}

// ServerConfig configures a Server.
type ServerConfig struct {
	// Name is this node's name, sent back in the hello.
	Name string
	// Label is the cluster label; a caller with another one is refused.
	Label string
	// Auth must match the callers' (see Auth).
	Auth   Auth
	Limits Limits
	// MaxConns bounds open connections (0: 1024); more are closed at once.
	MaxConns int
	// MaxInFlight bounds the requests of one connection being served at
	// once (0: 1024); the connection is not read further until one ends.
	MaxInFlight int
	// HandshakeTimeout bounds TLS and hello (0: 5s).
	HandshakeTimeout time.Duration
	Logger           *slog.Logger
	Metrics          *Metrics
}

// Server accepts peer connections on its own listener.
type Server struct {
	ln     net.Listener
	h      Handler
	atOnce func(key string, write bool) bool // nil: every request runs on a worker
	// importsAtOnce: small imports may be served by the reader (nil: no).
	importsAtOnce func() bool
	cfg           ServerConfig
	lim           Limits
	tls           *tls.Config
	log           *slog.Logger
	met           *Metrics
	warn          rateLimiter

	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// NewServer returns a server for ln; Serve accepts connections.
func NewServer(ln net.Listener, h Handler, cfg ServerConfig) (*Server, error) {
	if h == nil {
		return nil, errors.New("peer: nil handler")
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 1024
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 1024
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	st, _, err := cfg.Auth.tlsConfigs()
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, h: h, cfg: cfg, lim: cfg.Limits.withDefaults(), tls: st, log: cfg.Logger,
		met: cfg.Metrics, conns: map[net.Conn]struct{}{}}
	if a, ok := h.(AtOnceHandler); ok {
		s.atOnce, s.importsAtOnce = a.AnswersAtOnce, a.ImportsAtOnce
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Addr returns the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until Close; it returns nil then.
func (s *Server) Serve() error {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.log.Warn("peer: accept failed", "err", err)
			select {
			case <-time.After(50 * time.Millisecond): // e.g. EMFILE: do not spin
			case <-s.base.Done():
				return nil
			}
			continue
		}
		s.mu.Lock()
		if s.closed || len(s.conns) >= s.cfg.MaxConns {
			full := !s.closed
			s.mu.Unlock()
			nc.Close()
			if full && s.warn.allow() {
				s.log.Warn("peer: connection refused: too many connections", "remote", nc.RemoteAddr().String(), "limit", s.cfg.MaxConns)
			}
			continue
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(nc)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops accepting, closes every connection, cancels the requests
// being served and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// refuse logs (rate-limited) and counts a connection closed before any
// request was read.
func (s *Server) refuse(nc net.Conn, reason, detail string, err error) {
	s.met.refused(reason)
	if s.warn.allow() {
		s.log.Warn("peer: connection refused", "remote", nc.RemoteAddr().String(), "reason", detail, "err", err)
	}
}

// serveConn authenticates one connection and serves its requests.
func (s *Server) serveConn(raw net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, raw)
		s.mu.Unlock()
		raw.Close()
	}()
	setNoLinger(raw)
	_ = raw.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	nc := raw
	if s.tls != nil {
		tc := tls.Server(raw, s.tls)
		if err := tc.HandshakeContext(s.base); err != nil {
			s.refuse(raw, "tls", "TLS handshake failed: no valid cluster credentials", err)
			return
		}
		nc = tc
	}
	br := bufio.NewReaderSize(nc, 32<<10)
	var hb [headerSize]byte
	h, err := readHeader(br, &hb, maxHelloFrame)
	if err != nil || h.op != opHello {
		s.refuse(raw, "hello", "not a peercache peer", err)
		return
	}
	p := make([]byte, h.length)
	if _, err := io.ReadFull(br, p); err != nil {
		s.refuse(raw, "hello", "truncated hello", err)
		return
	}
	label, from, err := decodeHello(p)
	if err != nil {
		s.refuse(raw, "hello", "bad hello", err)
		return
	}
	var failed atomic.Bool
	w := newFrameWriter(nc, 10*time.Second, func(error) { failed.Store(true); raw.Close() })
	sendHelloErr := func(msg string) {
		b := appendHeader(nil, opHello|opResponse, flagError, h.id)
		b = appendError(b, &kv.Error{Status: 403, Message: msg})
		finishFrame(b, 0)
		_, _ = nc.Write(b)
	}
	if label != s.cfg.Label {
		s.refuse(raw, "label", fmt.Sprintf("cluster label %q is not this cluster's", label), nil)
		sendHelloErr("refused: another cluster")
		return
	}
	if !s.h.Admit(from) {
		s.refuse(raw, "not_member", fmt.Sprintf("%q is not a member", from), nil)
		sendHelloErr("refused: not a member of this cluster")
		return
	}
	b := appendHeader(nil, opHello|opResponse, 0, h.id)
	b = append(b, s.cfg.Name...)
	finishFrame(b, 0)
	if _, err := nc.Write(b); err != nil {
		return
	}
	_ = raw.SetDeadline(time.Time{})
	s.met.conn(sideServer, 1)
	defer s.met.conn(sideServer, -1)

	var reqs sync.WaitGroup
	defer reqs.Wait()

	// Requests run on a pool of workers that live as long as the
	// connection (started as needed, up to MaxInFlight): a goroutine per
	// request would start each on a small stack and grow it every time.
	type request struct {
		h header
		p []byte
	}
	work := make(chan request)
	workers := 0
	defer close(work)
	limit := s.lim.frameLimit()
	for {
		h, err := readHeader(br, &hb, limit)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !failed.Load() && !s.isClosed() {
				s.log.Debug("peer: connection ended", "peer", from, "err", err)
			}
			return
		}
		if h.op&opResponse != 0 || h.op == opHello {
			s.log.Warn("peer: protocol error: unexpected frame; closing", "peer", from, "op", h.op)
			return
		}
		p := make([]byte, h.length)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		if s.answersAtOnce(h.op, p) {
			s.serveRequest(w.add, from, h, p)
			if !frameBuffered(br) {
				// The next request is not all read: answer what was
				// served here before waiting for it.
				_ = w.flush()
			}
			continue
		}
		r := request{h, p}
		select {
		case work <- r: // an idle worker took it
			continue
		default:
		}
		if workers < s.cfg.MaxInFlight {
			workers++
			reqs.Add(1)
			go func() {
				defer reqs.Done()
				for r := range work {
					s.serveRequest(w.enqueue, from, r.h, r.p)
				}
			}()
		}
		select {
		case work <- r: // blocks while MaxInFlight requests are being served
		case <-s.base.Done():
			return
		}
	}
}

// frameBuffered reports whether br holds a whole frame, which reading
// takes without waiting.
func frameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < headerSize {
		return false
	}
	b, err := br.Peek(4)
	return err == nil && int64(n) >= headerSize+int64(binary.BigEndian.Uint32(b))
}

// answersAtOnce reports whether the request (op, payload p) is a plain
// read, write or Many of keys the handler carries out at once, or a small
// import it carries out at once. A request
// that does not decode is not: its worker answers the error.
func (s *Server) answersAtOnce(op byte, p []byte) bool {
	if s.atOnce == nil || len(p) < 8 {
		return false
	}
	p = p[8:] // the deadline
	switch op {
	case opImport:
		return len(p) <= maxImportAtOnce && s.importsAtOnce()
	case opGet:
		key, replica, err := decodeGet(p, s.lim.MaxKeyBytes)
		return err == nil && !replica && s.atOnce(key, false)
	case opWrite:
		key, m, err := decodeWrite(p, s.lim.MaxKeyBytes, s.lim.MaxValueBytes)
		return err == nil && m.Op == kv.OpSet && s.atOnce(key, true)
	case opMany:
		subs, err := decodeSubs(p, s.lim.MaxValueBytes+s.lim.MaxKeyBytes+32)
		if err != nil {
			return false
		}
		for _, sb := range subs {
			switch sb.op {
			case opGet:
				key, replica, err := decodeGet(sb.payload, s.lim.MaxKeyBytes)
				if err != nil || replica || !s.atOnce(key, false) {
					return false
				}
			case opWrite:
				key, m, err := decodeWrite(sb.payload, s.lim.MaxKeyBytes, s.lim.MaxValueBytes)
				if err != nil || m.Op != kv.OpSet || !s.atOnce(key, true) {
					return false
				}
			default:
				return false
			}
		}
		return true
	}
	return false
}

// serveRequest runs one request and queues its response with send (the
// frame writer's enqueue, or add for a response flushed later).
func (s *Server) serveRequest(send func(func([]byte) []byte) error, from string, h header, p []byte) {
	dl, p, err := takeDeadline(p)
	var resp func([]byte) []byte
	var e *kv.Error
	switch {
	case err != nil:
		e = &kv.Error{Status: 400, Message: err.Error()}
	case !s.h.Admit(from):
		e = &kv.Error{Status: 403, Message: "refused: not a member of this cluster"}
	case !dl.IsZero() && !time.Now().Before(dl):
		e = &kv.Error{Status: 503, Retryable: true, Message: "request arrived after its deadline; not carried out"}
	default:
		// Not derived from s.base: thousands of requests a second would
		// all register with (and contend on) one parent. Close waits for
		// them instead; they are bounded by their deadlines.
		var ctx context.Context = s.base
		var lazy *deadlineCtx
		if !dl.IsZero() {
			lazy = &deadlineCtx{deadline: dl}
			ctx = lazy
		}
		resp, e = s.dispatch(ctx, from, h.op, p)
		lazy.release()
	}
	result := resultOK
	if e != nil {
		result = resultError
		if e.Status == 403 {
			result = resultUnavailable
		}
	}
	s.met.request(sideServer, h.op, result)
	_ = send(func(b []byte) []byte {
		start := len(b)
		if e != nil {
			b = appendHeader(b, h.op|opResponse, flagError, h.id)
			b = appendError(b, e)
		} else {
			b = appendHeader(b, h.op|opResponse, 0, h.id)
			b = resp(b)
		}
		finishFrame(b, start)
		return b
	})
}

// dispatch carries out one decoded request. It returns a function that
// appends the response payload, or the error to send.
func (s *Server) dispatch(ctx context.Context, from string, op byte, p []byte) (func([]byte) []byte, *kv.Error) {
	switch op {
	case opPing:
		return func(b []byte) []byte { return b }, nil
	case opGet:
		key, replica, err := decodeGet(p, s.lim.MaxKeyBytes)
		if err != nil {
			return nil, badRequest(err)
		}
		it, nearTTL, err := s.h.Get(ctx, from, key, replica)
		if err != nil {
			return nil, s.handlerError(err)
		}
		now := time.Now()
		return func(b []byte) []byte { return appendItem(b, it, nearTTL, now) }, nil
	case opWrite:
		key, m, err := decodeWrite(p, s.lim.MaxKeyBytes, s.lim.MaxValueBytes)
		if err != nil {
			return nil, badRequest(err)
		}
		res, err := s.h.Write(ctx, from, key, m)
		if err != nil {
			return nil, s.handlerError(err)
		}
		return func(b []byte) []byte { return appendWriteResult(b, res, m.Op != kv.OpSet) }, nil
	case opMulti:
		m, err := decodeMulti(p, s.lim.MaxKeyBytes, s.lim.MaxValueBytes)
		if err != nil {
			return nil, badRequest(err)
		}
		res, err := s.h.Multi(ctx, from, m)
		if err != nil {
			return nil, s.handlerError(err)
		}
		return func(b []byte) []byte { return appendMultiResult(b, res) }, nil
	case opScan:
		cursor, count, err := decodeScan(p)
		if err != nil {
			return nil, badRequest(err)
		}
		keys, next, err := s.h.Scan(ctx, from, cursor, count)
		if err != nil {
			return nil, s.handlerError(err)
		}
		return func(b []byte) []byte { return appendKeys(binary.BigEndian.AppendUint64(b, next), keys) }, nil
	case opHandoff:
		if len(p) == 0 || len(p) > s.lim.MaxKeyBytes {
			return nil, badRequest(fmt.Errorf("%w: bad handoff key", ErrMalformed))
		}
		e, found, err := s.h.Handoff(ctx, from, string(p))
		if err != nil {
			return nil, s.handlerError(err)
		}
		if !found {
			return nil, &kv.Error{Status: 404, Message: "key not found"}
		}
		now := time.Now()
		return func(b []byte) []byte { return AppendEntries(b, []store.Entry{e}, now) }, nil
	case opImport:
		if len(p) > s.lim.MaxBatchBytes {
			return nil, &kv.Error{Status: 413, Message: fmt.Sprintf("import batch of %d bytes exceeds the limit of %d", len(p), s.lim.MaxBatchBytes)}
		}
		entries, err := DecodeEntries(p, EntryLimits{MaxEntries: s.lim.MaxBatchEntries, MaxKeyBytes: s.lim.MaxKeyBytes, MaxValueBytes: s.lim.MaxValueBytes}, time.Now())
		if err != nil {
			return nil, badRequest(err)
		}
		res, err := s.h.Import(ctx, from, entries)
		if err != nil {
			return nil, s.handlerError(err)
		}
		if len(res) != len(entries) {
			return nil, &kv.Error{Status: 500, Message: "internal error"}
		}
		return func(b []byte) []byte { return AppendResults(b, res) }, nil
	case opMany:
		subs, err := decodeSubs(p, s.lim.MaxValueBytes+s.lim.MaxKeyBytes+32)
		if err != nil {
			return nil, badRequest(err)
		}
		reqs := make([]Request, len(subs))
		for i, sb := range subs {
			switch sb.op {
			case opGet:
				key, replica, err := decodeGet(sb.payload, s.lim.MaxKeyBytes)
				if err != nil || replica {
					return nil, badRequest(fmt.Errorf("%w: many: bad get", ErrMalformed))
				}
				reqs[i].Key = key
			case opWrite:
				key, m, err := decodeWrite(sb.payload, s.lim.MaxKeyBytes, s.lim.MaxValueBytes)
				if err != nil {
					return nil, badRequest(err)
				}
				reqs[i] = Request{Key: key, Write: true, Mutation: m}
			default:
				return nil, badRequest(fmt.Errorf("%w: many: op %d", ErrMalformed, sb.op))
			}
		}
		res := s.h.Many(ctx, from, reqs)
		if len(res) != len(reqs) {
			return nil, &kv.Error{Status: 500, Message: "internal error"}
		}
		now := time.Now()
		return func(b []byte) []byte {
			b = binary.AppendUvarint(b, uint64(len(res)))
			for i, r := range res {
				switch {
				case r.Err != nil:
					e := s.handlerError(r.Err)
					b = appendSub(b, flagError, func(b []byte) []byte { return appendError(b, e) })
				case reqs[i].Write:
					b = appendSub(b, 0, func(b []byte) []byte { return appendWriteResult(b, r.WriteResult, reqs[i].Mutation.Op != kv.OpSet) })
				default:
					b = appendSub(b, 0, func(b []byte) []byte { return appendItem(b, r.Item, r.NearTTL, now) })
				}
			}
			return b
		}, nil
	case opWarm:
		keys, err := decodeKeys(p, maxInvalidateKeys, s.lim.MaxKeyBytes)
		if err != nil {
			return nil, badRequest(err)
		}
		loaded := s.h.Warm(ctx, from, keys)
		return func(b []byte) []byte { return binary.AppendUvarint(b, uint64(loaded)) }, nil
	case opStatus:
		if len(p) != 0 {
			return nil, badRequest(fmt.Errorf("%w: status request with a payload", ErrMalformed))
		}
		st, err := s.h.Status(ctx, from)
		if err != nil {
			return nil, s.handlerError(err)
		}
		if len(st) > MaxStatusBytes {
			return nil, &kv.Error{Status: 500, Message: "status report too large"}
		}
		return func(b []byte) []byte { return append(b, st...) }, nil
	case opInvalidate:
		keys, err := decodeKeys(p, maxInvalidateKeys, s.lim.MaxKeyBytes)
		if err != nil {
			return nil, badRequest(err)
		}
		s.h.Invalidate(ctx, from, keys)
		return func(b []byte) []byte { return b }, nil
	default:
		return nil, &kv.Error{Status: 400, Message: fmt.Sprintf("unknown op %d", op)}
	}
}

func badRequest(err error) *kv.Error { return &kv.Error{Status: 400, Message: err.Error()} }

// handlerError turns a Handler error into the error sent back; anything
// that is not a request error is logged here and answered without detail.
func (s *Server) handlerError(err error) *kv.Error {
	var e *kv.Error
	switch {
	case errors.Is(err, kv.ErrNotFound):
		return &kv.Error{Status: 404, Message: "key not found"}
	case errors.As(err, &e):
		return e
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &kv.Error{Status: 503, Retryable: true, Message: "request timed out"}
	default:
		s.log.Warn("peer: request failed", "err", err)
		return &kv.Error{Status: 500, Message: "internal error"}
	}
}

// rateLimiter allows about one event per second (log lines an attacker
// could otherwise multiply).
type rateLimiter struct{ last atomic.Int64 }

func (r *rateLimiter) allow() bool {
	now := time.Now().UnixNano()
	last := r.last.Load()
	return now-last >= int64(time.Second) && r.last.CompareAndSwap(last, now)
}

// deadlineCtx is a request's context: cancelled by its deadline only, with
// the timer made when something first waits on Done. Most requests (an
// in-process shard) only ask Err, which reads the clock: a timer per
// request was a twelfth of an owner's CPU under a pipelined load.
type deadlineCtx struct {
	deadline time.Time
	once     sync.Once
	inner    atomic.Pointer[context.Context]
	cancel   context.CancelFunc
}

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *deadlineCtx) Done() <-chan struct{} {
	c.once.Do(func() {
		ctx, cancel := context.WithDeadline(context.Background(), c.deadline)
		c.cancel = cancel
		c.inner.Store(&ctx)
	})
	return (*c.inner.Load()).Done()
}

func (c *deadlineCtx) Err() error {
	if p := c.inner.Load(); p != nil {
		return (*p).Err()
	}
	if time.Now().Before(c.deadline) {
		return nil
	}
	return context.DeadlineExceeded
}

func (c *deadlineCtx) Value(any) any { return nil }

// release stops the timer, if one was made (nil: nothing to do).
func (c *deadlineCtx) release() {
	if c == nil {
		return
	}
	if c.inner.Load() != nil { // stored after cancel was set
		c.cancel()
	}
}
