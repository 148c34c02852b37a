package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/peercache/peercache/auth"
	"github.com/peercache/peercache/httpapi"
	"github.com/peercache/peercache/internal/tlsconf"
	"github.com/peercache/peercache/resp"
)

// loopbackHTTPAddr is --http-addr's default without client authentication
// (with --password-file or --users-file it is httpapi.DefaultAddr).
const loopbackHTTPAddr = "127.0.0.1:8080"

// doorOptions are the flags of the client doors (HTTP API and RESP):
// authentication, TLS and per-client limits.
type doorOptions struct {
	usersFile, passwordFile      string
	publicMetrics                bool
	tlsCert, tlsKey, tlsClientCA string
	maxBulkBytes, maxQueryBytes  int
	maxClients                   int
	idleTimeout                  time.Duration
	eventLoops                   int
}

// maxEventLoops bounds --resp-event-loops (each loop is an OS thread).
const maxEventLoops = 64

func addDoorFlags(fs *flag.FlagSet, d *doorOptions) {
	fs.StringVar(&d.passwordFile, "password-file", "", "file whose first line is the password of user \"default\" (role admin) on the HTTP API and RESP, as Redis' requirepass; make one with: cachenode passwd --generate")
	fs.StringVar(&d.usersFile, "users-file", "", "file of client users, one per line: NAME ROLE HASH (role read, write or admin; hash from `cachenode passwd`); instead of --password-file")
	fs.BoolVar(&d.publicMetrics, "public-metrics", false, "serve /metrics without authentication (for a Prometheus scraper on a private network)")
	fs.StringVar(&d.tlsCert, "tls-cert-file", "", "TLS certificate (PEM) of the HTTP API and RESP listeners; re-read when it changes and on SIGHUP")
	fs.StringVar(&d.tlsKey, "tls-key-file", "", "TLS private key (PEM) for --tls-cert-file")
	fs.StringVar(&d.tlsClientCA, "tls-client-ca-file", "", "CA certificates (PEM): clients of the HTTP API and RESP must present a certificate they sign")
	fs.IntVar(&d.maxBulkBytes, "max-bulk-bytes", 0, "largest RESP argument accepted; longer ones get \"invalid bulk length\" and the connection is closed (0: --max-value-bytes + 64 KiB)")
	fs.IntVar(&d.maxQueryBytes, "max-query-bytes", resp.DefaultMaxQueryBytes, "largest RESP request buffered per client (all its arguments); beyond it the connection is closed (Redis: client-query-buffer-limit)")
	fs.IntVar(&d.maxClients, "max-clients", resp.DefaultMaxClients, "most RESP connections open at once; more get \"max number of clients reached\"")
	fs.DurationVar(&d.idleTimeout, "client-idle-timeout", 0, "close RESP connections idle for longer (0: never, as Redis' timeout 0)")
	fs.IntVar(&d.eventLoops, "resp-event-loops", 0, "serve RESP connections from this many event loops (epoll threads, as redis-server) instead of a goroutine each; GET/SET of keys this node answers at once run on the loop, other commands on a goroutine; not with TLS (0: a goroutine per connection)")
}

// doors is what the client doors were configured with: the users (for
// SIGHUP's reload), the TLS certificates, the RESP options.
type doors struct {
	auth *auth.Store
	tls  *tlsconf.Reloader // nil without --tls-cert-file
	log  *slog.Logger
}

// load checks the door flags and reads the files they name.
func (d *doorOptions) load(maxValueBytes int, log *slog.Logger) (*doors, error) {
	if d.maxBulkBytes < 0 || d.maxQueryBytes < 0 || d.maxClients < 0 || d.idleTimeout < 0 {
		return nil, errors.New("--max-bulk-bytes, --max-query-bytes, --max-clients and --client-idle-timeout must not be negative")
	}
	if d.eventLoops < 0 || d.eventLoops > maxEventLoops {
		return nil, fmt.Errorf("--resp-event-loops %d: want 0 to %d", d.eventLoops, maxEventLoops)
	}
	if d.eventLoops > 0 && d.tlsCert != "" {
		return nil, errors.New("--resp-event-loops: the event loops do not serve TLS; drop it or --tls-cert-file")
	}
	if d.maxBulkBytes == 0 {
		d.maxBulkBytes = maxValueBytes + 64<<10
	}
	if d.maxBulkBytes <= maxValueBytes {
		return nil, fmt.Errorf("--max-bulk-bytes %d: must exceed --max-value-bytes %d (a value's RESP argument must fit)", d.maxBulkBytes, maxValueBytes)
	}
	if d.maxQueryBytes > 0 && d.maxQueryBytes < d.maxBulkBytes {
		return nil, fmt.Errorf("--max-query-bytes %d: must be at least --max-bulk-bytes %d", d.maxQueryBytes, d.maxBulkBytes)
	}
	a, err := auth.Load(auth.Config{UsersFile: d.usersFile, PasswordFile: d.passwordFile})
	if err != nil {
		if errors.Is(err, auth.ErrConfig) {
			return nil, errors.New("--password-file and --users-file: give one or the other")
		}
		return nil, err
	}
	for _, w := range a.Warnings() {
		log.Warn("auth: " + w)
	}
	out := &doors{auth: a, log: log}
	switch {
	case d.tlsCert == "" && d.tlsKey == "":
		if d.tlsClientCA != "" {
			return nil, errors.New("--tls-client-ca-file needs --tls-cert-file and --tls-key-file")
		}
	case d.tlsCert == "" || d.tlsKey == "":
		return nil, errors.New("--tls-cert-file and --tls-key-file go together")
	default:
		out.tls, err = tlsconf.New(tlsconf.Options{CertFile: d.tlsCert, KeyFile: d.tlsKey, ClientCAFile: d.tlsClientCA, Logger: log.With("component", "tls")})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// httpConfig is the HTTP door's configuration.
func (dr *doors) httpConfig(d *doorOptions, log *slog.Logger) httpapi.Config {
	c := httpapi.Config{Auth: dr.auth, PublicMetrics: d.publicMetrics, Logger: log}
	if dr.tls != nil {
		c.TLS = dr.tls.Config()
		c.TLS.NextProtos = []string{"h2", "http/1.1"}
	}
	return c
}

// respOptions are the RESP door's settings.
func (dr *doors) respOptions(d *doorOptions) resp.Options {
	o := resp.Options{
		Auth:        dr.auth,
		MaxClients:  d.maxClients,
		IdleTimeout: d.idleTimeout,
		EventLoops:  d.eventLoops,
		Limits:      resp.Limits{MaxBulkBytes: d.maxBulkBytes, MaxQueryBytes: d.maxQueryBytes},
	}
	if dr.tls != nil {
		o.TLS = dr.tls.Config()
	}
	return o
}

// reload re-reads the users and the certificates (SIGHUP); on an error it
// keeps what it had.
func (dr *doors) reload() {
	if dr.auth.Enabled() {
		if err := dr.auth.Reload(); err != nil {
			dr.log.Warn("SIGHUP: users not reloaded; keeping the previous ones", "err", err)
		} else {
			dr.log.Info("SIGHUP: users reloaded")
		}
	}
	if dr.tls != nil {
		if err := dr.tls.Reload(); err != nil {
			dr.log.Warn("SIGHUP: certificates not reloaded; keeping the previous ones", "err", err)
		}
	}
}

// logPosture says in one line how the client doors are protected, and
// warns when they are open beyond loopback.
func (dr *doors) logPosture(httpAddr, respAddr string) {
	tlsOn := dr.tls != nil
	if dr.auth.Enabled() {
		dr.log.Info("client auth: on", "tls", tlsOn)
		return
	}
	for _, a := range []string{httpAddr, respAddr} {
		if a != "" && !loopbackAddr(a) {
			dr.log.Warn("client auth: off, and a client door listens beyond loopback: anyone who reaches it can read and change any key and stop the node; give --password-file or --users-file", "addr", a, "tls", tlsOn)
			return
		}
	}
	dr.log.Info("client auth: off (client doors on loopback only; give --password-file or --users-file to open them)", "tls", tlsOn)
}

// loopbackAddr reports whether host:port listens on loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsClient is what the client subcommands use to trust a node's
// certificate (--cacert).
func tlsClient(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--cacert: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
