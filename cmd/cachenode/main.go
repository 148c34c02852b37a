// Command cachenode runs one peercache node: flags and environment, logging,
// signals and exit codes. The cache itself lives in package node.
//
// Every flag can also be set through an environment variable named
// CACHENODE_ followed by the flag name in upper case with dashes turned into
// underscores (--seeds => CACHENODE_SEEDS). A flag on the command line wins
// over the environment.
//
// Exit codes: 0 after a clean stop, 1 when the node fails at run time or
// could not hand off all its keys when leaving, 2 for bad configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/peercache/peercache/httpapi"
	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/migrate"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/nodeconfig"
	"github.com/peercache/peercache/peer"
	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/store"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is bad configuration: reported in one line, exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "health":
			return health(args[1:], stdout, stderr)
		case "version":
			fmt.Fprintln(stdout, "cachenode", version)
			return 0
		case "keygen": // a new cluster secret (keygen.go)
			return keygen(args[1:], stdout, stderr)
		case "serve":
			args = args[1:]
		case "bench": // load generator (bench.go)
			return runBench(args[1:], stdout, stderr)
		case "bench-baseline": // hidden: the HTTP baselines bench/run.sh measures against (bench.go)
			return runBaseline(args[1:], stderr)
		case "passwd": // a users-file hash, or a generated password (passwd.go)
			return runPasswd(args[1:], os.Stdin, stdout, stderr)
		case "get", "put", "del", "delete", "cluster", "mode", "warm": // client subcommands (cli.go)
			return runCLI(args[0], args[1:], os.Stdin, stdout, stderr, os.Getenv)
		}
	}
	err := serve(args, stderr)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "cachenode: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "cachenode: %v\n", err)
		return 1
	}
}

var version = "dev"

// options are the serve flags.
type options struct {
	name, httpAddr, gossipAddr, advertiseAddr, advertiseHTTP, seeds    string
	redisAddr, redisPrefix, redisPassword, clusterLabel, gossipKeyFile string
	logFormat, logLevel, gossipProfile                                 string
	vnodes, maxKeyBytes, maxValueBytes                                 int
	memoryMaxBytes, gcHeapFloor                                        int64
	drainTimeout, tombstoneTTL, handoffWindow, maxTTL, peerTimeout     time.Duration
	migrateBatch, migrateWorkers                                       int
	migrateRate                                                        float64
	replicas, peerConns                                                int
	writeAcks                                                          string
	respAddr, respAdvertise                                            string
	respCluster                                                        bool
	peerAddr, peerAdvertise, secretFile, maxClockSkew                  string
	peerCertFile, peerKeyFile, peerCAFile                              string
	insecure                                                           bool
	pprofAddr                                                          string

	doors     doorOptions      // --password-file, --users-file, --tls-*, RESP limits (doors.go)
	redisProc redisProcOptions // --redis-server, --redis-port, --redis-dir (redisproc.go)
	tier      tierOptions      // --local-tier-*, --near-cache-ttl, --origin* (tierflags.go)
}

func newFlagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cachenode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host, _ := os.Hostname()
	def := node.DefaultConfig()
	fs.StringVar(&o.name, "name", host, "unique node name in the cluster (default: the hostname)")
	fs.StringVar(&o.httpAddr, "http-addr", "", "HTTP API listen address host:port (default: "+httpapi.DefaultAddr+" with --password-file or --users-file, else "+loopbackHTTPAddr+")")
	fs.StringVar(&o.gossipAddr, "gossip-addr", "", "gossip (memberlist) bind address host:port (default: "+node.DefaultGossipAddr+" with a cluster secret, else "+node.DefaultLoopbackGossipAddr+")")
	fs.StringVar(&o.peerAddr, "peer-addr", "", "peer protocol listen address host:port, for other members only (default: the gossip host, gossip port + 1)")
	fs.StringVar(&o.peerAdvertise, "peer-advertise-addr", "", "host:port other members use for the peer protocol (default: the advertise host and the peer port)")
	fs.StringVar(&o.secretFile, "cluster-secret-file", "", "file holding the cluster secret (make one with: cachenode keygen --out FILE): authenticates members and encrypts gossip and peer traffic; required to listen beyond loopback")
	fs.BoolVar(&o.insecure, "insecure", false, "allow gossip and the peer protocol beyond loopback without a cluster secret (only on a network you trust)")
	fs.StringVar(&o.maxClockSkew, "max-clock-skew", def.Peer.MaxClockSkew.String(), "how far ahead of this node's clock another member's version may lie; later ones are refused")
	fs.StringVar(&o.peerCertFile, "peer-tls-cert-file", "", "peer mTLS certificate (PEM), instead of the identity derived from the cluster secret; needs --peer-tls-key-file and --peer-tls-ca-file")
	fs.StringVar(&o.peerKeyFile, "peer-tls-key-file", "", "peer mTLS private key (PEM)")
	fs.StringVar(&o.peerCAFile, "peer-tls-ca-file", "", "CA certificates (PEM) that sign every member's peer certificate")
	fs.StringVar(&o.advertiseAddr, "advertise-addr", "", "host or host:port other members use for gossip and peer calls (default: the bind IP, or this host's first non-loopback IP)")
	fs.StringVar(&o.advertiseHTTP, "advertise-http", "", "host:port other members use for the HTTP/peer API (default: advertise host + HTTP port)")
	fs.StringVar(&o.seeds, "seeds", "", "comma-separated host:port or DNS names of members to join (a name resolving to several IPs joins them all)")
	fs.StringVar(&o.redisAddr, "redis-addr", "", "Redis host:port for this node's shard (empty: embedded in-memory store)")
	fs.StringVar(&o.redisPrefix, "redis-prefix", "", "key prefix in Redis, so a Redis can be shared")
	fs.StringVar(&o.redisPassword, "redis-password", "", "Redis password (prefer the env var CACHENODE_REDIS_PASSWORD)")
	fs.IntVar(&o.vnodes, "vnodes", 128, "virtual nodes per member on the hash ring (same on every member)")
	fs.StringVar(&o.clusterLabel, "cluster-label", "", "cluster label: nodes with different labels never talk")
	fs.StringVar(&o.gossipKeyFile, "gossip-key-file", "", "file holding a gossip encryption key (16, 24 or 32 bytes, raw or base64) to use instead of the one derived from the cluster secret")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.gossipProfile, "gossip-profile", "lan", "memberlist timing: lan (production) or fast (tests, quick failure detection)")
	fs.IntVar(&o.maxKeyBytes, "max-key-bytes", def.Limits.MaxKeyBytes, "largest key accepted")
	fs.IntVar(&o.maxValueBytes, "max-value-bytes", def.Limits.MaxValueBytes, "largest value accepted")
	fs.Int64Var(&o.memoryMaxBytes, "memory-max-bytes", 0, "memory budget of the node (0: 256 MiB): the in-memory shard and the local tier with their per-key overhead (the tier gets --local-tier-bytes, the shard the rest); the Go memory limit is set to it + 1/4 + 32 MiB unless GOMEMLIMIT is set")
	fs.Int64Var(&o.gcHeapFloor, "gc-heap-floor", 0, "bytes the Go heap may grow to before a garbage collection while little is live (GOGC raised; 0: 32 MiB, at most half the memory limit; negative: the runtime's default pacing); a GOGC in the environment wins")
	fs.DurationVar(&o.maxTTL, "max-ttl", 0, "largest ttl accepted (0: 100 years)")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", def.Migration.DrainTimeout, "how long a leaving node may take to hand off its keys")
	fs.DurationVar(&o.tombstoneTTL, "tombstone-ttl", def.Migration.TombstoneTTL, "how long deletes are remembered (must exceed the longest migration)")
	fs.DurationVar(&o.handoffWindow, "handoff-window", def.Migration.HandoffWindow, "how long after a ring change a new owner asks the previous owner on a miss")
	fs.DurationVar(&o.peerTimeout, "peer-timeout", def.Peer.Timeout, "timeout of each request to another node")
	fs.IntVar(&o.peerConns, "peer-conns", peer.DefaultConnsPerPeer, "connections that carry this node's requests to each other node (1 batches best; more can help on many cores)")
	fs.IntVar(&o.migrateBatch, "migrate-batch", 0, "keys per migration batch (0: default)")
	fs.IntVar(&o.migrateWorkers, "migrate-workers", 0, "migration batches in flight (0: default)")
	fs.Float64Var(&o.migrateRate, "migrate-rate", 0, "migration rate limit in keys/s (0: unlimited)")
	fs.IntVar(&o.replicas, "replicas", 1, "copies of each key (the primary plus replicas), 1 to 16")
	fs.StringVar(&o.writeAcks, "write-acks", string(def.Replication.WriteAcks), "copies a write waits for: all (every owner), quorum (a majority) or one (the primary)")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "serve Go's profiler (net/http/pprof) on this loopback host:port, for diagnosis (empty: off)")
	fs.StringVar(&o.respAddr, "resp-addr", "", "Redis protocol (RESP2) listen address host:port, e.g. :6380 (empty: off)")
	fs.BoolVar(&o.respCluster, "resp-cluster", false, "Redis Cluster mode on the RESP port: CLUSTER SLOTS/NODES/SHARDS, and MOVED to a key's owner instead of forwarding (off: any node answers any key)")
	fs.StringVar(&o.respAdvertise, "resp-advertise-addr", "", "host:port Redis Cluster clients are redirected to for this node (default: advertise host + RESP port)")
	addDoorFlags(fs, &o.doors)
	addRedisProcFlags(fs, &o.redisProc)
	addTierFlags(fs, &o.tier)
	return fs
}

// applyEnv sets every flag not given on the command line from its
// CACHENODE_* variable.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := envName(f.Name)
		if v := getenv(env); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %v", env, v, e)
			}
		}
	})
	return err
}

func envName(flagName string) string {
	return "CACHENODE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}

func splitSeeds(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func readGossipKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--gossip-key-file: %w", err)
	}
	return nodeconfig.ParseGossipKey(b)
}

func serve(args []string, stderr io.Writer) error {
	var o options
	fs := newFlagSet(&o, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q (subcommands: serve, health, version, get, put, del, cluster, mode)", fs.Arg(0))}
	}
	if err := applyEnv(fs, os.Getenv); err != nil {
		return usageError{err}
	}
	log, err := newLogger(o.logFormat, o.logLevel, stderr)
	if err != nil {
		return usageError{err}
	}
	rp, err := startRedisProc(&o, log) // a supervised redis-server, when --redis-server is set
	if err != nil {
		return err
	}
	defer rp.stop()                               // after the node has drained (n.Stop below)
	dr, err := o.doors.load(o.maxValueBytes, log) // client auth, TLS, RESP limits (doors.go)
	if err != nil {
		return usageError{err}
	}
	cfg, err := o.config(log)
	if err != nil {
		return usageError{err}
	}
	hln, err := httpapi.Listen(cfg.HTTP.Addr) // the HTTP door, bound first: the node advertises its port
	if err != nil {
		return usageError{err}
	}
	cfg.HTTP.Addr = hln.Addr().String()
	rln, err := listenRESPPort(o.respAddr) // bound before the node too: it gossips the port (respfront.go)
	if err != nil {
		hln.Close()
		return err
	}
	if rln != nil {
		cfg.RESP.Addr = rln.Addr().String()
	}
	n, err := node.New(cfg)
	if err != nil {
		hln.Close()
		if rln != nil {
			rln.Close()
		}
	}
	if ie := (*node.InsecureError)(nil); errors.As(err, &ie) {
		return usageError{fmt.Errorf("%s %s reaches beyond loopback, but no cluster secret is set: anyone who can reach it could join the cluster and read or change any key; "+
			"give --cluster-secret-file (make one with `cachenode keygen --out FILE`), or --insecure on a network you trust", configFlag(ie.Field), ie.Addr)}
	}
	if ae := (*membership.AdvertiseError)(nil); errors.As(err, &ae) {
		return usageError{fmt.Errorf("cannot tell which address other members should use to reach this node (%s); "+
			"set --advertise-addr (env CACHENODE_ADVERTISE_ADDR) to this host's IP address", strings.Join(ae.Reasons, "; "))}
	}
	if err != nil {
		return usageError{err}
	}
	web := httpapi.New(n, hln, dr.httpConfig(&o.doors, log))                  // stopped with the node
	limit := setMemoryLimit(cfg.MemoryMaxBytes, os.Getenv("GOMEMLIMIT"), log) // (memlimit.go)
	defer startGCTuner(gcHeapFloor(o.gcHeapFloor, limit), os.Getenv("GOGC"), log)()
	rf, err := listenRESP(rln, o.respCluster, n, cfg.Peer.Timeout, dr.respOptions(&o.doors), log) // --resp-addr (respfront.go)
	if err != nil {
		n.Abort()
		return err
	}
	defer rf.close() // after the node has left: it serves, forwarding, while it drains
	if cfg.Auth.Secret == nil && cfg.Auth.Certificate == nil {
		if cfg.Auth.Insecure {
			log.Warn("auth: off: --insecure and no cluster secret: any host that reaches the gossip and peer ports can join the cluster and read or change any key")
		} else {
			log.Info("auth: off: no cluster secret; gossip and peer protocol stay on loopback (give --cluster-secret-file to reach other hosts)")
		}
	}

	if o.pprofAddr != "" {
		stopPprof, err := servePprof(o.pprofAddr, log)
		if err != nil {
			n.Abort()
			return usageError{err}
		}
		defer stopPprof()
	}
	dr.logPosture(cfg.HTTP.Addr, o.respAddr)
	hup, hupDone := make(chan os.Signal, 1), make(chan struct{}) // SIGHUP: re-read users and certificates
	signal.Notify(hup, syscall.SIGHUP)
	defer func() { signal.Stop(hup); close(hupDone) }()
	go func() {
		for {
			select {
			case <-hup:
				dr.reload()
			case <-hupDone:
				return
			}
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	web.Serve()
	if err := n.Start(ctx); err != nil {
		n.Abort()
		return err
	}
	rf.serve()
	select {
	case <-ctx.Done():
	case <-n.Done(): // a leave asked for over HTTP (POST /v1/leave)
		return n.Err()
	}
	stop() // a second signal now kills the process the default way
	log.Info("signal received: leaving the cluster", "drain_timeout", cfg.Migration.DrainTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Migration.DrainTimeout+15*time.Second)
	defer cancel()
	if err := n.Stop(sctx); err != nil {
		return err
	}
	return nil
}

func (o *options) config(log *slog.Logger) (node.Config, error) {
	if o.httpAddr == "" {
		// Without client authentication the HTTP API stays on loopback
		// unless --http-addr says otherwise (as Redis' protected mode).
		o.httpAddr = loopbackHTTPAddr
		if o.doors.usersFile != "" || o.doors.passwordFile != "" {
			o.httpAddr = httpapi.DefaultAddr
		}
	}
	cfg := node.Config{
		Name:           o.name,
		ClusterLabel:   o.clusterLabel,
		HTTP:           nodeconfig.HTTP{Addr: o.httpAddr, Advertise: o.advertiseHTTP},
		RESP:           nodeconfig.RESP{Advertise: o.respAdvertise}, // Addr: once bound
		Gossip:         nodeconfig.Gossip{Addr: o.gossipAddr, Advertise: o.advertiseAddr, Seeds: splitSeeds(o.seeds)},
		Peer:           nodeconfig.Peer{Addr: o.peerAddr, Advertise: o.peerAdvertise, Timeout: o.peerTimeout, Conns: o.peerConns},
		Auth:           nodeconfig.Auth{Insecure: o.insecure},
		MemoryMaxBytes: o.memoryMaxBytes,
		Ring:           ring.Options{VNodes: o.vnodes},
		Replication:    nodeconfig.Replication{Factor: o.replicas, WriteAcks: node.WriteAcks(o.writeAcks)},
		Limits:         nodeconfig.Limits{MaxKeyBytes: o.maxKeyBytes, MaxValueBytes: o.maxValueBytes, MaxTTL: o.maxTTL},
		Migration: nodeconfig.Migration{DrainTimeout: o.drainTimeout, TombstoneTTL: o.tombstoneTTL, HandoffWindow: o.handoffWindow,
			Options: migrate.Options{BatchSize: o.migrateBatch, Workers: o.migrateWorkers, RateLimit: o.migrateRate}},
		Logger: log,
	}
	if o.name == "" {
		return cfg, errors.New("--name: empty, and the hostname is unknown")
	}
	if o.peerConns <= 0 || o.peerConns > peer.MaxConnsPerPeer {
		return cfg, fmt.Errorf("--peer-conns %d: want 1 to %d", o.peerConns, peer.MaxConnsPerPeer)
	}
	if o.respCluster && o.respAddr == "" {
		return cfg, errors.New("--resp-cluster needs --resp-addr (the Redis protocol port it applies to)")
	}
	if o.vnodes <= 0 {
		return cfg, fmt.Errorf("--vnodes %d: must be positive", o.vnodes)
	}
	if o.maxKeyBytes <= 0 || o.maxValueBytes <= 0 {
		return cfg, errors.New("--max-key-bytes and --max-value-bytes must be positive")
	}
	if o.replicas < 1 || o.replicas > 16 {
		return cfg, fmt.Errorf("--replicas %d: want 1 to 16", o.replicas)
	}
	switch cfg.Replication.WriteAcks {
	case node.WriteAcksAll, node.WriteAcksQuorum, node.WriteAcksOne:
	default:
		return cfg, fmt.Errorf("--write-acks %q: want all, quorum or one", o.writeAcks)
	}
	if o.migrateBatch < 0 || o.migrateWorkers < 0 || o.migrateRate < 0 {
		return cfg, errors.New("--migrate-batch, --migrate-workers and --migrate-rate must not be negative")
	}
	switch o.gossipProfile {
	case "lan":
		cfg.Gossip.Timing = membership.TimingLAN
	case "fast":
		cfg.Gossip.Timing = membership.TimingFast
	default:
		return cfg, fmt.Errorf("--gossip-profile %q: want lan or fast", o.gossipProfile)
	}
	for _, a := range []struct{ flag, v string }{{"--http-addr", o.httpAddr}, {"--gossip-addr", o.gossipAddr},
		{"--peer-addr", o.peerAddr}, {"--peer-advertise-addr", o.peerAdvertise}} {
		if a.v == "" && a.flag != "--http-addr" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return cfg, fmt.Errorf("%s %q: want host:port (e.g. :8080)", a.flag, a.v)
		}
	}
	if err := o.tier.apply(&cfg, o.maxValueBytes); err != nil {
		return cfg, err
	}
	if o.gossipKeyFile != "" {
		k, err := readGossipKey(o.gossipKeyFile)
		if err != nil {
			return cfg, err
		}
		cfg.Gossip.Key = k
	}
	if err := o.security(&cfg); err != nil { // --cluster-secret-file, --peer-tls-*, --insecure (keygen.go)
		return cfg, err
	}
	if o.redisAddr != "" {
		if _, _, err := net.SplitHostPort(o.redisAddr); err != nil {
			return cfg, fmt.Errorf("--redis-addr %q: want host:port", o.redisAddr)
		}
		rs, err := store.NewRedis(store.RedisOptions{Addr: o.redisAddr, Prefix: o.redisPrefix, Password: o.redisPassword,
			Coalesce: true}) // concurrent shard calls share round trips (store/rediscoalesce.go)
		if err != nil {
			return cfg, fmt.Errorf("--redis-addr: %w", err)
		}
		cfg.Store = rs
	}
	return cfg, nil
}

// health checks a node's /readyz: exit 0 when ready, 1 otherwise. Used by
// container health checks.
func health(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cachenode health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "node HTTP address host:port (env CACHENODE_ADDR)")
	timeout := fs.Duration("timeout", 2*time.Second, "request timeout")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "addr" })
	if v := os.Getenv("CACHENODE_ADDR"); v != "" && !set {
		*addr = v
	}
	c := &http.Client{Timeout: *timeout}
	resp, err := c.Get("http://" + *addr + "/readyz")
	if err != nil {
		fmt.Fprintf(stderr, "cachenode health: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprint(stdout, string(body))
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
