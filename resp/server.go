// Package resp serves the Redis protocol (RESP2) in front of a peercache
// node, so that redis-cli, redis-benchmark and any Redis client can use a
// cluster without a client of its own.
//
// The server is a thin translation layer: every command goes through the
// node's library API (Backend: Get, Write, Status), which routes each key to
// its owner exactly as the HTTP API does (forwarding, replication, handoff
// while keys migrate). Any node therefore serves any key.
//
// Each connection has one goroutine (conn.go) with its own request reader
// (package internal/respreader: multibulk and inline requests, pipelines,
// and limits on everything a client can make the server hold:
// Options.Limits, MaxClients, IdleTimeout); replies are written with
// github.com/tidwall/redcon's Writer, and command handlers see the
// connection as a redcon.Conn. Malformed or oversized input is answered
// with Redis' error text and closes that connection only; a panic while
// serving one closes it and is counted, the node stays up. Every command
// runs under a context whose deadline is Options.CommandTimeout away
// (commands starting within the same 50 ms share one), cancelled when the
// server closes.
package resp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"

	"github.com/peercache/peercache/auth"
	"github.com/peercache/peercache/internal/respreader"
	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/node"
)

// Backend is what the server needs from a node. *node.Node satisfies it.
type Backend interface {
	// Get reads key through the cluster (node.ErrNotFound when absent).
	Get(ctx context.Context, key string) (node.Item, error)
	// Write applies a mutation through the key's owner.
	Write(ctx context.Context, key string, m node.Mutation) (node.WriteResult, error)
	// WriteMulti carries out a change of several keys of one slot
	// atomically at their owner (MSETNX, RENAME, COPY).
	WriteMulti(ctx context.Context, m kv.Multi) (kv.MultiResult, error)
	// ScanAll is one step of a scan of the whole cluster's live keys
	// (SCAN, KEYS, DBSIZE and the flushes in proxy mode).
	ScanAll(ctx context.Context, cursor uint64, count int) ([]string, uint64, error)
	// Status reports the node's own figures (INFO).
	Status(ctx context.Context) node.NodeStatus
	// ManyInto carries out reads and writes of distinct keys together (a
	// pipeline): what goes to one owner leaves in one request. The results
	// go into out when it has the room (nil: a new slice).
	ManyInto(ctx context.Context, ops []node.Op, out []node.OpResult) []node.OpResult
}

var _ Backend = (*node.Node)(nil)

// Defaults for Options fields left zero.
const (
	DefaultCommandTimeout = 5 * time.Second
	DefaultMaxClients     = 10000
)

// Limits bound what one client may make the server hold (Options.Limits):
// the longest argument and the bytes of one request buffered before it is
// complete. Zero fields take DefaultMaxBulkBytes and DefaultMaxQueryBytes.
// The request reader, internal/respreader, owns the type.
type Limits = respreader.Limits

// Defaults of Limits (see respreader: Redis allows far more, and every
// byte here is a byte one client can make a node hold).
const (
	DefaultMaxBulkBytes  = respreader.DefaultMaxBulkBytes
	DefaultMaxQueryBytes = respreader.DefaultMaxQueryBytes
)

// Options configures a Server.
type Options struct {
	// Addr is the listen address host:port (port 0 picks one).
	Addr string
	// Listener, when set, is the listener to serve (bound by the caller,
	// so that the node can gossip its address before the server exists);
	// Addr is ignored then. Close closes it.
	Listener net.Listener
	// Cluster turns on Redis Cluster mode: CLUSTER SLOTS/SHARDS/NODES/INFO,
	// and a key this node does not own in its view is answered with MOVED
	// to its owner's RESP door instead of being forwarded. The backend must
	// be a ClusterBackend.
	Cluster bool
	// CommandTimeout bounds each command's trip through the cluster
	// (0: DefaultCommandTimeout).
	CommandTimeout time.Duration
	// MaxClients bounds open connections; more are refused with an error
	// (0: DefaultMaxClients).
	MaxClients int
	// IdleTimeout closes connections idle for longer (0: never, as Redis'
	// default timeout 0).
	IdleTimeout time.Duration
	// Limits bound each client's requests (zero fields: the defaults).
	Limits Limits
	// Auth holds the users and passwords clients must authenticate with
	// (AUTH, HELLO ... AUTH); until they do, every command but AUTH,
	// HELLO and QUIT is answered NOAUTH, and each command needs its role
	// (read, write or admin). nil or disabled: no authentication, every
	// client is admin (loopback use; see the README's Security section).
	Auth *auth.Store
	// TLS, when set, serves TLS on the listener (redis-cli --tls).
	TLS *tls.Config
	// Version is reported by INFO as peercache_version.
	Version string
	// Logger receives connection-level problems (nil: slog.Default()).
	Logger *slog.Logger
	// EventLoops > 0 serves the connections from that many event loops
	// (eventloop.go) instead of one goroutine each: commands that cannot
	// wait on another process run on the loop, the others on a goroutine.
	// Not with TLS.
	EventLoops int
}

// Server is a RESP listener in front of a Backend. Create it with Listen,
// run it with Serve, stop it with Close.
type Server struct {
	b       Backend
	opts    Options
	cluster *clusterState // nil unless Options.Cluster
	loop    *loopServer   // nil unless Options.EventLoops > 0
	// fwd starts the forwards of connection goroutines (goforward.go;
	// nil: none, as in cluster mode).
	fwd ForwardingBackend
	log *slog.Logger
	ln  net.Listener

	base   context.Context // cancelled by Close: aborts commands in flight
	cancel context.CancelFunc

	started  time.Time
	nextID   atomic.Int64
	stats    stats
	deadline atomic.Pointer[deadlineCtx] // the shared command context (cmdCtx)
	clock    atomic.Int64                // Unix ns, renewed every deadlineTick

	mu      sync.Mutex
	clients map[*client]struct{}
	serving bool           // Serve was called
	closing bool           // Close was called
	conns   sync.WaitGroup // connection handlers still running

	serveDone chan struct{} // closed when Serve returns
}

// stats are the counters INFO reports. Each sits on its own cache line:
// every command bumps one or two of them from many goroutines.
type stats struct {
	commands    paddedCounter
	connections paddedCounter
	rejected    paddedCounter
	hits        paddedCounter
	misses      paddedCounter
	errors      paddedCounter
	panics      paddedCounter
	// authFailures counts wrong passwords (INFO stats).
	authFailures paddedCounter
	// loopRounds, loopForwarded and loopOffloaded count the event loops'
	// rounds run in place, served with forwards from the loop, and handed
	// to a goroutine.
	loopRounds    paddedCounter
	loopForwarded paddedCounter
	loopOffloaded paddedCounter
	// connForwards counts the requests a connection's goroutine forwarded
	// without waiting for the answer (goforward.go).
	connForwards paddedCounter
}

type paddedCounter struct {
	atomic.Int64
	_ [56]byte
}

// client is one connection's state.
type client struct {
	id      int64
	addr    string
	laddr   string
	created time.Time
	// last (Unix ns) and cmd are the latest command, for CLIENT LIST/INFO.
	last atomic.Int64
	cmd  atomic.Pointer[cmdSpec]
	// name, libName and libVer are guarded by Server.mu (CLIENT SETNAME,
	// CLIENT SETINFO; read by other connections' CLIENT LIST).
	name, libName, libVer string
	// nameBuf is scratch space of the connection's goroutine.
	nameBuf [maxCommandName]byte
	// nc is the connection (Close closes it to stop its goroutine).
	nc net.Conn
	// loop is the connection's event-loop state (nil: it has a
	// goroutine); set with nc, under Server.mu.
	loop *evConn
	// authed is set once the client has authenticated (or at once when
	// the server needs no password), with the user's name and role;
	// written and read by the connection's own goroutine only (user also
	// under Server.mu, for CLIENT LIST).
	authed bool
	user   string
	role   auth.Role
	// readonly: READONLY was sent (cluster mode: reads of slots this node
	// holds a replica of are served here); the connection's goroutine only.
	readonly bool
	// jobs, cmds, ops, kinds and results are the scratch space of
	// handle, runPipeline and runBatch (the connection's goroutine only),
	// kept for the next pipeline unless they grew past maxKeptJobs.
	jobs    []job
	cmds    []redcon.Command
	ops     []node.Op
	kinds   []byte
	results []node.OpResult
}

// authenticated reports whether the client may send full-size requests.
func (cl *client) authenticated() bool { return cl.authed }

// Listen opens the listener; Serve (or Start) accepts connections. Close
// must be called in any case: it also stops the server's ticker.
func Listen(b Backend, opts Options) (*Server, error) {
	if b == nil {
		return nil, errors.New("resp: nil backend")
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = DefaultCommandTimeout
	}
	if opts.MaxClients <= 0 {
		opts.MaxClients = DefaultMaxClients
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	var cluster *clusterState
	if opts.Cluster {
		cb, ok := b.(ClusterBackend)
		if !ok {
			return nil, errors.New("resp: cluster mode needs a backend that reports its topology")
		}
		cluster = &clusterState{b: cb}
	}
	ln := opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", opts.Addr); err != nil {
			return nil, fmt.Errorf("resp: listen %s: %w", opts.Addr, err)
		}
	}
	if opts.TLS != nil {
		if opts.EventLoops > 0 {
			if opts.Listener == nil {
				ln.Close()
			}
			return nil, errors.New("resp: the event loops do not serve TLS")
		}
		ln = tls.NewListener(ln, opts.TLS)
	}
	s := &Server{
		b:         b,
		opts:      opts,
		cluster:   cluster,
		log:       opts.Logger,
		ln:        ln,
		started:   time.Now(),
		clients:   map[*client]struct{}{},
		serveDone: make(chan struct{}),
	}
	if opts.EventLoops > 0 {
		l, err := newLoopServer(s, opts.EventLoops)
		if err != nil {
			if opts.Listener == nil {
				ln.Close()
			}
			return nil, err
		}
		s.loop = l
	} else if fb, ok := b.(ForwardingBackend); ok && cluster == nil {
		s.fwd = fb
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.deadline.Store(s.newDeadline())
	s.clock.Store(time.Now().UnixNano())
	go s.tick()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until Close. It returns nil after Close.
func (s *Server) Serve() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.serving = true
	s.mu.Unlock()
	defer close(s.serveDone)
	return s.acceptLoop()
}

// Start runs Serve in a goroutine.
func (s *Server) Start() { go s.Serve() }

// Close stops listening, cancels the commands in flight, closes every
// connection and waits (bounded by ctx) for their handlers to return. It
// may be called more than once, and before Serve.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	serving := s.serving
	s.mu.Unlock()
	s.cancel()
	s.ln.Close()
	s.mu.Lock()
	for cl := range s.clients {
		cl.nc.Close() // its goroutine's read or write fails: it returns
	}
	s.mu.Unlock()
	if serving {
		select {
		case <-s.serveDone:
		case <-ctx.Done():
			return fmt.Errorf("resp: listener still closing: %w", ctx.Err())
		}
	}
	if err := s.stopLoops(ctx); err != nil {
		return err
	}
	// No connection is accepted any more: wait for the handlers.
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("resp: connections still closing: %w", ctx.Err())
	}
}

// cmdCtx returns the context for one command: it carries a deadline
// CommandTimeout (up to one tick more) away and is cancelled by Close.
//
// Contexts are shared: a ticker makes a new one every deadlineTick and all
// commands that start within that tick use it. A context.WithTimeout per
// command would cost about 450 ns and 4 allocations on this path, a third
// of an in-memory GET.
func (s *Server) cmdCtx() context.Context { return s.deadline.Load().ctx }

// deadlineTick is how often a new shared command context is made; command
// deadlines are exact to within it.
const deadlineTick = 50 * time.Millisecond

type deadlineCtx struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func (s *Server) newDeadline() *deadlineCtx {
	ctx, cancel := context.WithTimeout(s.base, s.opts.CommandTimeout+deadlineTick)
	return &deadlineCtx{ctx: ctx, cancel: cancel}
}

// tick renews the shared command context and the coarse clock until Close.
func (s *Server) tick() {
	t := time.NewTicker(deadlineTick)
	defer t.Stop()
	// Contexts handed out are cancelled once their deadline has surely
	// passed (their timer fires then anyway; this releases them early).
	var old []*deadlineCtx
	keep := int(s.opts.CommandTimeout/deadlineTick) + 2
	for {
		select {
		case <-s.base.Done():
			for _, d := range old {
				d.cancel()
			}
			s.deadline.Load().cancel()
			return
		case now := <-t.C:
			s.clock.Store(now.UnixNano())
			old = append(old, s.deadline.Swap(s.newDeadline()))
			if len(old) > keep {
				old[0].cancel()
				old = old[1:]
			}
		}
	}
}

// handle runs one request of a connection (serveConn calls it for each,
// in order; the replies are flushed once the requests that arrived
// together are answered).
func (s *Server) handle(c redcon.Conn, cl *client, cmd redcon.Command) {
	// A single-key command with more pipelined behind it: the batch goes
	// through runPipeline, which carries out runs of single-key commands
	// on distinct keys together (one peer request per owner).
	if len(c.PeekPipeline()) == 0 {
		s.dispatch(c, cl, cmd.Args)
		return
	}
	if _, ok := singleKey(lookup(cl, cmd.Args[0]), cmd.Args); !ok {
		s.dispatch(c, cl, cmd.Args)
		return
	}
	cmds := append(append(cl.cmds[:0], cmd), c.ReadPipeline()...)
	s.runPipeline(c, cl, cmds)
	cl.cmds = reuse(cmds)
}

// dispatch runs one command.
func (s *Server) dispatch(c redcon.Conn, cl *client, args [][]byte) {
	s.stats.commands.Add(1)
	spec := lookup(cl, args[0])
	if spec == nil {
		s.stats.errors.Add(1)
		c.WriteError(unknownCommand(args))
		return
	}
	cl.cmd.Store(spec)
	cl.last.Store(s.clock.Load())
	if spec.role > cl.role {
		s.refuse(c, cl, spec)
		return
	}
	if !spec.arityOK(len(args)) {
		s.stats.errors.Add(1)
		c.WriteError("ERR wrong number of arguments for '" + spec.name + "' command")
		return
	}
	if s.cluster != nil {
		if msg := s.route(cl, spec, args); msg != "" { // MOVED, CROSSSLOT
			s.writeErr(c, msg)
			return
		}
	}
	spec.run(s, c, cl, args)
}

// refuse answers a command the client may not run: NOAUTH before AUTH,
// NOPERM when its user's role is too weak (Redis' texts).
func (s *Server) refuse(c redcon.Conn, cl *client, spec *cmdSpec) {
	if !cl.authed {
		s.writeErr(c, "NOAUTH Authentication required.")
		return
	}
	s.writeErr(c, "NOPERM User "+cl.user+" has no permissions to run the '"+spec.name+"' command")
}

// writeErr sends err as a RESP error and counts it.
func (s *Server) writeErr(c redcon.Conn, msg string) {
	s.stats.errors.Add(1)
	c.WriteError(msg)
}

// writeNodeErr maps an error of the Backend to a Redis-style error reply:
// read-only mode -> READONLY, retryable (owner unreachable, ring changing,
// timeout) -> TRYAGAIN, anything else -> ERR.
func (s *Server) writeNodeErr(c redcon.Conn, err error) {
	s.writeErr(c, nodeErrMessage(err))
}

func nodeErrMessage(err error) string {
	var e *node.Error
	switch {
	case errors.As(err, &e):
		switch {
		case isReadOnly(e):
			return "READONLY " + e.Message
		case e.Retryable:
			return "TRYAGAIN " + e.Message
		default:
			return "ERR " + e.Message
		}
	case errors.Is(err, context.DeadlineExceeded):
		return "TRYAGAIN command timed out"
	case errors.Is(err, context.Canceled):
		return "ERR server is shutting down"
	default:
		return "ERR " + err.Error()
	}
}

// isReadOnly recognises the node's read-only refusal (cluster or node
// mode), also when it was forwarded from the key's owner.
func isReadOnly(e *node.Error) bool { return errors.Is(e, node.ErrReadOnly) }

// unknownCommand formats Redis' error for an unknown command.
func unknownCommand(args [][]byte) string {
	b := make([]byte, 0, 96)
	b = append(b, "ERR unknown command '"...)
	b = appendTrunc(b, args[0], 128)
	b = append(b, "', with args beginning with: "...)
	for _, a := range args[1:] {
		if len(b) > 1024 {
			break
		}
		b = append(b, '\'')
		b = appendTrunc(b, a, 128)
		b = append(b, "' "...)
	}
	return string(b)
}

func appendTrunc(b, s []byte, n int) []byte {
	if len(s) > n {
		s = s[:n]
	}
	return append(b, s...)
}
