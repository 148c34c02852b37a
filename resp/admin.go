package resp

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/redcon"

	"github.com/peercache/peercache/auth"
	"github.com/peercache/peercache/internal/glob"
	"github.com/peercache/peercache/node"
)

// redisVersion is the Redis version the server claims (INFO, HELLO): the
// command set and replies follow Redis 7.0.
const redisVersion = "7.0.0"

// ---- connection ----

func cmdPing(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	switch len(args) {
	case 1:
		c.WriteString("PONG")
	case 2:
		c.WriteBulk(args[1])
	default:
		s.writeErr(c, "ERR wrong number of arguments for 'ping' command")
	}
}

func cmdEcho(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	c.WriteBulk(args[1])
}

func cmdQuit(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	c.WriteString("OK")
	c.Close() // flushes the reply first
}

func cmdSelect(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	db, ok := parseInt(args[1])
	switch {
	case !ok:
		s.writeErr(c, errNotInteger)
	case db != 0:
		s.writeErr(c, "ERR DB index is out of range")
	default:
		c.WriteString("OK")
	}
}

func cmdAuth(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	var user, pass []byte
	switch len(args) {
	case 2:
		pass = args[1]
	case 3:
		user, pass = args[1], args[2]
	default:
		s.writeErr(c, errSyntax)
		return
	}
	if msg := s.authenticate(cl, user, pass); msg != "" {
		s.writeErr(c, msg)
		return
	}
	c.WriteString("OK")
}

// authenticate checks a user name (nil: "default") and password and, when
// they match, makes the connection that user's; it returns the error
// reply otherwise (as Redis: one text whether the user or the password
// was wrong).
func (s *Server) authenticate(cl *client, user, pass []byte) string {
	if !s.opts.Auth.Enabled() {
		if user == nil {
			return "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
		}
		// The only user is "default", without a password: Redis accepts
		// any password for such a user.
		if string(user) != auth.DefaultUser {
			return "WRONGPASS invalid username-password pair or user is disabled."
		}
		return ""
	}
	name := auth.DefaultUser
	if user != nil {
		name = string(user)
	}
	p, err := s.opts.Auth.Authenticate(name, string(pass))
	if err != nil {
		s.stats.authFailures.Add(1)
		s.log.Debug("resp: authentication failed", "addr", cl.addr)
		return "WRONGPASS invalid username-password pair or user is disabled."
	}
	s.mu.Lock()
	cl.authed, cl.user, cl.role = true, p.User, p.Role
	s.mu.Unlock()
	return ""
}

// cmdHello is HELLO [protover [AUTH username password] [SETNAME name]].
// Only RESP2 is spoken: HELLO 3 answers NOPROTO, and clients fall back.
func cmdHello(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	if len(args) >= 2 {
		v, ok := parseInt(args[1])
		if !ok {
			s.writeErr(c, "ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 {
			s.writeErr(c, "NOPROTO unsupported protocol version")
			return
		}
	}
	var setName []byte
	hasName := false
	for i := 2; i < len(args); i++ {
		switch {
		case isOpt(args[i], "AUTH") && i+2 < len(args):
			if msg := s.authenticate(cl, args[i+1], args[i+2]); msg != "" {
				s.writeErr(c, msg)
				return
			}
			i += 2
		case isOpt(args[i], "SETNAME") && i+1 < len(args):
			setName, hasName = args[i+1], true
			i++
		default:
			s.writeErr(c, "ERR Syntax error in HELLO option '"+string(args[i])+"'")
			return
		}
	}
	if hasName {
		if !validClientName(setName) {
			s.writeErr(c, errClientName)
			return
		}
		s.mu.Lock()
		cl.name = string(setName)
		s.mu.Unlock()
	}
	c.WriteArray(14)
	c.WriteBulkString("server")
	c.WriteBulkString("redis")
	c.WriteBulkString("version")
	c.WriteBulkString(redisVersion)
	c.WriteBulkString("proto")
	c.WriteInt(2)
	c.WriteBulkString("id")
	c.WriteInt64(cl.id)
	c.WriteBulkString("mode")
	c.WriteBulkString("standalone")
	c.WriteBulkString("role")
	c.WriteBulkString("master")
	c.WriteBulkString("modules")
	c.WriteArray(0)
}

const errClientName = "ERR Client names cannot contain spaces, newlines or special characters."

func validClientName(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

func cmdClient(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	sub := args[1]
	wrongArgs := func() {
		s.writeErr(c, "ERR wrong number of arguments for 'client|"+strings.ToLower(string(sub))+"' command")
	}
	switch {
	case isOpt(sub, "ID"):
		if len(args) != 2 {
			wrongArgs()
			return
		}
		c.WriteInt64(cl.id)
	case isOpt(sub, "SETNAME"):
		if len(args) != 3 {
			wrongArgs()
			return
		}
		if !validClientName(args[2]) {
			s.writeErr(c, errClientName)
			return
		}
		s.mu.Lock()
		cl.name = string(args[2])
		s.mu.Unlock()
		c.WriteString("OK")
	case isOpt(sub, "GETNAME"):
		if len(args) != 2 {
			wrongArgs()
			return
		}
		s.mu.Lock()
		name := cl.name
		s.mu.Unlock()
		if name == "" {
			c.WriteNull()
		} else {
			c.WriteBulkString(name)
		}
	case isOpt(sub, "SETINFO"):
		if len(args) != 4 {
			wrongArgs()
			return
		}
		v := string(args[3])
		if !validClientName(args[3]) {
			s.writeErr(c, "ERR "+string(args[2])+" cannot contain spaces, newlines or special characters.")
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case isOpt(args[2], "LIB-NAME"):
			cl.libName = v
		case isOpt(args[2], "LIB-VER"):
			cl.libVer = v
		default:
			s.writeErr(c, "ERR Unrecognized option '"+string(args[2])+"'")
			return
		}
		c.WriteString("OK")
	case isOpt(sub, "INFO"):
		if len(args) != 2 {
			wrongArgs()
			return
		}
		s.mu.Lock()
		line := s.clientLine(cl, time.Now())
		s.mu.Unlock()
		c.WriteBulkString(line + "\n")
	case isOpt(sub, "LIST"):
		// Other clients' addresses and names: admin only.
		if !cl.role.Allows(auth.RoleAdmin) {
			s.writeErr(c, "NOPERM User "+cl.user+" has no permissions to run the 'client|list' command")
			return
		}
		now := time.Now()
		s.mu.Lock()
		cls := make([]*client, 0, len(s.clients))
		for k := range s.clients {
			cls = append(cls, k)
		}
		sort.Slice(cls, func(i, j int) bool { return cls[i].id < cls[j].id })
		var b strings.Builder
		for _, k := range cls {
			b.WriteString(s.clientLine(k, now))
			b.WriteByte('\n')
		}
		s.mu.Unlock()
		c.WriteBulkString(b.String())
	case isOpt(sub, "HELP"):
		writeHelp(c,
			"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"ID", "    Return the ID of the current connection.",
			"GETNAME", "    Return the name of the current connection.",
			"SETNAME <name>", "    Assign the name <name> to the current connection.",
			"SETINFO <LIB-NAME|LIB-VER> <value>", "    Set client library name or version.",
			"INFO", "    Return information about the current client connection.",
			"LIST", "    Return information about client connections.",
			"HELP", "    Print this help.",
		)
	default:
		s.unknownSubcommand(c, "CLIENT", sub)
	}
}

// writeHelp answers a HELP subcommand: lines as an array of simple strings.
func writeHelp(c redcon.Conn, lines ...string) {
	c.WriteArray(len(lines))
	for _, l := range lines {
		c.WriteString(l)
	}
}

// unknownSubcommand answers Redis' error for an unknown subcommand of cmd.
func (s *Server) unknownSubcommand(c redcon.Conn, cmd string, sub []byte) {
	s.writeErr(c, "ERR unknown subcommand '"+string(sub)+"'. Try "+cmd+" HELP.")
}

// clientLine formats one client as CLIENT LIST does (the fields that mean
// something here). Callers hold s.mu.
func (s *Server) clientLine(cl *client, now time.Time) string {
	cmd := "NULL"
	if sp := cl.cmd.Load(); sp != nil {
		cmd = sp.name
	}
	idle := 0.0
	if l := cl.last.Load(); l != 0 {
		idle = now.Sub(time.Unix(0, l)).Seconds()
	}
	user := cl.user
	if user == "" {
		user = auth.DefaultUser
	}
	return fmt.Sprintf("id=%d addr=%s laddr=%s name=%s age=%d idle=%d flags=N db=0 cmd=%s user=%s resp=2 lib-name=%s lib-ver=%s",
		cl.id, cl.addr, cl.laddr, cl.name, int(now.Sub(cl.created).Seconds()), int(idle), cmd, user, cl.libName, cl.libVer)
}

// ---- server ----

func sortedCommands() []*cmdSpec {
	out := make([]*cmdSpec, 0, len(commands))
	for _, c := range commands {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// writeCommandInfo writes one command in COMMAND's Redis 7 format: name,
// arity, flags, first key, last key, step, ACL categories, tips, key specs,
// subcommands.
func writeCommandInfo(c redcon.Conn, sp *cmdSpec) {
	c.WriteArray(10)
	c.WriteBulkString(sp.name)
	c.WriteInt(sp.arity)
	c.WriteArray(len(sp.flags))
	for _, f := range sp.flags {
		c.WriteString(f)
	}
	c.WriteInt(sp.firstKey)
	c.WriteInt(sp.lastKey)
	c.WriteInt(sp.step)
	c.WriteArray(len(sp.categories))
	for _, f := range sp.categories {
		c.WriteString(f)
	}
	c.WriteArray(0) // tips
	c.WriteArray(0) // key specs
	c.WriteArray(0) // subcommands
}

// writeAllCommandInfo answers COMMAND (and COMMAND INFO without names).
func writeAllCommandInfo(c redcon.Conn) {
	all := sortedCommands()
	c.WriteArray(len(all))
	for _, sp := range all {
		writeCommandInfo(c, sp)
	}
}

func writeCommandDocs(c redcon.Conn, sp *cmdSpec) {
	c.WriteBulkString(sp.name)
	c.WriteArray(6)
	c.WriteBulkString("summary")
	c.WriteBulkString(sp.summary)
	c.WriteBulkString("since")
	c.WriteBulkString(sp.since)
	c.WriteBulkString("group")
	c.WriteBulkString(sp.group)
}

func cmdCommand(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	if len(args) == 1 {
		writeAllCommandInfo(c)
		return
	}
	sub := args[1]
	switch {
	case isOpt(sub, "COUNT"):
		c.WriteInt(len(commands))
	case isOpt(sub, "LIST"):
		all := sortedCommands()
		c.WriteArray(len(all))
		for _, sp := range all {
			c.WriteBulkString(sp.name)
		}
	case isOpt(sub, "INFO"):
		if len(args) == 2 {
			writeAllCommandInfo(c)
			return
		}
		c.WriteArray(len(args) - 2)
		for _, a := range args[2:] {
			if sp := lookup(cl, a); sp != nil {
				writeCommandInfo(c, sp)
			} else {
				c.WriteNull()
			}
		}
	case isOpt(sub, "DOCS"):
		if len(args) == 2 {
			all := sortedCommands()
			c.WriteArray(2 * len(all))
			for _, sp := range all {
				writeCommandDocs(c, sp)
			}
			return
		}
		var found []*cmdSpec
		for _, a := range args[2:] {
			if sp := lookup(cl, a); sp != nil {
				found = append(found, sp)
			}
		}
		c.WriteArray(2 * len(found))
		for _, sp := range found {
			writeCommandDocs(c, sp)
		}
	case isOpt(sub, "HELP"):
		writeHelp(c,
			"COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"(no subcommand)", "    Return details about all commands.",
			"COUNT", "    Return the total number of commands.",
			"DOCS [<command-name> ...]", "    Return documentary information about commands.",
			"INFO [<command-name> ...]", "    Return details about the given commands.",
			"LIST", "    Return a list of all commands.",
			"HELP", "    Print this help.",
		)
	default:
		s.unknownSubcommand(c, "COMMAND", sub)
	}
}

// configValues is what CONFIG GET reports: enough for tools that look
// (redis-benchmark asks for save and appendonly; cluster clients for
// cluster-enabled and cluster-require-full-coverage).
var configValues = [][2]string{
	{"appendonly", "no"},
	{"cluster-enabled", ""}, // filled from Options
	{"cluster-require-full-coverage", "yes"},
	{"databases", "1"},
	{"maxclients", ""}, // filled from Options
	{"save", ""},
	{"timeout", "0"},
}

func cmdConfig(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	sub := args[1]
	switch {
	case isOpt(sub, "GET"):
		if len(args) < 3 {
			s.writeErr(c, "ERR wrong number of arguments for 'config|get' command")
			return
		}
		var out []string
		seen := map[string]bool{}
		for _, a := range args[2:] {
			pat := strings.ToLower(string(a))
			for _, kv := range configValues {
				if glob.Match([]byte(pat), []byte(kv[0])) && !seen[kv[0]] {
					seen[kv[0]] = true
					v := kv[1]
					switch kv[0] {
					case "maxclients":
						v = strconv.Itoa(s.opts.MaxClients)
					case "timeout":
						v = strconv.Itoa(int(s.opts.IdleTimeout / time.Second))
					case "cluster-enabled":
						v = map[bool]string{true: "yes", false: "no"}[s.cluster != nil]
					}
					out = append(out, kv[0], v)
				}
			}
		}
		c.WriteArray(len(out))
		for _, v := range out {
			c.WriteBulkString(v)
		}
	case isOpt(sub, "RESETSTAT"):
		for _, p := range []*paddedCounter{&s.stats.commands, &s.stats.connections, &s.stats.rejected, &s.stats.hits, &s.stats.misses, &s.stats.errors} {
			p.Store(0)
		}
		c.WriteString("OK")
	case isOpt(sub, "SET"), isOpt(sub, "REWRITE"):
		s.writeErr(c, "ERR CONFIG "+strings.ToUpper(string(sub))+" is not supported: configure peercache with its flags")
	default:
		s.unknownSubcommand(c, "CONFIG", sub)
	}
}

func cmdTime(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	now := time.Now()
	c.WriteArray(2)
	c.WriteBulkString(strconv.FormatInt(now.Unix(), 10))
	c.WriteBulkString(strconv.Itoa(now.Nanosecond() / 1000))
}

// infoSections are INFO's sections in order; "default" and "all" list
// them all.
var infoSections = []string{"server", "clients", "memory", "stats", "replication", "cluster", "keyspace"}

func cmdInfo(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	want := map[string]bool{}
	for _, a := range args[1:] {
		sec := strings.ToLower(string(a))
		if sec == "all" || sec == "default" || sec == "everything" {
			for _, x := range infoSections {
				want[x] = true
			}
			continue
		}
		want[sec] = true
	}
	if len(args) == 1 {
		for _, x := range infoSections {
			want[x] = true
		}
	}
	c.WriteBulkString(s.info(want))
}

// info renders the INFO text for the wanted sections.
func (s *Server) info(want map[string]bool) string {
	now := time.Now()
	var b strings.Builder
	section := func(name string) bool {
		if !want[strings.ToLower(name)] {
			return false
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + name + "\r\n")
		return true
	}
	kv := func(k string, v any) { fmt.Fprintf(&b, "%s:%v\r\n", k, v) }

	var st node.NodeStatus // zero unless a section below needs it
	if want["memory"] || want["keyspace"] || want["cluster"] || want["server"] || want["stats"] {
		ctx, cancel := context.WithTimeout(s.base, time.Second)
		st = s.b.Status(ctx)
		cancel()
	}
	if section("Server") {
		_, port, _ := net.SplitHostPort(s.ln.Addr().String())
		up := now.Sub(s.started)
		kv("redis_version", redisVersion)
		kv("redis_mode", "standalone")
		kv("peercache_version", s.opts.Version)
		kv("peercache_node", st.Name)
		kv("os", runtime.GOOS+" "+runtime.GOARCH)
		kv("arch_bits", strconv.IntSize)
		kv("go_version", runtime.Version())
		kv("process_id", os.Getpid())
		kv("tcp_port", port)
		kv("uptime_in_seconds", int64(up.Seconds()))
		kv("uptime_in_days", int64(up.Hours()/24))
	}
	if section("Clients") {
		s.mu.Lock()
		n := len(s.clients)
		s.mu.Unlock()
		kv("connected_clients", n)
		kv("maxclients", s.opts.MaxClients)
		kv("blocked_clients", 0)
	}
	if section("Memory") {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		kv("used_memory", st.MemoryBytes)
		kv("used_memory_human", humanBytes(st.MemoryBytes))
		kv("peercache_process_heap_bytes", ms.HeapAlloc)
		kv("peercache_process_sys_bytes", ms.Sys)
	}
	if section("Stats") {
		hits, misses := s.stats.hits.Load(), s.stats.misses.Load()
		kv("total_connections_received", s.stats.connections.Load())
		kv("total_commands_processed", s.stats.commands.Load())
		kv("rejected_connections", s.stats.rejected.Load())
		kv("keyspace_hits", hits)
		kv("keyspace_misses", misses)
		kv("total_error_replies", s.stats.errors.Load())
		kv("acl_access_denied_auth", s.stats.authFailures.Load())
		kv("peercache_connection_panics", s.stats.panics.Load())
		// With --resp-event-loops: rounds of requests answered on an
		// event loop, rounds served there with GETs and SETs forwarded to
		// their owners (proxy mode), and rounds handed to a goroutine
		// (some command could wait on another process).
		kv("peercache_event_loop_rounds", s.stats.loopRounds.Load())
		kv("peercache_event_loop_rounds_forwarded", s.stats.loopForwarded.Load())
		kv("peercache_event_loop_rounds_offloaded", s.stats.loopOffloaded.Load())
		// Without event loops, in proxy mode: unpipelined GETs and SETs a
		// connection's goroutine forwarded without waiting for the answer.
		kv("peercache_forwards_unawaited", s.stats.connForwards.Load())
		// Keys the in-memory shard evicted to stay within the memory
		// budget (gone: a read answers nil), as Redis counts its own; the
		// local tier's evicted copies are counted apart.
		kv("evicted_keys", st.Evictions.Store)
		kv("peercache_local_tier_evicted_keys", st.Evictions.LocalTier)
	}
	if section("Replication") {
		kv("role", "master")
		kv("connected_slaves", 0)
	}
	if section("Cluster") {
		kv("cluster_enabled", boolInt(s.cluster != nil)) // 0: any node serves any key
		kv("peercache_node_state", st.State)
		kv("peercache_ready", boolInt(st.Ready))
		kv("peercache_mode", st.Mode)
		kv("peercache_ring_version", st.RingVersion)
		kv("peercache_ring_share", strconv.FormatFloat(st.RingShare, 'f', 4, 64))
	}
	if section("Keyspace") {
		// This node's shard (the keys it owns, tombstones included).
		if st.StoreError == "" {
			kv("db0", fmt.Sprintf("keys=%d,expires=0,avg_ttl=0", st.Keys))
		}
	}
	return b.String()
}

func humanBytes(n int64) string {
	f := float64(n)
	for _, u := range []string{"B", "K", "M", "G"} {
		if f < 1024 || u == "G" {
			if u == "B" {
				return strconv.FormatInt(n, 10) + "B"
			}
			return strconv.FormatFloat(f, 'f', 2, 64) + u
		}
		f /= 1024
	}
	return ""
}
