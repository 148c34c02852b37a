package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peercache/peercache/auth"
	"github.com/peercache/peercache/internal/testredis"
	"github.com/peercache/peercache/internal/tlsconf/tlstest"
)

// writeUsers writes a users file: root (admin), app (write), ro (read),
// each with password "<name>-pw".
func writeUsers(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, u := range [][2]string{{"root", "admin"}, {"app", "write"}, {"ro", "read"}} {
		b.WriteString(u[0] + " " + u[1] + " " + auth.HashPassword(u[0]+"-pw") + "\n")
	}
	f := filepath.Join(dir, "users")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func basicAuth(user string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+user+"-pw"))
}

// respTLS is a raw RESP connection over TLS, for input no client sends.
type respTLS struct {
	c  net.Conn
	br *bufio.Reader
}

func dialRESP(t *testing.T, addr string, tc *tls.Config) (*respTLS, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	var c net.Conn
	var err error
	if tc != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, tc)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &respTLS{c: c, br: bufio.NewReader(c)}, nil
}

// exchange sends in and returns the first reply line.
func (r *respTLS) exchange(in string) string {
	io.WriteString(r.c, in)
	l, err := r.br.ReadString('\n')
	if err != nil {
		return "read error: " + err.Error()
	}
	return strings.TrimRight(l, "\r\n")
}

// Acceptance (client doors, security): three processes, each with its own
// Redis, a users file (admin, write, read users) and TLS on HTTP and RESP,
// attacked as an outsider and as users with too weak a role. Each attack
// gets its documented answer; afterwards every node is up, in read-write
// mode, and every shard is byte-identical to before.
func TestClientDoorSecurity(t *testing.T) {
	dir := t.TempDir()
	users := writeUsers(t, dir)
	certs := tlstest.Write(t, dir)
	var procs []*proc
	var reds []*testredis.Server
	var respAddrs []string
	for i := 1; i <= 3; i++ {
		rs := testredis.Start(t)
		seed := ""
		if i > 1 {
			seed = procs[0].gossip
		}
		ra := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		procs = append(procs, startProcArgs(t, fmt.Sprintf("n%d", i), seed, []string{
			"--redis-addr", rs.Addr(), "--users-file", users, "--resp-addr", ra, "--max-clients", "50",
			"--tls-cert-file", certs.Cert, "--tls-key-file", certs.Key}))
		reds = append(reds, rs)
		respAddrs = append(respAddrs, ra)
	}
	// One more node requires client certificates.
	mtlsResp := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	mtls := startProcArgs(t, "m1", "", []string{"--users-file", users, "--resp-addr", mtlsResp,
		"--tls-cert-file", certs.Cert, "--tls-key-file", certs.Key, "--tls-client-ca-file", certs.CA})

	tc := certs.ClientConfig(t, false)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	call := func(method, url, body string, hdr ...string) (int, string, http.Header) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := hc.Do(req)
		if err != nil {
			return 0, err.Error(), nil
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	base := func(p *proc) string { return "https://" + p.http }
	waitUntil(t, 30*time.Second, "three members everywhere", func() bool {
		for _, p := range procs {
			code, body, _ := call("GET", base(p)+"/v1/cluster", "", "Authorization", basicAuth("ro"))
			var doc clusterDoc
			if code != 200 || json.Unmarshal([]byte(body), &doc) != nil || len(doc.Members) != 3 {
				return false
			}
		}
		return true
	})
	for i := 0; i < 100; i++ {
		if code, body, _ := call("PUT", fmt.Sprintf("%s/v1/keys/k%d", base(procs[i%3]), i), "v", "Authorization", basicAuth("app")); code != 204 {
			t.Fatalf("PUT: %d %s", code, body)
		}
	}
	before := make([]map[string]string, 3)
	for i, rs := range reds {
		before[i] = shardDump(t, rs)
	}

	n1 := base(procs[0])
	key := n1 + "/v1/keys/k1"
	type attack struct {
		name string
		run  func() (got string, ok bool)
	}
	httpAttack := func(name, method, url, body string, want int, inBody string, hdr ...string) attack {
		return attack{name, func() (string, bool) {
			code, b, h := call(method, url, body, hdr...)
			ok := code == want && strings.Contains(b, inBody) && !strings.Contains(b, "-pw") && !strings.Contains(b, "sha256:")
			if code == 401 {
				ok = ok && h.Get("WWW-Authenticate") != ""
			}
			return fmt.Sprintf("%d %.200s", code, b), ok
		}}
	}
	respAttack := func(name, addr string, tc *tls.Config, in, want string) attack {
		return attack{name, func() (string, bool) {
			c, err := dialRESP(t, addr, tc)
			if err != nil {
				return err.Error(), false
			}
			got := c.exchange(in)
			return got, got == want
		}}
	}
	ra := respAddrs[0]
	attacks := []attack{
		httpAttack("GET a key without credentials", "GET", key, "", 401, "authentication required"),
		httpAttack("PUT a key without credentials", "PUT", key, "x", 401, "authentication required"),
		httpAttack("wrong password", "GET", key, "", 401, "wrong user name or password", "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("ro:guess"))),
		httpAttack("unknown user", "GET", key, "", 401, "wrong user name or password", "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("admin:admin"))),
		httpAttack("wrong bearer token", "GET", key, "", 401, "wrong user name or password", "Authorization", "Bearer 0123456789"),
		httpAttack("read user PUT", "PUT", key, "x", 403, "needs role write", "Authorization", basicAuth("ro")),
		httpAttack("read user DELETE", "DELETE", key, "", 403, "needs role write", "Authorization", basicAuth("ro")),
		httpAttack("write user POST /v1/leave", "POST", n1+"/v1/leave", "", 403, "needs role admin", "Authorization", basicAuth("app")),
		httpAttack("write user PUT /v1/mode read-only cluster", "PUT", n1+"/v1/mode", `{"mode":"read-only","scope":"cluster"}`, 403, "needs role admin", "Authorization", basicAuth("app")),
		httpAttack("POST /v1/leave without credentials", "POST", n1+"/v1/leave", "", 401, ""),
		httpAttack("cross-site form POST /v1/leave with admin credentials", "POST", n1+"/v1/leave", "a=b", 403, "cross-site request refused",
			"Authorization", basicAuth("root"), "Origin", "http://evil.example", "Content-Type", "application/x-www-form-urlencoded"),
		httpAttack("text/plain body to /v1/mode with admin credentials", "PUT", n1+"/v1/mode", `{"mode":"read-only","scope":"cluster"}`, 415, "form content types",
			"Authorization", basicAuth("root"), "Content-Type", "text/plain"),
		httpAttack("/v1/cluster without credentials", "GET", n1+"/v1/cluster", "", 401, ""),
		httpAttack("/v1/status without credentials", "GET", n1+"/v1/status", "", 401, ""),
		httpAttack("/metrics without credentials", "GET", n1+"/metrics", "", 401, ""),
		httpAttack("dashboard without credentials", "GET", n1+"/", "", 401, ""),
		httpAttack("oversized header", "GET", key, "", 431, "", "X-Junk", strings.Repeat("j", 100<<10)),
		httpAttack("value beyond the limit as the write user", "PUT", key, strings.Repeat("v", 2<<20), 413, "limit", "Authorization", basicAuth("app")),
		{"plain HTTP to the TLS port", func() (string, bool) {
			code, body := httpDo(t, "GET", "http://"+procs[0].http+"/v1/keys/k1", nil)
			return fmt.Sprintf("%d %.100s", code, body), code == 400 && !strings.Contains(string(body), "\"v\"")
		}},
		respAttack("RESP: the 32-byte packet that crashed a node", ra, tc, "*1\r\n$9223372036854775807\r\nabc\r\n", "-ERR Protocol error: invalid bulk length"),
		respAttack("RESP: multibulk length of 3 billion", ra, tc, "*3000000000\r\n", "-ERR Protocol error: invalid multibulk length"),
		respAttack("RESP: bulk of 2 GB", ra, tc, "*1\r\n$2000000000\r\n", "-ERR Protocol error: invalid bulk length"),
		respAttack("RESP: GET before AUTH", ra, tc, "GET k1\r\n", "-NOAUTH Authentication required."),
		respAttack("RESP: CONFIG GET before AUTH", ra, tc, "CONFIG GET *\r\n", "-NOAUTH Authentication required."),
		respAttack("RESP: AUTH default with a guess", ra, tc, "AUTH default anything\r\n", "-WRONGPASS invalid username-password pair or user is disabled."),
		respAttack("RESP: AUTH with a wrong password", ra, tc, "AUTH ro guess\r\n", "-WRONGPASS invalid username-password pair or user is disabled."),
		respAttack("RESP: unauthenticated request of 12 arguments", ra, tc, "*12\r\n", "-ERR Protocol error: unauthenticated multibulk length"),
		respAttack("RESP: unauthenticated 20 kB argument", ra, tc, "*2\r\n$4\r\nAUTH\r\n$20000\r\n", "-ERR Protocol error: unauthenticated bulk length"),
		respAttack("RESP: inline request of 100 kB without a newline", ra, tc, strings.Repeat("A", 100<<10), "-ERR Protocol error: too big inline request"),
		{"RESP: plain TCP to the TLS port", func() (string, bool) {
			c, err := dialRESP(t, ra, nil)
			if err != nil {
				return err.Error(), false
			}
			got := c.exchange("PING\r\n")
			return got, !strings.Contains(got, "PONG")
		}},
		{"RESP: TLS without the client certificate the node requires", func() (string, bool) {
			c, err := dialRESP(t, mtlsResp, certs.ClientConfig(t, false))
			if err != nil {
				return err.Error(), true
			}
			got := c.exchange("PING\r\n")
			return got, strings.HasPrefix(got, "read error")
		}},
		{"HTTP: TLS without the client certificate the node requires", func() (string, bool) {
			code, body, _ := call("GET", base(mtls)+"/livez", "")
			return fmt.Sprintf("%d %.100s", code, body), code == 0
		}},
		{"RESP: read user SET and CONFIG, write user CONFIG", func() (string, bool) {
			c, err := dialRESP(t, ra, tc)
			if err != nil {
				return err.Error(), false
			}
			got := []string{c.exchange("AUTH ro ro-pw\r\n"), c.exchange("SET k1 x\r\n"), c.exchange("CONFIG GET maxclients\r\n"),
				c.exchange("CLIENT LIST\r\n"), c.exchange("AUTH app app-pw\r\n"), c.exchange("CONFIG GET maxclients\r\n")}
			want := []string{"+OK", "-NOPERM User ro has no permissions to run the 'set' command",
				"-NOPERM User ro has no permissions to run the 'config' command",
				"-NOPERM User ro has no permissions to run the 'client|list' command", "+OK",
				"-NOPERM User app has no permissions to run the 'config' command"}
			return strings.Join(got, " | "), strings.Join(got, "|") == strings.Join(want, "|")
		}},
		{"RESP: 60 idle connections against --max-clients 50", func() (string, bool) {
			var cs []*respTLS
			for i := 0; i < 60; i++ {
				c, err := dialRESP(t, respAddrs[1], tc)
				if err != nil {
					return err.Error(), false
				}
				cs = append(cs, c)
			}
			refused := 0
			for _, c := range cs[50:] {
				c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if l, _ := c.br.ReadString('\n'); l == "-ERR max number of clients reached\r\n" {
					refused++
				}
			}
			for _, c := range cs {
				c.c.Close()
			}
			return fmt.Sprintf("%d of 10 refused", refused), refused == 10
		}},
	}
	if len(attacks) < 25 {
		t.Fatalf("only %d attacks", len(attacks))
	}
	for _, a := range attacks {
		got, ok := a.run()
		if !ok {
			t.Errorf("%s: got %q", a.name, got)
		} else {
			t.Logf("%-60s %.90q", a.name, got)
		}
	}

	// Every node is up and still read-write; every shard is unchanged.
	for _, p := range procs {
		select {
		case err := <-p.done:
			t.Fatalf("a node exited: %v", err)
		default:
		}
		if code, body, _ := call("GET", base(p)+"/v1/mode", "", "Authorization", basicAuth("ro")); code != 200 || !strings.Contains(body, `"mode": "read-write"`) {
			t.Fatalf("mode after the attacks: %d %s", code, body)
		}
	}
	waitUntil(t, 10*time.Second, "the RESP slots are free again", func() bool {
		c, err := dialRESP(t, respAddrs[1], tc)
		return err == nil && c.exchange("AUTH ro ro-pw\r\n") == "+OK"
	})
	for i, rs := range reds {
		if after := shardDump(t, rs); !maps.Equal(before[i], after) {
			t.Errorf("shard of n%d changed: %d keys before, %d after", i+1, len(before[i]), len(after))
		}
	}
}

// Acceptance (client doors, 3): with --password-file, redis-cli -a over
// TLS and redis-benchmark -a work; without the password every command but
// AUTH, HELLO and QUIT gets NOAUTH.
func TestPasswordFileWithRedisTools(t *testing.T) {
	cli, bench := needBinary(t, "redis-cli"), needBinary(t, "redis-benchmark")
	dir := t.TempDir()
	certs := tlstest.Write(t, dir)
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("s3cret-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plainResp := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startProcArgs(t, "p1", "", []string{"--password-file", pw, "--resp-addr", plainResp})
	tlsResp := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	tlsNode := startProcArgs(t, "p2", "", []string{"--password-file", pw, "--resp-addr", tlsResp,
		"--tls-cert-file", certs.Cert, "--tls-key-file", certs.Key})
	run := func(bin string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		return string(out), err
	}
	host, port, _ := net.SplitHostPort(plainResp)
	waitUntil(t, 20*time.Second, "the RESP listener answers", func() bool {
		out, _ := run(cli, "-h", host, "-p", port, "-a", "s3cret-s3cret", "--no-auth-warning", "PING")
		return strings.TrimSpace(out) == "PONG"
	})
	for _, c := range []struct{ args, want string }{
		{"GET k", "NOAUTH Authentication required."},
		{"SET k v", "NOAUTH Authentication required."},
		{"INFO", "NOAUTH Authentication required."},
		{"PING", "NOAUTH Authentication required."},
		{"AUTH wrong", "WRONGPASS invalid username-password pair or user is disabled."},
		{"QUIT", "OK"},
	} {
		out, _ := run(cli, append([]string{"-h", host, "-p", port}, strings.Fields(c.args)...)...)
		if !strings.Contains(out, c.want) {
			t.Errorf("redis-cli %s without the password: %q, want %q", c.args, out, c.want)
		}
	}
	out, err := run(cli, "-h", host, "-p", port, "-a", "s3cret-s3cret", "--no-auth-warning", "SET", "k", "v")
	if err != nil || strings.TrimSpace(out) != "OK" {
		t.Fatalf("redis-cli -a SET: %q %v", out, err)
	}
	out, err = run(bench, "-h", host, "-p", port, "-a", "s3cret-s3cret", "-n", "2000", "-c", "10", "-t", "set,get", "-q")
	if err != nil || !strings.Contains(out, "SET: ") || !strings.Contains(out, "GET: ") || strings.Contains(out, "NOAUTH") {
		t.Fatalf("redis-benchmark -a: %q %v", out, err)
	}
	if o, e, code := cliRunIn(t, "", []string{"CACHENODE_PASSWORD=s3cret-s3cret"}, "bench", "--target", "resp", "--addrs", plainResp,
		"--ops", "500", "--concurrency", "2", "--progress", "off"); code != 0 || strings.Contains(o+e, "NOAUTH") {
		t.Errorf("cachenode bench with CACHENODE_PASSWORD: %d %s %s", code, o, e)
	}
	th, tp, _ := net.SplitHostPort(tlsResp)
	waitUntil(t, 20*time.Second, "redis-cli over TLS", func() bool {
		out, _ := run(cli, "-h", th, "-p", tp, "--tls", "--cacert", certs.CA, "-a", "s3cret-s3cret", "--no-auth-warning", "SET", "tk", "tv")
		return strings.TrimSpace(out) == "OK"
	})
	out, err = run(cli, "-h", th, "-p", tp, "--tls", "--cacert", certs.CA, "-a", "s3cret-s3cret", "--no-auth-warning", "GET", "tk")
	if err != nil || strings.TrimSpace(out) != "tv" {
		t.Fatalf("redis-cli --tls GET: %q %v", out, err)
	}
	// curl --cacert and the CLI with --cacert and the password.
	curl := needBinary(t, "curl")
	if out, err := run(curl, "-sS", "--cacert", certs.CA, "-u", "default:s3cret-s3cret", "https://"+tlsNode.http+"/v1/keys/tk"); err != nil || out != "tv" {
		t.Errorf("curl --cacert: %q %v", out, err)
	}
	o, e, code := cliRunIn(t, "", []string{"CACHENODE_PASSWORD=s3cret-s3cret"}, "get", "--addr", tlsNode.http, "--cacert", certs.CA, "tk")
	if code != 0 || o != "tv" {
		t.Errorf("cachenode get --cacert: %d %q %q", code, o, e)
	}
	_, e, code = cliRunIn(t, "", nil, "get", "--addr", tlsNode.http, "--cacert", certs.CA, "tk")
	if code != 1 || !strings.Contains(e, "give --password") {
		t.Errorf("cachenode get without the password: %d %q", code, e)
	}
}

// needBinary fails the test when a tool is missing (scripts/deps.sh
// installs redis-tools and curl).
func needBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (scripts/deps.sh installs it): %v", name, err)
	}
	return p
}

// Certificates replaced on disk are served without a restart: after the
// files change (and a SIGHUP), new handshakes on the HTTP and RESP ports
// see the new certificate.
func TestClientCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	caFile, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	ca.WriteCert(t, caFile)
	first := ca.Issue(t, cert, key, false)
	respAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startProcArgs(t, "r1", "", []string{"--resp-addr", respAddr, "--tls-cert-file", cert, "--tls-key-file", key})
	tc := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	serial := func(addr string) string {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, tc)
		if err != nil {
			return "error: " + err.Error()
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	waitUntil(t, 20*time.Second, "the first certificate on both ports", func() bool {
		return serial(p.http) == first.SerialNumber.String() && serial(respAddr) == first.SerialNumber.String()
	})
	second := ca.Issue(t, cert, key, false)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, 10*time.Second, "the new certificate on both ports", func() bool {
		return serial(p.http) == second.SerialNumber.String() && serial(respAddr) == second.SerialNumber.String()
	})
	// A broken file is not taken: the node keeps serving the last good one.
	if err := os.WriteFile(cert, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, 10*time.Second, "a WARN about the broken certificate", func() bool {
		return strings.Contains(p.out.String(), "certificates not reloaded")
	})
	if got := serial(respAddr); got != second.SerialNumber.String() {
		t.Fatalf("after a broken certificate file: %s, want the last good serial", got)
	}
}
