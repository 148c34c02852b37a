// Package tlsconf makes the server TLS configuration of peercache's client
// doors (the HTTP API and the Redis protocol) from PEM files, and keeps it
// current: a [Reloader] re-reads the certificate, the key and the optional
// client CA when asked ([Reloader.Reload], on SIGHUP) and, without any
// goroutine, when a handshake finds that one of the files changed (its
// modification time or size; checked at most once a second), so rotated
// certificates take effect without a restart. A reload that fails keeps the
// material in force.
//
// The package has no package-level mutable state.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCheckInterval is how often handshakes look at the files by default.
const DefaultCheckInterval = time.Second

// Options says which files a [Reloader] reads.
type Options struct {
	// CertFile is the server certificate chain in PEM, leaf first
	// (--tls-cert-file).
	CertFile string
	// KeyFile is its private key in PEM (--tls-key-file).
	KeyFile string
	// ClientCAFile, when set, is the PEM bundle of the CAs that client
	// certificates must chain to; clients without such a certificate are
	// refused (--tls-client-ca-file).
	ClientCAFile string
	// Logger gets an INFO record for each reload and a WARN record for each
	// failed one (naming the file, never key material). Nil: no logging.
	Logger *slog.Logger
	// CheckInterval is how often a handshake may look at the files'
	// modification times: 0 is DefaultCheckInterval, negative is never
	// (reload on Reload only).
	CheckInterval time.Duration
}

// Errors. A [FileError] wraps these or the error of reading the file.
var (
	// ErrNoFiles is Options without a certificate file or a key file.
	ErrNoFiles = errors.New("tlsconf: a certificate file and a key file are both needed")
	// ErrNoPEM is a certificate or CA file without a PEM certificate.
	ErrNoPEM = errors.New("no PEM certificate in it")
)

// FileError is an error in one of the files. Its message names the file and
// never contains key material.
type FileError struct {
	// File is the path as given in the Options.
	File string
	// Err is the reason.
	Err error
}

// Error names the file (and line) and the reason.
func (e *FileError) Error() string { return fmt.Sprintf("tlsconf: %s: %v", e.File, e.Err) }

// Unwrap returns Err.
func (e *FileError) Unwrap() error { return e.Err }

// Reloader holds the current TLS material. It is safe for concurrent use.
type Reloader struct {
	o        Options
	log      *slog.Logger
	interval time.Duration

	cur       atomic.Pointer[material]
	nextCheck atomic.Int64 // UnixNano after which a handshake looks at the files

	mu   sync.Mutex // serializes loads
	seen stamps     // the files as they were at the last load attempt
}

// material is one load of the files.
type material struct {
	cert *tls.Certificate
	pool *x509.CertPool // nil without ClientCAFile
}

// stamp is what tells that a file changed.
type stamp struct {
	mod  time.Time
	size int64
}

type stamps [3]stamp // cert, key, client CA

// New reads the files at once; an error names the file ([*FileError]) or is
// [ErrNoFiles].
func New(o Options) (*Reloader, error) {
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, ErrNoFiles
	}
	r := &Reloader{o: o, log: o.Logger, interval: o.CheckInterval}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.interval == 0 {
		r.interval = DefaultCheckInterval
	}
	r.seen = r.stat()
	m, err := r.read()
	if err != nil {
		return nil, err
	}
	r.cur.Store(m)
	r.nextCheck.Store(time.Now().Add(r.interval).UnixNano())
	return r, nil
}

// Config returns a new server configuration: TLS 1.2 or later, the current
// certificate and, with a client CA file, client certificates required and
// verified against the current CA pool. The certificate and the pool are
// looked up per handshake (GetCertificate, GetConfigForClient), so reloads
// apply to configurations already in use. With a client CA file each
// handshake runs on a copy of the returned configuration as it is then, so
// set fields such as NextProtos on it before serving: http.Server adds "h2"
// and "http/1.1" only to its own copy, which those handshakes do not see
// (set NextProtos = []string{"h2", "http/1.1"} yourself for HTTP/2).
func (r *Reloader) Config() *tls.Config {
	c := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.getCertificate,
	}
	if r.o.ClientCAFile != "" {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = r.cur.Load().pool
		c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			r.maybeReload()
			inner := c.Clone()
			inner.GetConfigForClient = nil
			inner.ClientCAs = r.cur.Load().pool
			return inner, nil
		}
	}
	return c
}

// Leaf returns the certificate in force (for its expiry, say).
func (r *Reloader) Leaf() *x509.Certificate { return r.cur.Load().cert.Leaf }

// Reload reads the files now (on SIGHUP). If they are good they replace the
// material in force, for the handshakes that follow; if not, the old
// material stays and the error, naming the file, is returned. Either way it
// is logged.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loadLocked("reload")
}

func (r *Reloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.maybeReload()
	return r.cur.Load().cert, nil
}

// maybeReload reloads if the interval has passed since the last look and a
// file changed since the last attempt. One handshake looks; the others go
// on with the material in force.
func (r *Reloader) maybeReload() {
	if r.interval < 0 {
		return
	}
	now := time.Now().UnixNano()
	next := r.nextCheck.Load()
	if now < next || !r.nextCheck.CompareAndSwap(next, now+int64(r.interval)) {
		return
	}
	if !r.mu.TryLock() {
		return // a reload is running
	}
	defer r.mu.Unlock()
	if r.stat() == r.seen {
		return
	}
	r.loadLocked("files changed")
}

func (r *Reloader) loadLocked(why string) error {
	r.seen = r.stat()
	m, err := r.read()
	if err != nil {
		r.log.Warn("TLS reload failed; keeping the certificate in force", "why", why, "err", err)
		return err
	}
	r.cur.Store(m)
	attrs := []any{"why", why, "cert", r.o.CertFile,
		"serial", m.cert.Leaf.SerialNumber.Text(16), "not_after", m.cert.Leaf.NotAfter.UTC().Format(time.RFC3339)}
	if r.o.ClientCAFile != "" {
		attrs = append(attrs, "client_ca", r.o.ClientCAFile)
	}
	r.log.Info("TLS certificate loaded", attrs...)
	return nil
}

func (r *Reloader) stat() stamps {
	var s stamps
	for i, f := range []string{r.o.CertFile, r.o.KeyFile, r.o.ClientCAFile} {
		if f == "" {
			continue
		}
		if fi, err := os.Stat(f); err == nil {
			s[i] = stamp{mod: fi.ModTime(), size: fi.Size()}
		}
	}
	return s
}

// read loads the files.
func (r *Reloader) read() (*material, error) {
	certPEM, err := os.ReadFile(r.o.CertFile)
	if err != nil {
		return nil, &FileError{File: r.o.CertFile, Err: err}
	}
	if !hasCertificate(certPEM) {
		return nil, &FileError{File: r.o.CertFile, Err: ErrNoPEM}
	}
	keyPEM, err := os.ReadFile(r.o.KeyFile)
	if err != nil {
		return nil, &FileError{File: r.o.KeyFile, Err: err}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	clear(keyPEM)
	if err != nil {
		// The tls package's messages are fixed texts, no key material.
		return nil, &FileError{File: r.o.KeyFile, Err: fmt.Errorf("with certificate %s: %w", r.o.CertFile, err)}
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, &FileError{File: r.o.CertFile, Err: err}
		}
	}
	m := &material{cert: &cert}
	if r.o.ClientCAFile != "" {
		b, err := os.ReadFile(r.o.ClientCAFile)
		if err != nil {
			return nil, &FileError{File: r.o.ClientCAFile, Err: err}
		}
		m.pool = x509.NewCertPool()
		if !m.pool.AppendCertsFromPEM(b) {
			return nil, &FileError{File: r.o.ClientCAFile, Err: ErrNoPEM}
		}
	}
	return m, nil
}

func hasCertificate(b []byte) bool {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return false
		}
		if blk.Type == "CERTIFICATE" {
			return true
		}
	}
}
