package node

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peercache/peercache/internal/clusterview"
	"github.com/peercache/peercache/internal/flight"
	"github.com/peercache/peercache/internal/hlc"
	"github.com/peercache/peercache/internal/localtier"
	"github.com/peercache/peercache/internal/nearcache"
	"github.com/peercache/peercache/internal/replica"
	"github.com/peercache/peercache/internal/rwmode"
	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/migrate"
	"github.com/peercache/peercache/peer"
	"github.com/peercache/peercache/peer/member"
	"github.com/peercache/peercache/store"
)

// view is one immutable snapshot of what this node knows about the
// cluster: its ring, the earlier rings, the members (clusterview.View).
type view = clusterview.View

// Node is one peercache cluster member. Create it with New.
type Node struct {
	cfg     Config
	log     *slog.Logger
	clock   *hlc.Clock
	st      store.Store // the shard; every write goes through mig's tracker
	shard   shardState
	ml      *membership.Membership
	mig     *migrate.Migrator
	metrics *metrics
	ops     *operator
	peer    peerSide  // the peer protocol
	self    selfState // what this node gossips about itself
	views   viewState // what it knows of the cluster
	writes  writeState
	reads   readState         // local tier, near cache, singleflight, read-through
	base    replica.Base      // the ring replication last completed against
	copier  *replica.Copier   // the primary's copies of its writes to the replicas
	repair  *replica.Repairer // keys whose replica copies failed
	warm    warmer            // the warm-up plan of the latest ring change
	life    lifecycle
}

// shardState is what the node knows about its shard beyond the store.
type shardState struct {
	own bool // the node created the store (and closes it)
	// inProcess: the shard keeps its records in this process (see
	// inProcessStore), so the local tier holds no copies of owned keys.
	inProcess bool
	// evictions counts the shard's evictions (nil: the shard does not
	// count them; Redis reports its own).
	evictions evictionCounter
	lost      atomic.Bool  // the store stopped answering since it was last ready
	resetAt   atomic.Int64 // Unix ns when the store came back after an outage
}

// peerSide is the node's end of the peer protocol.
type peerSide struct {
	client     *peer.Client // requests to other members
	srv        *peer.Server // their requests to this node
	metrics    *peer.Metrics
	advertised string // host:port other members use for the peer protocol
	// refuse makes the peer API answer every request with 503 (fault
	// injection for tests: a member whose peer traffic fails while its
	// gossip goes on).
	refuse atomic.Bool
	// members sends requests to other members by name (addresses,
	// timeouts, errors) over client.
	members *member.Caller
}

// selfState is what this node gossips about itself.
type selfState struct {
	mu       sync.Mutex
	meta     membership.Meta
	state    atomic.Value // membership.State: this node's own state, authoritative locally
	httpAddr string       // advertised host:port of the HTTP door ("" without one)
}

// viewState holds the node's current view of the cluster.
type viewState struct {
	cur         *clusterview.Holder
	topo        atomic.Pointer[topology] // Topology of one view, built on first use
	lastMembers []membership.Member      // guarded by cur's lock
	ringChanged chan struct{}            // capacity 1: a new ring wants a migration run
}

// writeState serialises and gates writes of the shard.
type writeState struct {
	keyLocks [256]sync.Mutex // owner writes of one key are serialised
	scratch  sync.Pool       // of *manyScratch
	// imports writes what other members send (migration, copies) and
	// lets a migration run wait for the imports accepted before it.
	imports *migrate.Receiver
}

// readState is what reads go through before the shard.
type readState struct {
	tier    *localtier.Tier // nil: no local tier
	near    nearcache.Owner // who fetched which keys; invalidations to them
	flights flight.Group[ownerRead]
	loads   [3]atomic.Uint64 // Getter results: loaded, not found, failed
}

// lifecycle is the node's running state and the goroutines it owns.
type lifecycle struct {
	ctx     context.Context // lives until Stop/Abort
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	migWG   sync.WaitGroup // the migration loop (stopped before drain)
	migStop context.CancelFunc
	phase   atomic.Int32  // a phase: where the node is between New and its stop
	ready   atomic.Bool   // joined, and the store answers (health, beside the phase)
	mu      sync.Mutex    // serialises Stop and Abort (and AddDoor)
	doors   []Door        // client doors, stopped before the store (AddDoor)
	done    chan struct{} // closed once the node has stopped
	stopErr error         // what Stop returned, readable after done
}

// phase is where a node is in its life. It only moves forward: New,
// Running (Start), then either Leaving, Left, Stopped (Stop: hand-off,
// memberlist leave, shutdown) or Aborted (Abort, or Stop before Start).
type phase int32

const (
	phaseNew     phase = iota
	phaseRunning       // Start has begun
	phaseLeaving       // Stop has begun: keys are handed off
	phaseLeft          // memberlist Leave done: clients are answered 503
	phaseStopped       // stopped after leaving
	phaseAborted       // stopped without leaving
)

func (n *Node) phase() phase     { return phase(n.life.phase.Load()) }
func (n *Node) setPhase(p phase) { n.life.phase.Store(int32(p)) }
func (p phase) leaving() bool    { return p >= phaseLeaving && p <= phaseStopped }
func (p phase) left() bool       { return p == phaseLeft || p == phaseStopped }
func (p phase) stopped() bool    { return p >= phaseStopped }

// New validates cfg, opens the HTTP listener and the gossip socket, and
// returns a node that is not yet part of a cluster (see Start).
func New(cfg Config) (*Node, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("node: invalid config: %w", err)
	}
	n := &Node{
		cfg:    cfg,
		writes: writeState{scratch: sync.Pool{New: func() any { return new(manyScratch) }}},
		log:    cfg.Logger.With("node", cfg.Name),
		clock:  hlc.New(nil),
		views:  viewState{ringChanged: make(chan struct{}, 1), cur: clusterview.NewHolder(clusterview.Empty(cfg.Ring))},
		life:   lifecycle{done: make(chan struct{})},
	}
	n.life.ctx, n.life.cancel = context.WithCancel(context.Background())
	n.metrics = newMetrics(n)
	n.ops = newOperator(rwmode.NewState(cfg.Name, n.log, n.setExtra), n.log)
	n.self.state.Store(membership.StateJoining)

	if cfg.Store != nil {
		n.st = cfg.Store
	} else {
		storeBytes, _ := cfg.MemorySplit()
		n.st = store.NewMemory(store.MemoryOptions{MaxBytes: storeBytes})
		n.shard.own = true
	}
	n.shard.inProcess = isInProcess(n.st)
	if ec, ok := n.st.(evictionCounter); ok {
		n.shard.evictions = ec
	}
	n.st = store.Instrument(n.st, n.metrics.reg)

	// What New opened so far, closed in reverse if a later step fails.
	var undo []func()
	fail := func(err error) (*Node, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		n.closeStore()
		return nil, err
	}

	bind, err := cfg.Bind() // refuses addresses beyond loopback without a secret
	if err != nil {
		return fail(fmt.Errorf("node: %w", err))
	}
	gossipKey, err := cfg.GossipKey()
	if err != nil {
		return fail(fmt.Errorf("node: %w", err))
	}

	pln, err := net.Listen("tcp", cfg.Peer.Addr)
	if err != nil {
		return fail(fmt.Errorf("node: peer-addr %s: %w", cfg.Peer.Addr, err))
	}
	undo = append(undo, func() { pln.Close() })

	n.self.meta = membership.Meta{State: membership.StateJoining, Proto: cmp.Or(cfg.Gossip.Proto, membership.ProtocolVersion),
		Extra: map[string]string{clusterview.MetaBoot: newBootID()}}
	ml, err := membership.New(membership.Config{
		Name:          cfg.Name,
		BindAddr:      bind.GossipHost,
		BindPort:      bind.GossipPort,
		AdvertiseAddr: bind.AdvertiseHost,
		AdvertisePort: bind.AdvertisePort,
		Seeds:         cfg.Gossip.Seeds,
		ClusterLabel:  cfg.ClusterLabel,
		SecretKey:     gossipKey,
		Meta:          n.self.meta, // HTTPAddr and PeerAddr filled below, once known
		Timing:        cfg.Gossip.Timing,
		Logger:        n.log,
		Resolver:      cfg.Gossip.Resolver,
	})
	if err != nil {
		return fail(fmt.Errorf("node: %w", err))
	}
	n.ml = ml
	undo = append(undo, func() { ml.Shutdown() })

	host, _, _ := net.SplitHostPort(ml.LocalAddr())
	_, peerPort, _ := net.SplitHostPort(pln.Addr().String())
	if n.self.httpAddr, n.peer.advertised, err = cfg.Advertised(host, peerPort); err != nil {
		return fail(fmt.Errorf("node: %w", err))
	}
	n.self.meta.HTTPAddr, n.self.meta.PeerAddr = n.self.httpAddr, n.peer.advertised
	n.self.meta.RESPAddr = cfg.AdvertisedRESP(host)
	if err := ml.SetMeta(n.self.meta); err != nil {
		return fail(fmt.Errorf("node: membership meta: %w", err))
	}

	// The peer protocol: a client for what this node asks, a server on
	// its own port for what the others ask.
	pm := peer.NewMetrics(n.metrics.reg)
	lim := peer.Limits{MaxKeyBytes: cfg.Limits.MaxKeyBytes, MaxValueBytes: cfg.Limits.MaxValueBytes, MaxBatchEntries: maxImportBatch}
	if err = n.initPeerClient(peer.ClientConfig{Name: cfg.Name, Label: cfg.ClusterLabel, Auth: cfg.PeerAuth(),
		Limits: lim, ConnsPerPeer: cfg.Peer.Conns, Logger: n.log, Metrics: pm}); err != nil {
		return fail(fmt.Errorf("node: peer client: %w", err))
	}
	undo = append(undo, n.peer.client.Close)
	if n.peer.srv, err = peer.NewServer(pln, peerHandler{n}, peer.ServerConfig{Name: cfg.Name, Label: cfg.ClusterLabel,
		Auth: cfg.PeerAuth(), Limits: lim, Logger: n.log, Metrics: pm}); err != nil {
		return fail(fmt.Errorf("node: peer server: %w", err))
	}
	n.peer.metrics = pm

	migOpts := cfg.Migration.Options
	if migOpts.Logger == nil {
		migOpts.Logger = n.log
	}
	n.mig = migrate.New(cfg.Name, n.st, n.peer.members, migOpts)
	// Every write of the shard goes through n.st from here on, so a run
	// knows whether a key it moves was written behind its scanner.
	n.st = n.mig.TrackWrites(n.st)
	n.writes.imports = migrate.NewReceiver(migrate.ReceiverConfig{
		Store: n.st, MaxSkew: cfg.Peer.MaxClockSkew, Logger: n.log,
		Owns:    func(key string) bool { return n.isOwner(n.views.cur.Load().Ring, key) },
		Observe: n.clock.Observe, Applied: n.importApplied,
		Acked: n.metrics.ImportsReceived.WithLabelValues("acked"), Refused: n.metrics.ImportsReceived.WithLabelValues("refused"),
		Future: n.metrics.FutureVersions,
	})
	n.initReplication()                  // reads and copies through n.st as it is now
	if err := n.initTier(); err != nil { // local tier, near cache
		return fail(fmt.Errorf("node: local tier: %w", err))
	}
	return n, nil
}

// maxImportBatch bounds the entries of one import request.
const maxImportBatch = 10000

// newBootID returns a short random id that tells restarts apart.
func newBootID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return hex.EncodeToString(b[:])
}

// Name returns the node's cluster name.
func (n *Node) Name() string { return n.cfg.Name }

// AdvertisedHTTPAddr returns the HTTP address other members use.
func (n *Node) AdvertisedHTTPAddr() string { return n.self.httpAddr }

// GossipAddr returns the advertised gossip host:port (a seed for others).
func (n *Node) GossipAddr() string { return n.ml.LocalAddr() }

// Config returns the configuration the node runs with (defaults applied).
func (n *Node) Config() Config { return n.cfg }

// Logger returns the node's logger.
func (n *Node) Logger() *slog.Logger { return n.log }

// Registry returns the node's Prometheus registry.
func (n *Node) Registry() *prometheus.Registry { return n.metrics.reg }

// Store returns the node's shard.
func (n *Node) Store() store.Store { return n.st }

// Ready reports whether the node has joined and its shard answers.
func (n *Node) Ready() bool { return n.life.ready.Load() && !n.phase().leaving() }

// Leaving reports whether the node is leaving the cluster (Stop has begun).
func (n *Node) Leaving() bool { return n.phase().leaving() }

// HasLeft reports whether the node has left the cluster: it answers its
// clients "retry on another node" from then on.
func (n *Node) HasLeft() bool { return n.phase().left() }

// Stopped reports whether the node has stopped (or is stopping).
func (n *Node) Stopped() bool { return n.phase().stopped() }

// Door is a client door (the HTTP API, the Redis protocol) that serves
// this node. The node stops its doors when it stops, before it closes its
// store: graceful (Stop) lets requests in flight finish within ctx, else
// (Abort) the door drops its connections at once, as a crash would.
type Door interface {
	StopDoor(ctx context.Context, graceful bool)
}

// AddDoor registers d to be stopped with the node.
func (n *Node) AddDoor(d Door) {
	n.life.mu.Lock()
	defer n.life.mu.Unlock()
	n.life.doors = append(n.life.doors, d)
}

// stopDoors stops the doors, newest first (life.mu held).
func (n *Node) stopDoors(ctx context.Context, graceful bool) {
	for i := len(n.life.doors) - 1; i >= 0; i-- {
		n.life.doors[i].StopDoor(ctx, graceful)
	}
}

// Start serves the peer protocol, joins the cluster through the seeds and becomes an
// active member. It returns once the node is active; the node keeps running
// until Stop or Abort.
func (n *Node) Start(ctx context.Context) error {
	if !n.life.phase.CompareAndSwap(int32(phaseNew), int32(phaseRunning)) {
		return errors.New("node: already started")
	}
	n.life.wg.Add(1)
	go func() {
		defer n.life.wg.Done()
		if err := n.peer.srv.Serve(); err != nil {
			n.log.Error("peer server stopped", "err", err)
		}
	}()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := n.st.Ping(pctx)
	cancel()
	if err != nil {
		n.log.Warn("store does not answer yet; node stays unready until it does", "err", err)
	}
	if err := n.ml.Start(ctx); err != nil {
		return fmt.Errorf("node: join: %w", err)
	}
	// Know the cluster before taking ownership: a node that went active with
	// a ring of itself alone would accept writes for keys it does not own.
	n.applyMembers(n.ml.Members())
	n.observeMembers(n.ml.Members()) // inherit the cluster's read/write mode before going active
	n.life.wg.Add(1)
	go func() { defer n.life.wg.Done(); n.watchMembers() }()
	mctx, mcancel := context.WithCancel(n.life.ctx)
	n.life.migStop = mcancel
	n.life.migWG.Add(1)
	go func() {
		defer n.life.migWG.Done()
		migrate.Loop(mctx, migrate.LoopConfig{Triggers: n.views.ringChanged, Sweep: n.cfg.Migration.SweepInterval, Run: n.migrationRun})
	}()
	n.life.wg.Add(1)
	go func() { defer n.life.wg.Done(); store.Watch(n.life.ctx, n.st, time.Second, n.shardHealth) }()
	if n.cfg.Replication.Factor > 1 {
		n.life.wg.Add(1)
		go func() { defer n.life.wg.Done(); n.repair.Run(n.life.ctx) }()
	}

	n.setMeta(func(m *membership.Meta) { m.State = membership.StateActive })
	// Return once this node's own ring includes it, so that a caller that
	// sends requests right after Start finds a node that knows the cluster.
	if _, ok := n.waitView(ctx, 10*time.Second, func(v *view) bool { return v.Ring.Has(n.cfg.Name) }); !ok {
		n.log.Warn("started, but this node is not in its own ring yet", "err", cmp.Or(ctx.Err(), context.DeadlineExceeded))
		return nil
	}
	n.log.Info("node started", "http", n.cfg.HTTP.Addr, "advertise_http", n.self.httpAddr, "gossip", n.ml.LocalAddr(), "seeds", n.cfg.Gossip.Seeds)
	return nil
}

// setMeta changes this node's gossiped metadata. A change of its own state
// takes effect in its own ring at once, before gossip carries it to others.
func (n *Node) setMeta(f func(*membership.Meta)) {
	n.self.mu.Lock()
	f(&n.self.meta)
	meta := n.self.meta
	switch err := n.ml.SetMeta(meta); {
	case errors.Is(err, membership.ErrShutdown):
		n.log.Debug("gossip metadata not sent: membership shut down", "err", err)
	case err != nil:
		n.log.Warn("gossip metadata update failed", "err", err)
	}
	n.self.mu.Unlock()
	if n.self.state.Swap(meta.State) != meta.State {
		n.views.cur.Lock()
		ms := n.views.lastMembers
		n.views.cur.Unlock()
		if ms != nil {
			n.applyMembers(ms)
		}
	}
}

// shardHealth keeps Ready in step with the shard's health (store.Watch
// calls it on every change); a shard that answers again after an outage
// may have come back empty (storeBack).
func (n *Node) shardHealth(err error) {
	n.life.ready.Store(err == nil)
	switch {
	case err != nil:
		n.log.Warn("store unreachable: node unready", "err", err)
		n.shard.lost.Store(true)
	case n.shard.lost.Swap(false):
		n.log.Info("store reachable: node ready")
		n.storeBack()
	default:
		n.log.Info("store reachable: node ready")
	}
}

// watchMembers turns member-set updates into ring snapshots.
func (n *Node) watchMembers() {
	for {
		select {
		case <-n.life.ctx.Done():
			return
		case ms, ok := <-n.ml.Updates():
			if !ok {
				return
			}
			n.applyMembers(ms)
			n.observeMembers(ms)
		}
	}
}

// applyMembers turns a member set into this node's next view (package
// clusterview) and acts on a changed ring: the warm-up plan before the
// swap, a new tier epoch after it, and a migration run.
func (n *Node) applyMembers(ms []membership.Member) {
	n.views.cur.Lock()
	defer n.views.cur.Unlock()
	n.views.lastMembers = ms
	self := clusterview.Self{Name: n.cfg.Name, State: n.self.state.Load().(membership.State)}
	if n.phase().leaving() {
		self.State = membership.StateLeaving
	}
	old := n.views.cur.Load()
	nv, changed := clusterview.Next(old, ms, self, n.cfg.Ring, time.Now())
	if !changed {
		n.views.cur.Swap(nv)
		if restarted := clusterview.Restarted(old, nv, n.cfg.Name); len(restarted) > 0 {
			n.reads.tier.NewEpoch() // near copies from a restarted owner: it forgot who holds them
			// Same ring, but these members came back empty: give them
			// their copies again.
			n.log.Info("members restarted under the same name; re-replicating", "members", restarted)
			n.wantMigration()
		}
		return
	}
	n.swapRing(nv)
	n.log.Info("ring changed", "ring_version", nv.Version, "members", nv.Ring.Members(), "previous", old.Ring.Members())
	n.wantMigration()
}

// swapRing makes nv, whose ring differs, the current view (views.cur's lock
// held): the warm-up plan first (the hottest copies the new owners will
// want, before they are dropped), then a new tier epoch (after the view is
// stored: reads that began before it fill nothing).
func (n *Node) swapRing(nv *view) {
	n.planWarm(nv.Ring)
	n.views.cur.Swap(nv)
	n.reads.tier.NewEpoch()
	n.metrics.RingChanges.Inc()
}

// wantMigration asks the migration loop for a run (at most one waits).
func (n *Node) wantMigration() {
	select {
	case n.views.ringChanged <- struct{}{}:
	default:
	}
}

// migrationRun is one migration run, started by migrate.Loop (after a ring
// change, or a sweep): it plans against the current view, waits for the
// imports accepted under an earlier view, announces a ring-change run in
// gossip metadata (Migrating and the ring checksum; Migrating ends with
// the run unless a newer run replaced it), and on success records the
// completed placement and sends the warm-up.
func (n *Node) migrationRun(ctx context.Context, kind migrate.RunKind) {
	v := n.views.cur.Load()
	p := n.base.Placement(n.cfg.Name, n.cfg.Replication.Factor, v.Ring, v.Boots)
	announce := kind == migrate.RingChange
	n.writes.imports.Barrier()
	if announce {
		n.setMeta(func(m *membership.Meta) {
			m.Migrating = true
			*m = m.WithExtra(clusterview.MetaRing, v.Checksum)
		})
	}
	res, err := n.mig.Run(ctx, p, kind.String())
	n.metrics.ObserveMigration(res)
	if err == nil {
		n.base.Completed(p)
		n.sendWarm(ctx, p.Ring) // the keys moved: now warm their new owners' tiers
	}
	if announce && ctx.Err() == nil {
		n.setMeta(func(m *membership.Meta) { m.Migrating = false })
	}
	if err != nil && ctx.Err() == nil {
		n.log.Warn("migration ended with an error", "err", err)
	}
}

// Stop leaves the cluster gracefully: it announces LEAVING, hands every key
// to its owner on the ring without this node (bounded by DrainTimeout and
// ctx), leaves memberlist, and shuts down. It reports how many keys could not
// be handed off, if any.
func (n *Node) Stop(ctx context.Context) error {
	n.life.mu.Lock()
	defer n.life.mu.Unlock()
	if n.phase().stopped() {
		return nil
	}
	if n.phase() == phaseNew {
		n.setPhase(phaseAborted)
		n.life.cancel()
		n.ml.Shutdown()
		n.stopDoors(context.Background(), false)
		n.peer.srv.Close()
		n.peer.client.Close()
		n.closeTier()
		n.closeStore()
		close(n.life.done)
		return nil
	}
	var drainErr error
	n.setPhase(phaseLeaving)
	n.log.Info("leaving: handing keys to their new owners", "drain_timeout", n.cfg.Migration.DrainTimeout)
	n.setMeta(func(m *membership.Meta) { m.State = membership.StateLeaving; m.Migrating = true })
	// Stop ring-change migrations; the drain below replaces them.
	n.life.migStop()
	n.life.migWG.Wait()
	n.excludeSelf()
	dctx, cancel := context.WithTimeout(ctx, n.cfg.Migration.DrainTimeout)
	drainErr = n.drain(dctx)
	cancel()
	if err := n.ml.Leave(5 * time.Second); err != nil {
		n.log.Warn("memberlist leave", "err", err)
	}
	n.setPhase(phaseLeft)
	// Keep answering (421 with the new owner, handoff reads) a little longer
	// for members whose view still lags.
	select {
	case <-time.After(n.cfg.Migration.LeaveLinger):
	case <-ctx.Done():
	}
	n.life.stopErr = drainErr
	n.shutdown(ctx, true)
	return drainErr
}

// Done is closed once the node has stopped (Stop, Abort, or a leave asked
// for through POST /v1/leave). Err then tells how the stop went.
func (n *Node) Done() <-chan struct{} { return n.life.done }

// Err returns the error of a graceful stop (keys that could not be handed
// off), once Done is closed.
func (n *Node) Err() error {
	select {
	case <-n.life.done:
		return n.life.stopErr
	default:
		return nil
	}
}

// drain hands every key to its owners on the ring without this node. When
// the ring changes meanwhile (another member leaves or joins) it re-plans
// against the new ring; when no other active member is left (the whole
// cluster is shutting down) it stops at once and says how many keys stay.
func (n *Node) drain(ctx context.Context) error {
	for {
		v := n.views.cur.Load()
		target := v.Ring.Without(n.cfg.Name)
		if target.Len() == 0 {
			// The last member (or the whole cluster is stopping): nothing
			// to hand off to; that is the operator's choice, not a failure.
			st, _ := n.st.Stats(context.WithoutCancel(ctx))
			n.log.Warn("leaving: no other active member to hand keys to; they stay in this shard", "keys", st.Keys)
			return nil
		}
		rctx, rcancel := context.WithCancel(ctx)
		changed := make(chan struct{})
		go func() { // re-plan when the ring changes
			if _, ok := n.waitView(rctx, n.cfg.Migration.DrainTimeout, func(nv *view) bool { return nv.Version != v.Version }); ok {
				close(changed)
				rcancel()
			}
		}()
		// Every key goes to all its owners on the ring without this node.
		p := replica.Placement{Self: n.cfg.Name, RF: n.cfg.Replication.Factor, Ring: target, Boots: v.Boots}
		n.writes.imports.Barrier() // this node refuses imports now: the ones it accepted before must be in the drain
		res, err := n.mig.Run(rctx, p, "drain")
		rcancel()
		n.metrics.ObserveMigration(res)
		select {
		case <-changed:
			if ctx.Err() == nil {
				n.log.Info("leaving: the ring changed during the drain; re-planning", "moved_so_far", res.Moved)
				continue
			}
		default:
		}
		if err != nil || res.Failed > 0 {
			n.log.Error("leaving: drain incomplete", "not_handed_off", res.Failed, "moved", res.Moved, "err", err)
			return fmt.Errorf("node: drain incomplete: %d keys not handed off: %w", res.Failed, errors.Join(err, ctx.Err()))
		}
		n.log.Info("leaving: drain complete", "moved", res.Moved, "stale", res.Stale, "dropped", res.Dropped, "duration", res.Duration)
		n.sendWarm(ctx, target)
		return nil
	}
}

// excludeSelf swaps in a ring without this node, so that it forwards every
// request and refuses imports while it drains, without waiting for its own
// LEAVING state to come back through gossip.
func (n *Node) excludeSelf() {
	n.views.cur.Lock()
	defer n.views.cur.Unlock()
	nv := clusterview.Without(n.views.cur.Load(), n.cfg.Name, time.Now())
	if nv == nil {
		return
	}
	n.swapRing(nv) // its warm-up plan is sent once the drain is done
}

// Abort stops the node without leaving the cluster or handing off keys, as
// a crash would. Other members notice through failure detection.
func (n *Node) Abort() {
	n.life.mu.Lock()
	defer n.life.mu.Unlock()
	if n.phase().stopped() {
		return
	}
	n.shutdown(context.Background(), false)
}

func (n *Node) shutdown(ctx context.Context, graceful bool) {
	if graceful {
		n.setPhase(phaseStopped)
	} else {
		n.setPhase(phaseAborted)
	}
	n.life.ready.Store(false)
	n.ml.Shutdown()
	n.life.cancel()
	n.stopDoors(ctx, graceful)
	n.peer.srv.Close() // cancels the requests it serves and waits for them
	if n.life.migStop != nil {
		n.life.migStop()
	}
	n.life.migWG.Wait()
	n.life.wg.Wait()
	n.closeTier()
	n.peer.client.Close()
	n.closeStore()
	n.log.Info("node stopped", "graceful", graceful)
	close(n.life.done)
}

func (n *Node) closeStore() {
	if n.shard.own {
		n.st.Close()
	}
}

// storeBack handles a store that answers again after an outage: it may have
// come back empty (a Redis restart without persistence). The node takes a
// new boot id, so that the other members treat it as restarted and send it
// copies of the keys it owns again (with replicas), and for a handoff window
// it asks the key's other owners on a local miss.
func (n *Node) storeBack() {
	n.shard.resetAt.Store(time.Now().UnixNano())
	n.log.Warn("store answers again after an outage; it may have lost its data: asking peers for copies")
	n.setExtra(clusterview.MetaBoot, newBootID())
}
