package main

// Supervised Redis: with --redis-server, cachenode runs its own redis-server
// child as the node's shard, so that one container is one node with its own
// Redis and nothing else (no shell, no init). The child binds 127.0.0.1 only,
// keeps nothing on disk, is restarted (with backoff) when it dies, is stopped
// after the node has drained, and is killed by the kernel if cachenode dies
// first (Pdeathsig on Linux).

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// redisStartTimeout bounds how long cachenode waits for a new
	// redis-server to answer PING before giving up at startup.
	redisStartTimeout = 15 * time.Second
	// redisStopTimeout is how long a redis-server may take to exit after
	// SIGTERM before it is killed.
	redisStopTimeout = 10 * time.Second
	// redisRestartMin and redisRestartMax bound the backoff between
	// restarts. The first restart waits redisRestartMin, long enough for the
	// node's readiness probe (a PING with a 1 s deadline, once a second, which
	// the Redis client retries within that second) to see the outage: the
	// restarted Redis is empty, and load balancers and orchestrators should
	// know.
	redisRestartMin = 3 * time.Second
	redisRestartMax = 15 * time.Second
	// redisStableAfter resets the backoff once a child has run this long.
	redisStableAfter = 30 * time.Second
)

// redisProcOptions are the flags of the supervised redis-server.
type redisProcOptions struct {
	server string // path of redis-server; empty: no supervised Redis
	port   int
	dir    string
}

// addRedisProcFlags registers --redis-server, --redis-port and --redis-dir.
func addRedisProcFlags(fs *flag.FlagSet, o *redisProcOptions) {
	fs.StringVar(&o.server, "redis-server", "", "path of a redis-server binary that cachenode starts, supervises and uses as this node's shard (instead of --redis-addr)")
	fs.IntVar(&o.port, "redis-port", 6379, "port of the supervised redis-server (bound to 127.0.0.1)")
	fs.StringVar(&o.dir, "redis-dir", "", "working directory of the supervised redis-server (default: a new temporary directory, removed on exit)")
}

// startRedisProc starts the supervised redis-server when --redis-server is
// set, waits until it answers PING and points o.redisAddr at it. It returns
// nil (and nothing to stop) when --redis-server is not set. Configuration
// mistakes are usageErrors.
func startRedisProc(o *options, log *slog.Logger) (*redisProc, error) {
	ro := o.redisProc
	if ro.server == "" {
		return nil, nil
	}
	if o.redisAddr != "" {
		return nil, usageError{fmt.Errorf("--redis-server and --redis-addr %q: give one (a supervised Redis or an external one)", o.redisAddr)}
	}
	if ro.port <= 0 || ro.port > 65535 {
		return nil, usageError{fmt.Errorf("--redis-port %d: want 1-65535", ro.port)}
	}
	path, err := exec.LookPath(ro.server)
	if err != nil {
		return nil, usageError{fmt.Errorf("--redis-server %q: %w", ro.server, err)}
	}
	p := &redisProc{
		path:     path,
		port:     ro.port,
		addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(ro.port)),
		password: o.redisPassword,
		log:      log.With("component", "redis"),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	if ro.dir == "" {
		d, err := os.MkdirTemp("", "cachenode-redis-")
		if err != nil {
			return nil, fmt.Errorf("--redis-dir: creating a temporary directory: %w", err)
		}
		p.dir, p.ownDir = d, true
	} else {
		if err := os.MkdirAll(ro.dir, 0o700); err != nil {
			return nil, usageError{fmt.Errorf("--redis-dir %q: %w", ro.dir, err)}
		}
		p.dir = ro.dir
	}
	first := make(chan error, 1)
	go p.supervise(first)
	if err := <-first; err != nil {
		<-p.done
		p.removeDir()
		return nil, err
	}
	o.redisAddr = p.addr
	return p, nil
}

// redisProc supervises one redis-server child.
type redisProc struct {
	path, dir string
	port      int
	addr      string
	password  string // --redis-password: the child requires it
	ownDir    bool
	log       *slog.Logger

	stopOnce sync.Once
	stopping chan struct{} // closed by stop
	done     chan struct{} // closed once the supervisor ended and no child runs
}

// supervise runs in its own goroutine for the life of the child processes.
// It reports the first start on first (nil once Redis answers PING), then
// restarts the child whenever it dies, until stop.
func (p *redisProc) supervise(first chan<- error) {
	// Pdeathsig fires when the thread that started the child exits, not only
	// the process: keep this goroutine on one thread for the children's life.
	// The thread ends with the goroutine (still locked), after the last child
	// has been reaped.
	runtime.LockOSThread()
	defer close(p.done)
	backoff := redisRestartMin
	for {
		cmd, exited, lw, err := p.spawn()
		if err != nil {
			if first != nil {
				first <- fmt.Errorf("starting redis-server %s: %w", p.path, err)
				return
			}
			p.log.Error("redis-server did not start; retrying", "err", err, "retry_in", backoff)
		} else {
			began := time.Now()
			if first != nil {
				gone, err := p.waitReady(exited)
				if err != nil {
					if !gone {
						p.kill(cmd, exited)
					}
					first <- fmt.Errorf("redis-server %s on %s: %w (its last output: %s)", p.path, p.addr, err, lw.tail())
					return
				}
				p.log.Info("redis-server ready", "pid", cmd.Process.Pid, "addr", p.addr, "dir", p.dir)
				first <- nil
				first = nil
			} else {
				p.log.Info("redis-server restarted", "pid", cmd.Process.Pid, "addr", p.addr)
			}
			select {
			case <-p.stopping:
				p.terminate(cmd, exited)
				return
			case err := <-exited:
				if time.Since(began) >= redisStableAfter {
					backoff = redisRestartMin
				}
				p.log.Error("redis-server exited; the node is unready until it is back (its data is lost)",
					"pid", cmd.Process.Pid, "err", exitDescription(err), "restart_in", backoff, "last_output", lw.tail())
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-p.stopping:
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, redisRestartMax)
	}
}

// spawn starts one redis-server; exited receives Wait's result.
func (p *redisProc) spawn() (*exec.Cmd, <-chan error, *redisLogWriter, error) {
	args := []string{
		"--port", strconv.Itoa(p.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", p.dir,
		"--daemonize", "no",
		"--logfile", "",
	}
	var stdin io.Reader
	if p.password != "" {
		// "-" reads more configuration from stdin: the password stays out of
		// the process list.
		args = append([]string{"-"}, args...)
		stdin = strings.NewReader("requirepass " + redisQuote(p.password) + "\n")
	}
	cmd := exec.Command(p.path, args...)
	cmd.Dir = p.dir
	cmd.Stdin = stdin
	lw := &redisLogWriter{log: p.log}
	cmd.Stdout = lw
	cmd.Stderr = lw
	cmd.WaitDelay = time.Second // do not hang on a pipe a grandchild holds
	setRedisProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		lw.flush()
		exited <- err
	}()
	return cmd, exited, lw, nil
}

// waitReady polls PING until Redis answers, the child exits (gone) or the
// start timeout passes.
func (p *redisProc) waitReady(exited <-chan error) (gone bool, err error) {
	deadline := time.Now().Add(redisStartTimeout)
	for {
		err := pingRedis(p.addr, p.password, 500*time.Millisecond)
		if err == nil {
			return false, nil
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("no answer to PING within %s: %w", redisStartTimeout, err)
		}
		select {
		case werr := <-exited:
			return true, fmt.Errorf("exited before answering PING (%s); is port %d free?", exitDescription(werr), p.port)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// terminate stops a child: SIGTERM, then SIGKILL after redisStopTimeout.
func (p *redisProc) terminate(cmd *exec.Cmd, exited <-chan error) {
	pid := cmd.Process.Pid
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.log.Debug("signalling redis-server", "pid", pid, "err", err)
	}
	t := time.NewTimer(redisStopTimeout)
	defer t.Stop()
	select {
	case err := <-exited:
		p.log.Info("redis-server stopped", "pid", pid, "exit", exitDescription(err))
	case <-t.C:
		p.log.Warn("redis-server ignored SIGTERM; killing it", "pid", pid, "timeout", redisStopTimeout)
		p.kill(cmd, exited)
	}
}

func (p *redisProc) kill(cmd *exec.Cmd, exited <-chan error) {
	cmd.Process.Kill()
	<-exited
}

// stop ends supervision: the running redis-server gets SIGTERM (SIGKILL after
// redisStopTimeout) and stop returns once it has exited. Safe on a nil
// receiver and when called more than once.
func (p *redisProc) stop() {
	if p == nil {
		return
	}
	p.stopOnce.Do(func() {
		close(p.stopping)
		<-p.done
		p.removeDir()
	})
}

func (p *redisProc) removeDir() {
	if p.ownDir {
		if err := os.RemoveAll(p.dir); err != nil {
			p.log.Warn("removing the redis directory", "dir", p.dir, "err", err)
		}
	}
}

// pingRedis sends one RESP PING (after AUTH when password is set) and
// expects +PONG.
func pingRedis(addr, password string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(c)
	if password != "" {
		if _, err := fmt.Fprintf(c, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password); err != nil {
			return fmt.Errorf("sending AUTH: %w", err)
		}
		if line, err := r.ReadString('\n'); err != nil {
			return fmt.Errorf("reading the AUTH answer: %w", err)
		} else if got := strings.TrimSpace(line); got != "+OK" {
			return fmt.Errorf("AUTH answered %q", got)
		}
	}
	if _, err := io.WriteString(c, "*1\r\n$4\r\nPING\r\n"); err != nil {
		return fmt.Errorf("sending PING: %w", err)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the PING answer: %w", err)
	}
	if got := strings.TrimSpace(line); got != "+PONG" {
		return fmt.Errorf("PING answered %q", got)
	}
	return nil
}

// redisQuote quotes s for a Redis configuration line: printable ASCII as
// is, everything else (and the quote and backslash) as \xHH.
func redisQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\x%02x", c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func exitDescription(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// redisLogWriter turns redis-server's output into debug log records and
// keeps the last few lines, which explain an unexpected exit.
type redisLogWriter struct {
	log  *slog.Logger
	mu   sync.Mutex
	buf  []byte
	last []string // up to redisLogTail lines
}

const redisLogTail = 5

func (w *redisLogWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a line without end: do not grow without bound
		w.emit(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(b), nil
}

// flush logs a last unterminated line.
func (w *redisLogWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}

// tail returns the last lines Redis printed, joined by " | ".
func (w *redisLogWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.last, " | ")
}

// emit logs one line. Redis lines look like
// "123:M 01 Jan 2026 12:00:00.000 * message"; the pid, role, time and level
// marker are dropped (Redis logs even routine start-up lines at its warning
// level, so the marker says little).
func (w *redisLogWriter) emit(line string) {
	line = strings.TrimSpace(line)
	if line == "" {
		return
	}
	msg := line
	if f := strings.Fields(line); len(f) >= 7 && len(f[5]) == 1 && strings.Contains(".-*#", f[5]) {
		if _, rest, ok := strings.Cut(line, " "+f[5]+" "); ok {
			msg = rest
		}
	}
	if len(w.last) == redisLogTail {
		w.last = append(w.last[:0], w.last[1:]...)
	}
	w.last = append(w.last, msg)
	w.log.Debug("redis-server: " + msg)
}
