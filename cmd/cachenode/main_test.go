package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cachenode-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "cachenode")
	if out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building cachenode: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	return freePorts(t, 1)[0]
}

// handedOut is every port freePorts returned in this test binary. A port
// whose listener is closed can come back from the kernel at once, so two
// calls in a row (a test's own --resp-addr, then a node's ports) could get
// the same one; no port is handed out twice.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePorts returns n free loopback ports, distinct from each other and
// from every port handed out before in this test binary.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	ports := make([]int, 0, n)
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		// Held open until the end, so the kernel moves on to another port.
		defer l.Close()
		port := l.Addr().(*net.TCPAddr).Port
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			ports = append(ports, port)
		}
	}
	return ports
}

// syncBuffer is a bytes.Buffer safe for a process writing while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proc struct {
	cmd    *exec.Cmd
	http   string
	gossip string
	peer   string
	out    *syncBuffer
	done   chan error
}

// startProc runs cachenode as the README's quick start does.
func startProc(t *testing.T, name, seed string, env ...string) *proc {
	return startProcArgs(t, name, seed, nil, env...)
}

// startProcArgs is startProc with extra flags.
func startProcArgs(t *testing.T, name, seed string, extra []string, env ...string) *proc {
	t.Helper()
	ports := freePorts(t, 3)
	p := &proc{
		http:   fmt.Sprintf("127.0.0.1:%d", ports[0]),
		gossip: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		peer:   fmt.Sprintf("127.0.0.1:%d", ports[2]),
		out:    &syncBuffer{},
		done:   make(chan error, 1),
	}
	args := []string{"--name", name, "--http-addr", p.http, "--gossip-addr", p.gossip, "--gossip-profile", "fast",
		"--peer-addr", p.peer}
	if seed != "" {
		args = append(args, "--seeds", seed)
	}
	args = append(args, extra...)
	p.cmd = exec.Command(binPath, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

func httpDo(t *testing.T, method, url string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type clusterDoc struct {
	Members []struct {
		Name, State string
	}
	Ring struct{ Members []string }
}

// Acceptance (core cluster): three cachenode processes started as the README
// says form one cluster; a PUT on one is read on another; /v1/cluster on
// each lists three active members. SIGTERM makes each exit 0.
func TestThreeProcesses(t *testing.T) {
	p1 := startProc(t, "n1", "")
	p2 := startProc(t, "n2", p1.gossip)
	p3 := startProc(t, "n3", "", "CACHENODE_SEEDS="+p1.gossip) // seeds from the environment
	procs := []*proc{p1, p2, p3}
	waitUntil(t, 20*time.Second, "every node lists three active members", func() bool {
		for _, p := range procs {
			code, body := httpDo(t, "GET", "http://"+p.http+"/v1/cluster", nil)
			if code != 200 {
				return false
			}
			var doc clusterDoc
			if json.Unmarshal(body, &doc) != nil || len(doc.Members) != 3 || len(doc.Ring.Members) != 3 {
				return false
			}
			for _, m := range doc.Members {
				if m.State != "active" {
					return false
				}
			}
		}
		return true
	})
	for i := 0; i < 30; i++ {
		key := fmt.Sprintf("greeting-%d", i)
		if code, body := httpDo(t, "PUT", "http://"+p1.http+"/v1/keys/"+key, []byte("hello "+key)); code != 204 {
			t.Fatalf("PUT via n1: %d %s", code, body)
		}
		code, body := httpDo(t, "GET", "http://"+p3.http+"/v1/keys/"+key, nil)
		if code != 200 || string(body) != "hello "+key {
			t.Fatalf("GET via n3: %d %s", code, body)
		}
	}
	if code, _ := httpDo(t, "GET", "http://"+p2.http+"/readyz", nil); code != 200 {
		t.Fatalf("readyz: %d", code)
	}
	// health subcommand against a live node.
	if out, err := exec.Command(binPath, "health", "--addr", p2.http).CombinedOutput(); err != nil {
		t.Fatalf("health: %v %s", err, out)
	}
	// Graceful stop: SIGTERM (n3) or the admin call POST /v1/leave (n2):
	// keys handed off, exit 0.
	for _, p := range []*proc{p3, p2} {
		if p == p3 {
			p.cmd.Process.Signal(syscall.SIGTERM)
		} else if code, body := httpDo(t, "POST", "http://"+p.http+"/v1/leave", nil); code != 202 {
			t.Fatalf("POST /v1/leave: %d %s", code, body)
		}
		select {
		case err := <-p.done:
			if err != nil {
				t.Fatalf("exit after SIGTERM: %v\n%s", err, p.out)
			}
			p.done <- nil
		case <-time.After(30 * time.Second):
			t.Fatal("no exit 30 s after SIGTERM")
		}
	}
	for i := 0; i < 30; i++ {
		key := fmt.Sprintf("greeting-%d", i)
		code, body := httpDo(t, "GET", "http://"+p1.http+"/v1/keys/"+key, nil)
		if code != 200 || string(body) != "hello "+key {
			t.Fatalf("after the others left, GET via n1: %d %s", code, body)
		}
	}
}

// With --insecure a node may listen beyond loopback without a secret, and
// says so.
func TestInsecureWarns(t *testing.T) {
	p := startProcArgs(t, "open", "", []string{"--insecure"})
	waitUntil(t, 10*time.Second, "the node answers", func() bool {
		code, _ := httpDo(t, "GET", "http://"+p.http+"/readyz", nil)
		return code == 200
	})
	if !strings.Contains(p.out.String(), "auth: off") || !strings.Contains(p.out.String(), "level=WARN") {
		t.Fatalf("no WARN about auth being off:\n%s", p.out)
	}
	// The secret file cachenode keygen writes is read back.
	dir := t.TempDir()
	path := writeSecret(t, dir, "k")
	if _, errs, code := cliRun(t, "", "keygen", "--out", path, "--if-missing"); code != 0 || !strings.Contains(errs, "kept") {
		t.Fatalf("keygen --if-missing over an existing file: %d %s", code, errs)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode: %v %v", fi.Mode(), err)
	}
	// --password-out writes a client password too (the compose keygen
	// service), kept on the next run like the secret.
	pw := filepath.Join(dir, "password")
	if _, errs, code := cliRun(t, "", "keygen", "--out", path, "--password-out", pw, "--if-missing"); code != 0 || !strings.Contains(errs, "wrote a new client password") {
		t.Fatalf("keygen --password-out: %d %s", code, errs)
	}
	first, err := os.ReadFile(pw)
	if fi, _ := os.Stat(pw); err != nil || len(strings.TrimSpace(string(first))) < 32 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %q %v", first, err)
	}
	if _, errs, code := cliRun(t, "", "keygen", "--out", path, "--password-out", pw, "--if-missing"); code != 0 || strings.Count(errs, "kept") != 2 {
		t.Fatalf("keygen --if-missing over both files: %d %s", code, errs)
	}
	if again, _ := os.ReadFile(pw); string(again) != string(first) {
		t.Fatal("keygen --if-missing replaced the password")
	}
}

// Bad configuration: a one-line error naming the flag, exit code 2.
func TestBadConfig(t *testing.T) {
	cases := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--http-addr", "nonsense"}, nil, "--http-addr"},
		{[]string{"--log-format", "xml"}, nil, "--log-format"},
		{[]string{"--vnodes", "0"}, nil, "--vnodes"},
		{[]string{"--resp-cluster"}, nil, "--resp-cluster needs --resp-addr"},
		{nil, []string{"CACHENODE_RESP_CLUSTER=maybe"}, "CACHENODE_RESP_CLUSTER"},
		{[]string{"--resp-addr", "127.0.0.1:0", "--resp-advertise-addr", "nohost"}, nil, "resp-advertise-addr"},
		{[]string{"--peer-conns", "0"}, nil, "--peer-conns"},
		{[]string{"--peer-conns", "65"}, nil, "--peer-conns"},
		{[]string{"--gossip-profile", "slow"}, nil, "--gossip-profile"},
		{nil, []string{"CACHENODE_VNODES=many"}, "CACHENODE_VNODES"},
		{[]string{"--gossip-key-file", "/nonexistent"}, nil, "--gossip-key-file"},
		{[]string{"--redis-addr", "nohost"}, nil, "--redis-addr"},
		{[]string{"extra"}, nil, "unexpected argument"},
		{[]string{"--replicas", "0"}, nil, "--replicas"},
		{[]string{"--write-acks", "most"}, nil, "--write-acks"},
		// Beyond loopback without a cluster secret: refused, naming the flag.
		{[]string{"--gossip-addr", ":0"}, nil, "--cluster-secret-file"},
		{[]string{"--peer-addr", "0.0.0.0:0"}, nil, "--cluster-secret-file"},
		{[]string{"--cluster-secret-file", "/nonexistent"}, nil, "--cluster-secret-file"},
		{nil, []string{"CACHENODE_MAX_CLOCK_SKEW=soon"}, "--max-clock-skew"},
		{[]string{"--peer-tls-cert-file", "/tmp/x.pem"}, nil, "--peer-tls-key-file"},
	}
	for _, tc := range cases {
		cmd := exec.Command(binPath, append([]string{"--name", "x", "--http-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0"}, tc.args...)...)
		cmd.Env = append(os.Environ(), tc.env...)
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%v %v: err %v, want exit 2; output %s", tc.args, tc.env, err, out)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%v %v: output %q, want one line naming %s", tc.args, tc.env, out, tc.want)
		}
	}
}

func TestEnvName(t *testing.T) {
	if got := envName("http-addr"); got != "CACHENODE_HTTP_ADDR" {
		t.Fatal(got)
	}
}
