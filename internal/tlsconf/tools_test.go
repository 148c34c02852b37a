package tlsconf

import (
	"bufio"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/peercache/peercache/internal/tlsconf/tlstest"
)

// TestCurl: curl --cacert trusts tlstest's server certificate through a
// Reloader's config on an HTTP server, with and without client
// certificates.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl not found (scripts/deps.sh installs it): %v", err)
	}
	f := tlstest.Write(t, t.TempDir())
	for _, ca := range []string{"", f.CA} {
		r, err := New(Options{CertFile: f.Cert, KeyFile: f.Key, ClientCAFile: ca})
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg := r.Config()
		if ca != "" {
			// The per-handshake config is a copy of this one, not of
			// http.Server's: ALPN must be set here.
			cfg.NextProtos = []string{"h2", "http/1.1"}
		}
		srv := &http.Server{
			TLSConfig: cfg,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				io.WriteString(w, req.Proto)
			}),
			ErrorLog: log.New(io.Discard, "", 0),
		}
		go srv.ServeTLS(l, "", "")
		defer srv.Close()
		srvURL := "https://" + l.Addr().String()
		for _, host := range []string{"127.0.0.1", "localhost"} {
			url := strings.Replace(srvURL, "127.0.0.1", host, 1)
			args := []string{"-sS", "--max-time", "10", "--cacert", f.CA}
			if ca != "" {
				if out, err := exec.Command(curl, append(args, url)...).CombinedOutput(); err == nil {
					t.Errorf("curl without a client certificate: %s", out)
				}
				args = append(args, "--cert", f.ClientCert, "--key", f.ClientKey)
			}
			out, err := exec.Command(curl, append(args, url)...).CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), "HTTP/") {
				t.Errorf("curl %s (client CA %q): %v %s", url, ca, err, out)
			}
			if !strings.HasPrefix(string(out), "HTTP/2") {
				t.Errorf("curl %s (client CA %q): %s, want HTTP/2 (ALPN through the config)", url, ca, out)
			}
		}
	}
}

// TestRedisCLI: redis-cli --tls --cacert (and --cert/--key) against a
// one-command RESP listener on a Reloader's config.
func TestRedisCLI(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli not found (scripts/deps.sh installs redis-tools): %v", err)
	}
	if out, _ := exec.Command(cli, "--help").CombinedOutput(); !strings.Contains(string(out), "--tls") {
		t.Fatal("this redis-cli has no --tls (Debian's redis-tools has)")
	}
	f := tlstest.Write(t, t.TempDir())
	r, err := New(Options{CertFile: f.Cert, KeyFile: f.Key, ClientCAFile: f.CA})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", r.Config())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() { l.Close(); wg.Wait() }()
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if strings.EqualFold(strings.TrimSpace(line), "PING") {
						io.WriteString(c, "+PONG\r\n")
					}
				}
			})
		}
	})
	_, port, _ := net.SplitHostPort(l.Addr().String())
	base := []string{"-h", "127.0.0.1", "-p", port, "--tls", "--cacert", f.CA}
	out, err := exec.Command(cli, append(base, "--cert", f.ClientCert, "--key", f.ClientKey, "PING")...).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "PONG" {
		t.Errorf("redis-cli --tls with a client certificate: %v %q", err, out)
	}
	out, _ = exec.Command(cli, append(base, "PING")...).CombinedOutput()
	if strings.TrimSpace(string(out)) == "PONG" {
		t.Errorf("redis-cli without a client certificate got %q", out)
	}
}
