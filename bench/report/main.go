// Command report turns the raw results bench/run.sh collects (redis-benchmark
// CSV, `cachenode bench --json`, RSS and machine facts) into the markdown
// section of docs/benchmarks.md between the bench/run.sh markers, keeping
// the rest of the file.
//
//	go run ./bench/report --dir $WORK --doc docs/benchmarks.md
package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/peercache/peercache/bench/load"
)

const (
	beginMarker = "<!-- bench/run.sh:begin (generated; edit bench/report instead) -->"
	endMarker   = "<!-- bench/run.sh:end -->"
)

func main() {
	dir := flag.String("dir", "", "directory with bench/run.sh's raw results")
	doc := flag.String("doc", "docs/benchmarks.md", "markdown file to update")
	flag.Parse()
	if err := run(*dir, *doc); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(dir, doc string) error {
	r := &report{dir: dir}
	section, err := r.render()
	if err != nil {
		return err
	}
	old, err := os.ReadFile(doc)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.WriteFile(doc, []byte(splice(string(old), section)), 0o644)
}

// splice replaces the marked section of doc, or inserts it before the first
// second-level heading (after the file's introduction), or appends it.
func splice(doc, section string) string {
	block := beginMarker + "\n" + section + endMarker + "\n"
	if i := strings.Index(doc, beginMarker); i >= 0 {
		if j := strings.Index(doc[i:], endMarker); j >= 0 {
			end := i + j + len(endMarker)
			if end < len(doc) && doc[end] == '\n' {
				end++
			}
			return doc[:i] + block + doc[end:]
		}
	}
	if i := strings.Index(doc, "\n## "); i >= 0 {
		return doc[:i+1] + block + "\n" + doc[i+1:]
	}
	if doc != "" && !strings.HasSuffix(doc, "\n") {
		doc += "\n"
	}
	return doc + "\n" + block
}

type report struct {
	dir     string
	machine map[string]string
	b       strings.Builder
}

func (r *report) p(format string, args ...any) { fmt.Fprintf(&r.b, format, args...) }

// rbRow is one redis-benchmark CSV line.
type rbRow struct {
	rps, p50, p99 float64
}

// readRB reads a redis-benchmark --csv file: test name -> row.
func (r *report) readRB(name string) map[string]rbRow {
	f, err := os.Open(filepath.Join(r.dir, "rb-"+name+".csv"))
	if err != nil {
		return nil
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) < 2 {
		return nil
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	out := map[string]rbRow{}
	for _, rec := range recs[1:] {
		num := func(h string) float64 {
			i, ok := col[h]
			if !ok || i >= len(rec) {
				return 0
			}
			v, _ := strconv.ParseFloat(rec[i], 64)
			return v
		}
		out[rec[0]] = rbRow{rps: num("rps"), p50: num("p50_latency_ms"), p99: num("p99_latency_ms")}
	}
	return out
}

func (r *report) readLT(name string) *load.Result {
	b, err := os.ReadFile(filepath.Join(r.dir, "lt-"+name+".json"))
	if err != nil {
		return nil
	}
	var res load.Result
	if json.Unmarshal(b, &res) != nil {
		return nil
	}
	return &res
}

func readKV(path string) map[string]string {
	out := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		out[k] = v
	}
	return out
}

func group(f float64) string {
	s := strconv.FormatFloat(f, 'f', 0, 64)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func met(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

func ms(us float64) string { return strconv.FormatFloat(us/1000, 'f', 2, 64) }

// cpuPerReq is the server CPU time per request (µs) of redis-benchmark run
// name (SET and GET together), from rb-NAME.cpu: "ticks ticks/s requests".
func (r *report) cpuPerReq(name string) float64 {
	b, err := os.ReadFile(filepath.Join(r.dir, "rb-"+name+".cpu"))
	if err != nil {
		return 0
	}
	var ticks, hz, reqs float64
	if n, _ := fmt.Sscan(string(b), &ticks, &hz, &reqs); n != 3 || hz == 0 || reqs == 0 {
		return 0
	}
	return ticks / hz * 1e6 / reqs
}

// bestCPU is the lowest server CPU per request of runs name-1 .. name-R.
func (r *report) bestCPU(name string) float64 {
	best := 0.0
	for i := 1; ; i++ {
		if r.readRB(fmt.Sprintf("%s-%d", name, i)) == nil {
			return best
		}
		if c := r.cpuPerReq(fmt.Sprintf("%s-%d", name, i)); c > 0 && (best == 0 || c < best) {
			best = c
		}
	}
}

// bestRB returns, for each test (SET, GET), the best of the repeated
// redis-benchmark runs name-1 .. name-R.
func (r *report) bestRB(name string) map[string]rbRow {
	var best map[string]rbRow
	for i := 1; ; i++ {
		row := r.readRB(fmt.Sprintf("%s-%d", name, i))
		if row == nil {
			return best
		}
		if best == nil {
			best = map[string]rbRow{}
		}
		for test, v := range row {
			if v.rps > best[test].rps {
				best[test] = v
			}
		}
	}
}

// ltCPU is the server CPU time per operation (µs) of load-tool run name
// (preload included), from lt-NAME.cpu: "ticks ticks/s".
func (r *report) ltCPU(name string, res *load.Result) float64 {
	b, err := os.ReadFile(filepath.Join(r.dir, "lt-"+name+".cpu"))
	if err != nil || res == nil {
		return 0
	}
	var ticks, hz float64
	ops := float64(res.Ops + preloadOps(res))
	if n, _ := fmt.Sscan(string(b), &ticks, &hz); n != 2 || hz == 0 || ops == 0 {
		return 0
	}
	return ticks / hz * 1e6 / ops
}

// bestLTCPU is the lowest server CPU per operation of runs name-1 .. name-R.
func (r *report) bestLTCPU(name string) float64 {
	best := 0.0
	for i := 1; ; i++ {
		n := fmt.Sprintf("%s-%d", name, i)
		res := r.readLT(n)
		if res == nil {
			return best
		}
		if c := r.ltCPU(n, res); c > 0 && (best == 0 || c < best) {
			best = c
		}
	}
}

func preloadOps(res *load.Result) int64 {
	if res.Preload == nil {
		return 0
	}
	return res.Preload.Ops
}

// bestLT returns the best (by ops/s) of the load-tool runs name-1 ..
// name-R, or the single run name.
func (r *report) bestLT(name string) *load.Result {
	if res := r.readLT(name); res != nil {
		return res
	}
	var best *load.Result
	for i := 1; ; i++ {
		res := r.readLT(fmt.Sprintf("%s-%d", name, i))
		if res == nil {
			return best
		}
		if best == nil || res.OpsPerSec > best.OpsPerSec {
			best = res
		}
	}
}

func (r *report) render() (string, error) {
	r.machine = readKV(filepath.Join(r.dir, "machine.txt"))
	m := r.machine
	if m["date"] == "" {
		return "", fmt.Errorf("%s: no machine.txt: not a bench/run.sh result directory", r.dir)
	}
	r.p("## peercache vs Redis and plain HTTP, one run (issue 7)\n\n")
	r.p("```sh\nbench/run.sh          # regenerates this section; BENCH_PROFILE=/tmp/prof adds a CPU profile\n```\n\n")
	r.p("%s, this machine: %s cores (%s), %s GiB, %s, redis-server %s. Load average %s at the start, %s at the end; the run took %s s. ",
		m["date"], m["nproc"], m["cpu"], m["mem_gib"], m["go"], m["redis"], first(m["load_start"]), first(m["load_end"]), m["seconds"])
	r.p("Everything on 127.0.0.1: the load generators (redis-benchmark, `cachenode bench`) share the %s cores with the servers they measure, so no server has the machine to itself. Values are %s bytes. Each comparison ran %s times, its targets taking turns; every row is the target's best run.\n\n",
		m["nproc"], m["value"], m["repeat"])

	// ---- Redis protocol ----
	type rbTarget struct{ label, name string }
	targets := []rbTarget{
		{"redis-server", "redis"},
		{"node, in-memory shard", "node"},
		{"node, in-memory shard, GOMAXPROCS=1", "node1"},
		{"node, Redis shard (local tier, coalesced shard writes)", "noderedis"},
	}
	rb := map[string]map[string]rbRow{}
	for _, pipe := range []string{"P1", "P16"} {
		for _, t := range targets {
			rb[t.name+"-"+pipe] = r.bestRB(t.name + "-" + pipe)
		}
	}
	r.p("### Redis protocol\n\n")
	r.p("`redis-benchmark -t set,get -n %s -c %s -r %s -d %s` (a hot set of %s keys), without and with `-P 16`, against redis-server and against single nodes (`cachenode --resp-addr`): with the default in-memory shard; the same with `GOMAXPROCS=1`; and with a redis-server of its own as the shard (defaults: local tier on, shard calls coalesced).\n\n",
		m["n"], m["c"], m["keyspace"], m["value"], m["keyspace"])
	r.p("The last column is the CPU time the server processes (for the Redis-shard node: the node and its redis-server) spent per request, from /proc/PID/stat around the run: it measures the server's own cost, whoever is the bottleneck.\n\n")
	r.p("| target | pipeline | SET ops/s | vs redis | GET ops/s | vs redis | SET p50 / p99 ms | GET p50 / p99 ms | server CPU µs/req |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, pipe := range []string{"P1", "P16"} {
		base := rb["redis-"+pipe]
		for _, t := range targets {
			row := rb[t.name+"-"+pipe]
			if row == nil {
				r.p("| %s | %s | (missing) | | | | | | |\n", t.label, pipe[1:])
				continue
			}
			sr, g := row["SET"], row["GET"]
			r.p("| %s | %s | %s | %.2fx | %s | %.2fx | %.2f / %.2f | %.2f / %.2f | %.1f |\n", t.label, pipe[1:], group(sr.rps), ratio(sr.rps, base["SET"].rps),
				group(g.rps), ratio(g.rps, base["GET"].rps), sr.p50, sr.p99, g.p50, g.p99, r.bestCPU(t.name+"-"+pipe))
		}
	}
	r.p("\n")

	// ---- HTTP ----
	bare, proxy := r.bestLT("bare"), r.bestLT("proxy")
	r.p("### HTTP and the cluster\n\n")
	r.p("`cachenode bench --target http --ops %s --concurrency %s --keys %s --read-ratio 1 --preload` (GETs of preloaded keys, uniform) against the bare net/http server and the naive reverse proxy of `bench/baseline` (`cachenode bench-baseline http|proxy`), single nodes, and the first node of a 2-node cluster asked only for keys the other node owns (`--remote-only`), without near cache (`--near-cache-ttl 0`: every GET crosses to the owner) and with the default near cache. The 3-node rows spread requests over all three nodes: 10,000 keys, 90%% reads, zipf s=1.1.\n\n",
		m["ops"], m["c"], m["keyspace"])
	r.p("The CPU column is the time the server processes (both nodes for the forwarded rows, proxy and bare server for the proxy) spent per operation, as for Redis above (not measured for the 3-node rows).\n\n")
	r.p("| target | ops/s | vs bare | vs naive proxy | p50 ms | p99 ms | p99.9 ms | errors | server CPU µs/op |\n|---|---|---|---|---|---|---|---|---|\n")
	ltLine := func(label, name string) {
		res := r.bestLT(name)
		if res == nil {
			r.p("| %s | (missing) | | | | | | | |\n", label)
			return
		}
		cpu := ""
		if c := r.bestLTCPU(name); c > 0 {
			cpu = fmt.Sprintf("%.1f", c)
		}
		vb, vp := "", ""
		if bare != nil {
			vb = fmt.Sprintf("%.2fx", ratio(res.OpsPerSec, bare.OpsPerSec))
		}
		if proxy != nil {
			vp = fmt.Sprintf("%.2fx", ratio(res.OpsPerSec, proxy.OpsPerSec))
		}
		r.p("| %s | %s | %s | %s | %s | %s | %s | %d | %s |\n", label, group(res.OpsPerSec), vb, vp,
			ms(res.Latency.P50), ms(res.Latency.P99), ms(res.Latency.P999), res.Errors+preloadErrors(res), cpu)
	}
	nodeMem, nodeRed := r.bestLT("nodemem"), r.bestLT("noderedis")
	fwd, fwdNear := r.bestLT("forwarded"), r.bestLT("forwardednear")
	ltLine("bare net/http (the ceiling)", "bare")
	ltLine("naive reverse proxy → bare", "proxy")
	ltLine("node, in-memory shard", "nodemem")
	ltLine("node, Redis shard, local tier hits", "noderedis")
	ltLine("node, Redis shard, no local tier (shard reads)", "noderedisnotier")
	ltLine("node → owner, forwarded (no near cache)", "forwarded")
	ltLine("node → owner, default near cache", "forwardednear")
	ltLine("3 nodes, HTTP, spread, 90% reads zipf", "cluster3-http")
	ltLine("3 nodes, RESP, spread, 90% reads zipf", "cluster3-resp")
	r.p("\n")

	// ---- memory ----
	rss := readKV(filepath.Join(r.dir, "rss.txt"))
	atoi := func(k string) float64 { v, _ := strconv.ParseFloat(rss[k], 64); return v }
	rr, rn := atoi("redis_kb"), atoi("node_kb")
	keys := atoi("keys")
	r.p("### Memory\n\n")
	r.p("RSS (`VmRSS` of /proc/PID/status) of a fresh process, then after `cachenode bench --target resp --preload --ops 0` wrote %s keys of %s bytes (and 2 s to settle); the node with its defaults (in-memory shard, local tier on), and without local tier (`--local-tier-bytes 0`).\n\n", group(keys), rss["value"])
	r.p("| process | empty MiB | with the keys MiB | bytes per key (difference) |\n|---|---|---|---|\n")
	perKey := func(full, empty float64) string {
		if keys == 0 {
			return ""
		}
		return group((full - empty) * 1024 / keys)
	}
	r.p("| redis-server | %.1f | %.1f | %s |\n", atoi("redis_empty_kb")/1024, rr/1024, perKey(rr, atoi("redis_empty_kb")))
	r.p("| cachenode | %.1f | %.1f | %s |\n", atoi("node_empty_kb")/1024, rn/1024, perKey(rn, atoi("node_empty_kb")))
	rnt := atoi("nodent_kb")
	r.p("| cachenode --local-tier-bytes 0 | %.1f | %.1f | %s |\n\n", atoi("nodent_empty_kb")/1024, rnt/1024, perKey(rnt, atoi("nodent_empty_kb")))

	// ---- targets ----
	r.p("### Targets (issue 7)\n\n| target | this run | |\n|---|---|---|\n")
	redis1, redis16 := rb["redis-P1"], rb["redis-P16"]
	for _, t := range []rbTarget{targets[1], targets[3]} {
		n1, n16 := rb[t.name+"-P1"], rb[t.name+"-P16"]
		if n1 == nil || redis1 == nil {
			continue
		}
		g, sr := ratio(n1["GET"].rps, redis1["GET"].rps), ratio(n1["SET"].rps, redis1["SET"].rps)
		r.p("| RESP GET ≥ 1.2x redis-server (%s) | %.2fx (-P 16: %.2fx); server CPU per request %.1f µs vs %.1f µs | %s |\n", t.label, g,
			ratio(n16["GET"].rps, redis16["GET"].rps), r.bestCPU(t.name+"-P1"), r.bestCPU("redis-P1"), met(g >= 1.2))
		r.p("| RESP SET ≥ 0.9x redis-server (%s) | %.2fx (-P 16: %.2fx) | %s |\n", t.label, sr, ratio(n16["SET"].rps, redis16["SET"].rps), met(sr >= 0.9))
		p99 := max(n1["GET"].p99, n1["SET"].p99)
		r.p("| RESP p99 ≤ 1 ms at -c 50 (%s) | GET %.2f ms, SET %.2f ms (redis-server: %.2f, %.2f) | %s |\n",
			t.label, n1["GET"].p99, n1["SET"].p99, redis1["GET"].p99, redis1["SET"].p99, met(p99 <= 1))
	}
	if n1 := rb["node1-P1"]; n1 != nil && redis1 != nil {
		r.p("| (for comparison: in-memory shard, GOMAXPROCS=1) | GET %.2fx, SET %.2fx, p99 %.2f / %.2f ms | |\n",
			ratio(n1["GET"].rps, redis1["GET"].rps), ratio(n1["SET"].rps, redis1["SET"].rps), n1["GET"].p99, n1["SET"].p99)
	}
	// cpuNote compares server CPU per operation: how many times more work
	// per operation base's servers did than these (1 = the same cost).
	cpuNote := func(name, base string) string {
		c, b := r.bestLTCPU(name), r.bestLTCPU(base)
		if c == 0 || b == 0 {
			return ""
		}
		return fmt.Sprintf("; server CPU per GET %.1f µs vs %.1f µs", c, b)
	}
	if bare != nil {
		for _, x := range []struct {
			label, name string
			res         *load.Result
		}{{"Redis shard, local tier hits", "noderedis", nodeRed}, {"in-memory shard", "nodemem", nodeMem}} {
			if x.res != nil {
				v := ratio(x.res.OpsPerSec, bare.OpsPerSec)
				r.p("| HTTP GET local hit ≥ 0.85x bare net/http (%s) | %.2fx%s | %s |\n", x.label, v, cpuNote(x.name, "bare"), met(v >= 0.85))
			}
		}
	}
	if proxy != nil {
		for _, x := range []struct {
			label, name string
			res         *load.Result
		}{{"no near cache: every GET forwarded", "forwarded", fwd}, {"default near cache", "forwardednear", fwdNear}} {
			if x.res != nil {
				v := ratio(x.res.OpsPerSec, proxy.OpsPerSec)
				r.p("| forwarded GET ≥ 2x naive reverse proxy (%s) | %.2fx%s | %s |\n", x.label, v, cpuNote(x.name, "proxy"), met(v >= 2))
			}
		}
	}
	if rr > 0 {
		x := rn / rr
		r.p("| RSS with %s small keys ≤ 3x redis-server (defaults) | %.2fx (%.1f vs %.1f MiB) | %s |\n", group(keys), x, rn/1024, rr/1024, met(x <= 3))
		if rnt > 0 {
			r.p("| RSS with %s small keys ≤ 3x redis-server (no local tier) | %.2fx (%.1f MiB) | %s |\n", group(keys), rnt/rr, rnt/1024, met(rnt/rr <= 3))
		}
	}
	r.p("\n")
	return r.b.String(), nil
}

func preloadErrors(res *load.Result) int64 {
	if res.Preload == nil {
		return 0
	}
	return res.Preload.Errors
}

func first(s string) string {
	f, _, _ := strings.Cut(s, " ")
	return f
}
