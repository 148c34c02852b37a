package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// cliRun runs the built cachenode binary with args (and stdin) and returns
// stdout, stderr and the exit code.
func cliRun(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	return cliRunIn(t, stdin, nil, args...)
}

// cliRunIn is cliRun with extra environment variables.
func cliRunIn(t *testing.T, stdin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	// The binary is built with -race, whose exit sleeps 1 s unless told not to.
	cmd.Env = append(append(os.Environ(), "CACHENODE_ADDR=", "GORACE=atexit_sleep_ms=0"), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// Acceptance (operator experience): the client subcommands against a
// 3-process cluster: get/put/del with clear exit codes, the cluster table,
// and mode changes that every node applies.
func TestCLIAgainstCluster(t *testing.T) {
	p1 := startProc(t, "n1", "")
	p2 := startProc(t, "n2", p1.gossip)
	p3 := startProc(t, "n3", p1.gossip)
	procs := []*proc{p1, p2, p3}
	waitUntil(t, 20*time.Second, "three active members everywhere", func() bool {
		for _, p := range procs {
			code, body := httpDo(t, "GET", "http://"+p.http+"/v1/cluster", nil)
			var doc clusterDoc
			if code != 200 || json.Unmarshal(body, &doc) != nil || len(doc.Ring.Members) != 3 {
				return false
			}
		}
		return true
	})

	if out, errs, code := cliRun(t, "", "put", "--addr", p1.http, "greeting", "hello world", "--ttl", "1m"); code != 0 || !strings.HasPrefix(out, "OK") {
		t.Fatalf("put: %d %q %q", code, out, errs)
	}
	if out, errs, code := cliRun(t, "", "get", "greeting", "--addr", p3.http); code != 0 || out != "hello world" {
		t.Fatalf("get: %d %q %q", code, out, errs)
	}
	if out, errs, code := cliRun(t, "from\nstdin", "put", "--addr", "http://"+p2.http+"/", "piped", "-"); code != 0 {
		t.Fatalf("put from stdin: %d %q %q", code, out, errs)
	}
	// The address from the environment.
	cmd := exec.Command(binPath, "get", "piped")
	cmd.Env = append(os.Environ(), "CACHENODE_ADDR="+p1.http, "GORACE=atexit_sleep_ms=0")
	if out, err := cmd.Output(); err != nil || string(out) != "from\nstdin" {
		t.Fatalf("get with CACHENODE_ADDR: %v %q", err, out)
	}
	if out, errs, code := cliRun(t, "", "del", "--addr", p1.http, "piped"); code != 0 || out != "OK\n" {
		t.Fatalf("del: %d %q %q", code, out, errs)
	}
	if _, errs, code := cliRun(t, "", "get", "--addr", p2.http, "piped"); code != 1 || !strings.Contains(errs, `key "piped" not found`) {
		t.Fatalf("get after del: %d %q", code, errs)
	}

	out, errs, code := cliRun(t, "", "cluster", "--addr", p2.http)
	if code != 0 {
		t.Fatalf("cluster: %d %q", code, errs)
	}
	t.Logf("cachenode cluster:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || !strings.Contains(lines[0], "3 members") || !strings.HasPrefix(lines[2], "NAME") ||
		!strings.Contains(lines[2], "HIT RATIO") || !strings.Contains(lines[2], "MIGRATION") {
		t.Fatalf("cluster table:\n%s", out)
	}
	for i, p := range procs {
		row := strings.Fields(lines[3+i])
		if row[0] != []string{"n1", "n2", "n3"}[i] || row[1] != p.http || strings.TrimSuffix(row[2], "*") != "active" || row[3] != "read-write" {
			t.Errorf("row %q", lines[3+i])
		}
		if !strings.Contains(lines[3+i], "%") { // hit ratio of the local tier
			t.Errorf("row %q: hit ratio should show a percentage", lines[3+i])
		}
	}
	if out, _, code := cliRun(t, "", "cluster", "--json", "--addr", p1.http); code != 0 || !json.Valid([]byte(out)) {
		t.Fatalf("cluster --json: %d %q", code, out)
	}

	// Modes.
	if out, errs, code := cliRun(t, "", "mode", "read-only", "--addr", p3.http); code != 0 || !strings.Contains(out, "cluster mode is now read-only") {
		t.Fatalf("mode read-only: %d %q %q", code, out, errs)
	}
	waitUntil(t, 5*time.Second, "every node refuses writes", func() bool {
		for _, p := range procs {
			if code, _ := httpDo(t, "PUT", "http://"+p.http+"/v1/keys/x", []byte("y")); code != 503 {
				return false
			}
		}
		return true
	})
	if _, errs, code := cliRun(t, "", "put", "--addr", p1.http, "k", "v"); code != 1 || !strings.Contains(errs, "read-only (cluster mode)") || !strings.Contains(errs, "503") {
		t.Fatalf("put in read-only mode: %d %q", code, errs)
	}
	if out, _, code := cliRun(t, "", "get", "--addr", p1.http, "greeting"); code != 0 || out != "hello world" {
		t.Fatalf("get in read-only mode: %d %q", code, out)
	}
	if out, _, code := cliRun(t, "", "mode", "--addr", p2.http); code != 0 || !strings.Contains(out, "cluster mode: read-only") {
		t.Fatalf("mode: %d %q", code, out)
	}
	if out, errs, code := cliRun(t, "", "mode", "read-write", "--addr", p1.http); code != 0 || !strings.Contains(out, "read-write") {
		t.Fatalf("mode read-write: %d %q %q", code, out, errs)
	}
	// The command returns after at most two seconds even when gossip has
	// not reached every member yet ("not yet: ..."): wait until each node
	// knows the cluster is read-write again before writing through n2.
	waitUntil(t, 10*time.Second, "every node knows the cluster is read-write", func() bool {
		for _, p := range procs {
			code, body := httpDo(t, "GET", "http://"+p.http+"/v1/mode", nil)
			var mode struct {
				Cluster string `json:"cluster_mode"`
			}
			if code != 200 || json.Unmarshal(body, &mode) != nil || mode.Cluster != "read-write" {
				return false
			}
		}
		return true
	})
	if out, errs, code := cliRun(t, "", "mode", "read-only", "--scope", "node", "--addr", p1.http); code != 0 || !strings.Contains(out, "node n1 is now read-only") {
		t.Fatalf("mode --scope node: %d %q %q", code, out, errs)
	}
	if _, errs, code := cliRun(t, "", "put", "--addr", p1.http, "k", "v"); code != 1 || !strings.Contains(errs, "read-only (node mode)") {
		t.Fatalf("put on a read-only node: %d %q", code, errs)
	}
	if _, errs, code := cliRun(t, "", "put", "--addr", p2.http, "k", "v"); code != 0 {
		t.Fatalf("put on a read-write node: %d %q", code, errs)
	}
}

// Usage errors exit 2 with the synopsis; an unreachable node exits 1.
func TestCLIUsage(t *testing.T) {
	for _, args := range [][]string{
		{"get"}, {"get", "a", "b"}, {"put", "k"}, {"put", "--ttl", "soon", "k", "v"}, {"put", "--ttl", "-1s", "k", "v"},
		{"del"}, {"cluster", "extra"}, {"mode", "sleepy"}, {"mode", "ro", "--scope", "galaxy"}, {"get", "--bogus", "k"},
		{"get", "--timeout", "0s", "k"},
	} {
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), "usage: cachenode "+strings.Replace(args[0], "delete", "del", 1)) {
			t.Errorf("%v: exit %d, stderr %q; want 2 with the usage line", args, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"get", "--addr", "127.0.0.1:1", "k"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "cannot reach node at 127.0.0.1:1") {
		t.Errorf("unreachable: exit %d %q", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"put", "-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "--ttl") && !strings.Contains(out.String(), "-ttl") {
		t.Errorf("put -h: exit %d %q", code, out.String())
	}
	// Flags after "--" are arguments.
	c := &cli{name: "get", stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	pos, _, ok := c.parse(c.flags(), []string{"--addr", "h:1", "--", "--not-a-flag"})
	if !ok || len(pos) != 1 || pos[0] != "--not-a-flag" || c.addr != "h:1" {
		t.Errorf("parse with --: %v %v addr %q", pos, ok, c.addr)
	}
}

func TestFormatting(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := groupDigits(in); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := formatBytes(in); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}
