package tlsconf

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peercache/peercache/internal/tlsconf/tlstest"
)

// server accepts TLS connections with cfg, completes each handshake, writes
// "ok\n" and closes; it returns the address.
func server(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	tl := tls.NewListener(l, cfg)
	wg.Go(func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				io.WriteString(c, "ok\n")
			})
		}
	})
	return l.Addr().String()
}

// dial connects, reads the server's "ok" and returns the server
// certificate's serial, or the error (a refused client certificate shows in
// TLS 1.3 only when reading).
func dial(addr string, cfg *tls.Config) (*big.Int, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 3)
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	if string(b) != "ok\n" {
		return nil, errors.New("unexpected reply " + string(b))
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

func mustSerial(t *testing.T, addr string, cfg *tls.Config, want *big.Int) {
	t.Helper()
	got, err := dial(addr, cfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if got.Cmp(want) != 0 {
		t.Fatalf("server certificate serial %x, want %x", got, want)
	}
}

// forward moves the files' modification times forward so a change is seen
// without waiting for the clock.
func forward(t *testing.T, d time.Duration, files ...string) {
	t.Helper()
	at := time.Now().Add(d)
	for _, f := range files {
		if err := os.Chtimes(f, at, at); err != nil {
			t.Fatal(err)
		}
	}
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

func TestHandshake(t *testing.T) {
	f := tlstest.Write(t, t.TempDir())
	r, err := New(Options{CertFile: f.Cert, KeyFile: f.Key})
	if err != nil {
		t.Fatal(err)
	}
	if r.interval != DefaultCheckInterval {
		t.Errorf("interval %v", r.interval)
	}
	cfg := r.Config()
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.NoClientCert {
		t.Errorf("config %+v", cfg)
	}
	addr := server(t, cfg)
	mustSerial(t, addr, f.ClientConfig(t, false), r.Leaf().SerialNumber)
	old := f.ClientConfig(t, false)
	old.MaxVersion = tls.VersionTLS11
	if _, err := dial(addr, old); err == nil {
		t.Error("TLS 1.1 accepted")
	}
	untrusting := f.ClientConfig(t, false)
	untrusting.RootCAs = nil
	if _, err := dial(addr, untrusting); err == nil {
		t.Error("a client that does not trust the CA connected")
	}
}

func TestRotate(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	caFile := filepath.Join(dir, "ca.pem")
	ca.WriteCert(t, caFile)
	first := ca.Issue(t, certFile, keyFile, false)
	log, logs := newLogger()
	r, err := New(Options{CertFile: certFile, KeyFile: keyFile, Logger: log, CheckInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	addr := server(t, r.Config())
	client := tlstest.Files{CA: caFile}.ClientConfig(t, false)
	mustSerial(t, addr, client, first.SerialNumber)

	second := ca.Issue(t, certFile, keyFile, false)
	forward(t, time.Minute, certFile, keyFile)
	mustSerial(t, addr, client, second.SerialNumber)
	if s := logs.String(); strings.Count(s, "level=INFO") != 1 || !strings.Contains(s, certFile) ||
		!strings.Contains(s, second.SerialNumber.Text(16)) {
		t.Errorf("log after rotation:\n%s", s)
	}
	// Unchanged files: no more reloads.
	mustSerial(t, addr, client, second.SerialNumber)
	if n := strings.Count(logs.String(), "level=INFO"); n != 1 {
		t.Errorf("%d reloads logged, want 1", n)
	}

	// A broken file, noticed by a handshake: the old certificate stays, one
	// WARN names the file and shows no key material.
	if err := os.WriteFile(keyFile, []byte("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	forward(t, 2*time.Minute, keyFile)
	mustSerial(t, addr, client, second.SerialNumber)
	mustSerial(t, addr, client, second.SerialNumber)
	s := logs.String()
	if strings.Count(s, "level=WARN") != 1 || !strings.Contains(s, keyFile) || strings.Contains(s, "not a key") {
		t.Errorf("log after a broken key:\n%s", s)
	}
	// Fixed: taken.
	third := ca.Issue(t, certFile, keyFile, false)
	forward(t, 3*time.Minute, certFile, keyFile)
	mustSerial(t, addr, client, third.SerialNumber)
}

func TestCheckInterval(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	certFile, keyFile, caFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "ca.pem")
	ca.WriteCert(t, caFile)
	first := ca.Issue(t, certFile, keyFile, false)
	for _, interval := range []time.Duration{time.Hour, -1} {
		r, err := New(Options{CertFile: certFile, KeyFile: keyFile, CheckInterval: interval})
		if err != nil {
			t.Fatal(err)
		}
		addr := server(t, r.Config())
		client := tlstest.Files{CA: caFile}.ClientConfig(t, false)
		mustSerial(t, addr, client, first.SerialNumber)
		next := ca.Issue(t, certFile, keyFile, false)
		forward(t, time.Minute, certFile, keyFile)
		// Not looked at yet (or never): the old certificate.
		mustSerial(t, addr, client, first.SerialNumber)
		if err := r.Reload(); err != nil {
			t.Fatal(err)
		}
		mustSerial(t, addr, client, next.SerialNumber)
		first = next
	}
}

func TestReloadBroken(t *testing.T) {
	f := tlstest.Write(t, t.TempDir())
	r, err := New(Options{CertFile: f.Cert, KeyFile: f.Key, ClientCAFile: f.CA, CheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	addr := server(t, r.Config())
	serial := r.Leaf().SerialNumber
	client := f.ClientConfig(t, true)
	mustSerial(t, addr, client, serial)
	for _, c := range []struct {
		file string
		text string
		want error
	}{
		{f.Cert, "garbage", ErrNoPEM},
		{f.CA, "garbage", ErrNoPEM},
		{f.Key, "", nil},
		{f.Cert, "", ErrNoPEM},
	} {
		good, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c.file, []byte(c.text), 0o600); err != nil {
			t.Fatal(err)
		}
		err = r.Reload()
		var fe *FileError
		if !errors.As(err, &fe) || fe.File != c.file || !strings.Contains(err.Error(), c.file) ||
			c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("Reload with a broken %s: %v", filepath.Base(c.file), err)
		}
		mustSerial(t, addr, client, serial)
		if err := os.WriteFile(c.file, good, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(f.Key)
	if err := r.Reload(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Reload without a key file: %v", err)
	}
	mustSerial(t, addr, client, serial)
}

func TestClientCA(t *testing.T) {
	dir := t.TempDir()
	f := tlstest.Write(t, dir)
	log, logs := newLogger()
	r, err := New(Options{CertFile: f.Cert, KeyFile: f.Key, ClientCAFile: f.CA, Logger: log, CheckInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg := r.Config()
	if cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.GetConfigForClient == nil {
		t.Fatalf("config %+v", cfg)
	}
	cfg.NextProtos = []string{"test/1"}
	addr := server(t, cfg)
	serial := r.Leaf().SerialNumber
	if _, err := dial(addr, f.ClientConfig(t, false)); err == nil {
		t.Error("a client without a certificate got through")
	}
	withCert := f.ClientConfig(t, true)
	withCert.NextProtos = []string{"test/1"}
	// A session cache: a resumed session must not outlive a CA change.
	withCert.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	mustSerial(t, addr, withCert, serial)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c := withCert.Clone()
		c.MaxVersion = v
		mustSerial(t, addr, c, serial)
		c = f.ClientConfig(t, false)
		c.MaxVersion = v
		if _, err := dial(addr, c); err == nil {
			t.Errorf("TLS %x: a client without a certificate got through", v)
		}
	}
	// Fields set on the returned config reach the handshake.
	c, err := tls.Dial("tcp", addr, withCert)
	if err != nil {
		t.Fatal(err)
	}
	if st := c.ConnectionState(); st.NegotiatedProtocol != "test/1" || !st.DidResume {
		t.Errorf("negotiated %q, resumed %v; want test/1, a resumed session", st.NegotiatedProtocol, st.DidResume)
	}
	c.Close()

	// A client certificate from another CA: refused; after the CA file
	// changes to that CA, accepted, and the old CA's client refused, even
	// resuming a session (crypto/tls checks a resumed session's chain
	// against the ClientCAs of the handshake).
	other := tlstest.NewCA(t)
	otherCert, otherKey := filepath.Join(dir, "oc.pem"), filepath.Join(dir, "ok.pem")
	other.Issue(t, otherCert, otherKey, true)
	oc, err := tls.LoadX509KeyPair(otherCert, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	otherClient := f.ClientConfig(t, false)
	otherClient.Certificates = []tls.Certificate{oc}
	if _, err := dial(addr, otherClient); err == nil {
		t.Error("a client certificate from another CA got through")
	}
	other.WriteCert(t, f.CA)
	forward(t, time.Minute, f.CA)
	mustSerial(t, addr, otherClient, serial)
	if _, err := dial(addr, withCert); err == nil {
		t.Error("the old CA's client got through after the CA changed")
	}
	if s := logs.String(); !strings.Contains(s, "level=INFO") || !strings.Contains(s, f.CA) {
		t.Errorf("log:\n%s", s)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	f := tlstest.Write(t, dir)
	other := tlstest.Write(t, t.TempDir())
	missing := filepath.Join(dir, "missing.pem")
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, nil, 0o600)
	for _, c := range []struct {
		name string
		o    Options
		file string // named in the error
		want error
	}{
		{"no cert", Options{KeyFile: f.Key}, "", ErrNoFiles},
		{"no key", Options{CertFile: f.Cert}, "", ErrNoFiles},
		{"missing cert", Options{CertFile: missing, KeyFile: f.Key}, missing, os.ErrNotExist},
		{"missing key", Options{CertFile: f.Cert, KeyFile: missing}, missing, os.ErrNotExist},
		{"empty cert", Options{CertFile: empty, KeyFile: f.Key}, empty, ErrNoPEM},
		{"key as cert", Options{CertFile: f.Key, KeyFile: f.Key}, f.Key, ErrNoPEM},
		{"key of another cert", Options{CertFile: f.Cert, KeyFile: other.Key}, other.Key, nil},
		{"cert as key", Options{CertFile: f.Cert, KeyFile: f.Cert}, f.Cert, nil},
		{"missing CA", Options{CertFile: f.Cert, KeyFile: f.Key, ClientCAFile: missing}, missing, os.ErrNotExist},
		{"empty CA", Options{CertFile: f.Cert, KeyFile: f.Key, ClientCAFile: empty}, empty, ErrNoPEM},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.o)
			if err == nil {
				t.Fatal("no error")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("err %v, want %v", err, c.want)
			}
			if c.file != "" {
				var fe *FileError
				if !errors.As(err, &fe) || fe.File != c.file {
					t.Errorf("err %v does not name %s", err, c.file)
				}
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("err shows PEM: %v", err)
			}
		})
	}
}

// TestConcurrentHandshakes races handshakes against rotations and reloads.
func TestConcurrentHandshakes(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	certFile, keyFile, caFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "ca.pem")
	ca.WriteCert(t, caFile)
	ca.Issue(t, certFile, keyFile, false)
	r, err := New(Options{CertFile: certFile, KeyFile: keyFile, CheckInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	addr := server(t, r.Config())
	client := tlstest.Files{CA: caFile}.ClientConfig(t, false)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				if _, err := dial(addr, client); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range 5 {
		r.Reload()
		forward(t, time.Duration(i+1)*time.Minute, certFile, keyFile)
	}
	wg.Wait()
}
