package node

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/peercache/peercache/internal/batch"
	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/peer"
	"github.com/peercache/peercache/peer/member"
	"github.com/peercache/peercache/store"
)

// Batches: reads and writes of distinct keys that a client sent together
// (a Redis pipeline). Each key is routed as Get and Write route it; what
// goes to one owner leaves as one peer request, and an owner applies a
// batch of writes and copies them to each replica as one import, so a
// pipeline of N commands costs a few round trips instead of N.

// Op is one key's read or write in Many.
type Op struct {
	Key string
	// Write: apply Mutation; else read the key.
	Write    bool
	Mutation Mutation
}

// OpResult answers one Op: for a write its WriteResult, for a read only
// the Item (promoted from WriteResult), and Err as Get and Write return it
// (ErrNotFound for a missing key).
type OpResult struct {
	WriteResult
	Err error
}

// maxManyOps bounds the ops of one peer request.
const maxManyOps = 1024

// Many carries out ops. Ops of one key are carried out in their order: a
// key that repeats starts a new round, which begins once the ops before it
// are done (a pipeline of 16 random keys out of 1,000 repeats one about
// once in nine). Order among ops of different keys within a round is not
// defined, as for separate calls.
func (n *Node) Many(ctx context.Context, ops []Op) []OpResult {
	return n.ManyInto(ctx, ops, nil)
}

// ManyInto is Many writing the results into out, which it reuses when it
// has the room (a connection that runs pipeline after pipeline passes its
// previous results back, and allocates nothing per pipeline for them).
func (n *Node) ManyInto(ctx context.Context, ops []Op, out []OpResult) []OpResult {
	out = slices.Grow(out[:0], len(ops))[:len(ops)]
	clear(out)
	sc := n.writes.scratch.Get().(*manyScratch)
	for start := 0; start < len(ops); {
		end := start + distinctRun(ops[start:])
		n.manyDistinct(ctx, sc, ops[start:end], out[start:end])
		start = end
	}
	sc.Reset()
	n.writes.scratch.Put(sc)
	return out
}

// manyScratch is the working space of one Many call, kept in a pool on
// the Node for the next call: the ops of each owner, the local ops, and
// the requests in flight with their buffers (batch.Scratch), and the local
// writes a round applied, to spread together.
type manyScratch struct {
	batch.Scratch[manyPart, *manyPart]
	entries []store.Entry // applied local writes of the round
	applied []int         // their ops
	puts    putBatch      // the round's local plain writes
	putIdx  []int         // their ops
	reads   localReads    // the round's local reads
}

// localReads are a round's reads of keys this node owns, for
// ownerGetMany.
type localReads struct {
	keys []string
	idx  []int // their ops
	its  []Item
	errs []error
}

// reset empties r for the next round, keeping its buffers unless a huge
// round grew them past maxKept.
func (r *localReads) reset(maxKept int) {
	if cap(r.keys) > maxKept {
		*r = localReads{}
		return
	}
	clear(r.keys)
	clear(r.its)
	clear(r.errs)
	r.keys, r.idx, r.its, r.errs = r.keys[:0], r.idx[:0], r.its[:0], r.errs[:0]
}

// distinctRun is the length of the longest prefix of ops whose keys are
// distinct (at least 1 when ops is not empty).
func distinctRun(ops []Op) int {
	return batch.DistinctRun(len(ops), func(i int) string { return ops[i].Key })
}

// manyDistinct carries out ops of distinct keys together, writing out[i]
// for ops[i].
func (n *Node) manyDistinct(ctx context.Context, sc *manyScratch, ops []Op, out []OpResult) {
	if len(ops) == 1 {
		out[0] = n.one(ctx, ops[0])
		return
	}
	ep := n.reads.tier.Epoch() // before the view
	v := n.views.cur.Load()
	for i, op := range ops {
		owner := v.Ring.Owner(op.Key)
		var e *Error
		if op.Write {
			e = n.checkWrite(op.Key, op.Mutation, false)
		} else {
			e = n.checkKey(op.Key)
		}
		switch {
		case e != nil:
			out[i].Err = e
		case owner == "":
			out[i].Err = forming()
		case owner == n.cfg.Name:
			sc.Local = append(sc.Local, i) // served here
		case !op.Write:
			if it, ok := n.reads.tier.Near(op.Key, owner); ok { // near cache
				out[i].Item = it
				continue
			}
			fallthrough
		default:
			g := sc.Group(owner)
			sc.Remote[g] = append(sc.Remote[g], i)
		}
	}
	// One request per owner (and per maxManyOps ops), all sent from this
	// goroutine before the local ops run; then each answer is read.
	for g, owner := range sc.Owners {
		for idx := sc.Remote[g]; len(idx) > 0; {
			chunk := idx[:min(len(idx), maxManyOps)]
			idx = idx[len(chunk):]
			sc.Parts = append(sc.Parts, n.manyStart(ctx, sc.Part(), v, owner, ops, chunk))
		}
	}
	n.manyLocal(ctx, v, sc, ops, out)
	for _, p := range sc.Parts {
		n.manyFinish(ctx, p, ops, out, ep)
	}
	sc.Round()
}

// manyLocal carries out the ops of sc.Local, whose keys this node owns in
// v (checked already), as route's local path does: reads together
// through ownerGetMany, plain writes (SETs that need no current record)
// together through ownerPutMany, other writes through ownerApply (the
// keys of a round are distinct, so their order does not matter), and then one
// spread for all the writes the shard took, so that the round's near-cache
// invalidations, write-throughs and replica copies leave together.
func (n *Node) manyLocal(ctx context.Context, v *view, sc *manyScratch, ops []Op, out []OpResult) {
	applied, appliedIdx := sc.entries[:0], sc.applied[:0]
	pb, putIdx, rd := &sc.puts, sc.putIdx[:0], &sc.reads
	for _, i := range sc.Local {
		switch {
		case !ops[i].Write:
			rd.keys, rd.idx = append(rd.keys, ops[i].Key), append(rd.idx, i)
		case plainPut(ops[i].Mutation):
			pb.add(ops[i].Key, ops[i].Mutation)
			putIdx = append(putIdx, i)
		}
	}
	if len(rd.keys) > 0 {
		rd.its = slices.Grow(rd.its[:0], len(rd.keys))[:len(rd.keys)]
		rd.errs = slices.Grow(rd.errs[:0], len(rd.keys))[:len(rd.keys)]
		n.ownerGetMany(ctx, v, rd.keys, rd.its, rd.errs)
		for j, i := range rd.idx {
			out[i] = OpResult{WriteResult: WriteResult{Item: rd.its[j]}, Err: rd.errs[j]}
		}
	}
	if len(putIdx) > 1 {
		n.ownerPutMany(ctx, pb)
		applied, appliedIdx = pb.results(n, putIdx, applied, appliedIdx, func(i int, res WriteResult, err *Error) {
			out[i].WriteResult = res
			if err != nil { // (a nil *Error must not become a non-nil error)
				out[i].Err = err
			}
		})
	}
	for _, i := range sc.Local {
		op := ops[i]
		if !op.Write || (len(putIdx) > 1 && plainPut(op.Mutation)) {
			continue // read or written above
		}
		res, e, ok, err := n.ownerApply(ctx, op.Key, op.Mutation)
		if err != nil {
			out[i] = OpResult{WriteResult: res, Err: err}
			continue
		}
		out[i] = OpResult{WriteResult: res}
		if ok {
			applied, appliedIdx = append(applied, e), append(appliedIdx, i)
		}
	}
	for j, err := range n.spread(ctx, applied, true) {
		if err != nil { // the replica copies were not acknowledged
			out[appliedIdx[j]] = OpResult{Err: err}
		}
	}
	clear(applied)
	pb.reset(maxManyOps)
	rd.reset(maxManyOps)
	if cap(applied) <= maxManyOps { // kept for the next round unless a huge pipeline grew them
		sc.entries, sc.applied, sc.putIdx = applied[:0], appliedIdx[:0], putIdx[:0]
	} else {
		sc.entries, sc.applied, sc.putIdx = nil, nil, nil
	}
}

// one carries out a single op as Get or Write would.
func (n *Node) one(ctx context.Context, op Op) OpResult {
	if op.Write {
		res, err := n.write(ctx, op.Key, op.Mutation)
		return OpResult{WriteResult: res, Err: err}
	}
	it, err := n.get(ctx, op.Key)
	return OpResult{WriteResult: WriteResult{Item: it}, Err: err}
}

// manyPart is one request of Many to one owner, sent and not yet answered.
type manyPart struct {
	idx    []int // the ops it carries
	reqs   []peer.Request
	guards []uint64 // their local tier guards when it left (empty: no tier)
	res    []peer.Result
	sent   time.Time
	call   member.Call
}

// Recycle forgets what p carried, keeping its buffers for the next part
// unless they have grown past maxKept (batch.Part).
func (p *manyPart) Recycle(maxKept int) {
	reqs, guards, res := p.reqs, p.guards, p.res
	clear(reqs)
	clear(res)
	*p = manyPart{}
	if cap(reqs) <= maxKept {
		p.reqs, p.guards, p.res = reqs[:0], guards[:0], res[:0]
	}
}

// manyStart sends ops[idx] to their owner in one request, filling p
// (empty, with buffers to reuse).
func (n *Node) manyStart(ctx context.Context, p *manyPart, v *view, owner string, ops []Op, idx []int) *manyPart {
	p.idx = idx
	reqs := p.reqs[:0]
	for _, i := range idx {
		reqs = append(reqs, peer.Request{Key: ops[i].Key, Write: ops[i].Write, Mutation: ops[i].Mutation})
		if n.reads.tier != nil {
			p.guards = append(p.guards, n.reads.tier.Guard(ops[i].Key))
		}
	}
	p.reqs = reqs
	p.sent = time.Now()
	p.call = n.peer.members.StartMany(ctx, v, owner, reqs)
	return p
}

// manyFinish reads the answer of p and writes out for its ops. What the
// owner refused because views differ (421), or could not be answered at
// all, is retried key by key through the ordinary paths, which re-route.
func (n *Node) manyFinish(ctx context.Context, p *manyPart, ops []Op, out []OpResult, ep uint64) {
	idx, guards, sent := p.idx, p.guards, p.sent
	var e *Error
	res, err := p.call.WaitInto(p.res)
	switch {
	case err == nil:
		p.res = res
	case !errors.As(err, &e): // (member.Call's errors are *Error)
		e = kv.Errorf(http.StatusInternalServerError, "%v", err)
	}
	for j, i := range idx {
		op := ops[i]
		switch {
		case op.Write:
			n.reads.tier.Invalidate(op.Key) // this node's near copy goes before the write is acknowledged
			if op.Mutation.Delete {
				n.metrics.FwdDelete.Inc()
			} else {
				n.metrics.FwdPut.Inc()
			}
		default:
			n.metrics.FwdGet.Inc()
		}
		var r peer.Result
		if e == nil {
			r = res[j]
		}
		if e != nil || errors.Is(r.Err, kv.ErrNotOwner) || errors.Is(r.Err, kv.ErrRefused) {
			out[i] = n.one(ctx, op) // re-routed key by key
			continue
		}
		if op.Write {
			out[i] = OpResult{WriteResult: r.WriteResult, Err: r.Err}
			continue
		}
		if r.Err == nil {
			var g uint64
			if len(guards) > 0 {
				g = guards[j]
			}
			n.reads.tier.FillNear(op.Key, r.Item, r.NearTTL, sent, g, ep)
		}
		out[i] = OpResult{WriteResult: WriteResult{Item: r.Item}, Err: r.Err}
	}
}

// Many (server side) serves a batch of forwarded reads and writes: reads
// one by one (each as Get serves it), writes applied one by one and then
// spread together, so that each replica gets one import for all of them.
func (h peerHandler) Many(ctx context.Context, from string, reqs []peer.Request) []peer.Result {
	n := h.n
	out := make([]peer.Result, len(reqs))
	if err := h.refused(); err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	if ctx.Err() != nil {
		for i := range out {
			out[i].Err = kv.Retryable(http.StatusServiceUnavailable, "forwarded request arrived after its deadline; not carried out")
		}
		return out
	}
	var applied []store.Entry
	var appliedIdx []int
	// The plain writes of a batch of distinct keys (as Many sends) this
	// node owns are applied together, as manyLocal applies them.
	var pb putBatch
	var putIdx []int
	batched := len(reqs) > 1 && batch.DistinctRun(len(reqs), func(i int) string { return reqs[i].Key }) == len(reqs)
	if batched {
		for i, r := range reqs {
			if !r.Write || !plainPut(r.Mutation) {
				continue
			}
			if err := n.checkWrite(r.Key, r.Mutation, true); err != nil {
				out[i].Err = err
			} else if _, err := n.forwardedView(r.Key); err != nil {
				out[i].Err = err
			} else {
				pb.add(r.Key, r.Mutation)
				putIdx = append(putIdx, i)
			}
		}
		if len(putIdx) > 0 {
			n.ownerPutMany(ctx, &pb)
		}
		applied, appliedIdx = pb.results(n, putIdx, applied, appliedIdx, func(i int, res WriteResult, err *Error) {
			out[i].WriteResult = res
			if err != nil { // (a nil *Error must not become a non-nil error)
				out[i].Err = err
			}
		})
	}
	for i, r := range reqs {
		if !r.Write {
			out[i].Item, out[i].NearTTL, out[i].Err = h.Get(ctx, from, r.Key, false)
			continue
		}
		if batched && plainPut(r.Mutation) {
			continue // refused or written above
		}
		res, e, ok, err := n.ownerApplyForwarded(ctx, r.Key, r.Mutation)
		out[i].WriteResult = res
		if err != nil {
			out[i].Err = err
			continue
		}
		if ok {
			applied = append(applied, e)
			appliedIdx = append(appliedIdx, i)
		}
	}
	for j, e := range n.spread(ctx, applied, true) {
		if e != nil {
			out[appliedIdx[j]].Err = e
		}
	}
	return out
}
