package resp

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/tidwall/redcon"

	"github.com/peercache/peercache/auth"
	"github.com/peercache/peercache/internal/redisnum"
	"github.com/peercache/peercache/node"
)

// maxCommandName bounds command names looked up (longer ones are unknown).
const maxCommandName = 32

// maxTTL is the longest expiry accepted (as the HTTP API: about 100 years;
// longer ones would overflow a time.Duration not far beyond).
const maxTTL = 100 * 365 * 24 * time.Hour

// cmdSpec describes one command: what COMMAND reports, and its handler.
type cmdSpec struct {
	name       string // lower case, as Redis reports it
	arity      int    // Redis convention: n exact, -n at least n (the name counts)
	flags      []string
	firstKey   int
	lastKey    int
	step       int
	categories []string
	group      string
	since      string
	summary    string
	run        func(s *Server, c redcon.Conn, cl *client, args [][]byte)
	// role is what a client's user needs to run it (from flags: write ->
	// write, admin -> admin, no_auth -> none, else read).
	role auth.Role
}

func roleOf(flags []string) auth.Role {
	r := auth.RoleRead
	for _, f := range flags {
		switch f {
		case "no_auth":
			return auth.RoleNone
		case "admin":
			return auth.RoleAdmin
		case "write":
			r = auth.RoleWrite
		}
	}
	return r
}

func (c *cmdSpec) arityOK(n int) bool {
	if c.arity >= 0 {
		return n == c.arity
	}
	return n >= -c.arity
}

// commands is the command table, by lower-case name. Built once at init
// (handlers refer back to the table); read-only afterwards.
var commands map[string]*cmdSpec

func init() {
	commands = buildCommands()
	specGet, specSet = commands["get"], commands["set"]
	specDel, specUnlink = commands["del"], commands["unlink"]
	specPing, specEcho = commands["ping"], commands["echo"]
}

func buildCommands() map[string]*cmdSpec {
	rd := []string{"readonly", "fast"}
	wr := []string{"write", "denyoom"}
	wf := []string{"write", "fast"}
	conn := []string{"noscript", "loading", "stale", "fast"}
	str, ks, gen, cn, srv := "string", "keyspace", "generic", "connection", "server"
	list := []*cmdSpec{
		{name: "get", arity: 2, flags: rd, firstKey: 1, lastKey: 1, step: 1, group: str, since: "1.0.0", summary: "Get the value of a key", run: cmdGet},
		{name: "set", arity: -3, flags: wr, firstKey: 1, lastKey: 1, step: 1, group: str, since: "1.0.0", summary: "Set the string value of a key (EX, PX, EXAT, PXAT, NX, XX, KEEPTTL, GET)", run: cmdSet},
		{name: "setnx", arity: 3, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: str, since: "1.0.0", summary: "Set the value of a key, only if the key does not exist", run: cmdSetNX},
		{name: "setex", arity: 4, flags: wr, firstKey: 1, lastKey: 1, step: 1, group: str, since: "2.0.0", summary: "Set the value and expiration of a key", run: cmdSetEX},
		{name: "psetex", arity: 4, flags: wr, firstKey: 1, lastKey: 1, step: 1, group: str, since: "2.6.0", summary: "Set the value and expiration in milliseconds of a key", run: cmdPSetEX},
		{name: "incr", arity: 2, flags: wf, firstKey: 1, lastKey: 1, step: 1, group: str, since: "1.0.0", summary: "Increment the integer value of a key by one", run: cmdIncr},
		{name: "decr", arity: 2, flags: wf, firstKey: 1, lastKey: 1, step: 1, group: str, since: "1.0.0", summary: "Decrement the integer value of a key by one", run: cmdIncr},
		{name: "incrby", arity: 3, flags: wf, firstKey: 1, lastKey: 1, step: 1, group: str, since: "1.0.0", summary: "Increment the integer value of a key by the given amount", run: cmdIncr},
		{name: "decrby", arity: 3, flags: wf, firstKey: 1, lastKey: 1, step: 1, group: str, since: "1.0.0", summary: "Decrement the integer value of a key by the given number", run: cmdIncr},
		{name: "incrbyfloat", arity: 3, flags: wf, firstKey: 1, lastKey: 1, step: 1, group: str, since: "2.6.0", summary: "Increment the float value of a key by the given amount", run: cmdIncrByFloat},
		{name: "append", arity: 3, flags: wr, firstKey: 1, lastKey: 1, step: 1, group: str, since: "2.0.0", summary: "Append a value to a key", run: cmdAppend},
		{name: "setrange", arity: 4, flags: wr, firstKey: 1, lastKey: 1, step: 1, group: str, since: "2.2.0", summary: "Overwrite part of a string at key starting at the specified offset", run: cmdSetRange},
		{name: "getrange", arity: 4, flags: []string{"readonly"}, firstKey: 1, lastKey: 1, step: 1, group: str, since: "2.4.0", summary: "Get a substring of the string stored at a key", run: cmdGetRange},
		{name: "getdel", arity: 2, flags: wf, firstKey: 1, lastKey: 1, step: 1, group: str, since: "6.2.0", summary: "Get the value of a key and delete the key (atomically, on its owner)", run: cmdGetDel},
		{name: "getex", arity: -2, flags: wf, firstKey: 1, lastKey: 1, step: 1, group: str, since: "6.2.0", summary: "Get the value of a key and optionally set its expiration (atomically, on its owner)", run: cmdGetEx},
		{name: "getset", arity: 3, flags: wr, firstKey: 1, lastKey: 1, step: 1, group: str, since: "1.0.0", summary: "Set the string value of a key and return its old value (atomically, on its owner)", run: cmdGetDel},
		{name: "type", arity: 2, flags: rd, firstKey: 1, lastKey: 1, step: 1, group: ks, since: "1.0.0", summary: "Determine the type stored at key (string or none)", run: cmdType},
		{name: "touch", arity: -2, flags: rd, firstKey: 1, lastKey: -1, step: 1, group: ks, since: "3.2.1", summary: "Count the keys that exist (there is no access time to update)", run: cmdExists},
		{name: "expiretime", arity: 2, flags: rd, firstKey: 1, lastKey: 1, step: 1, group: gen, since: "7.0.0", summary: "Get the expiration Unix timestamp for a key", run: cmdExpireTime},
		{name: "pexpiretime", arity: 2, flags: rd, firstKey: 1, lastKey: 1, step: 1, group: gen, since: "7.0.0", summary: "Get the expiration Unix timestamp for a key in milliseconds", run: cmdExpireTime},
		{name: "strlen", arity: 2, flags: rd, firstKey: 1, lastKey: 1, step: 1, group: str, since: "2.2.0", summary: "Get the length of the value stored in a key", run: cmdStrlen},
		{name: "mget", arity: -2, flags: rd, firstKey: 1, lastKey: -1, step: 1, group: str, since: "1.0.0", summary: "Get the values of all the given keys (read from their owners in parallel)", run: cmdMGet},
		{name: "mset", arity: -3, flags: wr, firstKey: 1, lastKey: -1, step: 2, group: str, since: "1.0.1", summary: "Set multiple keys to multiple values (each key atomically, not the whole set)", run: cmdMSet},
		{name: "msetnx", arity: -3, flags: wr, firstKey: 1, lastKey: -1, step: 2, group: str, since: "1.0.1", summary: "Set multiple keys of one slot, only if none exists (atomically, on their owner)", run: cmdMSetNX},
		{name: "rename", arity: 3, flags: []string{"write"}, firstKey: 1, lastKey: 2, step: 1, group: gen, since: "1.0.0", summary: "Rename a key (both keys in one slot; atomically, on their owner)", run: cmdRename},
		{name: "renamenx", arity: 3, flags: wf, firstKey: 1, lastKey: 2, step: 1, group: gen, since: "1.0.0", summary: "Rename a key, only if the new key does not exist (both in one slot)", run: cmdRename},
		{name: "copy", arity: -3, flags: wr, firstKey: 1, lastKey: 2, step: 1, group: gen, since: "6.2.0", summary: "Copy a key (both keys in one slot; DB 0 only; REPLACE)", run: cmdCopy},
		{name: "del", arity: -2, flags: []string{"write"}, firstKey: 1, lastKey: -1, step: 1, group: ks, since: "1.0.0", summary: "Delete keys", run: cmdDel},
		{name: "unlink", arity: -2, flags: wf, firstKey: 1, lastKey: -1, step: 1, group: ks, since: "4.0.0", summary: "Delete keys (same as DEL)", run: cmdDel},
		{name: "exists", arity: -2, flags: rd, firstKey: 1, lastKey: -1, step: 1, group: ks, since: "1.0.0", summary: "Determine how many of the keys exist", run: cmdExists},
		{name: "expire", arity: -3, flags: wf, firstKey: 1, lastKey: 1, step: 1, group: gen, since: "1.0.0", summary: "Set a key's time to live in seconds", run: cmdExpire},
		{name: "pexpire", arity: -3, flags: wf, firstKey: 1, lastKey: 1, step: 1, group: gen, since: "2.6.0", summary: "Set a key's time to live in milliseconds", run: cmdExpire},
		{name: "expireat", arity: -3, flags: wf, firstKey: 1, lastKey: 1, step: 1, group: gen, since: "1.2.0", summary: "Set the expiration for a key as a UNIX timestamp", run: cmdExpire},
		{name: "pexpireat", arity: -3, flags: wf, firstKey: 1, lastKey: 1, step: 1, group: gen, since: "2.6.0", summary: "Set the expiration for a key as a UNIX timestamp in milliseconds", run: cmdExpire},
		{name: "ttl", arity: 2, flags: rd, firstKey: 1, lastKey: 1, step: 1, group: gen, since: "1.0.0", summary: "Get the time to live for a key in seconds", run: cmdTTL},
		{name: "pttl", arity: 2, flags: rd, firstKey: 1, lastKey: 1, step: 1, group: gen, since: "2.6.0", summary: "Get the time to live for a key in milliseconds", run: cmdTTL},
		{name: "persist", arity: 2, flags: wf, firstKey: 1, lastKey: 1, step: 1, group: gen, since: "2.2.0", summary: "Remove the expiration from a key", run: cmdPersist},
		{name: "scan", arity: -2, flags: []string{"readonly"}, group: ks, since: "2.8.0", summary: "Iterate the keys: this node's in cluster mode, the whole cluster's in proxy mode (MATCH, COUNT, TYPE)", run: cmdScan},
		{name: "keys", arity: 2, flags: []string{"readonly"}, group: ks, since: "1.0.0", summary: "The keys matching a pattern: this node's in cluster mode, the cluster's in proxy mode (a full scan)", run: cmdKeys},
		{name: "dbsize", arity: 1, flags: []string{"readonly"}, group: srv, since: "1.0.0", summary: "The number of keys: this node's in cluster mode, the cluster's in proxy mode (a full scan)", run: cmdKeys},
		{name: "flushdb", arity: -1, flags: []string{"write", "admin"}, group: srv, since: "1.0.0", summary: "Delete every key: this node's in cluster mode, the cluster's in proxy mode (admin)", run: cmdFlush},
		{name: "flushall", arity: -1, flags: []string{"write", "admin"}, group: srv, since: "1.0.0", summary: "Delete every key: this node's in cluster mode, the cluster's in proxy mode (admin; one database)", run: cmdFlush},
		{name: "ping", arity: -1, flags: []string{"fast"}, group: cn, since: "1.0.0", summary: "Ping the server", run: cmdPing},
		{name: "echo", arity: 2, flags: []string{"fast"}, group: cn, since: "1.0.0", summary: "Echo the given string", run: cmdEcho},
		{name: "quit", arity: -1, flags: []string{"allow_busy", "noscript", "loading", "stale", "fast", "no_auth"}, group: cn, since: "1.0.0", summary: "Close the connection", run: cmdQuit},
		{name: "select", arity: 2, flags: conn, group: cn, since: "1.0.0", summary: "Select the logical database (only 0 exists)", run: cmdSelect},
		{name: "auth", arity: -2, flags: []string{"noscript", "loading", "stale", "fast", "no_auth"}, group: cn, since: "1.0.0", summary: "Authenticate to the server (AUTH [username] password)", run: cmdAuth},
		{name: "hello", arity: -1, flags: []string{"noscript", "loading", "stale", "fast", "no_auth"}, group: cn, since: "6.0.0", summary: "Handshake (RESP2 only)", run: cmdHello},
		{name: "client", arity: -2, flags: []string{"sentinel"}, group: cn, since: "2.4.0", summary: "ID, SETNAME, GETNAME, SETINFO, INFO, LIST", run: cmdClient},
		{name: "command", arity: -1, flags: []string{"loading", "stale"}, group: srv, since: "2.8.13", summary: "Get details about commands: COUNT, INFO, DOCS, LIST", run: cmdCommand},
		{name: "info", arity: -1, flags: []string{"loading", "stale"}, group: srv, since: "1.0.0", summary: "Server, clients, stats, keyspace and cluster figures", run: cmdInfo},
		{name: "config", arity: -2, flags: []string{"admin", "noscript", "loading", "stale"}, group: srv, since: "2.0.0", summary: "CONFIG GET (read-only view) and RESETSTAT", run: cmdConfig},
		{name: "cluster", arity: -2, flags: []string{"loading", "stale"}, group: "cluster", since: "3.0.0", summary: "Cluster mode: SLOTS, SHARDS, NODES, INFO, MYID, KEYSLOT, COUNTKEYSINSLOT, GETKEYSINSLOT", run: cmdCluster},
		{name: "readonly", arity: 1, flags: []string{"loading", "stale", "fast"}, group: "cluster", since: "3.0.0", summary: "Cluster mode: serve reads of slots this node holds replicas of", run: cmdReadOnly},
		{name: "readwrite", arity: 1, flags: []string{"loading", "stale", "fast"}, group: "cluster", since: "3.0.0", summary: "Cluster mode: end READONLY", run: cmdReadOnly},
		{name: "asking", arity: 1, flags: []string{"fast"}, group: "cluster", since: "3.0.0", summary: "Cluster mode: accepted (peercache never redirects with ASK)", run: cmdReadOnly},
		{name: "time", arity: 1, flags: []string{"loading", "stale", "fast"}, group: srv, since: "2.6.0", summary: "Return the server time", run: cmdTime},
	}
	m := make(map[string]*cmdSpec, len(list))
	for _, c := range list {
		c.categories = categoriesOf(c)
		c.role = roleOf(c.flags)
		m[c.name] = c
	}
	return m
}

func categoriesOf(c *cmdSpec) []string {
	var out []string
	for _, f := range c.flags {
		switch f {
		case "write":
			out = append(out, "@write")
		case "readonly":
			out = append(out, "@read")
		case "fast":
			out = append(out, "@fast")
		case "admin":
			out = append(out, "@admin", "@dangerous")
		}
	}
	if len(out) == 0 || out[len(out)-1] != "@fast" {
		out = append(out, "@slow")
	}
	return append(out, "@"+c.group)
}

// Hot commands, looked up without the map (set with commands).
var specGet, specSet, specDel, specUnlink, specPing, specEcho *cmdSpec

// lookup finds a command by name, case-insensitively, without allocating.
func lookup(cl *client, name []byte) *cmdSpec {
	if len(name) == 3 {
		switch {
		case isOpt(name, "GET"):
			return specGet
		case isOpt(name, "SET"):
			return specSet
		}
	}
	if len(name) > maxCommandName {
		return nil
	}
	b := cl.nameBuf[:len(name)]
	for i, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		b[i] = ch
	}
	return commands[string(b)]
}

// isOpt reports whether arg equals the upper-case option opt, ignoring case.
func isOpt(arg []byte, opt string) bool {
	if len(arg) != len(opt) {
		return false
	}
	for i := 0; i < len(arg); i++ {
		ch := arg[i]
		if 'a' <= ch && ch <= 'z' {
			ch -= 'a' - 'A'
		}
		if ch != opt[i] {
			return false
		}
	}
	return true
}

// parseInt parses a decimal int64 as Redis does (string2ll).
func parseInt(b []byte) (int64, bool) { return redisnum.ParseInt(b) }

const (
	errNotInteger = "ERR value is not an integer or out of range"
	errSyntax     = "ERR syntax error"
)

func errInvalidExpire(cmd string) string {
	return "ERR invalid expire time in '" + cmd + "' command"
}

// ttlOf converts an expiry argument to a time to live. unit is the
// argument's unit; absolute arguments are Unix times. ok is false when the
// value is out of range (Redis: invalid expire time); a zero or negative ttl
// means "already expired".
func ttlOf(v int64, unit time.Duration, absolute bool, now time.Time) (time.Duration, bool) {
	maxUnits := int64(maxTTL / unit)
	if absolute {
		nowUnits := now.UnixMilli() * int64(time.Millisecond) / int64(unit)
		if v > nowUnits+maxUnits {
			return 0, false
		}
		if v < 0 {
			return -1, true
		}
		return time.Unix(0, 0).Add(time.Duration(v) * unit).Sub(now), true
	}
	if v > maxUnits {
		return 0, false
	}
	if v < -maxUnits {
		return -1, true
	}
	return time.Duration(v) * unit, true
}

// instant is the absolute expiry v units (seconds or milliseconds) after
// the Unix epoch, for a v that ttlOf accepted as an absolute time in the
// future.
func instant(v int64, unit time.Duration) time.Time {
	return time.UnixMilli(v * int64(unit/time.Millisecond))
}

// ---- strings ----

func cmdGet(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	it, err := s.b.Get(s.cmdCtx(), string(args[1]))
	s.writeGet(c, it, err)
}

// slowCommand is how long a command must take before the commands
// pipelined behind it run in parallel (an in-memory read takes about a
// microsecond; a forwarded one or a Redis round trip tens of microseconds).
const slowCommand = 20 * time.Microsecond

func (s *Server) writeGet(c redcon.Conn, it node.Item, err error) {
	switch {
	case err == nil:
		s.stats.hits.Add(1)
		c.WriteBulk(it.Value)
	case errors.Is(err, node.ErrNotFound):
		s.stats.misses.Add(1)
		c.WriteNull()
	default:
		s.writeNodeErr(c, err)
	}
}

// singleKey returns the key of a command that touches exactly one key,
// args[1] (GET, SET, EXPIRE, TTL, DEL k, ...), and whose reply depends on
// nothing but that key: such commands on different keys may run in
// parallel without anyone being able to tell.
func singleKey(spec *cmdSpec, args [][]byte) ([]byte, bool) {
	if spec == nil || !spec.arityOK(len(args)) || len(args) < 2 {
		return nil, false
	}
	switch {
	case spec.firstKey == 1 && spec.lastKey == 1:
	case spec.firstKey == 1 && spec.lastKey == -1 && spec.step == 1 && len(args) == 2: // DEL k, EXISTS k
	default:
		return nil, false
	}
	return args[1], true
}

// runPipeline answers commands taken from the connection's pipeline, in
// order. Runs of consecutive single-key commands on distinct keys execute
// in parallel (a forwarded write does not wait for the reply to the one
// before it; commands on the same key keep their order, since a repeated
// key ends the run), each into a reply buffer of its own; the replies are
// then sent in order. Everything else runs one by one.
func (s *Server) runPipeline(c redcon.Conn, cl *client, cmds []redcon.Command) {
	for i := 0; i < len(cmds); {
		run := cl.jobs[:0]
		var seen map[string]struct{} // keys of run, once it is long
		for j := i; j < len(cmds); j++ {
			spec := lookup(cl, cmds[j].Args[0])
			key, ok := singleKey(spec, cmds[j].Args)
			if !ok || spec.role > cl.role {
				break
			}
			var h uint64 // compared only while the run is short (no seen map yet)
			if seen == nil {
				h = xxhash.Sum64(key)
			}
			if repeats(run, seen, key, h) || s.route(cl, spec, cmds[j].Args) != "" {
				break // a redirected command is answered by dispatch, in order
			}
			run = append(run, job{spec: spec, args: cmds[j].Args, h: h})
			if len(run) == shortRun {
				seen = make(map[string]struct{}, 2*shortRun)
				for k := range run {
					seen[string(run[k].args[1])] = struct{}{}
				}
			} else if seen != nil {
				seen[string(key)] = struct{}{}
			}
		}
		if cap(run) <= maxKeptJobs {
			cl.jobs = run[:0] // reused by the next run (replies are copied out below)
		}
		if len(run) < 2 {
			s.dispatch(c, cl, cmds[i].Args)
			i++
			continue
		}
		if s.runBatch(c, cl, run) {
			i += len(run)
			continue
		}
		s.each(len(run), func(k int) {
			jb := &run[k]
			jb.rec.Conn = c
			s.stats.commands.Add(1)
			jb.spec.run(s, &jb.rec, cl, jb.args)
		})
		cl.cmd.Store(run[len(run)-1].spec)
		cl.last.Store(s.clock.Load())
		for k := range run {
			c.WriteRaw(run[k].rec.b)
		}
		i += len(run)
	}
}

// runBatch answers a run of GET, SET (without GET) and single-key DEL
// commands through one Backend.Many call, so that what goes to one owner
// leaves in one request; it reports false (and does nothing) when the run
// holds any other command.
func (s *Server) runBatch(c redcon.Conn, cl *client, run []job) bool {
	ops, kinds := cl.ops[:0], cl.kinds[:0]
	defer func() { cl.ops, cl.kinds = reuse(ops), reuse(kinds) }()
	for k := range run {
		jb := &run[k]
		key := string(jb.args[1])
		switch jb.spec {
		case specGet:
			ops, kinds = append(ops, node.Op{Key: key}), append(kinds, 'g')
		case specSet:
			o, msg := parseSet(jb.args)
			if msg != "" || o.get || o.expired {
				return false
			}
			ops, kinds = append(ops, node.Op{Key: key, Write: true, Mutation: o.m}), append(kinds, 's')
		case specDel, specUnlink:
			ops, kinds = append(ops, node.Op{Key: key, Write: true, Mutation: node.Mutation{Delete: true}}), append(kinds, 'd')
		default:
			return false
		}
	}
	res := s.b.ManyInto(s.cmdCtx(), ops, cl.results)
	defer func() { cl.results = reuse(res) }()
	for k, r := range res {
		s.stats.commands.Add(1)
		switch {
		case kinds[k] == 'g':
			s.writeGet(c, r.Item, r.Err)
		case r.Err != nil:
			s.writeNodeErr(c, r.Err)
		case kinds[k] == 'd':
			c.WriteInt(boolInt(r.Existed))
		case r.Applied:
			c.WriteString("OK")
		default:
			c.WriteNull()
		}
	}
	cl.cmd.Store(run[len(run)-1].spec)
	cl.last.Store(s.clock.Load())
	return true
}

// Pipeline runs: up to shortRun commands their keys are compared one by
// one, beyond through a map; a connection keeps its run's slice for the
// next pipeline unless it grew past maxKeptJobs.
const (
	shortRun    = 32
	maxKeptJobs = 1024
)

// reuse returns s cleared and emptied, for the connection's next pipeline,
// or nil when it grew past maxKeptJobs (the next pipeline allocates anew).
func reuse[T any](s []T) []T {
	if cap(s) > maxKeptJobs {
		return nil
	}
	clear(s)
	return s[:0]
}

// repeats reports whether key (whose hash is h) is the key of one of run's
// commands (seen: their set, once the run is long). A pipeline run holds
// distinct keys, so that commands of one key keep their order.
func repeats(run []job, seen map[string]struct{}, key []byte, h uint64) bool {
	if seen != nil {
		_, ok := seen[string(key)]
		return ok
	}
	for k := range run {
		if run[k].h == h && bytes.Equal(run[k].args[1], key) {
			return true
		}
	}
	return false
}

// job is one command of a pipeline run (runPipeline).
type job struct {
	spec *cmdSpec
	args [][]byte
	h    uint64 // xxhash of the key, args[1]
	rec  replyBuf
}

// replyBuf is a connection whose replies are kept in a buffer (a command
// run in parallel with others of the same pipeline); everything else goes
// to the real connection. It has no pipeline of its own.
type replyBuf struct {
	redcon.Conn
	b []byte
}

func (r *replyBuf) WriteError(msg string)          { r.b = redcon.AppendError(r.b, msg) }
func (r *replyBuf) WriteString(str string)         { r.b = redcon.AppendString(r.b, str) }
func (r *replyBuf) WriteBulk(bulk []byte)          { r.b = redcon.AppendBulk(r.b, bulk) }
func (r *replyBuf) WriteBulkString(bulk string)    { r.b = redcon.AppendBulkString(r.b, bulk) }
func (r *replyBuf) WriteInt(num int)               { r.b = redcon.AppendInt(r.b, int64(num)) }
func (r *replyBuf) WriteInt64(num int64)           { r.b = redcon.AppendInt(r.b, num) }
func (r *replyBuf) WriteUint64(num uint64)         { r.b = redcon.AppendUint(r.b, num) }
func (r *replyBuf) WriteArray(count int)           { r.b = redcon.AppendArray(r.b, count) }
func (r *replyBuf) WriteNull()                     { r.b = redcon.AppendNull(r.b) }
func (r *replyBuf) WriteRaw(data []byte)           { r.b = append(r.b, data...) }
func (r *replyBuf) WriteAny(v any)                 { r.b = redcon.AppendAny(r.b, v) }
func (r *replyBuf) ReadPipeline() []redcon.Command { return nil }
func (r *replyBuf) PeekPipeline() []redcon.Command { return nil }

// maxFanout bounds the goroutines one multi-key command or pipeline uses.
const maxFanout = 16

// each calls fn(0..n-1). It starts sequentially and, once the calls so far
// took longer than slowCommand, runs the rest on up to maxFanout goroutines:
// in-memory calls stay cheap, remote ones overlap.
func (s *Server) each(n int, fn func(i int)) {
	start := time.Now()
	i := 0
	for i < n {
		fn(i)
		i++
		if time.Since(start) > slowCommand {
			break
		}
	}
	if i >= n {
		return
	}
	var next atomic.Int64
	next.Store(int64(i))
	var wg sync.WaitGroup
	for w := min(n-i, maxFanout); w > 0; w-- {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= n {
					return
				}
				fn(k)
			}
		})
	}
	wg.Wait()
}

// setOpts is a parsed SET.
type setOpts struct {
	m       node.Mutation
	get     bool
	expired bool // EXAT/PXAT in the past: the key ends up absent
}

func parseSet(args [][]byte) (setOpts, string) {
	var o setOpts
	// Arguments may be kept by the node (they are never modified): redcon
	// copies every command into a buffer of its own, never reused.
	o.m.Value = args[2]
	expiry := false
	for i := 3; i < len(args); i++ {
		a := args[i]
		var unit time.Duration
		abs := false
		switch {
		case isOpt(a, "NX") && !o.m.IfPresent:
			o.m.IfAbsent = true
			continue
		case isOpt(a, "XX") && !o.m.IfAbsent:
			o.m.IfPresent = true
			continue
		case isOpt(a, "GET"):
			o.get = true
			continue
		case isOpt(a, "KEEPTTL") && !expiry:
			o.m.KeepTTL, expiry = true, true
			continue
		case isOpt(a, "EX") && !expiry:
			unit = time.Second
		case isOpt(a, "PX") && !expiry:
			unit = time.Millisecond
		case isOpt(a, "EXAT") && !expiry:
			unit, abs = time.Second, true
		case isOpt(a, "PXAT") && !expiry:
			unit, abs = time.Millisecond, true
		default:
			return o, errSyntax
		}
		if i+1 >= len(args) {
			return o, errSyntax
		}
		i++
		v, ok := parseInt(args[i])
		if !ok {
			return o, errNotInteger
		}
		if v <= 0 {
			return o, errInvalidExpire("set")
		}
		var now time.Time
		if abs {
			now = time.Now()
		}
		ttl, ok := ttlOf(v, unit, abs, now)
		if !ok {
			return o, errInvalidExpire("set")
		}
		expiry = true
		if ttl < time.Millisecond {
			o.expired = true
		}
		if abs {
			o.m.ExpireAt = instant(v, unit) // stored as given: PEXPIRETIME answers it
		} else {
			o.m.TTL = ttl
		}
	}
	return o, ""
}

func cmdSet(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	o, msg := parseSet(args)
	if msg != "" {
		s.writeErr(c, msg)
		return
	}
	key := string(args[1])
	ctx := s.cmdCtx()
	switch {
	case o.get:
		// SET ... GET: the owner sets (if NX or XX holds) and answers the
		// value it replaced, in one step; an expiry already past leaves the
		// key absent.
		m := o.m
		m.Op = node.OpGetSet
		res, err := s.b.Write(ctx, key, m)
		switch {
		case errors.Is(err, node.ErrOwnerTooOld):
			s.setReadingFirst(c, key, o) // an owner of an earlier release, mid-upgrade
		case err != nil:
			s.writeNodeErr(c, err)
		case res.Existed:
			c.WriteBulk(res.Value)
		default:
			c.WriteNull()
		}
	case o.expired:
		// An absolute expiry in the past: Redis sets the key and it expires
		// at once; the net effect is a delete if the condition holds, and
		// the answer says whether it held.
		res, err := s.b.Write(ctx, key, node.Mutation{Delete: true, IfAbsent: o.m.IfAbsent, IfPresent: o.m.IfPresent})
		switch {
		case err != nil:
			s.writeNodeErr(c, err)
		case (o.m.IfAbsent && res.Existed) || (o.m.IfPresent && !res.Existed):
			c.WriteNull()
		default:
			c.WriteString("OK")
		}
	default:
		res, err := s.b.Write(ctx, key, o.m)
		switch {
		case err != nil:
			s.writeNodeErr(c, err)
		case res.Applied:
			c.WriteString("OK")
		default:
			c.WriteNull()
		}
	}
}

// setReadingFirst is SET ... GET for a key whose owner runs a release
// before SET ... GET was one step there: the value is read first, then
// written (two steps, as that release answered them).
func (s *Server) setReadingFirst(c redcon.Conn, key string, o setOpts) {
	ctx := s.cmdCtx()
	var old node.Item
	hadOld := false
	it, err := s.b.Get(ctx, key)
	switch {
	case err == nil:
		old, hadOld = it, true
	case !errors.Is(err, node.ErrNotFound):
		s.writeNodeErr(c, err)
		return
	}
	switch {
	case o.m.IfAbsent && hadOld, o.m.IfPresent && !hadOld:
	case o.expired:
		if hadOld {
			if _, err := s.b.Write(ctx, key, node.Mutation{Delete: true}); err != nil {
				s.writeNodeErr(c, err)
				return
			}
		}
	default:
		if _, err := s.b.Write(ctx, key, o.m); err != nil {
			s.writeNodeErr(c, err)
			return
		}
	}
	if hadOld {
		c.WriteBulk(old.Value)
	} else {
		c.WriteNull()
	}
}

func cmdSetNX(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	ctx := s.cmdCtx()
	res, err := s.b.Write(ctx, string(args[1]), node.Mutation{Value: args[2], IfAbsent: true})
	if err != nil {
		s.writeNodeErr(c, err)
		return
	}
	c.WriteInt(boolInt(res.Applied))
}

func cmdSetEX(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	setWithTTL(s, c, args, time.Second, "setex")
}

func cmdPSetEX(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	setWithTTL(s, c, args, time.Millisecond, "psetex")
}

func setWithTTL(s *Server, c redcon.Conn, args [][]byte, unit time.Duration, name string) {
	v, ok := parseInt(args[2])
	if !ok {
		s.writeErr(c, errNotInteger)
		return
	}
	ttl, ok := ttlOf(v, unit, false, time.Time{})
	if !ok || v <= 0 {
		s.writeErr(c, errInvalidExpire(name))
		return
	}
	ctx := s.cmdCtx()
	if _, err := s.b.Write(ctx, string(args[1]), node.Mutation{Value: args[3], TTL: ttl}); err != nil {
		s.writeNodeErr(c, err)
		return
	}
	c.WriteString("OK")
}

// uniqueKeys returns the distinct keys of args and, for each arg, the index
// of its key in the result.
func uniqueKeys(args [][]byte) ([]string, []int) {
	keys := make([]string, 0, len(args))
	idx := make([]int, len(args))
	var seen map[string]int
	if len(args) > 8 {
		seen = make(map[string]int, len(args))
	}
outer:
	for i, a := range args {
		if seen != nil {
			if j, ok := seen[string(a)]; ok {
				idx[i] = j
				continue
			}
		} else {
			for j, k := range keys {
				if k == string(a) {
					idx[i] = j
					continue outer
				}
			}
		}
		idx[i] = len(keys)
		k := string(a)
		keys = append(keys, k)
		if seen != nil {
			seen[k] = idx[i]
		}
	}
	return keys, idx
}

func cmdMGet(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	keys, idx := uniqueKeys(args[1:])
	ops := make([]node.Op, len(keys))
	for i, k := range keys {
		ops[i] = node.Op{Key: k}
	}
	res := s.b.ManyInto(s.cmdCtx(), ops, nil) // one request per owner
	for _, r := range res {
		if r.Err != nil && !errors.Is(r.Err, node.ErrNotFound) {
			s.writeNodeErr(c, r.Err)
			return
		}
	}
	c.WriteArray(len(idx))
	for _, j := range idx {
		if res[j].Err != nil {
			s.stats.misses.Add(1)
			c.WriteNull()
		} else {
			s.stats.hits.Add(1)
			c.WriteBulk(res[j].Item.Value)
		}
	}
}

func cmdMSet(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	if len(args)%2 != 1 {
		s.writeErr(c, "ERR wrong number of arguments for 'mset' command")
		return
	}
	// The last value of a key given twice wins, as in Redis.
	last := make(map[string]int, (len(args)-1)/2)
	keys := make([]string, 0, (len(args)-1)/2)
	for i := 1; i < len(args); i += 2 {
		k := string(args[i])
		if _, ok := last[k]; !ok {
			keys = append(keys, k)
		}
		last[k] = i + 1
	}
	ops := make([]node.Op, len(keys))
	for i, k := range keys {
		ops[i] = node.Op{Key: k, Write: true, Mutation: node.Mutation{Value: args[last[k]]}}
	}
	for _, r := range s.b.ManyInto(s.cmdCtx(), ops, nil) { // one request per owner
		if r.Err != nil {
			s.writeNodeErr(c, r.Err)
			return
		}
	}
	c.WriteString("OK")
}

// ---- keyspace ----

func cmdDel(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	keys, _ := uniqueKeys(args[1:])
	existed := make([]bool, len(keys))
	errs := make([]error, len(keys))
	ctx := s.cmdCtx()
	s.each(len(keys), func(i int) {
		var res node.WriteResult
		res, errs[i] = s.b.Write(ctx, keys[i], node.Mutation{Delete: true})
		existed[i] = res.Existed
	})
	n := 0
	for i, err := range errs {
		if err != nil {
			s.writeNodeErr(c, err)
			return
		}
		n += boolInt(existed[i])
	}
	c.WriteInt(n)
}

func cmdExists(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	keys, idx := uniqueKeys(args[1:])
	errs := make([]error, len(keys))
	ctx := s.cmdCtx()
	s.each(len(keys), func(i int) { _, errs[i] = s.b.Get(ctx, keys[i]) })
	n := 0
	for _, j := range idx {
		switch err := errs[j]; {
		case err == nil:
			n++
			s.stats.hits.Add(1)
		case errors.Is(err, node.ErrNotFound):
			s.stats.misses.Add(1)
		default:
			s.writeNodeErr(c, err)
			return
		}
	}
	c.WriteInt(n)
}

// cmdExpire is EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT, with NX, XX, GT, LT.
func cmdExpire(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	// The variant is read from the request itself: in a pipeline run the
	// commands run together, and cl.cmd is another one's.
	name, unit, abs := "expire", time.Second, false
	switch {
	case isOpt(args[0], "PEXPIRE"):
		name, unit = "pexpire", time.Millisecond
	case isOpt(args[0], "EXPIREAT"):
		name, abs = "expireat", true
	case isOpt(args[0], "PEXPIREAT"):
		name, unit, abs = "pexpireat", time.Millisecond, true
	}
	var nx, xx, gt, lt bool
	for _, a := range args[3:] {
		switch {
		case isOpt(a, "NX"):
			nx = true
		case isOpt(a, "XX"):
			xx = true
		case isOpt(a, "GT"):
			gt = true
		case isOpt(a, "LT"):
			lt = true
		default:
			s.writeErr(c, "ERR Unsupported option "+string(a))
			return
		}
	}
	if nx && (xx || gt || lt) {
		s.writeErr(c, "ERR NX and XX, GT or LT options at the same time are not compatible")
		return
	}
	if gt && lt {
		s.writeErr(c, "ERR GT and LT options at the same time are not compatible")
		return
	}
	v, ok := parseInt(args[2])
	if !ok {
		s.writeErr(c, errNotInteger)
		return
	}
	now := time.Now()
	ttl, ok := ttlOf(v, unit, abs, now)
	if !ok {
		s.writeErr(c, errInvalidExpire(name))
		return
	}
	key := string(args[1])
	ctx := s.cmdCtx()
	if cond := expireCond(nx, xx, gt, lt); cond != 0 {
		// The owner checks the condition and changes the expiry in one
		// step; an expiry already past deletes the key if it holds.
		m := node.Mutation{Expire: true, ExpireIf: cond, TTL: ttl}
		if abs || ttl < time.Millisecond {
			at := now.Add(ttl)
			if abs {
				at = instant(v, unit)
			}
			m.TTL, m.ExpireAt = 0, time.UnixMilli(max(at.UnixMilli(), 1)) // before 1970 is long past too
		}
		res, err := s.b.Write(ctx, key, m)
		switch {
		case errors.Is(err, node.ErrOwnerTooOld):
			s.expireReadingFirst(c, key, m, now.Add(ttl).UnixMilli())
		case err != nil:
			s.writeNodeErr(c, err)
		default:
			c.WriteInt(boolInt(res.Applied))
		}
		return
	}
	m := node.Mutation{Expire: true, TTL: ttl}
	switch {
	case ttl < time.Millisecond:
		m = node.Mutation{Delete: true} // a time to live of zero or less deletes the key, as in Redis
	case abs:
		m = node.Mutation{Expire: true, ExpireAt: instant(v, unit)}
	}
	s.writeExpiryChange(c, key, m)
}

// writeExpiryChange carries out m, an expiry change or a delete, and
// answers EXPIRE's 1 (the key existed and was changed) or 0.
func (s *Server) writeExpiryChange(c redcon.Conn, key string, m node.Mutation) {
	res, err := s.b.Write(s.cmdCtx(), key, m)
	switch {
	case err != nil:
		s.writeNodeErr(c, err)
	case m.Delete:
		c.WriteInt(boolInt(res.Existed))
	default:
		c.WriteInt(boolInt(res.Applied))
	}
}

// expireCond is the set of conditions EXPIRE's options ask for.
func expireCond(nx, xx, gt, lt bool) node.ExpireCond {
	var c node.ExpireCond
	for _, o := range []struct {
		set  bool
		cond node.ExpireCond
	}{{nx, node.ExpireNX}, {xx, node.ExpireXX}, {gt, node.ExpireGT}, {lt, node.ExpireLT}} {
		if o.set {
			c |= o.cond
		}
	}
	return c
}

// expireReadingFirst is a conditional EXPIRE or PERSIST for a key whose
// owner runs a release before conditions were one step there: the expiry
// is read first, then changed (two steps, as that release answered them).
// m is the change with its conditions, next the new expiry in Unix ms (0:
// none); one already past deletes the key.
func (s *Server) expireReadingFirst(c redcon.Conn, key string, m node.Mutation, next int64) {
	it, err := s.b.Get(s.cmdCtx(), key)
	switch {
	case errors.Is(err, node.ErrNotFound):
		c.WriteInt(0)
		return
	case err != nil:
		s.writeNodeErr(c, err)
		return
	}
	cur := int64(0)
	if !it.ExpireAt.IsZero() {
		cur = it.ExpireAt.UnixMilli()
	}
	if !m.ExpireIf.Holds(cur, next) {
		c.WriteInt(0)
		return
	}
	m.ExpireIf = 0
	if next != 0 && next <= time.Now().UnixMilli() {
		m = node.Mutation{Delete: true}
	}
	s.writeExpiryChange(c, key, m)
}

func cmdTTL(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	ms := isOpt(args[0], "PTTL") // not cl.cmd: see cmdExpire
	ctx := s.cmdCtx()
	it, err := s.b.Get(ctx, string(args[1]))
	switch {
	case errors.Is(err, node.ErrNotFound):
		s.stats.misses.Add(1)
		c.WriteInt(-2)
		return
	case err != nil:
		s.writeNodeErr(c, err)
		return
	}
	s.stats.hits.Add(1)
	if it.ExpireAt.IsZero() {
		c.WriteInt(-1)
		return
	}
	left := max(time.Until(it.ExpireAt).Milliseconds(), 0)
	if ms {
		c.WriteInt64(left)
	} else {
		c.WriteInt64((left + 500) / 1000)
	}
}

func cmdPersist(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	key := string(args[1])
	// One step on the owner: remove the expiry if the key has one.
	res, err := s.b.Write(s.cmdCtx(), key, node.Mutation{Expire: true, ExpireIf: node.ExpireXX})
	switch {
	case errors.Is(err, node.ErrOwnerTooOld):
		s.expireReadingFirst(c, key, node.Mutation{Expire: true, ExpireIf: node.ExpireXX}, 0)
	case err != nil:
		s.writeNodeErr(c, err)
	default:
		c.WriteInt(boolInt(res.Applied))
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
