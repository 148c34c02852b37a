package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Member is one live member of the cluster as seen by this node.
type Member struct {
	// Name is the member's unique node name.
	Name string
	// Addr is the member's gossip host:port.
	Addr string
	// Meta is the member's gossiped metadata. A member whose metadata cannot
	// be decoded is reported with a zero Meta (State "").
	Meta Meta
	// Suspect would be true while memberlist suspects the member; memberlist
	// v0.7.0 does not expose that state, so it is always false (see the
	// package documentation).
	Suspect bool
}

// Clone returns a deep copy of mb.
func (mb Member) Clone() Member {
	mb.Meta = mb.Meta.Clone()
	return mb
}

// Equal reports whether mb and o carry the same values.
func (mb Member) Equal(o Member) bool {
	return mb.Name == o.Name && mb.Addr == o.Addr && mb.Suspect == o.Suspect && mb.Meta.Equal(o.Meta)
}

// Membership is this node's membership in a memberlist cluster. Create it
// with New, join with Start, and end it with Leave (optional) and Shutdown.
// Its methods are safe for concurrent use.
type Membership struct {
	set   *settings
	log   *slog.Logger
	mlLog *memberlistLogWriter
	list  *memberlist.Memberlist

	advAddr   netip.AddrPort // advertised gossip address
	localAddr string         // advAddr as a string
	bindPort  int            // actual bound port

	mu      sync.Mutex        // guards members, meta, metaRaw
	members map[string]Member // live members, maintained from memberlist events
	meta    Meta              // own metadata
	metaRaw []byte            // own metadata, encoded

	setMetaMu sync.Mutex // serializes SetMeta

	poke    chan struct{} // capacity 1: "the member set may have changed"
	updates chan []Member // capacity 1, latest wins; closed by Shutdown

	lifeMu   sync.Mutex // guards started, left, shut
	started  bool
	left     bool
	shut     bool
	stop     chan struct{} // closed by Shutdown
	leaving  chan struct{} // closed by Leave or Shutdown: stops re-joining
	wg       sync.WaitGroup
	shutOnce sync.Once
	shutErr  error
}

// New validates cfg and creates the memberlist, which listens on the bind
// address at once but does not join anyone until Start.
func New(cfg Config) (*Membership, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	lg := s.cfg.Logger.With("component", "membership", "node", s.cfg.Name)
	m := &Membership{
		set:     s,
		log:     lg,
		mlLog:   &memberlistLogWriter{log: lg},
		members: make(map[string]Member),
		meta:    s.cfg.Meta.Clone(),
		metaRaw: s.metaRaw,
		poke:    make(chan struct{}, 1),
		updates: make(chan []Member, 1),
		stop:    make(chan struct{}),
		leaving: make(chan struct{}),
	}
	mc := s.memberlistConfig(m)
	list, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: start memberlist on %s:%d (BindAddr/BindPort): %w",
			mc.BindAddr, s.cfg.BindPort, err)
	}
	m.list = list
	// memberlist wrote the chosen port into mc when BindPort was 0.
	m.bindPort = mc.BindPort
	m.advAddr = netip.AddrPortFrom(s.advIP, uint16(mc.AdvertisePort))
	m.localAddr = m.advAddr.String()
	if s.advNote != "" {
		lg.Info(s.advNote)
	}
	lg.Info("membership created", "gossip_addr", m.localAddr, "bind_port", m.bindPort,
		"label", s.cfg.ClusterLabel, "encrypted", len(s.cfg.SecretKey) > 0, "timing", s.cfg.Timing.String())
	return m, nil
}

// Start joins the seeds (see Config.JoinTimeout and the package documentation)
// and starts the update coalescer and the re-join loop. With no seeds, or
// seeds that only resolve to this node, it returns nil at once: this node
// starts a new cluster. Start may be called once; after an error, call
// Shutdown.
func (m *Membership) Start(ctx context.Context) error {
	m.lifeMu.Lock()
	switch {
	case m.shut:
		m.lifeMu.Unlock()
		return errors.New("membership: Start after Shutdown")
	case m.started:
		m.lifeMu.Unlock()
		return errors.New("membership: Start called twice")
	}
	m.started = true
	m.lifeMu.Unlock()

	joined, err := m.initialJoin(ctx)
	if err != nil {
		return err
	}

	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.shut {
		return errors.New("membership: shut down during Start")
	}
	m.wg.Add(1)
	go m.coalesce()
	if len(m.set.seeds) > 0 && !m.left {
		m.wg.Add(1)
		go m.rejoinLoop(joined)
	}
	m.notify()
	return nil
}

// initialJoin performs Start's join attempts and reports whether some seed
// answered.
func (m *Membership) initialJoin(ctx context.Context) (bool, error) {
	if len(m.set.seeds) == 0 {
		m.log.Info("no seeds configured; starting a new cluster")
		return false, nil
	}
	timeout := m.set.cfg.JoinTimeout
	deadline := time.Now().Add(timeout)
	backoff := joinBackoffMin
	for attempt := 1; ; attempt++ {
		targets, resErr := m.resolveSeeds(ctx)
		if len(targets) == 0 && resErr == nil {
			m.log.Info("seeds resolve only to this node; starting a new cluster", "seeds", m.set.cfg.Seeds)
			return false, nil
		}
		n, joinErr := m.join(targets)
		if n > 0 {
			m.log.Info("joined cluster", "seeds", m.set.cfg.Seeds, "contacted", n, "attempt", attempt,
				"members", m.count())
			return true, nil
		}
		lastErr := errors.Join(resErr, joinErr)
		if timeout == 0 {
			m.log.Warn("no seed reachable yet; retrying in the background",
				"seeds", m.set.cfg.Seeds, "err", lastErr)
			return false, nil
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return false, fmt.Errorf("membership: no seed of %v accepted this node within JoinTimeout %s "+
				"(%d attempts; seeds down, or a ClusterLabel/SecretKey mismatch, which shows as EOF or a decrypt error): %w",
				m.set.cfg.Seeds, timeout, attempt, lastErr)
		}
		m.log.Debug("join attempt failed", "attempt", attempt, "err", lastErr)
		t := time.NewTimer(min(jitter(backoff), remaining))
		select {
		case <-ctx.Done():
			t.Stop()
			return false, fmt.Errorf("membership: joining seeds %v: %w (last error: %w)",
				m.set.cfg.Seeds, ctx.Err(), lastErr)
		case <-m.stop:
			t.Stop()
			return false, errors.New("membership: shut down while joining seeds")
		case <-t.C:
		}
		backoff = min(2*backoff, joinBackoffMax)
	}
}

// join contacts each target in turn (stopping early on Shutdown or Leave) and
// returns how many answered.
func (m *Membership) join(targets []netip.AddrPort) (int, error) {
	var errs []error
	ok := 0
	for _, ap := range targets {
		select {
		case <-m.leaving:
			return ok, errors.Join(append(errs, errors.New("membership is leaving"))...)
		default:
		}
		if _, err := m.list.Join([]string{ap.String()}); err != nil {
			errs = append(errs, flattenMultiError(err))
			continue
		}
		ok++
	}
	return ok, errors.Join(errs...)
}

// flattenMultiError unwraps the go-multierror memberlist.Join returns, whose
// message spans several lines; the inner errors name the address.
func flattenMultiError(err error) error {
	if me, ok := err.(interface{ WrappedErrors() []error }); ok && len(me.WrappedErrors()) > 0 {
		return errors.Join(me.WrappedErrors()...)
	}
	return err
}

// rejoinLoop owns the background joining. While no seed has answered and no
// one has joined this node, it retries with backoff; afterwards it joins, every
// RejoinInterval, the seed addresses that are not members. It ends on Leave
// or Shutdown (or, with a negative RejoinInterval, once joined).
func (m *Membership) rejoinLoop(joined bool) {
	defer m.wg.Done()
	searching := !joined
	backoff := joinBackoffMin
	interval := m.set.cfg.RejoinInterval
	for {
		if searching && m.count() > 1 {
			searching = false
			m.log.Info("other members joined this node; seed search over", "members", m.count())
		}
		var wait time.Duration
		if searching {
			wait = jitter(backoff)
			backoff = min(2*backoff, joinBackoffMax)
		} else {
			if interval < 0 {
				return
			}
			wait = interval
		}
		t := time.NewTimer(wait)
		select {
		case <-m.leaving:
			t.Stop()
			return
		case <-t.C:
		}

		ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
		targets, resErr := m.resolveSeeds(ctx)
		cancel()
		if !searching {
			targets = m.notMembers(targets)
		}
		if len(targets) == 0 {
			if resErr != nil {
				m.log.Debug("seed resolution failed", "err", resErr)
			}
			continue
		}
		n, err := m.join(targets)
		switch {
		case n > 0 && searching:
			searching = false
			m.log.Info("joined cluster", "seeds", m.set.cfg.Seeds, "contacted", n, "members", m.count())
		case n > 0:
			m.log.Info("re-joined seed addresses that were not members", "addrs", targets,
				"contacted", n, "members", m.count())
		default:
			m.log.Debug("background join failed", "addrs", targets, "err", errors.Join(resErr, err))
		}
	}
}

// notMembers returns the targets that are not the address of a current member.
func (m *Membership) notMembers(targets []netip.AddrPort) []netip.AddrPort {
	m.mu.Lock()
	addrs := make(map[string]bool, len(m.members))
	for _, mb := range m.members {
		addrs[mb.Addr] = true
	}
	m.mu.Unlock()
	var out []netip.AddrPort
	for _, ap := range targets {
		if !addrs[ap.String()] {
			out = append(out, ap)
		}
	}
	return out
}

// jitter returns d plus up to 20%.
func jitter(d time.Duration) time.Duration {
	return d + rand.N(d/5+1)
}

// notify pokes the coalescer without ever blocking.
func (m *Membership) notify() {
	select {
	case m.poke <- struct{}{}:
	default:
	}
}

// coalesce owns publishing: after a poke it waits Debounce, snapshots the
// member set and publishes it unless it equals the last published set. It
// ends on Shutdown.
func (m *Membership) coalesce() {
	defer m.wg.Done()
	var last []Member
	first := true
	for {
		select {
		case <-m.stop:
			return
		case <-m.poke:
		}
		t := time.NewTimer(m.set.cfg.Debounce)
		select {
		case <-m.stop:
			t.Stop()
			return
		case <-t.C:
		}
		// Changes that poked during the wait are already in the snapshot.
		select {
		case <-m.poke:
		default:
		}
		set := m.Members()
		if !first && slices.EqualFunc(set, last, Member.Equal) {
			continue
		}
		first = false
		last = set
		m.publish(cloneMembers(set))
		m.log.Debug("member set published", "members", memberNames(set))
	}
}

// publish delivers set with latest-wins semantics: a set the consumer has not
// taken yet is replaced. Only the coalescer sends on m.updates.
func (m *Membership) publish(set []Member) {
	for {
		select {
		case m.updates <- set:
			return
		default:
		}
		select {
		case <-m.updates:
		default:
		}
	}
}

// Updates returns the channel of coalesced member sets: sorted by Name, this
// node included (until it leaves), dead members excluded. The first set is
// delivered after Start. The channel has capacity 1 and latest-wins
// semantics, so a slow consumer never blocks memberlist and always ends up
// with the newest set. There must be one consumer. The channel is closed by
// Shutdown.
func (m *Membership) Updates() <-chan []Member {
	return m.updates
}

// Members returns the current member set, shaped like the sets on Updates.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	out := make([]Member, 0, len(m.members))
	for _, mb := range m.members {
		out = append(out, mb.Clone())
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// count returns the number of current members, this node included.
func (m *Membership) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.members)
}

// Self returns this node as a Member, with its current metadata.
func (m *Membership) Self() Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Member{Name: m.set.cfg.Name, Addr: m.localAddr, Meta: m.meta.Clone()}
}

// LocalAddr returns the advertised gossip host:port.
func (m *Membership) LocalAddr() string { return m.localAddr }

// BindPort returns the port gossip is bound to (the chosen one when
// Config.BindPort was 0).
func (m *Membership) BindPort() int { return m.bindPort }

// SetMeta replaces this node's metadata and gossips it, waiting up to 5 s for
// the broadcast to go out. meta.State is required; a zero meta.Proto means
// ProtocolVersion. The new metadata is in effect locally even when the wait
// times out (it then spreads with the next push/pull).
func (m *Membership) SetMeta(meta Meta) error {
	meta = meta.Clone()
	if meta.Proto == 0 {
		meta.Proto = ProtocolVersion
	}
	raw, err := validateMeta("SetMeta: meta", meta)
	if err != nil {
		return fmt.Errorf("membership: %w", err)
	}
	m.lifeMu.Lock()
	left, shut := m.left, m.shut
	m.lifeMu.Unlock()
	switch {
	case shut:
		return fmt.Errorf("membership: SetMeta after Shutdown: %w", ErrShutdown)
	case left:
		return errors.New("membership: SetMeta after Leave")
	}

	m.setMetaMu.Lock()
	defer m.setMetaMu.Unlock()
	m.mu.Lock()
	m.meta = meta
	m.metaRaw = raw
	m.mu.Unlock()
	// Shutdown ends the wait: memberlist would wait out its timeout for a
	// broadcast that can no longer leave. The call then returns on its own
	// within metaUpdateTimeout (done is buffered).
	done := make(chan error, 1)
	go func() { done <- m.list.UpdateNode(metaUpdateTimeout) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("membership: SetMeta: gossiping new meta: %w", err)
		}
		return nil
	case <-m.stop:
		return fmt.Errorf("membership: SetMeta: shut down while gossiping new meta: %w", ErrShutdown)
	}
}

// ErrShutdown is matched (errors.Is) by SetMeta's error once Shutdown has
// begun: the new metadata is in effect locally, and nobody hears of it.
var ErrShutdown = errors.New("membership is shut down")

// Health returns memberlist's health score: 0 is healthy, higher values mean
// this node is not keeping up with the protocol's soft real-time needs.
func (m *Membership) Health() int { return m.list.GetHealthScore() }

// Leave broadcasts that this node leaves the cluster and waits up to timeout
// (DefaultLeaveTimeout when timeout <= 0) for the broadcast to go out. It
// stops background re-joining; the node keeps answering gossip until
// Shutdown. Calling it again is a no-op.
func (m *Membership) Leave(timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultLeaveTimeout
	}
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.shut {
		return errors.New("membership: Leave after Shutdown")
	}
	if m.left {
		return nil
	}
	m.left = true
	close(m.leaving)
	start := time.Now()
	if err := m.list.Leave(timeout); err != nil {
		return fmt.Errorf("membership: leave (timeout %s): %w", timeout, err)
	}
	m.log.Info("left cluster", "took", time.Since(start))
	return nil
}

// Shutdown stops the background goroutines and memberlist and closes the
// Updates channel. Without a prior Leave the others detect this node as
// failed. It is idempotent and safe after Leave. It may wait for a background
// join attempt in flight, at most memberlist's TCP timeout (10 s with
// TimingLAN, 2 s with TimingFast); after Leave there is none.
func (m *Membership) Shutdown() error {
	m.shutOnce.Do(func() {
		m.lifeMu.Lock()
		m.shut = true
		close(m.stop)
		if !m.left {
			close(m.leaving)
		}
		m.lifeMu.Unlock()
		m.wg.Wait()
		if err := m.list.Shutdown(); err != nil {
			m.shutErr = fmt.Errorf("membership: shutdown memberlist: %w", err)
		}
		m.mlLog.closed.Store(true)
		close(m.updates)
		m.log.Info("membership shut down")
	})
	return m.shutErr
}

// memberFromNode copies n (called from memberlist callbacks, under
// memberlist's lock, so that n is stable while we read it).
func (m *Membership) memberFromNode(n *memberlist.Node) Member {
	ip, _ := netip.AddrFromSlice(n.Addr)
	mb := Member{Name: n.Name, Addr: netip.AddrPortFrom(ip.Unmap(), n.Port).String()}
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		m.log.Warn("member metadata unreadable; treating its meta as unknown",
			"member", n.Name, "addr", mb.Addr, "err", err)
		return mb
	}
	if meta.Proto != ProtocolVersion {
		m.log.Warn("member speaks another protocol version",
			"member", n.Name, "addr", mb.Addr, "proto", meta.Proto, "ours", ProtocolVersion)
	}
	mb.Meta = meta
	return mb
}

func cloneMembers(set []Member) []Member {
	out := make([]Member, len(set))
	for i, mb := range set {
		out[i] = mb.Clone()
	}
	return out
}

func memberNames(set []Member) []string {
	out := make([]string, len(set))
	for i, mb := range set {
		out[i] = mb.Name
	}
	return out
}

// delegate implements memberlist.Delegate: it only supplies this node's meta.
type delegate Membership

// NodeMeta implements memberlist.Delegate.
func (d *delegate) NodeMeta(limit int) []byte {
	m := (*Membership)(d)
	m.mu.Lock()
	b := m.metaRaw
	m.mu.Unlock()
	if len(b) > limit { // cannot happen: validated against MaxMetaSize
		return nil
	}
	return bytes.Clone(b)
}

// NotifyMsg implements memberlist.Delegate; user messages are not used.
func (d *delegate) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate; user broadcasts are not used.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState implements memberlist.Delegate; no extra state is exchanged.
func (d *delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate; no extra state is exchanged.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

// events implements memberlist.EventDelegate. The callbacks run under
// memberlist's node lock: they copy the node into the member map (a short
// critical section on our own mutex) and poke the coalescer without blocking.
type events Membership

// NotifyJoin implements memberlist.EventDelegate.
func (e *events) NotifyJoin(n *memberlist.Node) { e.upsert(n) }

// NotifyUpdate implements memberlist.EventDelegate.
func (e *events) NotifyUpdate(n *memberlist.Node) { e.upsert(n) }

// NotifyLeave implements memberlist.EventDelegate.
func (e *events) NotifyLeave(n *memberlist.Node) {
	m := (*Membership)(e)
	m.mu.Lock()
	delete(m.members, n.Name)
	m.mu.Unlock()
	m.notify()
}

func (e *events) upsert(n *memberlist.Node) {
	m := (*Membership)(e)
	mb := m.memberFromNode(n)
	m.mu.Lock()
	m.members[n.Name] = mb
	m.mu.Unlock()
	m.notify()
}

// conflicts implements memberlist.ConflictDelegate.
type conflicts Membership

// NotifyConflict implements memberlist.ConflictDelegate: two nodes use the
// same name. memberlist keeps the existing one and ignores the other.
func (c *conflicts) NotifyConflict(existing, other *memberlist.Node) {
	m := (*Membership)(c)
	m.log.Error("node name conflict: two nodes use the same name; the second one is ignored, give every node a unique Name",
		"name", existing.Name, "existing_addr", existing.Address(), "other_addr", other.Address())
}
