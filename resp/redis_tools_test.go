package resp

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peercache/peercache/internal/testredis"
)

// scriptA is run through one node, scriptB through the other (and both
// through one plain redis-server); redis-cli's output must be the same.
// Keys land on both nodes, so half the commands are forwarded.
const scriptA = `PING
PING hello
ECHO "hi there"
SET k1 v1
GET k1
SET k2 v2 EX 100
TTL k2
GET missing
MSET m1 a m2 b m3 c m4 d m5 e m6 f
MGET m1 m2 missing m3 m4 m1
EXISTS m1 m2 missing m1
DEL m1 missing m2 m1
EXISTS m1 m2
SET nx 1 NX
SET nx 2 NX
GET nx
SET xx 1 XX
GET xx
SET nx 3 XX GET
GET nx
SET nx 4 NX GET
GET nx
EXPIRE k1 100
TTL k1
PERSIST k1
TTL k1
PERSIST k1
TTL missing
PTTL missing
EXPIRE missing 10
PERSIST missing
SET k4 v EX 100
SET k4 w KEEPTTL
TTL k4
GET k4
SET k4 z
TTL k4
EXPIRE k4 0
EXISTS k4
SET k6 v
EXPIRE k6 -5
GET k6
PEXPIRE k2 50000
TTL k2
EXPIRE k2 100 NX
EXPIRE k2 200 XX
TTL k2
EXPIRE k2 50 GT
EXPIRE k2 300 GT
TTL k2
SET c1 v
EXPIRE c1 100 LT
TTL c1
EXPIRE c1 200 LT
EXPIRE c1 50 XX LT
TTL c1
EXPIRE c1 60 XX GT
TTL c1
EXPIRE c1 60 NX
SET c2 v
EXPIRE c2 100 GT
EXPIRE c2 100 XX
EXPIRE c2 -1 GT
EXISTS c2
EXPIRE c2 -1 LT
EXISTS c2
SET c3 v EX 100
EXPIRE c3 -1 NX
EXISTS c3
EXPIRE c3 -1 XX
EXISTS c3
SET c4 v EX 100
EXPIREAT c4 1 GT
EXPIREAT c4 1 LT
EXISTS c4
SET c5 v EX 100
PERSIST c5
PERSIST c5
TTL c5
EXPIRE c5 -9223372036854775 LT
EXISTS c5
SET g1 old EX 100
SET g1 new GET KEEPTTL
TTL g1
SET g1 newer EX 500 GET
TTL g1
SET g1 x NX GET
GET g1
SET g2 x XX GET
EXISTS g2
SET g2 y NX GET
GET g2
SET g2 z NX GET
SET g1 z EXAT 1 GET
EXISTS g1
SET g3 v
SET g3 w PXAT 1 NX
GET g3
SET g3 w PXAT 1 XX
EXISTS g3
SET g4 w PXAT 1 XX
SET g4 w PXAT 1 NX
EXISTS g4
SETNX sn 1
SETNX sn 2
GET sn
SETEX se 100 v
TTL se
PSETEX pse 100000 v
TTL pse
SET px v PX 100000
TTL px
UNLINK px pse
SET k5 v EX 0
SET k5 v EX abc
SET k5 v NX XX
SET k5 v EX 10 PX 100
SET k5 v KEEPTTL EX 10
SET k5 v BOGUS
SET k5
GET
GET a b
FOO bar baz
select 0
SELECT 1
SELECT x
MSET a
EXPIRE k2 abc
EXPIRE k2 10 NX XX
EXPIRE k2 10 GT LT
EXPIRE k2 10 BOGUS
EXISTS
INCR ctr
INCR ctr
INCRBY ctr 40
DECR ctr
DECRBY ctr -10
DECRBY ctr 100
GET ctr
INCRBY ctr abc
INCRBY ctr 1.5
INCRBY ctr +1
INCRBY ctr 01
INCRBY ctr " 1"
INCRBY ctr 99999999999999999999
SET big 9223372036854775806
INCR big
INCR big
GET big
SET small -9223372036854775807
DECR small
DECR small
DECRBY small -9223372036854775808
DECRBY ctr -9223372036854775808
SET notint hello
INCR notint
INCRBYFLOAT notint 1
SET sp " 1"
INCR sp
SET lz 007
INCR lz
SET ex 10 EX 1000
INCR ex
TTL ex
INCRBYFLOAT fl 10.5
INCRBYFLOAT fl 0.1
INCRBYFLOAT fl -5
INCRBYFLOAT fl 5.0e3
INCRBYFLOAT fl 2e-3
INCRBYFLOAT fl abc
INCRBYFLOAT fl nan
INCRBYFLOAT fl inf
INCRBYFLOAT fl -inf
GET fl
INCRBYFLOAT ctr 1.5
SET fi 3
INCRBYFLOAT fi 0
APPEND ap hello
APPEND ap " world"
GET ap
STRLEN ap
STRLEN missing
APPEND ctr 0
GET ctr
INCR
INCRBY ctr
INCR a b
SET sr hello
SETRANGE sr 6 world
GET sr
SETRANGE sr 0 J
GET sr
SETRANGE sr 1 ""
SETRANGE srnew 0 ""
EXISTS srnew
SETRANGE srnew 3 ab
STRLEN srnew
SETRANGE sr -1 x
SETRANGE sr abc x
SETRANGE sr 99999999999 x
GETRANGE sr 0 3
GETRANGE sr -3 -1
GETRANGE sr 0 -1
GETRANGE sr 5 2
GETRANGE sr -1 -5
GETRANGE sr 100 200
GETRANGE sr -100 2
GETRANGE missing 0 10
GETRANGE sr a 1
SET gd v1
GETDEL gd
GETDEL gd
EXISTS gd
SET gs old EX 1000
GETSET gs new
TTL gs
GETSET gsnew x
GET gsnew
TYPE gs
TYPE missing
TOUCH gs gsnew missing gs
SET et v EXAT 4102444800
EXPIRETIME et
EXPIRETIME gs
EXPIRETIME missing
PEXPIRETIME missing
SET gx v
GETEX gx
TTL gx
GETEX gx EX 100
TTL gx
GETEX gx PX 200000
TTL gx
GETEX gx PERSIST
TTL gx
GETEX gx EX 0
GETEX gx EX -1
GETEX gx EX abc
GETEX gx BOGUS 1
GETEX gx PERSIST 1
GETEX gx EX 1 PX 1
GETEX missing EX 10
SET gx2 w
GETEX gx2 EXAT 1
EXISTS gx2
SET ctr2 5 EX 1000
INCRBY ctr2 2
TTL ctr2
APPEND ctr2 0
TTL ctr2
MSETNX {t}a 1 {t}b 2
MSETNX {t}a 1 {t}c 2
EXISTS {t}c
MSETNX {t}q 1 {t}q 2
GET {t}q
MSETNX {t}x
MSETNX {t}x 1 {t}y
SET {r}src hello EX 1000
RENAME {r}src {r}dst
GET {r}dst
TTL {r}dst
EXISTS {r}src
RENAME {r}src {r}dst
RENAME {r}dst {r}dst
RENAMENX {r}dst {r}dst
SET {r}other x
RENAMENX {r}dst {r}other
RENAMENX {r}dst {r}new
GET {r}new
GET {r}dst
RENAMENX {r}missing {r}x
RENAME {r}a
COPY {r}new {r}new
COPY {r}new {r}cp
GET {r}cp
TTL {r}cp
COPY {r}new {r}cp
COPY {r}new {r}cp REPLACE
COPY {r}new {r}cp DB 0
COPY {r}new {r}cp DB x
COPY {r}new {r}cp FOO
COPY {r}new {r}cp DB
COPY {r}missing {r}cp
COPY {r}new {r}cp REPLACE REPLACE
COPY {r}missing {r}missing
`

const scriptB = `GET k1
GET k2
MGET m1 m2 m3 m4 m5 m6 nx xx sn
EXISTS m3 m4 m5 m6 nx
TTL k1
TTL k2
TTL se
GET nx
SET nx 5 GET
DEL nx xx k1 k2 k4 k6 sn se m3 m4 m5 m6 missing
MGET k1 k2 nx
EXISTS k1 k2 nx
INCR ctr
GET big
STRLEN ap
APPEND ap !
GET fl
GET sr
GETRANGE sr 1 3
GETDEL gsnew
GETSET gs newer
GETEX gx EX 500
TTL gx
MGET {t}a {t}b {t}q {r}new {r}cp {r}other
RENAME {r}cp {r}back
GET {r}back
MSETNX {t}b 3 {t}z 4
MSETNX {t}y 3 {t}z 4
MGET {t}y {t}z
DEL ctr big small fl ap fi ex sp lz notint sr srnew gs et ctr2 gx
DEL {t}a {t}b {t}q {t}y {t}z {r}new {r}back {r}other
DBSIZE
`

// TestRedisCLIMatchesRedis drives the real redis-cli against a 2-node
// cluster and against a real redis-server, and compares what it prints.
func TestRedisCLIMatchesRedis(t *testing.T) {
	cli := needTool(t, "redis-cli")
	nodes := startCluster(t, 2)
	rs := testredis.Start(t, testredis.WithArgs("--databases", "1")) // peercache has only db 0
	_, redisPort, _ := splitPort(rs.Addr())

	run := func(port, script string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli, "-h", "127.0.0.1", "-p", port)
		cmd.Stdin = strings.NewReader(script)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli -p %s: %v\n%s", port, err, out)
		}
		return string(out)
	}
	want := run(redisPort, scriptA) + run(redisPort, scriptB)
	got := run(nodes[0].port, scriptA) + run(nodes[1].port, scriptB)
	if got != want {
		wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
		cmds := strings.Split(scriptA+scriptB, "\n")
		for i := 0; i < max(len(wl), len(gl)); i++ {
			var w, g string
			if i < len(wl) {
				w = wl[i]
			}
			if i < len(gl) {
				g = gl[i]
			}
			if w != g {
				t.Errorf("output line %d differs (near command %q):\n redis:     %q\n peercache: %q", i+1, cmdNear(cmds, i), w, g)
			}
		}
		t.Fatalf("redis-cli output differs\n--- redis ---\n%s\n--- peercache ---\n%s", want, got)
	}

	// Both nodes hold a share of the keys written above (forwarding was
	// exercised), and the cluster's answers went through the node API.
	checkShares(t, nodes)

	// PTTL of a key set with PX: within (0, 100000].
	out := run(nodes[1].port, "SET p v PX 100000\nPTTL p\n")
	ms, err := strconv.Atoi(strings.TrimSpace(strings.Split(out, "\n")[1]))
	if err != nil || ms <= 0 || ms > 100000 {
		t.Fatalf("PTTL after PX 100000: %q", out)
	}
}

// cmdNear names the command an output line most likely belongs to (one
// line per command for most replies).
func cmdNear(cmds []string, line int) string {
	if line < len(cmds) {
		return cmds[line]
	}
	return "?"
}

func checkShares(t *testing.T, nodes []*testNode) {
	t.Helper()
	for _, n := range nodes {
		st, err := n.Store().Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Keys == 0 {
			t.Errorf("node %s holds no keys: nothing was forwarded to it", n.Name())
		}
	}
}

// TestRedisBenchmarkRuns runs redis-benchmark against a node: it must
// finish without errors (it also asks CONFIG GET at start).
func TestRedisBenchmarkRuns(t *testing.T) {
	rb := needTool(t, "redis-benchmark")
	nodes := startCluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, extra := range [][]string{nil, {"-P", "16", "-r", "1000"}} {
		args := append([]string{"-h", "127.0.0.1", "-p", nodes[0].port, "-t", "get,set", "-n", "2000", "-q"}, extra...)
		out, err := exec.CommandContext(ctx, rb, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-benchmark %v: %v\n%s", args, err, out)
		}
		s := string(out)
		for _, bad := range []string{"ERR", "rror", "WARN"} {
			if strings.Contains(s, bad) {
				t.Fatalf("redis-benchmark %v printed %q:\n%s", args, bad, s)
			}
		}
		for _, want := range []string{"SET:", "GET:"} {
			if !strings.Contains(s, want) {
				t.Fatalf("redis-benchmark %v: no %s line:\n%s", args, want, s)
			}
		}
	}
	// redis-benchmark's keys went through the node: "key:__rand_int__".
	checkShares(t, nodes)
}

// TestClusterTools drives Redis' own cluster-aware tools and a second
// client library against three nodes in cluster mode: redis-cli -c
// (follows MOVED), redis-benchmark --cluster (reads CLUSTER NODES) and
// redis-py's RedisCluster (Debian's python3-redis: CLUSTER SLOTS, COMMAND).
func TestClusterTools(t *testing.T) {
	cli, bench := needTool(t, "redis-cli"), needTool(t, "redis-benchmark")
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import redis.cluster").Run(); err != nil {
		t.Fatalf("%s cannot import redis.cluster (install python3-redis: scripts/deps.sh): %v", py, err)
	}
	nodes := startClusterResp(t, 3, Options{Cluster: true})
	run := func(stdin string, name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}

	// redis-cli -c: every key answered, whichever node owns it.
	var script, want strings.Builder
	for i := range 30 {
		fmt.Fprintf(&script, "SET cli%d v%d\nGET cli%d\nINCR cnt%d\n", i, i, i, i)
		fmt.Fprintf(&want, "OK\nv%d\n1\n", i)
	}
	for i := range 5 { // changes of several keys of one slot, on its owner
		fmt.Fprintf(&script, "MSETNX {m%d}a 1 {m%d}b 2\nRENAME {m%d}a {m%d}c\nCOPY {m%d}c {m%d}d\nMGET {m%d}b {m%d}c {m%d}d\nRENAME {m%d}a x%d\n", i, i, i, i, i, i, i, i, i, i, i)
		fmt.Fprintf(&want, "1\nOK\n1\n2\n1\n1\nCROSSSLOT Keys in request don't hash to the same slot\n\n")
	}
	var got strings.Builder
	redirects := 0
	for _, l := range strings.SplitAfter(run(script.String(), cli, "-c", "-h", "127.0.0.1", "-p", nodes[0].port), "\n") {
		if strings.HasPrefix(l, "-> Redirected to slot [") {
			redirects++
			continue
		}
		got.WriteString(l)
	}
	if got.String() != want.String() || redirects == 0 {
		t.Fatalf("redis-cli -c printed (%d redirects):\n%s\nwant:\n%s", redirects, got.String(), want.String())
	}
	t.Logf("redis-cli -c: 115 commands, %d redirects", redirects)

	// redis-benchmark --cluster: both tests complete, with no error line.
	out := run("", bench, "--cluster", "-h", "127.0.0.1", "-p", nodes[0].port, "-t", "set,get", "-n", "3000", "-c", "10", "-r", "1000", "--csv", "-q")
	if !strings.Contains(out, `"SET"`) || !strings.Contains(out, `"GET"`) || strings.Contains(strings.ToLower(out), "error") {
		t.Fatalf("redis-benchmark --cluster:\n%s", out)
	}

	// redis-py's RedisCluster.
	prog := `
import sys
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]))
for i in range(300):
    rc.set("py%d" % i, str(i))
bad = [i for i in range(300) if rc.get("py%d" % i) != str(i).encode()]
assert not bad, bad
assert rc.incr("pyctr") == 1 and rc.incrby("pyctr", 41) == 42
assert rc.get("py-missing") is None
rc.close()
print("ok", len(rc.get_nodes()) if hasattr(rc, "get_nodes") else 0)
`
	if out := run("", py, "-c", prog, nodes[1].port); !strings.HasPrefix(out, "ok 3") {
		t.Fatalf("redis-py RedisCluster: %s", out)
	}
	checkShares(t, nodes)
}
