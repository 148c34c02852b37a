package main

// Client subcommands: get, put, del, cluster and mode talk to a running node
// over its HTTP API. Exit codes: 0 done, 1 not found or the request failed,
// 2 usage.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peercache/peercache/migrate"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/status"
)

// Exit codes of the client subcommands.
const (
	exitOK     = 0
	exitFailed = 1 // not found, refused, node unreachable
	exitUsage  = 2
)

// defaultAddr is the node the client subcommands talk to without --addr or
// CACHENODE_ADDR.
const defaultAddr = "127.0.0.1:8080"

// cli runs one client subcommand.
type cli struct {
	name   string // subcommand
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string

	addr    string
	timeout time.Duration
	client  *http.Client
	// Credentials and TLS (--user, --password, --cacert or their env
	// vars); scheme is "https" with --cacert.
	user, password, cacert string
	scheme                 string
}

// runCLI runs client subcommand name with args and returns the exit code.
func runCLI(name string, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if name == "delete" {
		name = "del"
	}
	c := &cli{name: name, stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	switch name {
	case "get":
		return c.get(args)
	case "put":
		return c.put(args)
	case "del":
		return c.del(args)
	case "cluster":
		return c.cluster(args)
	case "mode":
		return c.mode(args)
	case "warm":
		return c.warm(args)
	}
	return c.usage("unknown subcommand")
}

// usages are the one-line synopses, shown on usage errors and -h.
func usageLine(name string) string {
	switch name {
	case "get":
		return "cachenode get [--addr host:port] KEY"
	case "put":
		return "cachenode put [--addr host:port] [--ttl 30s] KEY VALUE|-   (- reads the value from stdin)"
	case "del":
		return "cachenode del [--addr host:port] KEY"
	case "cluster":
		return "cachenode cluster [--addr host:port] [--json]"
	case "mode":
		return "cachenode mode [--addr host:port] [read-only|read-write [--scope cluster|node]]"
	case "warm":
		return "cachenode warm [--addr host:port] [--batch 1000] --keys-file FILE|-   (one key per line; - reads stdin)"
	}
	return "cachenode get|put|del|cluster|mode --addr host:port ..."
}

func (c *cli) usage(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "cachenode %s: %s\nusage: %s\n", c.name, fmt.Sprintf(format, args...), usageLine(c.name))
	return exitUsage
}

func (c *cli) fail(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "cachenode %s: %s\n", c.name, fmt.Sprintf(format, args...))
	return exitFailed
}

// flags returns the subcommand's flag set with the common flags.
func (c *cli) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("cachenode "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.addr, "addr", "", "node HTTP address host:port (env CACHENODE_ADDR; default "+defaultAddr+")")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "request timeout")
	fs.StringVar(&c.user, "user", "", "user name when the node asks for one (env CACHENODE_USER; default: \"default\")")
	fs.StringVar(&c.password, "password", "", "password when the node asks for one (prefer the env var CACHENODE_PASSWORD: flags show in ps)")
	fs.StringVar(&c.cacert, "cacert", "", "CA certificate (PEM) to verify the node's TLS certificate; talks HTTPS (env CACHENODE_CACERT)")
	return fs
}

// parse parses flags given anywhere among the arguments (flags after "--"
// are arguments) and returns the positional arguments, or an exit code.
func (c *cli) parse(fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(c.stdout, "usage: %s\n\nflags:\n", usageLine(c.name))
				fs.SetOutput(c.stdout)
				fs.PrintDefaults()
				return nil, exitOK, false
			}
			return nil, c.usage("%v", err), false
		}
		rest := fs.Args()
		consumed := args[:len(args)-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if c.addr == "" {
		c.addr = c.getenv("CACHENODE_ADDR")
	}
	if c.addr == "" {
		c.addr = defaultAddr
	}
	for _, e := range []struct {
		v   *string
		env string
	}{{&c.user, "CACHENODE_USER"}, {&c.password, "CACHENODE_PASSWORD"}, {&c.cacert, "CACHENODE_CACERT"}} {
		if *e.v == "" {
			*e.v = c.getenv(e.env)
		}
	}
	c.scheme = "http"
	if strings.HasPrefix(c.addr, "https://") || c.cacert != "" {
		c.scheme = "https"
	}
	c.addr = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(c.addr, "http://"), "https://"), "/")
	if c.timeout <= 0 {
		return nil, c.usage("--timeout must be positive"), false
	}
	c.client = &http.Client{Timeout: c.timeout}
	if c.cacert != "" {
		tc, err := tlsClient(c.cacert)
		if err != nil {
			return nil, c.usage("%v", err), false
		}
		c.client.Transport = &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	}
	return pos, 0, true
}

// call sends a request to the node and returns status, headers and body.
func (c *cli) call(method, path string, body io.Reader) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(method, c.scheme+"://"+c.addr+path, body)
	if err != nil {
		return 0, nil, nil, err
	}
	if c.password != "" {
		user := c.user
		if user == "" {
			user = "default"
		}
		req.SetBasicAuth(user, c.password)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("cannot reach node at %s: %v", c.addr, unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading answer from %s: %v", c.addr, err)
	}
	return resp.StatusCode, resp.Header, b, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// apiError renders a node's error answer: its JSON message and the status.
func (c *cli) apiError(status int, body []byte) int {
	var je struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &je) == nil && je.Error != "" {
		msg = je.Error
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	if status == http.StatusUnauthorized {
		msg += "; give --password (or CACHENODE_PASSWORD) and --user for a users-file user"
	}
	return c.fail("%s (HTTP %d from %s)", msg, status, c.addr)
}

func cliKeyPath(key string) string { return "/v1/keys/" + url.PathEscape(key) }

func (c *cli) get(args []string) int {
	pos, code, ok := c.parse(c.flags(), args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return c.usage("want exactly one KEY, got %d arguments", len(pos))
	}
	status, _, body, err := c.call(http.MethodGet, cliKeyPath(pos[0]), nil)
	switch {
	case err != nil:
		return c.fail("%v", err)
	case status == http.StatusNotFound:
		return c.fail("key %q not found", pos[0])
	case status != http.StatusOK:
		return c.apiError(status, body)
	}
	c.stdout.Write(body)
	if isTerminal(c.stdout) && !bytes.HasSuffix(body, []byte("\n")) {
		fmt.Fprintln(c.stdout)
	}
	return exitOK
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (c *cli) put(args []string) int {
	fs := c.flags()
	ttl := fs.Duration("ttl", 0, "time to live, e.g. 30s or 2h (default: no expiry)")
	pos, code, ok := c.parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return c.usage("want KEY and VALUE (or - to read it from stdin), got %d arguments", len(pos))
	}
	if *ttl < 0 || (*ttl > 0 && *ttl < time.Millisecond) {
		return c.usage("--ttl %s: want a positive duration of at least 1ms", *ttl)
	}
	var value []byte
	if pos[1] == "-" {
		var err error
		if value, err = io.ReadAll(c.stdin); err != nil {
			return c.fail("reading the value from stdin: %v", err)
		}
	} else {
		value = []byte(pos[1])
	}
	path := cliKeyPath(pos[0])
	if *ttl > 0 {
		path += "?ttl=" + url.QueryEscape(ttl.String())
	}
	status, h, body, err := c.call(http.MethodPut, path, bytes.NewReader(value))
	switch {
	case err != nil:
		return c.fail("%v", err)
	case status != http.StatusNoContent && status != http.StatusOK:
		return c.apiError(status, body)
	}
	fmt.Fprintf(c.stdout, "OK (owner %s)\n", h.Get("X-Peercache-Owner"))
	return exitOK
}

func (c *cli) del(args []string) int {
	pos, code, ok := c.parse(c.flags(), args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return c.usage("want exactly one KEY, got %d arguments", len(pos))
	}
	status, _, body, err := c.call(http.MethodDelete, cliKeyPath(pos[0]), nil)
	switch {
	case err != nil:
		return c.fail("%v", err)
	case status != http.StatusNoContent && status != http.StatusOK:
		return c.apiError(status, body)
	}
	fmt.Fprintln(c.stdout, "OK")
	return exitOK
}

func (c *cli) cluster(args []string) int {
	fs := c.flags()
	asJSON := fs.Bool("json", false, "print the /v1/cluster document as JSON")
	pos, code, ok := c.parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return c.usage("unexpected argument %q", pos[0])
	}
	status, _, body, err := c.call(http.MethodGet, "/v1/cluster", nil)
	switch {
	case err != nil:
		return c.fail("%v", err)
	case status != http.StatusOK:
		return c.apiError(status, body)
	}
	if *asJSON {
		c.stdout.Write(body)
		return exitOK
	}
	var rep node.ClusterReport
	if err := json.Unmarshal(body, &rep); err != nil {
		return c.fail("the answer of %s is not a cluster document: %v", c.addr, err)
	}
	writeClusterTable(c.stdout, c.addr, rep)
	return exitOK
}

// writeClusterTable prints the cluster as a table, one line per member.
func writeClusterTable(w io.Writer, addr string, rep node.ClusterReport) {
	byName := map[string]status.NodeReport{}
	for _, nr := range rep.Nodes {
		byName[nr.Name] = nr
	}
	fmt.Fprintf(w, "cluster seen from %s (%s): %d members, ring v%d (%d in ring, checksum %s), mode %s, auth: %s\n\n",
		rep.Self, addr, len(rep.Members), rep.Ring.Version, len(rep.Ring.Members), rep.Ring.Checksum, rep.ClusterMode, rep.Auth)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tSTATE\tMODE\tKEYS\tMEMORY\tHIT RATIO\tREQ/S\tMIGRATION")
	var problems []string
	for _, m := range rep.Members {
		nr := byName[m.Name]
		state := m.State
		if !nr.Reachable || nr.NodeStatus == nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t-\t-\n", m.Name, m.HTTPAddr, "unreachable")
			problems = append(problems, fmt.Sprintf("%s: %s", m.Name, nr.Error))
			continue
		}
		st := nr.NodeStatus
		if st.Migration.Active {
			state += "*"
		}
		hit := "-"
		if st.HitRatio != nil {
			hit = fmt.Sprintf("%.1f%%", *st.HitRatio*100)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s\n", m.Name, m.HTTPAddr, state, st.Mode,
			groupDigits(st.Keys), formatBytes(st.MemoryBytes), hit, st.RequestRate, migrationSummary(st.Migration))
		if st.StoreError != "" {
			problems = append(problems, fmt.Sprintf("%s: store: %s", m.Name, st.StoreError))
		}
	}
	tw.Flush()
	if len(problems) > 0 {
		fmt.Fprintln(w)
		for _, p := range problems {
			fmt.Fprintln(w, p)
		}
	}
}

// migrationSummary is one member's migration column.
func migrationSummary(s migrate.Status) string {
	if !s.Active {
		if s.Last != nil && s.Last.Moved+s.Last.Stale == 0 {
			return fmt.Sprintf("idle (last %s: nothing to move)", s.Last.Reason)
		}
		if s.Last != nil {
			return fmt.Sprintf("idle (last %s: %s keys in %s)", s.Last.Reason, groupDigits(s.Last.Moved+s.Last.Stale),
				s.Last.Duration.Round(time.Millisecond))
		}
		return "idle"
	}
	done := s.Moved + s.Stale + s.Dropped
	if s.Planned == 0 {
		return fmt.Sprintf("%s: scanning (%s keys read)", s.Reason, groupDigits(s.Scanned))
	}
	return fmt.Sprintf("%s: %d%% (%s/%s keys, %.0f keys/s)", s.Reason, min(100, done*100/s.Planned),
		groupDigits(done), groupDigits(s.Planned), s.KeysPerSec)
}

// groupDigits formats n with thousands separators.
func groupDigits(n int64) string { return groupDecimal(strconv.FormatInt(n, 10)) }

// groupDecimal inserts thousands separators into s, a decimal integer with
// an optional leading '-'.
func groupDecimal(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatBytes formats b in binary units.
func formatBytes(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit && exp < 4; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTP"[exp])
}

func (c *cli) mode(args []string) int {
	fs := c.flags()
	scope := fs.String("scope", "cluster", "what to change: cluster (every member, and members that join later) or node (the node at --addr)")
	pos, code, ok := c.parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		return c.usage("want at most one mode, got %d arguments", len(pos))
	}
	if len(pos) == 0 {
		status, _, body, err := c.call(http.MethodGet, "/v1/mode", nil)
		switch {
		case err != nil:
			return c.fail("%v", err)
		case status != http.StatusOK:
			return c.apiError(status, body)
		}
		var mi node.ModeInfo
		if err := json.Unmarshal(body, &mi); err != nil {
			return c.fail("the answer of %s is not a mode document: %v", c.addr, err)
		}
		set := ""
		if !mi.ClusterModeSetAt.IsZero() {
			set = " (set " + mi.ClusterModeSetAt.Format(time.RFC3339) + ")"
		}
		fmt.Fprintf(c.stdout, "%s is %s\n  cluster mode: %s%s\n  node mode:    %s\n", mi.Node, mi.Mode, mi.ClusterMode, set, mi.NodeMode)
		return exitOK
	}
	mode, err := node.ParseMode(pos[0])
	if err != nil {
		return c.usage("%v", err)
	}
	sc, err := node.ParseScope(*scope)
	if err != nil {
		return c.usage("--scope: %v", err)
	}
	req, _ := json.Marshal(map[string]string{"mode": string(mode), "scope": string(sc)})
	status, _, body, err := c.call(http.MethodPut, "/v1/mode", bytes.NewReader(req))
	switch {
	case err != nil:
		return c.fail("%v", err)
	case status != http.StatusOK:
		return c.apiError(status, body)
	}
	var mc node.ModeChange
	if err := json.Unmarshal(body, &mc); err != nil {
		return c.fail("the answer of %s is not a mode document: %v", c.addr, err)
	}
	if sc == node.ScopeNode {
		fmt.Fprintf(c.stdout, "node %s is now %s (node mode; cluster mode is %s, so it applies %s)\n", mc.Node, mode, mc.ClusterMode, mc.Mode)
		return exitOK
	}
	total := len(mc.Acknowledged) + len(mc.Pending)
	fmt.Fprintf(c.stdout, "cluster mode is now %s: carried by %d/%d members", mode, len(mc.Acknowledged), total)
	if len(mc.Pending) > 0 {
		fmt.Fprintf(c.stdout, " (not yet: %s; gossip brings it to them shortly)", strings.Join(mc.Pending, ", "))
	}
	fmt.Fprintln(c.stdout)
	return exitOK
}

// warm loads the keys of a file (one per line) into the cluster through
// POST /v1/warm, a batch at a time, printing a progress line per batch and
// the totals. Exit 1 when any key failed.
func (c *cli) warm(args []string) int {
	fs := c.flags()
	file := fs.String("keys-file", "", "file with one key per line (- for standard input)")
	batch := fs.Int("batch", 1000, "keys per request")
	pos, code, ok := c.parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 || *file == "" || *batch <= 0 {
		return c.usage("want --keys-file FILE and no other argument")
	}
	in := c.stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return c.fail("%v", err)
		}
		defer f.Close()
		in = f
	}
	var keys []string
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		if k := strings.TrimRight(sc.Text(), "\r"); k != "" {
			keys = append(keys, k)
		}
	}
	if err := sc.Err(); err != nil {
		return c.fail("reading %s: %v", *file, err)
	}
	var total node.WarmResult
	for done := 0; done < len(keys); {
		part := keys[done:min(done+*batch, len(keys))]
		status, _, body, err := c.call(http.MethodPost, "/v1/warm", strings.NewReader(strings.Join(part, "\n")))
		if err != nil {
			return c.fail("%v", err)
		}
		if status != http.StatusOK {
			return c.apiError(status, body)
		}
		var r node.WarmResult
		if err := json.Unmarshal(body, &r); err != nil {
			return c.fail("the answer of %s is not a warm-up result: %v", c.addr, err)
		}
		total.Keys += r.Keys
		total.Present += r.Present
		total.Loaded += r.Loaded
		total.Missing += r.Missing
		total.Failed += r.Failed
		if total.Error == "" {
			total.Error = r.Error
		}
		done += len(part)
		fmt.Fprintf(c.stderr, "warm: %d/%d keys: %d present, %d loaded, %d missing, %d failed\n",
			done, len(keys), total.Present, total.Loaded, total.Missing, total.Failed)
	}
	fmt.Fprintf(c.stdout, "warmed %d keys: %d were cached, %d loaded from the origin, %d missing, %d failed\n",
		total.Keys, total.Present, total.Loaded, total.Missing, total.Failed)
	if total.Failed > 0 {
		fmt.Fprintf(c.stderr, "cachenode warm: first error: %s\n", total.Error)
		return exitFailed
	}
	return exitOK
}
