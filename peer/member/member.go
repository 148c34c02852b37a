// Package member addresses the members of a cluster by name over a
// peer.Client: it finds a member's peer address in a Directory (one view of
// the cluster), bounds each request by a timeout unless the caller's
// deadline is sooner, and turns what the client returns into the errors of
// package kv (a retryable 503 marked Unreachable when no answer came). It
// decides nothing about routing (the caller names the member to ask) and
// knows nothing of what the requests mean.
package member

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/peer"
	"github.com/peercache/peercache/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Directory finds members' peer addresses: one snapshot of what a node
// knows of its cluster.
type Directory interface {
	// PeerAddr returns the peer address member name advertises, false if
	// name is no member or advertises none.
	PeerAddr(name string) (addr string, ok bool)
	// PeerProto returns the peer protocol version member name gossips
	// (0: unknown).
	PeerProto(name string) int
}

// ProtoAbsoluteExpiry is the first peer protocol version
// (membership.ProtocolVersion) whose members take a write with an
// absolute expiry (kv.Mutation.ExpireAt). A member of an older release
// gets the expiry as a time to live instead: during a rolling update its
// PEXPIRETIME may then be a few milliseconds early, as every release
// before answered.
const ProtoAbsoluteExpiry = 3

// ProtoConditions is the first peer protocol version whose members take
// an expiry change with a condition (kv.Mutation.ExpireIf) and a GETSET
// with a set's expiry and condition (SET ... GET). Such a write to an
// older member fails with kv.ErrOwnerTooOld (it cannot be turned into one
// the member takes): the caller falls back to reading first, as those
// releases did.
const ProtoConditions = 4

// tooOld returns the error for a write that member name of d cannot take,
// or nil.
func tooOld(d Directory, name string, mu kv.Mutation) *kv.Error {
	if !mu.NeedsConditions() || d.PeerProto(name) >= ProtoConditions {
		return nil
	}
	return kv.Errorf(http.StatusNotImplemented, "member %s runs a release that cannot carry out this write: %w", name, kv.ErrOwnerTooOld)
}

// forPeer returns mu as member name of d can take it.
func forPeer(d Directory, name string, mu kv.Mutation) kv.Mutation {
	if mu.ExpireAt.IsZero() || d.PeerProto(name) >= ProtoAbsoluteExpiry {
		return mu
	}
	return mu.Relative(time.Now())
}

// Config configures Caller.
type Config struct {
	// Client carries the requests.
	Client *peer.Client
	// Current returns the directory as it is now (required). Import,
	// Invalidate and Addr look names up in it; the other calls are given
	// the directory their request was routed by.
	Current func() Directory
	// Timeout bounds a request (a caller's sooner deadline stands, without
	// a timer of its own), and each 8 MiB of an import on top.
	Timeout time.Duration
	// Leaving reports whether this node is leaving or has left the
	// cluster (nil: never): the members then refuse its requests, and a
	// refusal says so.
	Leaving func() bool
	// Unreachable counts requests that got no answer at all (nil: not
	// counted).
	Unreachable prometheus.Counter
	// ForwardedGets counts the reads Get is asked to make of a key's owner
	// (known member or not; not those of a replica); ForwardedPuts and
	// ForwardedDeletes count the writes and deletes Write sends to a known
	// member (nil: not counted).
	ForwardedGets, ForwardedPuts, ForwardedDeletes prometheus.Counter
	// ImportsSent counts the entries Import got an answer for (nil: not
	// counted).
	ImportsSent prometheus.Counter
}

// Caller sends requests to members by name, over a Client: it finds a
// member's address in a Directory, bounds each request by the configured
// timeout and turns what the client returns into the errors of package kv
// (see the methods). It decides nothing about routing: the caller names
// the member to ask. It is safe for concurrent use.
type Caller struct {
	cfg Config
}

// New returns Caller over cfg.Client.
func New(cfg Config) *Caller {
	return &Caller{cfg: cfg}
}

// lookup returns member name's peer address in d, or a retryable 503 when
// d knows no such member (or no address of it).
func (m *Caller) lookup(d Directory, name string) (string, *kv.Error) {
	addr, ok := d.PeerAddr(name)
	if !ok || addr == "" {
		return "", retryable("owner %s is not a known member", name)
	}
	return addr, nil
}

// Addr returns member name's peer address in the current directory, false
// if it is not known there.
func (m *Caller) Addr(name string) (string, bool) {
	addr, ok := m.cfg.Current().PeerAddr(name)
	return addr, ok && addr != ""
}

// bound bounds a request by the timeout. A caller whose deadline comes
// sooner keeps its own context: a timer per request is a measurable share
// of a forward.
func (m *Caller) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= m.cfg.Timeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, m.cfg.Timeout)
}

// mapErr turns what the client returned for a request to member name at
// addr into the caller's error: kv.ErrNotFound; the peer's own *kv.Error,
// unless it is a refusal (403); a retryable 503 when this node is leaving
// or has left (the members no longer take its calls) or when the peer
// refused it; else a retryable 503 marked Unreachable (no answer came),
// counted.
func (m *Caller) mapErr(name, addr string, err error) error {
	var e *kv.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kv.ErrNotFound):
		return kv.ErrNotFound
	case errors.As(err, &e) && !errors.Is(e, kv.ErrRefused):
		return e
	case m.cfg.Leaving != nil && m.cfg.Leaving():
		return retryable("this node has left the cluster; retry on another node")
	case e != nil: // 403: the peer does not (yet) count this node as a member
		return retryable("%s refused this node's request: %s", name, e.Message)
	default:
		inc(m.cfg.Unreachable, 1)
		return &kv.Error{Status: http.StatusServiceUnavailable, Retryable: true, Unreachable: true,
			Message: fmt.Sprintf("owner %s (%s) unreachable: %v", name, addr, err)}
	}
}

// Get reads key from member name as d knows it: from its shard as the
// key's owner, or (replica) from its own copy. The item's Owner is name
// and its Source replica or peer (origin stays origin: the owner loaded
// it through its read-through origin); nearTTL is how long the owner lets
// this node keep a copy. Errors are kv's: kv.ErrNotFound, the owner's own
// *kv.Error (421, ...) or a retryable 503 (Unreachable when no answer came).
func (m *Caller) Get(ctx context.Context, d Directory, name, key string, replica bool) (it kv.Item, nearTTL time.Duration, err error) {
	if !replica {
		inc(m.cfg.ForwardedGets, 1)
	}
	addr, e := m.lookup(d, name)
	if e != nil {
		return kv.Item{}, 0, e
	}
	ctx, cancel := m.bound(ctx)
	defer cancel()
	it, nearTTL, err = m.cfg.Client.Get(ctx, addr, key, replica)
	if err != nil {
		return kv.Item{}, 0, m.mapErr(name, addr, err)
	}
	stamp(&it, name, replica)
	return it, nearTTL, nil
}

// stamp marks an item read from member name: its Owner is name and its
// Source replica or peer (origin stays origin: the owner loaded it through
// its read-through origin).
func stamp(it *kv.Item, name string, replica bool) {
	it.Owner = name
	switch {
	case replica:
		it.Source = kv.SourceReplica
	case it.Source != kv.SourceOrigin:
		it.Source = kv.SourcePeer
	}
}

// Write applies mu to key at member name as d knows it (the key's owner).
// The result's Owner is name and its Source peer. A non-nil error is
// always a *kv.Error, mapped as Get maps its errors.
func (m *Caller) Write(ctx context.Context, d Directory, name, key string, mu kv.Mutation) (kv.WriteResult, error) {
	addr, e := m.lookup(d, name)
	if e != nil {
		return kv.WriteResult{}, e
	}
	if e := tooOld(d, name, mu); e != nil {
		return kv.WriteResult{}, e // not sent: not counted as forwarded
	}
	m.countWrite(mu)
	ctx, cancel := m.bound(ctx)
	defer cancel()
	res, err := m.cfg.Client.Write(ctx, addr, key, forPeer(d, name, mu))
	if err != nil {
		return kv.WriteResult{}, narrow(m.mapErr(name, addr, err))
	}
	res.Owner, res.Source = name, kv.SourcePeer
	return res, nil
}

// GoGet starts a read of key from member name as d knows it (its owner),
// as Get reads, with no goroutine waiting for the answer: done gets it, as
// Get returns it, once, on a goroutine of the client, and must not block.
// It returns false, having sent nothing, when d knows no address of name
// or no connection to it is up (peer.Client.GoGet); the request leaves at
// once with now, else with the next Flush.
func (m *Caller) GoGet(d Directory, name, key string, now bool, done func(it kv.Item, nearTTL time.Duration, err error)) bool {
	addr, e := m.lookup(d, name)
	if e != nil {
		return false
	}
	ok := m.cfg.Client.GoGet(addr, key, m.cfg.Timeout, now, func(it kv.Item, nearTTL time.Duration, err error) {
		if err != nil {
			done(kv.Item{}, 0, m.mapErr(name, addr, err))
			return
		}
		stamp(&it, name, false)
		done(it, nearTTL, nil)
	})
	if ok {
		inc(m.cfg.ForwardedGets, 1)
	}
	return ok
}

// GoWrite starts a write of key at member name as d knows it (its owner),
// as Write writes, with no goroutine waiting for the answer (see GoGet).
// Writes that need a newer member than name are not started.
func (m *Caller) GoWrite(d Directory, name, key string, mu kv.Mutation, now bool, done func(kv.WriteResult, error)) bool {
	addr, e := m.lookup(d, name)
	if e != nil || tooOld(d, name, mu) != nil {
		return false
	}
	ok := m.cfg.Client.GoWrite(addr, key, forPeer(d, name, mu), m.cfg.Timeout, now, func(res kv.WriteResult, err error) {
		if err != nil {
			done(kv.WriteResult{}, narrow(m.mapErr(name, addr, err)))
			return
		}
		res.Owner, res.Source = name, kv.SourcePeer
		done(res, nil)
	})
	if ok {
		m.countWrite(mu)
	}
	return ok
}

// countWrite counts a write sent to a member: a delete or a put.
func (m *Caller) countWrite(mu kv.Mutation) {
	if mu.Delete {
		inc(m.cfg.ForwardedDeletes, 1)
	} else {
		inc(m.cfg.ForwardedPuts, 1)
	}
}

// Flush writes the requests GoGet and GoWrite started.
func (m *Caller) Flush() { m.cfg.Client.Flush() }

// Multi carries out an atomic change of several keys of one slot at member
// name as d knows it (their owner); errors are mapped as Write maps them.
func (m *Caller) Multi(ctx context.Context, d Directory, name string, mu kv.Multi) (kv.MultiResult, error) {
	addr, e := m.lookup(d, name)
	if e != nil {
		return kv.MultiResult{}, e
	}
	inc(m.cfg.ForwardedPuts, 1)
	ctx, cancel := m.bound(ctx)
	defer cancel()
	res, err := m.cfg.Client.Multi(ctx, addr, mu)
	if err != nil {
		return kv.MultiResult{}, narrow(m.mapErr(name, addr, err))
	}
	return res, nil
}

// Scan runs one step of a scan of the live keys member name owns (as d
// knows it); errors are mapped as Get maps them.
func (m *Caller) Scan(ctx context.Context, d Directory, name string, cursor uint64, count int) ([]string, uint64, error) {
	addr, e := m.lookup(d, name)
	if e != nil {
		return nil, 0, e
	}
	ctx, cancel := m.bound(ctx)
	defer cancel()
	keys, next, err := m.cfg.Client.Scan(ctx, addr, cursor, count)
	if err != nil {
		return nil, 0, m.mapErr(name, addr, err)
	}
	return keys, next, nil
}

// Handoff reads member name's own entry for key (whoever owns the key
// now), found false if it has none; errors are mapped as Get maps them.
func (m *Caller) Handoff(ctx context.Context, d Directory, name, key string) (store.Entry, bool, error) {
	addr, e := m.lookup(d, name)
	if e != nil {
		return store.Entry{}, false, e
	}
	ctx, cancel := m.bound(ctx)
	defer cancel()
	en, found, err := m.cfg.Client.Handoff(ctx, addr, key)
	if err != nil {
		return store.Entry{}, false, m.mapErr(name, addr, err)
	}
	return en, found, nil
}

// Invalidate tells member name, as the current directory knows it, that
// keys changed; errors are mapped as Get maps them.
func (m *Caller) Invalidate(ctx context.Context, name string, keys []string) error {
	addr, e := m.lookup(m.cfg.Current(), name)
	if e != nil {
		return e
	}
	ctx, cancel := m.bound(ctx)
	defer cancel()
	return m.mapErr(name, addr, m.cfg.Client.Invalidate(ctx, addr, keys))
}

// Import sends entries to the import of member name as the current
// directory knows it (migration, replica copies, repair, write-through)
// and returns one result per entry (the method migrate.Transport asks
// for). The request may take the timeout once per 8 MiB of keys and
// values on top of once. Its error says "import to <name>: " before the
// mapped error.
func (m *Caller) Import(ctx context.Context, name string, entries []store.Entry) ([]kv.ImportResult, error) {
	addr, e := m.lookup(m.cfg.Current(), name)
	if e != nil {
		return nil, fmt.Errorf("import to %s: %w", name, e)
	}
	var size int
	for _, en := range entries {
		size += len(en.Key) + len(en.Value)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout*time.Duration(1+size>>23))
	defer cancel()
	res, err := m.cfg.Client.Import(ctx, addr, entries)
	if err != nil {
		return nil, fmt.Errorf("import to %s: %w", name, m.mapErr(name, addr, err))
	}
	inc(m.cfg.ImportsSent, float64(len(res)))
	return res, nil
}

// Warm sends keys to the member at addr (as Addr found it), which loads
// them into its local tier, and returns how many it loaded. The request
// is bounded by the timeout; its error is the client's, unmapped.
func (m *Caller) Warm(ctx context.Context, addr string, keys []string) (int, error) {
	ctx, cancel := m.bound(ctx)
	defer cancel()
	return m.cfg.Client.Warm(ctx, addr, keys)
}

// Status asks member name, as d knows it, for its status report. It is
// bounded by ctx alone (a status fan-out has a deadline of its own); an
// error other than an unknown member's retryable 503 is the client's,
// unmapped.
func (m *Caller) Status(ctx context.Context, d Directory, name string) ([]byte, error) {
	addr, e := m.lookup(d, name)
	if e != nil {
		return nil, e
	}
	return m.cfg.Client.Status(ctx, addr)
}

// Call is a Many request that Caller.StartMany sent to a member and
// whose answer has not been read yet.
type Call struct {
	m      *Caller
	name   string
	addr   string
	reqs   []peer.Request
	call   *peer.ManyCall
	cancel context.CancelFunc
	err    *kv.Error // it could not be sent: the member is not known
}

// StartMany sends reqs to member name, as d knows it, in one Many request
// bounded by the timeout, and returns without waiting for the answer
// (Client.StartMany). WaitInto must be called once.
func (m *Caller) StartMany(ctx context.Context, d Directory, name string, reqs []peer.Request) Call {
	c := Call{m: m, name: name, reqs: reqs}
	c.addr, c.err = m.lookup(d, name)
	if c.err != nil {
		return c
	}
	convert := -1 // the first write the member needs in an older form
	for i := range reqs {
		if !reqs[i].Write {
			continue
		}
		if c.err = tooOld(d, name, reqs[i].Mutation); c.err != nil {
			return c // the doors send such writes alone (Write), never in a batch
		}
		if convert < 0 && !reqs[i].Mutation.ExpireAt.IsZero() && d.PeerProto(name) < ProtoAbsoluteExpiry {
			convert = i
		}
	}
	if convert >= 0 {
		reqs = slices.Clone(reqs) // the caller's stay as they are
		for j := convert; j < len(reqs); j++ {
			reqs[j].Mutation = forPeer(d, name, reqs[j].Mutation)
		}
	}
	var pctx context.Context
	pctx, c.cancel = m.bound(ctx)
	c.call = m.cfg.Client.StartMany(pctx, c.addr, reqs)
	return c
}

// WaitInto returns the answer as ManyCall.WaitInto does, with each
// result stamped as Get and Write stamp theirs (Owner the member, Source
// peer), and ends the request's context. A non-nil error is for the whole
// request and always a *kv.Error: the unknown member's retryable 503, or
// the client's error mapped as Get maps its errors.
func (c *Call) WaitInto(out []peer.Result) ([]peer.Result, error) {
	if c.err != nil {
		return nil, c.err
	}
	res, err := c.call.WaitInto(out)
	c.cancel()
	if err != nil {
		return nil, narrow(c.m.mapErr(c.name, c.addr, err))
	}
	for i := range res {
		switch r := &res[i]; {
		case c.reqs[i].Write:
			r.Owner, r.Source = c.name, kv.SourcePeer
		case r.Err == nil:
			stamp(&r.Item, c.name, false)
		}
	}
	return res, nil
}

// narrow returns err as a *kv.Error: itself, or a 500 that carries its
// text (kv.ErrNotFound, which is no *kv.Error, among them).
func narrow(err error) *kv.Error {
	var e *kv.Error
	if err == nil {
		return nil
	}
	if errors.As(err, &e) {
		return e
	}
	return &kv.Error{Status: http.StatusInternalServerError, Message: err.Error()}
}

// retryable returns a retryable 503.
func retryable(format string, args ...any) *kv.Error {
	return &kv.Error{Status: http.StatusServiceUnavailable, Retryable: true, Message: fmt.Sprintf(format, args...)}
}

// inc adds d to c unless c is nil.
func inc(c prometheus.Counter, d float64) {
	if c != nil {
		c.Add(d)
	}
}
