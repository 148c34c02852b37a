package main

// `cachenode bench`: the load tool (package bench/load does the work), and
// the hidden `cachenode bench-baseline`, which serves the HTTP baselines
// bench/run.sh compares nodes with (package bench/baseline).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/peercache/peercache/bench/baseline"
	"github.com/peercache/peercache/bench/load"
)

// exitBenchErrors is bench's exit code when the run finished but some
// operations failed (the summary lists them).
const exitBenchErrors = 3

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cachenode bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg load.Config
	var addrs string
	var jsonOut bool
	var progress string
	fs.StringVar(&cfg.Target, "target", load.TargetHTTP, "protocol: http (GET/PUT /v1/keys/{key}) or resp (Redis GET/SET)")
	fs.StringVar(&addrs, "addrs", "127.0.0.1:8080", "comma-separated host:port of the nodes; requests go to them round robin")
	fs.IntVar(&cfg.Ops, "ops", 100000, "operations to run (0 with --preload: preload only)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop early after this long (0: run all --ops)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 50, "concurrent workers (connections)")
	fs.IntVar(&cfg.Keys, "keys", 10000, "size of the key set")
	fs.StringVar(&cfg.KeyPrefix, "key-prefix", "bench:", "key names are this prefix and a number")
	fs.StringVar(&cfg.User, "user", os.Getenv("CACHENODE_USER"), "user name for nodes that ask for one (env CACHENODE_USER; default: \"default\")")
	fs.StringVar(&cfg.Password, "password", os.Getenv("CACHENODE_PASSWORD"), "password for nodes that ask for one (prefer the env var CACHENODE_PASSWORD)")
	fs.IntVar(&cfg.ValueSize, "value-size", 32, "bytes per written value")
	fs.Float64Var(&cfg.ReadRatio, "read-ratio", 0.9, "fraction of operations that are reads (0..1)")
	fs.StringVar(&cfg.Dist, "dist", load.DistUniform, "key distribution: uniform or zipf")
	fs.Float64Var(&cfg.ZipfS, "zipf-s", 1.1, "zipf exponent (> 1; larger is more skewed)")
	fs.IntVar(&cfg.Pipeline, "pipeline", 1, "operations per round trip (resp only)")
	fs.BoolVar(&cfg.Preload, "preload", false, "write every key once before the measured run")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "timeout of each request")
	fs.BoolVar(&cfg.RemoteOnly, "remote-only", false, "use only keys the (single) addressed node does not own, so every read is forwarded (http only)")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "random seed for the key sequence (0: fixed default)")
	fs.BoolVar(&jsonOut, "json", false, "print the result as JSON")
	fs.StringVar(&progress, "progress", "auto", "progress bar: auto (when stdout is a terminal), on or off")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cachenode bench [flags]   (load a node, cluster or baseline; see bench/run.sh)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cachenode bench: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg.Addrs = splitSeeds(addrs)
	switch progress {
	case "on":
		cfg.Progress = progressBar(stdout)
	case "auto":
		if !jsonOut && isTerminal(stdout) {
			cfg.Progress = progressBar(stdout)
		}
	case "off":
	default:
		fmt.Fprintf(stderr, "cachenode bench: --progress %q: want auto, on or off\n", progress)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := load.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "cachenode bench: %v\n", err)
		return exitUsage
	}
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		printBench(stdout, res)
	}
	if res.Errors > 0 || (res.Preload != nil && res.Preload.Errors > 0) {
		return exitBenchErrors
	}
	return exitOK
}

// progressBar draws a one-line bar, rewritten in place.
func progressBar(w io.Writer) func(done, total int64, elapsed time.Duration) {
	return func(done, total int64, elapsed time.Duration) {
		const width = 30
		frac := 0.0
		if total > 0 {
			frac = float64(done) / float64(total)
		}
		n := int(frac * width)
		rate := 0.0
		if elapsed > 0 {
			rate = float64(done) / elapsed.Seconds()
		}
		fmt.Fprintf(w, "\r[%s%s] %3.0f%%  %s ops  %s ops/s   ", strings.Repeat("=", n), strings.Repeat(" ", width-n),
			frac*100, group(float64(done)), group(rate))
		if done >= total {
			fmt.Fprint(w, "\r\033[K")
		}
	}
}

func printBench(w io.Writer, r load.Result) {
	dist := r.Dist
	if r.Dist == load.DistZipf {
		dist = fmt.Sprintf("zipf s=%g", r.ZipfS)
	}
	remote := ""
	if r.RemoteOnly {
		remote = ", remote keys only"
	}
	fmt.Fprintf(w, "target %s  %s\n", r.Target, strings.Join(r.Addrs, ","))
	fmt.Fprintf(w, "concurrency %d  pipeline %d  keys %d (%s%s)  value %d B  reads %.0f%%\n",
		r.Concurrency, r.Pipeline, r.Keys, dist, remote, r.ValueSize, r.ReadRatio*100)
	if r.Preload != nil {
		fmt.Fprintf(w, "preload: %s keys in %.2f s (%s ops/s), %d errors\n", group(float64(r.Preload.Ops)), r.Preload.Seconds,
			group(r.Preload.OpsPerSec), r.Preload.Errors)
		printErrors(w, r.Preload)
	}
	if r.Ops == 0 {
		return
	}
	fmt.Fprintf(w, "ops %s in %.2f s: %s ops/s\n", group(float64(r.Ops)), r.Seconds, group(r.OpsPerSec))
	fmt.Fprintf(w, "  reads %s (hits %s, misses %s), writes %s\n", group(float64(r.Reads)), group(float64(r.Hits)),
		group(float64(r.Misses)), group(float64(r.Writes)))
	l := r.Latency
	fmt.Fprintf(w, "latency µs: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %.0f)\n",
		group(l.P50), group(l.P90), group(l.P99), group(l.P999), group(l.Max), l.Mean)
	if r.Errors == 0 {
		fmt.Fprintln(w, "errors: none")
		return
	}
	fmt.Fprintf(w, "errors: %d\n", r.Errors)
	printErrors(w, &r.Phase)
}

func printErrors(w io.Writer, p *load.Phase) {
	for k, n := range p.ErrorKinds {
		fmt.Fprintf(w, "  %-20s %d  (e.g. %s)\n", k, n, p.ErrorSamples[k])
	}
}

// group formats a number with thousands separators, no decimals.
func group(f float64) string { return groupDecimal(fmt.Sprintf("%.0f", f)) }

// runBaseline serves one of the HTTP baselines until SIGINT/SIGTERM:
//
//	cachenode bench-baseline http  --addr 127.0.0.1:9100 [--keys N --value-size B --key-prefix P]
//	cachenode bench-baseline proxy --addr 127.0.0.1:9101 --upstream 127.0.0.1:9100
//	cachenode bench-baseline resp  --addr 127.0.0.1:9102 [--keys N]
func runBaseline(args []string, stderr io.Writer) int {
	usage := "usage: cachenode bench-baseline http|proxy|resp [--addr host:port] [--keys N --value-size B --key-prefix P] [--upstream host:port]"
	if len(args) == 0 || (args[0] != "http" && args[0] != "proxy" && args[0] != "resp") {
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	kind := args[0]
	fs := flag.NewFlagSet("cachenode bench-baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9100", "listen address")
	keys := fs.Int("keys", 10000, "http: keys preloaded (prefix + 0..keys-1); resp: most keys kept")
	valueSize := fs.Int("value-size", 32, "http: bytes per preloaded value")
	prefix := fs.String("key-prefix", "bench:", "http: key name prefix")
	upstream := fs.String("upstream", "127.0.0.1:9100", "proxy: the server behind the proxy")
	maxConns := fs.Int("max-conns", 256, "proxy: idle connections kept to the upstream")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if kind == "resp" {
		return serveRESPFloor(*addr, *keys, stderr)
	}
	var h http.Handler
	if kind == "http" {
		h = baseline.NewBare(*prefix, *keys, []byte(strings.Repeat("v", *valueSize))).Handler()
	} else {
		h = baseline.NaiveProxy(*upstream, *maxConns)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "cachenode bench-baseline: %v\n", err)
		return exitFailed
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Fprintf(stderr, "bench-baseline %s listening on %s\n", kind, ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "cachenode bench-baseline: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// serveRESPFloor serves baseline.RESPFloor on addr, which must be a
// loopback address (it has no authentication: it is a benchmark), until
// SIGINT/SIGTERM.
func serveRESPFloor(addr string, keys int, stderr io.Writer) int {
	host, _, err := net.SplitHostPort(addr)
	if ip, perr := netip.ParseAddr(host); err != nil || perr != nil || !ip.IsLoopback() {
		fmt.Fprintf(stderr, "cachenode bench-baseline resp: --addr %q: want a loopback host:port such as 127.0.0.1:9102\n", addr)
		return exitUsage
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "cachenode bench-baseline: %v\n", err)
		return exitFailed
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	fmt.Fprintf(stderr, "bench-baseline resp listening on %s\n", ln.Addr())
	if err := baseline.NewRESPFloor(keys).Serve(ln); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "cachenode bench-baseline: %v\n", err)
		return exitFailed
	}
	return exitOK
}
