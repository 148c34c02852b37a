package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func redisServerPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (make deps installs it): %v", err)
	}
	return p
}

// redisNode is a cachenode process with a supervised redis-server.
type redisNode struct {
	cmd       *exec.Cmd
	http      string
	redisPort int // --redis-port, the supervised Redis's
	out       *syncBuffer
	done      chan error // receives Wait's result once
}

// startRedisNode runs cachenode with extra flags and env added to this
// process's environment. Its HTTP, gossip, peer and supervised-Redis ports
// are distinct free ports.
func startRedisNode(t *testing.T, env []string, extra ...string) *redisNode {
	t.Helper()
	ports := freePorts(t, 4)
	rn := &redisNode{
		http:      fmt.Sprintf("127.0.0.1:%d", ports[0]),
		redisPort: ports[3],
		out:       &syncBuffer{},
		done:      make(chan error, 1),
	}
	args := append([]string{"--name", "r1", "--http-addr", rn.http,
		"--gossip-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]), "--gossip-profile", "fast",
		"--peer-addr", fmt.Sprintf("127.0.0.1:%d", ports[2]),
		"--redis-port", strconv.Itoa(rn.redisPort),
		"--log-level", "debug"}, extra...)
	rn.cmd = exec.Command(binPath, args...)
	rn.cmd.Env = append(os.Environ(), env...)
	rn.cmd.Stdout = rn.out
	rn.cmd.Stderr = rn.out
	if err := rn.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { rn.done <- rn.cmd.Wait() }()
	t.Cleanup(func() {
		rn.cmd.Process.Kill()
		select {
		case <-rn.done:
		case <-time.After(10 * time.Second):
		}
		if t.Failed() {
			t.Logf("cachenode output:\n%s", rn.out)
		}
	})
	return rn
}

// childRedis returns the pid of parent's redis-server child, or 0.
func childRedis(t *testing.T, parent int) int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		ppid, comm, state, ok := procStat(pid)
		if ok && ppid == parent && comm == "redis-server" && state != "Z" {
			return pid
		}
	}
	return 0
}

// procStat reads a process's parent, command name and state.
func procStat(pid int) (ppid int, comm, state string, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, "", "", false
	}
	s := string(b)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return 0, "", "", false
	}
	f := strings.Fields(s[j+1:])
	if len(f) < 2 {
		return 0, "", "", false
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, s[i+1 : j], f[0], true
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	_, _, state, ok := procStat(pid)
	return ok && state != "Z"
}

// Issue 6: with --redis-server, cachenode runs its own Redis as the shard,
// turns unready while that Redis is down, restarts it, and stops it after
// draining on SIGTERM.
func TestSupervisedRedis(t *testing.T) {
	tmp := t.TempDir() // the default --redis-dir is a new directory in TMPDIR
	rn := startRedisNode(t, []string{"TMPDIR=" + tmp}, "--redis-server", redisServerPath(t))
	rport := rn.redisPort
	base := "http://" + rn.http
	waitUntil(t, 20*time.Second, "the node is ready", func() bool {
		code, _ := httpDo(t, "GET", base+"/readyz", nil)
		return code == 200
	})
	pid := childRedis(t, rn.cmd.Process.Pid)
	if pid == 0 {
		t.Fatal("no redis-server child of cachenode")
	}
	// The shard is that Redis: a write lands there.
	for i := 0; i < 20; i++ {
		key := fmt.Sprintf("k%d", i)
		if code, body := httpDo(t, "PUT", base+"/v1/keys/"+key, []byte("v"+key)); code != 204 {
			t.Fatalf("PUT %s: %d %s", key, code, body)
		}
		if code, body := httpDo(t, "GET", base+"/v1/keys/"+key, nil); code != 200 || string(body) != "v"+key {
			t.Fatalf("GET %s: %d %s", key, code, body)
		}
	}
	if err := pingRedis(fmt.Sprintf("127.0.0.1:%d", rport), "", time.Second); err != nil {
		t.Fatalf("the supervised Redis does not answer on --redis-port: %v", err)
	}

	// Kill the child: the node turns unready, then ready with a new Redis.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the node turns unready", func() bool {
		code, _ := httpDo(t, "GET", base+"/readyz", nil)
		return code == 503
	})
	waitUntil(t, 20*time.Second, "the node is ready again", func() bool {
		code, _ := httpDo(t, "GET", base+"/readyz", nil)
		return code == 200
	})
	pid2 := childRedis(t, rn.cmd.Process.Pid)
	if pid2 == 0 || pid2 == pid {
		t.Fatalf("no new redis-server child after the restart (old %d, now %d)", pid, pid2)
	}
	// The restarted Redis is empty (no persistence): an old key misses, or
	// is still served from the node's in-process tier with its last value;
	// never a wrong value. New writes work.
	if code, body := httpDo(t, "GET", base+"/v1/keys/k0", nil); code != 404 && (code != 200 || string(body) != "vk0") {
		t.Fatalf("GET k0 after the Redis restart: %d %s, want 404 or the last value", code, body)
	}
	if code, body := httpDo(t, "PUT", base+"/v1/keys/after", []byte("restart")); code != 204 {
		t.Fatalf("PUT after the restart: %d %s", code, body)
	}
	if code, body := httpDo(t, "GET", base+"/v1/keys/after", nil); code != 200 || string(body) != "restart" {
		t.Fatalf("GET after the restart: %d %s", code, body)
	}
	if !strings.Contains(rn.out.String(), "redis-server exited") {
		t.Errorf("the Redis death was not logged")
	}

	// SIGTERM: the node leaves, then its Redis is stopped; exit 0.
	if err := rn.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-rn.done:
		rn.done <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no exit 60 s after SIGTERM")
	}
	if alive(pid2) {
		t.Fatalf("redis-server %d still runs after cachenode exited", pid2)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "cachenode-redis-*")); len(left) > 0 {
		t.Errorf("the temporary Redis directory was not removed: %v", left)
	}
	out := rn.out.String()
	if li, ri := strings.Index(out, "node stopped"), strings.Index(out, "redis-server stopped"); li < 0 || ri < 0 || ri < li {
		t.Errorf("want the node stopped before its Redis (node at %d, redis at %d)", li, ri)
	}
}

// A cachenode killed with SIGKILL takes its Redis with it (Pdeathsig). The
// redis-server path comes from CACHENODE_REDIS_SERVER here.
func TestSupervisedRedisDiesWithCachenode(t *testing.T) {
	rn := startRedisNode(t, []string{"CACHENODE_REDIS_SERVER=" + redisServerPath(t), "TMPDIR=" + t.TempDir()})
	waitUntil(t, 20*time.Second, "the node is ready", func() bool {
		code, _ := httpDo(t, "GET", "http://"+rn.http+"/readyz", nil)
		return code == 200
	})
	pid := childRedis(t, rn.cmd.Process.Pid)
	if pid == 0 {
		t.Fatal("CACHENODE_REDIS_SERVER: no redis-server child of cachenode")
	}
	if err := rn.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := <-rn.done
	rn.done <- err
	waitUntil(t, 5*time.Second, "redis-server dies with cachenode", func() bool { return !alive(pid) })
}

// With --redis-password the supervised Redis requires it, and the password
// is not on redis-server's command line.
func TestSupervisedRedisPassword(t *testing.T) {
	const secret = "pw with \"quotes\", \\, spaces and ünïcode"
	rn := startRedisNode(t, []string{"CACHENODE_REDIS_PASSWORD=" + secret, "TMPDIR=" + t.TempDir()},
		"--redis-server", redisServerPath(t))
	rport := rn.redisPort
	base := "http://" + rn.http
	waitUntil(t, 20*time.Second, "the node is ready", func() bool {
		code, _ := httpDo(t, "GET", base+"/readyz", nil)
		return code == 200
	})
	if code, body := httpDo(t, "PUT", base+"/v1/keys/k", []byte("v")); code != 204 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, body := httpDo(t, "GET", base+"/v1/keys/k", nil); code != 200 || string(body) != "v" {
		t.Fatalf("GET: %d %s", code, body)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", rport)
	if err := pingRedis(addr, "", time.Second); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("PING without the password: %v, want NOAUTH", err)
	}
	if err := pingRedis(addr, secret, time.Second); err != nil {
		t.Errorf("PING with the password: %v", err)
	}
	pid := childRedis(t, rn.cmd.Process.Pid)
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cmdline), "quotes") {
		t.Errorf("the password is on redis-server's command line: %q", cmdline)
	}
}

// Bad supervised-Redis configuration: one line naming the flag, exit 2.
func TestSupervisedRedisBadConfig(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--redis-server", "/nonexistent/redis-server"}, "--redis-server"},
		{[]string{"--redis-server", redisServerPath(t), "--redis-addr", "127.0.0.1:6379"}, "--redis-addr"},
		{[]string{"--redis-server", redisServerPath(t), "--redis-port", "0"}, "--redis-port"},
	}
	for _, tc := range cases {
		cmd := exec.Command(binPath, append([]string{"--name", "x", "--http-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0"}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v: err %v, want exit 2; output %s", tc.args, err, out)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%v: output %q, want one line naming %s", tc.args, out, tc.want)
		}
	}
}
