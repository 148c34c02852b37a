// Package testredis starts throw-away redis-server processes for tests.
//
// Each call to Start runs a fresh redis-server bound to 127.0.0.1 on a free
// port, with persistence disabled and its working directory in the test's
// temporary directory. The server is stopped by a cleanup registered on the
// test, so tests never leak processes. A missing redis-server binary fails the
// test (it is never skipped): the tests that use this package claim behaviour
// of a real Redis.
package testredis

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

const (
	// readyTimeout bounds how long Start waits for a new server to answer PING.
	readyTimeout = 10 * time.Second
	// stopTimeout bounds how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 5 * time.Second
	// startAttempts is how many ports Start tries before giving up.
	startAttempts = 5
	// maxLogBytes bounds the server output kept for failure messages.
	maxLogBytes = 16 << 10
)

// Option configures a server started by Start.
type Option func(*config)

type config struct {
	args     []string
	password string
}

// WithArgs appends raw redis-server command-line arguments, for example
// WithArgs("--databases", "64").
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// WithMaxMemory sets --maxmemory (a redis size such as "10mb" or "1048576")
// and --maxmemory-policy (such as "allkeys-lru" or "noeviction").
func WithMaxMemory(size, policy string) Option {
	return func(c *config) {
		c.args = append(c.args, "--maxmemory", size)
		if policy != "" {
			c.args = append(c.args, "--maxmemory-policy", policy)
		}
	}
}

// WithPassword makes the server require a password (--requirepass). The
// client returned by Server.Client authenticates with it.
func WithPassword(password string) Option {
	return func(c *config) { c.password = password }
}

// Server is one running (or stopped) redis-server owned by a test.
// Its methods are safe for concurrent use.
type Server struct {
	tb   testing.TB
	bin  string
	dir  string
	cfg  config
	mu   sync.Mutex
	addr string
	port int
	proc *process
	cli  *redis.Client
}

// process is one redis-server run; done is closed when it has exited.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status, valid after done is closed
	out  *limitedBuffer
}

// Start runs a new redis-server for tb and waits until it answers PING. The
// server is stopped when tb's cleanups run. It fails tb (never skips) if
// redis-server is not installed or does not come up.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("testredis: redis-server not found in PATH: run `make deps` (apt-get install -y redis-server): %v", err)
	}
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir()}
	for _, o := range opts {
		o(&s.cfg)
	}
	tb.Cleanup(s.cleanup)

	var errs []error
	for attempt := 0; attempt < startAttempts; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("testredis: pick a free port: %v", err)
		}
		p, err := s.launch(port)
		if err == nil {
			s.mu.Lock()
			s.port, s.addr, s.proc = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), p
			s.mu.Unlock()
			return s
		}
		errs = append(errs, fmt.Errorf("port %d: %w", port, err))
	}
	tb.Fatalf("testredis: redis-server did not start after %d attempts: %v", startAttempts, errors.Join(errs...))
	return nil
}

// Addr returns the server's "127.0.0.1:port" address. It stays the same
// across Restart.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Password returns the password set with WithPassword, or "".
func (s *Server) Password() string { return s.cfg.password }

// Client returns a go-redis client for the server, created on first use and
// closed when the test ends. It reconnects by itself after Restart.
func (s *Server) Client() *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cli == nil {
		s.cli = redis.NewClient(&redis.Options{
			Addr:                     s.addr,
			Password:                 s.cfg.password,
			DisableIdentity:          true,
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		})
	}
	return s.cli
}

// FlushAll removes every key of every database, failing the test on error.
func (s *Server) FlushAll() {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := s.Client().FlushAll(ctx).Err(); err != nil {
		s.tb.Fatalf("testredis: FLUSHALL on %s: %v", s.Addr(), err)
	}
}

// Stop shuts the server down gracefully (SIGTERM, then SIGKILL after a grace
// period) and waits for it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.stop(syscall.SIGTERM, stopTimeout)
	}
}

// Kill ends the server abruptly with SIGKILL (as a crash would) and waits for
// it to exit.
func (s *Server) Kill() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.stop(syscall.SIGKILL, 0)
	}
}

// Restart stops the server if it is running and starts a new one on the same
// port (with an empty dataset, since persistence is off). It fails the test
// if the new server does not come up.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.mu.Lock()
	port := s.port
	s.mu.Unlock()
	var errs []error
	// The old socket may linger briefly; retry the same port a few times.
	for attempt := 0; attempt < startAttempts; attempt++ {
		p, err := s.launch(port)
		if err == nil {
			s.mu.Lock()
			s.proc = p
			s.mu.Unlock()
			return
		}
		errs = append(errs, err)
		time.Sleep(100 * time.Millisecond)
	}
	s.tb.Fatalf("testredis: restart redis-server on port %d: %v", port, errors.Join(errs...))
}

func (s *Server) cleanup() {
	s.mu.Lock()
	cli := s.cli
	s.cli = nil
	s.mu.Unlock()
	if cli != nil {
		_ = cli.Close()
	}
	s.Stop()
}

// launch starts redis-server on port and waits until it answers. On failure
// the process is gone when launch returns.
func (s *Server) launch(port int) (*process, error) {
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
		"--logfile", "",
	}
	if s.cfg.password != "" {
		args = append(args, "--requirepass", s.cfg.password)
	}
	args = append(args, s.cfg.args...)

	cmd := exec.Command(s.bin, args...)
	out := &limitedBuffer{max: maxLogBytes}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = s.dir
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), out: out}
	// This goroutine is owned by p: it ends when the process exits, which
	// stop guarantees.
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("redis-server exited early (%v): %s", p.err, strings.TrimSpace(out.String()))
		default:
		}
		if err := ping(addr); err == nil {
			return p, nil
		} else if time.Now().After(deadline) {
			p.stop(syscall.SIGKILL, 0)
			return nil, fmt.Errorf("redis-server on %s did not answer PING within %v (%v): %s",
				addr, readyTimeout, err, strings.TrimSpace(out.String()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends sig, waits up to grace for the exit, then SIGKILLs and waits.
func (p *process) stop(sig syscall.Signal, grace time.Duration) {
	_ = p.cmd.Process.Signal(sig)
	if grace > 0 {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// ping sends a raw PING; a PONG or an authentication error (the server is up
// but wants a password) both mean the server is ready.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH") {
		return nil
	}
	return fmt.Errorf("unexpected PING reply %q", strings.TrimSpace(line))
}

// freePort asks the kernel for a free TCP port on 127.0.0.1. Another process
// may take it before redis-server binds; Start retries in that case.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
