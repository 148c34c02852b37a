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
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/store"
)

// ErrUnavailable is wrapped by every error of a request that got no answer:
// the peer could not be reached, the connection broke while the request
// was in flight, or its deadline passed first. Such a request may or may
// not have been carried out by the peer.
var ErrUnavailable = errors.New("peer unavailable")

// ErrRefused is wrapped (with ErrUnavailable) when the peer refused this
// node's connection: wrong credentials, another cluster, or this node is
// not (or no longer) a member in the peer's view.
var ErrRefused = errors.New("peer refused the connection")

// DefaultConnsPerPeer is ClientConfig.ConnsPerPeer's default. One
// connection lets more concurrent requests share each write and read: on a
// 2-core machine a 3-node cluster under redis-benchmark (50 clients, SET,
// --replicas 2) made 0.39 reads and 0.32 writes a request on an owner with
// one, against 0.65 and 0.49 with two, and ran about 7% faster over six
// interleaved rounds (docs/benchmarks.md). More connections spread the
// work of one peer's requests over more goroutines: worth trying on hosts
// with many cores (--peer-conns).
const DefaultConnsPerPeer = 1

// MaxConnsPerPeer bounds ClientConfig.ConnsPerPeer as nodes are configured
// (--peer-conns): beyond it, connections only add goroutines and buffers.
const MaxConnsPerPeer = 64

// ClientConfig configures a Client.
type ClientConfig struct {
	// Name is this node's name, sent in the hello of every connection.
	Name string
	// Label is the cluster label.
	Label string
	// Auth must match the peers' servers.
	Auth   Auth
	Limits Limits
	// ConnsPerPeer is how many connections carry the requests to one peer
	// (0: DefaultConnsPerPeer); requests are spread over them round robin.
	ConnsPerPeer int
	// DialTimeout bounds connecting, TLS and hello (0: 2s).
	DialTimeout time.Duration
	// RetryDialAfter: after a failed dial, requests to that peer fail at
	// once for this long (0: 100ms), instead of each waiting for a dial of
	// its own.
	RetryDialAfter time.Duration
	Logger         *slog.Logger
	Metrics        *Metrics
}

// Client sends requests to peers over a few long-lived connections per
// peer, many requests in flight on each. It is safe for concurrent use.
type Client struct {
	cfg ClientConfig
	lim Limits
	tls *tls.Config
	log *slog.Logger
	met *Metrics

	mu     sync.Mutex
	pools  map[string]*pool
	closed bool
	wg     sync.WaitGroup
}

// NewClient returns a client; Close releases its connections.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.ConnsPerPeer <= 0 {
		cfg.ConnsPerPeer = DefaultConnsPerPeer
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	if cfg.RetryDialAfter <= 0 {
		cfg.RetryDialAfter = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	_, ct, err := cfg.Auth.tlsConfigs()
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, lim: cfg.Limits.withDefaults(), tls: ct, log: cfg.Logger, met: cfg.Metrics,
		pools: map[string]*pool{}}, nil
}

// Close closes every connection; requests in flight fail with
// ErrUnavailable.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	pools := c.pools
	c.pools = map[string]*pool{}
	c.mu.Unlock()
	for _, p := range pools {
		p.closeAll(errors.New("client closed"))
	}
	c.wg.Wait()
}

// Forget closes the connections to addr (a member that left).
func (c *Client) Forget(addr string) {
	c.mu.Lock()
	p := c.pools[addr]
	delete(c.pools, addr)
	c.mu.Unlock()
	if p != nil {
		p.closeAll(errors.New("peer forgotten"))
	}
}

// Get reads key from the peer at addr (replica: from its own copy). The
// item's Value is the caller's.
func (c *Client) Get(ctx context.Context, addr, key string, replica bool) (kv.Item, time.Duration, error) {
	sent := time.Now()
	p, err := c.call(ctx, addr, opGet, func(b []byte) []byte { return appendGet(b, key, replica) })
	if err != nil {
		return kv.Item{}, 0, err
	}
	return c.getAnswer(addr, key, p, sent)
}

// getAnswer decodes the answer p to a read of key sent at sent.
func (c *Client) getAnswer(addr, key string, p []byte, sent time.Time) (kv.Item, time.Duration, error) {
	it, nearTTL, err := decodeItem(p, sent)
	if err != nil {
		return kv.Item{}, 0, c.badAnswer(addr, err)
	}
	it.Key = key
	return it, nearTTL, nil
}

// Write applies m to key on the peer at addr. The result's Version,
// Applied and Existed come from the peer, and its Value too for a
// read-modify-write (m.Op).
func (c *Client) Write(ctx context.Context, addr, key string, m kv.Mutation) (kv.WriteResult, error) {
	p, err := c.call(ctx, addr, opWrite, func(b []byte) []byte { return appendWrite(b, key, m) })
	if err != nil {
		return kv.WriteResult{}, err
	}
	return c.writeAnswer(addr, key, p)
}

// writeAnswer decodes the answer p to a write of key.
func (c *Client) writeAnswer(addr, key string, p []byte) (kv.WriteResult, error) {
	res, err := decodeWriteResult(p, key)
	if err != nil {
		return kv.WriteResult{}, c.badAnswer(addr, err)
	}
	return res, nil
}

// Multi carries out an atomic change of several keys of one slot on the
// peer at addr (their owner).
func (c *Client) Multi(ctx context.Context, addr string, m kv.Multi) (kv.MultiResult, error) {
	p, err := c.call(ctx, addr, opMulti, func(b []byte) []byte { return appendMulti(b, m) })
	if err != nil {
		return kv.MultiResult{}, err
	}
	res, err := decodeMultiResult(p)
	if err != nil {
		return kv.MultiResult{}, c.badAnswer(addr, err)
	}
	return res, nil
}

// Scan runs one step of a scan of the live keys the peer at addr owns:
// about count keys from cursor (0 starts) and the cursor of the next step
// (0: done).
func (c *Client) Scan(ctx context.Context, addr string, cursor uint64, count int) ([]string, uint64, error) {
	count = min(max(count, 1), MaxScanCount)
	p, err := c.call(ctx, addr, opScan, func(b []byte) []byte { return appendScan(b, cursor, count) })
	if err != nil {
		return nil, 0, err
	}
	if len(p) < 8 {
		return nil, 0, c.badAnswer(addr, fmt.Errorf("%w: bad scan answer", ErrMalformed))
	}
	keys, err := decodeKeys(p[8:], maxScanAnswerKeys, c.lim.MaxKeyBytes)
	if err != nil {
		return nil, 0, c.badAnswer(addr, err)
	}
	return keys, binary.BigEndian.Uint64(p), nil
}

// Handoff reads the peer's raw entry for key.
func (c *Client) Handoff(ctx context.Context, addr, key string) (store.Entry, bool, error) {
	p, err := c.call(ctx, addr, opHandoff, func(b []byte) []byte { return append(b, key...) })
	if errors.Is(err, kv.ErrNotFound) {
		return store.Entry{}, false, nil
	}
	if err != nil {
		return store.Entry{}, false, err
	}
	es, err := DecodeEntries(p, EntryLimits{MaxEntries: 1, MaxKeyBytes: c.lim.MaxKeyBytes, MaxValueBytes: c.lim.MaxValueBytes}, time.Now())
	if err != nil || len(es) != 1 || es[0].Key != key {
		return store.Entry{}, false, c.badAnswer(addr, fmt.Errorf("handoff answer: %v", err))
	}
	return es[0], true, nil
}

// Import sends entries to the peer's import, split into batches within
// the limits, and returns one result per entry.
func (c *Client) Import(ctx context.Context, addr string, entries []store.Entry) ([]kv.ImportResult, error) {
	out := make([]kv.ImportResult, 0, len(entries))
	for len(entries) > 0 {
		size, cut := 16, 0
		for cut < len(entries) && cut < c.lim.MaxBatchEntries {
			es := len(entries[cut].Key) + len(entries[cut].Value) + 32
			if cut > 0 && size+es > c.lim.MaxBatchBytes {
				break
			}
			size += es
			cut++
		}
		batch := entries[:cut]
		body := AppendEntries(make([]byte, 0, size), batch, time.Now())
		p, err := c.call(ctx, addr, opImport, func(b []byte) []byte { return append(b, body...) })
		if err != nil {
			return nil, err
		}
		res, err := DecodeResults(p, len(batch))
		if err != nil {
			return nil, c.badAnswer(addr, err)
		}
		out = append(out, res...)
		entries = entries[cut:]
	}
	return out, nil
}

// Invalidate tells the peer that keys changed.
func (c *Client) Invalidate(ctx context.Context, addr string, keys []string) error {
	for len(keys) > 0 {
		n := min(len(keys), maxInvalidateKeys)
		batch := keys[:n]
		if _, err := c.call(ctx, addr, opInvalidate, func(b []byte) []byte { return appendKeys(b, batch) }); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// Many sends reads and writes of distinct keys to the peer at addr in one
// request (at most 1024) and returns one Result per Request, in order. The
// error is for the whole request (no answer); errors of single keys are in
// their Result.
func (c *Client) Many(ctx context.Context, addr string, reqs []Request) ([]Result, error) {
	return c.StartMany(ctx, addr, reqs).Wait()
}

// ManyCall is a Many request that has left and whose answer has not been
// read yet (StartMany).
type ManyCall struct {
	c    *Client
	ctx  context.Context
	addr string
	reqs []Request
	call *call
	err  error
}

// StartMany sends reqs as Many does and returns without waiting for the
// answer: a caller with requests for several peers sends them all from
// one goroutine, then waits for each. Wait must be called once.
func (c *Client) StartMany(ctx context.Context, addr string, reqs []Request) *ManyCall {
	m := &ManyCall{c: c, ctx: ctx, addr: addr, reqs: reqs}
	if len(reqs) == 0 || len(reqs) > maxMany {
		m.err = fmt.Errorf("peer: Many of %d requests; want 1 to %d", len(reqs), maxMany)
		return m
	}
	m.call, m.err = c.send(ctx, addr, opMany, func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(reqs)))
		for _, r := range reqs {
			if r.Write {
				b = appendSub(b, opWrite, func(b []byte) []byte { return appendWrite(b, r.Key, r.Mutation) })
			} else {
				b = appendSub(b, opGet, func(b []byte) []byte { return appendGet(b, r.Key, false) })
			}
		}
		return b
	})
	return m
}

// Wait returns the answer of the request, as Many.
func (m *ManyCall) Wait() ([]Result, error) { return m.WaitInto(nil) }

// WaitInto is Wait writing the results into out, which it reuses when it
// has the room.
func (m *ManyCall) WaitInto(out []Result) ([]Result, error) {
	if m.err != nil {
		return nil, m.err
	}
	c, addr, reqs, sent := m.c, m.addr, m.reqs, m.call.start
	p, err := c.wait(m.ctx, m.call)
	if err != nil {
		return nil, err
	}
	subs, err := decodeSubs(p, c.lim.frameLimit())
	if err != nil || len(subs) != len(reqs) {
		return nil, c.badAnswer(addr, fmt.Errorf("many answer: %d answers for %d requests: %v", len(subs), len(reqs), err))
	}
	out = slices.Grow(out[:0], len(reqs))[:len(reqs)]
	clear(out)
	for i, sb := range subs {
		r := &out[i]
		switch {
		case sb.op&flagError != 0:
			e, err := decodeError(sb.payload)
			if err != nil {
				return nil, c.badAnswer(addr, err)
			}
			r.Err = e
			if e.Status == 404 {
				r.Err = kv.ErrNotFound
			}
		case reqs[i].Write:
			res, err := decodeWriteResult(sb.payload, reqs[i].Key)
			if err != nil {
				return nil, c.badAnswer(addr, err)
			}
			r.WriteResult = res
		default:
			it, nearTTL, err := decodeItem(sb.payload, sent)
			if err != nil {
				return nil, c.badAnswer(addr, err)
			}
			it.Key = reqs[i].Key
			r.Item, r.NearTTL = it, nearTTL
		}
	}
	return out, nil
}

// Warm sends keys this node found hot to their new owner at addr, which
// loads them into its local tier; it returns how many the peer loaded.
func (c *Client) Warm(ctx context.Context, addr string, keys []string) (int, error) {
	loaded := 0
	for len(keys) > 0 {
		n := min(len(keys), maxInvalidateKeys)
		batch := keys[:n]
		p, err := c.call(ctx, addr, opWarm, func(b []byte) []byte { return appendKeys(b, batch) })
		if err != nil {
			return loaded, err
		}
		v, k := binary.Uvarint(p)
		if k <= 0 || k != len(p) || v > uint64(n) {
			return loaded, c.badAnswer(addr, fmt.Errorf("warm answer"))
		}
		loaded += int(v)
		keys = keys[n:]
	}
	return loaded, nil
}

// MaxStatusBytes bounds a status report carried by Status.
const MaxStatusBytes = 1 << 20

// Status asks the peer at addr for its status report (opaque bytes, as
// its Handler.Status encoded them).
func (c *Client) Status(ctx context.Context, addr string) ([]byte, error) {
	p, err := c.call(ctx, addr, opStatus, func(b []byte) []byte { return b })
	if err != nil {
		return nil, err
	}
	if len(p) > MaxStatusBytes {
		return nil, c.badAnswer(addr, fmt.Errorf("status report of %d bytes", len(p)))
	}
	return append([]byte(nil), p...), nil
}

// Ping checks that the peer at addr answers.
func (c *Client) Ping(ctx context.Context, addr string) error {
	_, err := c.call(ctx, addr, opPing, func(b []byte) []byte { return b })
	return err
}

// GoGet sends a read of key to the peer at addr, as Get does, without
// waiting for the answer: done is called once with it, on the goroutine
// that reads the connection (or the timer's, after timeout), and must not
// block. With now the request is written before GoGet returns (sharing
// the write with other senders, as Get); else not yet: Flush writes it,
// with every other request started since. GoGet returns false, having
// sent nothing, when no connection to addr is up (it dials none: a caller
// that cannot wait takes the blocking path, which dials).
func (c *Client) GoGet(addr, key string, timeout time.Duration, now bool, done func(it kv.Item, nearTTL time.Duration, err error)) bool {
	return c.goCall(addr, opGet, timeout, now, func(b []byte) []byte { return appendGet(b, key, false) },
		func(sent time.Time, p []byte, err error) {
			if err != nil {
				done(kv.Item{}, 0, err)
				return
			}
			done(c.getAnswer(addr, key, p, sent))
		})
}

// GoWrite sends a write of key to the peer at addr, as Write does, without
// waiting for the answer (see GoGet).
func (c *Client) GoWrite(addr, key string, m kv.Mutation, timeout time.Duration, now bool, done func(kv.WriteResult, error)) bool {
	return c.goCall(addr, opWrite, timeout, now, func(b []byte) []byte { return appendWrite(b, key, m) },
		func(_ time.Time, p []byte, err error) {
			if err != nil {
				done(kv.WriteResult{}, err)
				return
			}
			done(c.writeAnswer(addr, key, p))
		})
}

// goCall starts one request on a live connection to addr (see GoGet);
// done gets the answer's payload or its error, as call returns them.
func (c *Client) goCall(addr string, op byte, timeout time.Duration, now bool, build func([]byte) []byte, done func(start time.Time, p []byte, err error)) bool {
	cc := c.liveConn(addr)
	if cc == nil || timeout <= 0 {
		return false
	}
	start := time.Now()
	pc := &pendingCall{}
	pc.onDone = func() {
		p, err := c.outcome(addr, op, pc)
		c.count(op, start, err)
		done(start, p, err)
	}
	id, err := cc.registerTimed(pc, timeout, start)
	if err != nil {
		return false
	}
	frame := requestFrame(op, id, start.Add(timeout), build)
	if now {
		err = cc.w.enqueue(frame)
	} else {
		err = cc.w.add(frame)
	}
	if err != nil && cc.forget(id) {
		pc.timer.Stop()
		return false
	}
	// Sent, or failed with its connection: then fail (or the timer)
	// delivers the error to done.
	return true
}

// Flush writes the requests GoGet and GoWrite started, to every peer.
func (c *Client) Flush() {
	c.mu.Lock()
	var ccs []*clientConn
	for _, p := range c.pools {
		for i := range p.slots {
			s := &p.slots[i]
			s.mu.Lock()
			if s.cc != nil {
				ccs = append(ccs, s.cc)
			}
			s.mu.Unlock()
		}
	}
	c.mu.Unlock()
	for _, cc := range ccs {
		_ = cc.w.flush() // a failed write fails the connection and its calls
	}
}

// liveConn returns a connection to addr that is up, or nil; it dials none.
func (c *Client) liveConn(addr string) *clientConn {
	c.mu.Lock()
	p := c.pools[addr]
	closed := c.closed
	c.mu.Unlock()
	if p == nil || closed {
		return nil
	}
	s := &p.slots[int(p.next.Add(1))%len(p.slots)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cc == nil || s.cc.dead() {
		return nil
	}
	return s.cc
}

func (c *Client) badAnswer(addr string, err error) error {
	return fmt.Errorf("%w: bad answer from %s: %v", ErrUnavailable, addr, err)
}

// call sends one request and waits for its answer payload. A peer's error
// answer is returned as *kv.Error (kv.ErrNotFound for 404).
func (c *Client) call(ctx context.Context, addr string, op byte, build func([]byte) []byte) ([]byte, error) {
	cl, err := c.send(ctx, addr, op, build)
	if err != nil {
		return nil, err
	}
	return c.wait(ctx, cl)
}

// call is a request that has left (send) and waits for its answer (wait).
type call struct {
	cc    *clientConn
	id    uint32
	op    byte
	addr  string
	start time.Time
	pc    *pendingCall
}

// send writes one request (its frame built by build) to a connection to
// addr; its errors are counted as the request's outcome.
func (c *Client) send(ctx context.Context, addr string, op byte, build func([]byte) []byte) (*call, error) {
	start := time.Now()
	cl, err := c.sendFrame(ctx, addr, op, build, start)
	if err != nil {
		c.count(op, start, err)
	}
	return cl, err
}

// count records the outcome and duration of a request.
func (c *Client) count(op byte, start time.Time, err error) {
	switch {
	case err == nil:
		c.met.request(sideClient, op, resultOK)
	case errors.Is(err, ErrUnavailable):
		c.met.request(sideClient, op, resultUnavailable)
	default:
		c.met.request(sideClient, op, resultError)
	}
	c.met.observe(op, time.Since(start).Seconds())
}

func (c *Client) sendFrame(ctx context.Context, addr string, op byte, build func([]byte) []byte, start time.Time) (*call, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, addr, err)
	}
	cc, err := c.conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	dl, _ := ctx.Deadline()
	pc := &pendingCall{done: make(chan struct{})}
	id, err := cc.register(pc)
	if err != nil {
		return nil, err
	}
	err = cc.w.enqueue(requestFrame(op, id, dl, build))
	if err != nil {
		cc.forget(id)
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, addr, err)
	}
	return &call{cc: cc, id: id, op: op, addr: addr, start: start, pc: pc}, nil
}

// requestFrame returns what appends a request frame: header, deadline
// (dl, zero: none) and the payload build appends.
func requestFrame(op byte, id uint32, dl time.Time, build func([]byte) []byte) func([]byte) []byte {
	return func(b []byte) []byte {
		s := len(b)
		b = appendHeader(b, op, 0, id)
		b = appendDeadline(b, dl)
		b = build(b)
		finishFrame(b, s)
		return b
	}
}

// wait returns the answer to cl (ctx: the request's, as given to send).
func (c *Client) wait(ctx context.Context, cl *call) ([]byte, error) {
	p, err := c.answer(ctx, cl)
	c.count(cl.op, cl.start, err)
	return p, err
}

func (c *Client) answer(ctx context.Context, cl *call) ([]byte, error) {
	cc, pc, addr, op := cl.cc, cl.pc, cl.addr, cl.op
	select {
	case <-pc.done:
	case <-ctx.Done():
		if cc.forget(cl.id) {
			// Nothing came back on this connection since the request left:
			// it may be dead (a partition). Close it, dropping what it has
			// not sent (SO_LINGER 0); the next request dials again.
			if cc.lastRead.Load() < cl.start.UnixNano() {
				cc.fail(fmt.Errorf("no answer within the request's deadline"))
			}
			return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, addr, ctx.Err())
		}
		<-pc.done // the answer arrived meanwhile
	}
	return c.outcome(addr, op, pc)
}

// outcome is what an answered (or failed) call returns: its payload, or
// the peer's error answer as *kv.Error (kv.ErrNotFound for 404), or why no
// answer came.
func (c *Client) outcome(addr string, op byte, pc *pendingCall) ([]byte, error) {
	if pc.err != nil {
		return nil, pc.err
	}
	if pc.flags&flagError != 0 {
		e, err := decodeError(pc.payload)
		if err != nil {
			return nil, c.badAnswer(addr, err)
		}
		if e.Status == 404 {
			return nil, kv.ErrNotFound
		}
		return nil, e
	}
	if pc.op != op|opResponse {
		return nil, c.badAnswer(addr, fmt.Errorf("answer of op %d to op %d", pc.op, op))
	}
	return pc.payload, nil
}

// pendingCall is one request waiting for its answer: a goroutine waits
// on done, or (a call started by Go*) onDone is called instead, once, by
// whoever removes the call from its connection (the reader, fail, or the
// timer).
type pendingCall struct {
	done    chan struct{}
	onDone  func()
	timer   *time.Timer // a started call's deadline; set under clientConn.mu
	op      byte
	flags   byte
	payload []byte
	err     error
}

// finish delivers the call's outcome to its waiter.
func (pc *pendingCall) finish() {
	if pc.onDone == nil {
		close(pc.done)
		return
	}
	if pc.timer != nil {
		pc.timer.Stop()
	}
	pc.onDone()
}

// pool holds the connections to one peer.
type pool struct {
	c     *Client
	addr  string
	next  atomic.Uint32
	slots []poolSlot
}

type poolSlot struct {
	mu       sync.Mutex
	cc       *clientConn
	failedAt time.Time
	failErr  error
}

func (c *Client) pool(addr string) (*pool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%w: %s: client closed", ErrUnavailable, addr)
	}
	p := c.pools[addr]
	if p == nil {
		p = &pool{c: c, addr: addr, slots: make([]poolSlot, c.cfg.ConnsPerPeer)}
		c.pools[addr] = p
	}
	return p, nil
}

// conn returns a live connection to addr, dialing one if needed.
func (c *Client) conn(ctx context.Context, addr string) (*clientConn, error) {
	p, err := c.pool(addr)
	if err != nil {
		return nil, err
	}
	s := &p.slots[int(p.next.Add(1))%len(p.slots)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cc != nil && !s.cc.dead() {
		return s.cc, nil
	}
	if s.failErr != nil && time.Since(s.failedAt) < c.cfg.RetryDialAfter {
		return nil, s.failErr
	}
	cc, err := c.dial(ctx, addr)
	if err != nil {
		s.failedAt, s.failErr = time.Now(), err
		return nil, err
	}
	s.cc, s.failErr = cc, nil
	return cc, nil
}

func (p *pool) closeAll(err error) {
	for i := range p.slots {
		s := &p.slots[i]
		s.mu.Lock()
		if s.cc != nil {
			s.cc.fail(err)
		}
		s.mu.Unlock()
	}
}

// dial connects to addr, authenticates and says hello.
func (c *Client) dial(ctx context.Context, addr string) (*clientConn, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	setNoLinger(raw)
	nc := raw
	if dl, ok := dctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	if c.tls != nil {
		tc := tls.Client(raw, c.tls)
		if err := tc.HandshakeContext(dctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("%w: %w: %s: TLS handshake: %v", ErrUnavailable, ErrRefused, addr, err)
		}
		nc = tc
	}
	hello := appendHeader(nil, opHello, 0, 0)
	hello = appendHello(hello, c.cfg.Label, c.cfg.Name)
	finishFrame(hello, 0)
	if _, err := nc.Write(hello); err != nil {
		raw.Close()
		return nil, fmt.Errorf("%w: %s: hello: %v", ErrUnavailable, addr, err)
	}
	br := bufio.NewReaderSize(nc, 32<<10)
	var hb [headerSize]byte
	h, err := readHeader(br, &hb, maxHelloFrame)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("%w: %s: hello answer: %v", ErrUnavailable, addr, err)
	}
	p := make([]byte, h.length)
	if _, err := io.ReadFull(br, p); err != nil || h.op != opHello|opResponse {
		raw.Close()
		return nil, fmt.Errorf("%w: %s: bad hello answer: %v", ErrUnavailable, addr, err)
	}
	if h.flags&flagError != 0 {
		raw.Close()
		msg := "refused"
		if e, err := decodeError(p); err == nil {
			msg = e.Message
		}
		return nil, fmt.Errorf("%w: %w: %s: %s", ErrUnavailable, ErrRefused, addr, msg)
	}
	_ = raw.SetDeadline(time.Time{})
	cc := &clientConn{c: c, addr: addr, raw: raw, nc: nc, name: string(p), calls: map[uint32]*pendingCall{}}
	cc.w = newFrameWriter(nc, 10*time.Second, cc.fail)
	cc.lastRead.Store(time.Now().UnixNano())
	c.met.conn(sideClient, 1)
	c.wg.Add(1)
	go func() { defer c.wg.Done(); cc.readLoop(br) }()
	return cc, nil
}

// clientConn is one connection to a peer with its requests in flight.
type clientConn struct {
	c        *Client
	addr     string
	name     string // the peer's name, from its hello answer
	raw      net.Conn
	nc       net.Conn
	w        *frameWriter
	lastRead atomic.Int64 // Unix ns of the last frame received

	mu     sync.Mutex
	calls  map[uint32]*pendingCall
	nextID uint32
	err    error // set once the connection failed
}

func (cc *clientConn) dead() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err != nil
}

func (cc *clientConn) register(cl *pendingCall) (uint32, error) {
	return cc.registerTimed(cl, 0, time.Time{})
}

// registerTimed registers cl; with a timeout, a timer fails it after that
// long unless its answer came first (a call started by Go*, which no
// goroutine waits for).
func (cc *clientConn) registerTimed(cl *pendingCall, timeout time.Duration, start time.Time) (uint32, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrUnavailable, cc.addr, cc.err)
	}
	cc.nextID++
	for cc.calls[cc.nextID] != nil || cc.nextID == 0 {
		cc.nextID++
	}
	id := cc.nextID
	cc.calls[id] = cl
	if timeout > 0 {
		cl.timer = time.AfterFunc(timeout, func() { cc.expire(id, cl, start) })
	}
	return id, nil
}

// expire fails a started call whose deadline passed with no answer, and
// the connection too if nothing came back on it since the call left (as
// Client.answer does for a waiting call).
func (cc *clientConn) expire(id uint32, cl *pendingCall, start time.Time) {
	if !cc.forget(id) {
		return // answered meanwhile
	}
	if cc.lastRead.Load() < start.UnixNano() {
		cc.fail(fmt.Errorf("no answer within the request's deadline"))
	}
	cl.err = fmt.Errorf("%w: %s: no answer within %v", ErrUnavailable, cc.addr, time.Since(start).Round(time.Millisecond))
	cl.onDone()
}

// forget drops a call that gave up; false if its answer is being delivered.
func (cc *clientConn) forget(id uint32) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if _, ok := cc.calls[id]; !ok {
		return false
	}
	delete(cc.calls, id)
	return true
}

// fail closes the connection and fails every call in flight.
func (cc *clientConn) fail(err error) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	cc.err = err
	calls := cc.calls
	cc.calls = nil
	cc.mu.Unlock()
	cc.w.close(err)
	cc.raw.Close()
	cc.c.met.conn(sideClient, -1)
	ferr := fmt.Errorf("%w: %s: connection lost: %v", ErrUnavailable, cc.addr, err)
	for _, cl := range calls {
		cl.err = ferr
		cl.finish()
	}
}

// readLoop delivers answers to their calls until the connection fails.
func (cc *clientConn) readLoop(br *bufio.Reader) {
	var hb [headerSize]byte
	limit := cc.c.lim.frameLimit()
	for {
		h, err := readHeader(br, &hb, limit)
		if err != nil {
			cc.fail(err)
			return
		}
		p := make([]byte, h.length)
		if _, err := io.ReadFull(br, p); err != nil {
			cc.fail(err)
			return
		}
		cc.lastRead.Store(time.Now().UnixNano())
		if h.op&opResponse == 0 {
			cc.fail(fmt.Errorf("%w: request frame from a server", ErrMalformed))
			return
		}
		cc.mu.Lock()
		cl := cc.calls[h.id]
		delete(cc.calls, h.id)
		cc.mu.Unlock()
		if cl == nil {
			continue // its caller gave up
		}
		cl.op, cl.flags, cl.payload = h.op, h.flags, p
		cl.finish()
	}
}
