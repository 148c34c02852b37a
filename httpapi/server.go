package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peercache/peercache/auth"
	"github.com/peercache/peercache/node"
)

// DefaultAddr is where the HTTP door listens when its clients authenticate
// (cachenode's default without client authentication is 127.0.0.1:8080).
const DefaultAddr = ":8080"

// Config is the HTTP door's own configuration; everything about keys comes
// from the node it serves.
type Config struct {
	// Auth holds the users, passwords and roles of the HTTP API (nil or
	// disabled: no authentication; see auth.go for the role each route
	// needs).
	Auth *auth.Store
	// PublicMetrics serves /metrics without authentication even when Auth
	// is enabled (for a Prometheus scraper on a private network).
	PublicMetrics bool
	// TLS, when set, serves the HTTP API over TLS only.
	TLS *tls.Config
	// Logger receives the door's logs (nil: the node's logger).
	Logger *slog.Logger
}

// Server is one node's HTTP door. Create it with New and start it with
// Serve; it shuts down when its node stops.
type Server struct {
	n       *node.Node
	cfg     Config
	log     *slog.Logger
	handler http.Handler
	csrf    *http.CrossOriginProtection // refuses cross-site state changes (auth.go)
	metrics metrics
	// maxValue is the node's MaxValueBytes, read once (Config copies the
	// whole configuration; a PUT should not).
	maxValue int

	ln  net.Listener
	mu  sync.Mutex
	srv *http.Server   // set by Serve
	wg  sync.WaitGroup // the Serve goroutine
}

// metrics are the door's Prometheus series, registered in the node's
// registry (one /metrics per node).
type metrics struct {
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	authFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "peercache_http_requests_total",
			Help: "HTTP requests by route, method and status code."}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "peercache_http_request_duration_seconds",
			Help:    "HTTP request latency by route and method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"route", "method"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "peercache_http_auth_failures_total",
			Help: "HTTP requests refused for a wrong user name, password or token."}),
	}
	reg.MustRegister(m.requests, m.latency, m.authFailures)
	return m
}

// Listen opens the HTTP door's listener on addr (host:port; port 0 picks
// one). The node is told the address it got (node.Config.HTTPAddr), so
// that it can advertise it to the other members.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("httpapi: http-addr %s: %w", addr, err)
	}
	return ln, nil
}

// New returns the HTTP door of n on ln (see Listen). It registers its
// metrics in n's registry (so a node has at most one) and itself with n,
// which stops it (StopDoor, closing ln) when the node stops.
func New(n *node.Node, ln net.Listener, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = n.Logger()
	}
	s := &Server{n: n, cfg: cfg, log: cfg.Logger, ln: ln, csrf: http.NewCrossOriginProtection(),
		metrics: newMetrics(n.Registry()), maxValue: n.Config().Limits.MaxValueBytes}
	s.handler = s.routes()
	n.AddDoor(s)
	return s
}

// Handler returns the door's HTTP handler (public API, dashboard, metrics).
func (s *Server) Handler() http.Handler { return s.handler }

// Addr returns the address the door listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve answers requests in a goroutine of its own until the node stops:
// the node stops its doors before it closes its store (see StopDoor).
func (s *Server) Serve() {
	ln := s.ln
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		TLSConfig:         s.cfg.TLS,
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var err error
		if s.cfg.TLS != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	}()
}

// StopDoor shuts the door down; the node calls it when it stops. graceful
// (Stop) lets the requests in flight finish within ctx; otherwise (Abort,
// as a crash) connections are dropped at once.
func (s *Server) StopDoor(ctx context.Context, graceful bool) {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		if graceful {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			srv.Shutdown(sctx)
			cancel()
		} else {
			srv.Close()
		}
	}
	s.ln.Close()
	s.wg.Wait()
}

// NewNode binds addr (see Listen), creates the node of cfg with HTTPAddr
// set to the bound address, and its HTTP door. The caller then calls Serve
// and the node's Start.
func NewNode(addr string, cfg node.Config, hc Config) (*node.Node, *Server, error) {
	ln, err := Listen(addr)
	if err != nil {
		return nil, nil, err
	}
	cfg.HTTP.Addr = ln.Addr().String()
	n, err := node.New(cfg)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	return n, New(n, ln, hc), nil
}
