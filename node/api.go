package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/peercache/peercache/kv"
)

func (n *Node) checkKey(key string) *Error {
	if key == "" {
		return kv.Errorf(http.StatusBadRequest, "key must not be empty")
	}
	if len(key) > n.cfg.Limits.MaxKeyBytes {
		return kv.Errorf(http.StatusBadRequest, "key is %d bytes; the limit is %d", len(key), n.cfg.Limits.MaxKeyBytes)
	}
	return nil
}

// CheckKey returns an *Error (400) for a key the node refuses: empty, or
// longer than MaxKeyBytes. A door calls it before it reads the value.
func (n *Node) CheckKey(key string) error {
	if e := n.checkKey(key); e != nil {
		return e
	}
	return nil
}

func (n *Node) checkTTL(ttl time.Duration) *Error {
	if ttl < 0 {
		return kv.Errorf(http.StatusBadRequest, "ttl must not be negative")
	}
	if ttl > 0 && ttl < time.Millisecond {
		return kv.Errorf(http.StatusBadRequest, "ttl must be at least 1ms")
	}
	if n.cfg.Limits.MaxTTL > 0 && ttl > n.cfg.Limits.MaxTTL {
		return kv.Errorf(http.StatusBadRequest, "ttl %s exceeds the limit of %s", ttl, n.cfg.Limits.MaxTTL)
	}
	return nil
}

// checkExpireAt checks a mutation's absolute expiry: not with a time to
// live, not before 1970, and within the TTL limit from now. An instant
// already past is accepted (the key expires at once, as in Redis).
func (n *Node) checkExpireAt(m Mutation) *Error {
	if m.ExpireAt.IsZero() {
		return nil
	}
	if m.TTL != 0 || m.KeepTTL {
		return kv.Errorf(http.StatusBadRequest, "a write takes an absolute expiry or a time to live, not both")
	}
	if m.ExpireAt.UnixMilli() <= 0 {
		return kv.Errorf(http.StatusBadRequest, "absolute expiry before 1970")
	}
	if left := time.Until(m.ExpireAt); n.cfg.Limits.MaxTTL > 0 && left > n.cfg.Limits.MaxTTL {
		return kv.Errorf(http.StatusBadRequest, "expiry %s from now exceeds the ttl limit of %s", left.Round(time.Second), n.cfg.Limits.MaxTTL)
	}
	return nil
}

// notOwner refuses a forwarded request for a key this node does not own
// (421): views of the ring differ for a moment; owner is this node's.
func (n *Node) notOwner(owner string) *Error {
	return &Error{Status: http.StatusMisdirectedRequest, Owner: owner, Retryable: true,
		Message: fmt.Sprintf("this node does not own the key; %s does in its view", owner)}
}

// route carries out a request for key at its owner in this node's view v:
// here (local), or at another member (remote), retrying while views of
// the ring differ (the owner refused the request with 421: retarget) or
// the owner cannot be reached (awaitNewOwner), within forwardRetryBudget.
// unreachable, when set, may answer first when the owner could not be
// reached (a read served by the key's replicas).
func route[T any](ctx context.Context, n *Node, v *view, key string,
	local func(v *view) (T, error),
	remote func(v *view, owner string) (T, error),
	unreachable func(v *view, owner string) (T, error, bool),
) (T, error) {
	owner := v.Ring.Owner(key)
	var start time.Time // of the first remote attempt: the local path reads no clock
	for attempt := 0; ; attempt++ {
		if owner == "" {
			var zero T
			return zero, forming()
		}
		if owner == n.cfg.Name {
			return local(v)
		}
		if start.IsZero() {
			start = time.Now()
		}
		res, err := remote(v, owner)
		var e *Error
		if !errors.As(err, &e) || !retryMore(ctx, start) {
			return res, err
		}
		switch {
		case errors.Is(e, kv.ErrNotOwner):
			v, owner = n.retarget(ctx, v, owner, e.Owner, key, attempt)
		case e.Unreachable:
			if unreachable != nil {
				if r, rerr, ok := unreachable(v, owner); ok {
					return r, rerr
				}
			}
			var ok bool
			if v, owner, ok = n.awaitNewOwner(ctx, v, owner, key); !ok {
				return res, err
			}
		default:
			return res, err
		}
	}
}

// forwardedView returns this node's view for a request another node
// forwarded for key, or why it refuses the request: 421 naming the owner
// in this view, or 503 while no member owns keys.
func (n *Node) forwardedView(key string) (*view, *Error) {
	v := n.views.cur.Load()
	switch owner := v.Ring.Owner(key); owner {
	case n.cfg.Name:
		return v, nil
	case "":
		return nil, forming()
	default:
		return nil, n.notOwner(owner)
	}
}

// forming is the answer while no active member owns keys.
func forming() *Error {
	return kv.Retryable(http.StatusServiceUnavailable, "no active member owns keys yet (the cluster is forming)")
}

// forwardRetryBudget bounds how long a node keeps re-targeting a forwarded
// request that was refused (421) or found its owner unreachable while views
// of the ring differ; gossip settles such differences well within it.
const forwardRetryBudget = 2 * time.Second

// retryMore reports whether another forwarding attempt fits the budget.
func retryMore(ctx context.Context, start time.Time) bool {
	return ctx.Err() == nil && time.Since(start) < forwardRetryBudget
}

// retarget picks where to retry after the owner refused a forwarded request
// (421) because its view of the ring differs from this node's. First the
// owner the refuser named, if that is another known member; after that, the
// owner in this node's own view, once it changes or after a short backoff
// (the refuser's view may be the stale one and catch up meanwhile).
func (n *Node) retarget(ctx context.Context, v *view, refused, hint, key string, attempt int) (*view, string) {
	n.metrics.Misdirected.Inc()
	n.log.Debug("forward refused: views differ", "key", key, "refused_by", refused, "their_owner", hint, "attempt", attempt, "ring_version", v.Version)
	if attempt == 0 && hint != "" && hint != refused && hint != n.cfg.Name {
		if _, ok := v.Members[hint]; ok {
			return v, hint
		}
	}
	wait := min(time.Duration(25<<attempt)*time.Millisecond, 400*time.Millisecond)
	nv, _ := n.waitView(ctx, wait, func(nv *view) bool { return nv.Version != v.Version })
	return nv, nv.Ring.Owner(key)
}

// awaitNewOwner waits briefly, after the owner could not be reached, for
// this node's view to name another owner (the unreachable one left or was
// declared dead). It is safe to retry a write there: the first attempt got
// no answer, and versions order the two if both landed.
func (n *Node) awaitNewOwner(ctx context.Context, v *view, failed, key string) (*view, string, bool) {
	nv, ok := n.waitView(ctx, 500*time.Millisecond, func(nv *view) bool {
		return nv.Version != v.Version && nv.Ring.Owner(key) != failed
	})
	if !ok {
		return v, failed, false
	}
	return nv, nv.Ring.Owner(key), true
}

// waitView waits for a view of this node that done accepts, for at most d
// (or until ctx ends): clusterview.Holder.Wait.
func (n *Node) waitView(ctx context.Context, d time.Duration, done func(*view) bool) (*view, bool) {
	return n.views.cur.Wait(ctx, d, done)
}

// Forwards reports whether a read or write of key goes to another member,
// its owner in this node's current view: what StartGet and StartWrite
// start (a prediction, as AnswersAtOnce's).
func (n *Node) Forwards(key string) bool {
	owner := n.views.cur.Load().Ring.Owner(key)
	return owner != "" && owner != n.cfg.Name
}

// FlushStarted writes the requests StartGet and StartWrite started.
func (n *Node) FlushStarted() { n.peer.members.Flush() }

// settledRemotely reports whether a started forward's outcome (err) stands
// as the answer: a refusal because views differ (421) or an owner that
// gave no answer is retried through route instead.
func settledRemotely(err error) bool {
	var e *Error
	return !errors.As(err, &e) || !(errors.Is(e, kv.ErrNotOwner) || e.Unreachable)
}

// AnswersAtOnce reports whether this node carries out a read of key (write:
// a write of it) without waiting on another process: it owns key in its
// current view, its shard keeps its records in this process, no previous
// owner of the key is still to be asked or copied to, and a read
// has no loader to call, a write no replica to copy to and no near copy on
// another member to wait for. A door that serves many clients from one
// thread (the RESP event loop) runs such commands in place and hands the
// others to a goroutine. It is a prediction, not a promise: a member may
// fetch the key right after it answered, and the write then waits for that
// copy's invalidation (Tier.InvalidationWait at most).
func (n *Node) AnswersAtOnce(key string, write bool) bool {
	if !n.shard.inProcess || n.shard.lost.Load() {
		return false
	}
	v := n.views.cur.Load()
	if v.Ring.Owner(key) != n.cfg.Name {
		return false
	}
	if n.handoffActive(v) {
		// A previous owner still a member may hold the key (a read asks
		// it, a write copies to it).
		for _, p := range v.PreviousOwners(key, n.cfg.Name) {
			if _, ok := v.Members[p]; ok {
				return false
			}
		}
	}
	if !write {
		return n.cfg.Loader.Getter == nil
	}
	return n.cfg.Replication.Factor <= 1 && (n.cfg.Tier.InvalidationWait <= 0 || !n.reads.near.Copied(key))
}
