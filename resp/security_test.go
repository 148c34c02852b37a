package resp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peercache/peercache/auth"
	"github.com/peercache/peercache/node"
)

// rawConn is a hand-driven RESP connection, for input no client library
// would send.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.nc, s); err != nil {
		r.t.Fatalf("send: %v", err)
	}
}

// line reads one reply line (without CRLF).
func (r *rawConn) line() string {
	r.t.Helper()
	l, err := r.br.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read reply: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// closed reports whether the server closed the connection (EOF or reset,
// within a few seconds).
func (r *rawConn) closed() bool {
	r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := r.br.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// listenExtra opens another RESP server on n with opts.
func listenExtra(t testing.TB, b Backend, opts Options) string {
	t.Helper()
	opts.Addr = "127.0.0.1:0"
	opts.Logger = testLogger()
	s, err := Listen(b, testOptions(opts))
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s.Addr().String()
}

// usersFile writes a users file: default (admin), app (write), ro (read),
// each with password "<name>-pw".
func usersFile(t *testing.T) *auth.Store {
	t.Helper()
	f := filepath.Join(t.TempDir(), "users")
	var b strings.Builder
	for _, u := range [][2]string{{"default", "admin"}, {"app", "write"}, {"ro", "read"}} {
		b.WriteString(u[0] + " " + u[1] + " " + auth.HashPassword(u[0]+"-pw") + "\n")
	}
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := auth.Load(auth.Config{UsersFile: f})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestHostileInput: what crashed, wedged or bloated a node is answered as
// Redis answers it, closes only that connection, and leaves the server
// serving.
func TestHostileInput(t *testing.T) {
	n := startNode(t, "solo", nil)
	addr := listenExtra(t, n, Options{Limits: Limits{MaxBulkBytes: 1 << 20, MaxQueryBytes: 4 << 20}})
	watch := dialRaw(t, addr) // a second client, which must keep answering
	ping := func() {
		t.Helper()
		watch.send("PING\r\n")
		if l := watch.line(); l != "+PONG" {
			t.Fatalf("PING from another client: %q", l)
		}
	}
	cases := []struct {
		name, in, want string
	}{
		{"bulk length overflow (the 32-byte crash)", "*1\r\n$9223372036854775807\r\nabc\r\n", "-ERR Protocol error: invalid bulk length"},
		{"multibulk length beyond int32", "*3000000000\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"bulk of 2 GB declared", "*1\r\n$2000000000\r\n", "-ERR Protocol error: invalid bulk length"},
		{"negative bulk", "*2\r\n$3\r\nGET\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length"},
		{"not a bulk", "*1\r\n+PING\r\n", "-ERR Protocol error: expected '$', got '+'"},
		{"unbalanced quotes", "SET k \"v\r\n", "-ERR Protocol error: unbalanced quotes in request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.send(tc.in)
			if l := c.line(); l != tc.want {
				t.Fatalf("reply %q, want %q", l, tc.want)
			}
			if !c.closed() {
				t.Fatal("connection left open after a protocol error")
			}
			ping()
		})
	}

	// Streams larger than any limit: the reply comes after the limit,
	// while the client is still sending.
	streams := []struct {
		name, head string
		fill       byte
		want       string
	}{
		{"64 MB inline request without a newline", "", 'a', "-ERR Protocol error: too big inline request"},
		{"32 MB into a bulk declared at the bulk limit", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n", 'y', "-ERR Protocol error: invalid bulk length"},
		{"5 MB spread over many arguments", "*1000\r\n" + strings.Repeat("$1000000\r\n"+strings.Repeat("z", 1000000)+"\r\n", 4) + "$1000000\r\n", 'z', "-ERR Protocol error: query buffer limit reached"},
	}
	for _, tc := range streams {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				chunk := []byte(strings.Repeat(string(tc.fill), 64<<10))
				io.WriteString(c.nc, tc.head)
				for sent := 0; sent < 64<<20; sent += len(chunk) {
					if _, err := c.nc.Write(chunk); err != nil {
						return // the server closed: expected
					}
				}
			}()
			l, err := c.br.ReadString('\n')
			c.nc.Close()
			wg.Wait()
			if strings.TrimRight(l, "\r\n") != tc.want {
				t.Fatalf("reply %q (%v), want %q", l, err, tc.want)
			}
			ping()
		})
	}
}

func TestMaxClientsAndIdleTimeout(t *testing.T) {
	n := startNode(t, "solo", nil)
	addr := listenExtra(t, n, Options{MaxClients: 3})
	var cs []*rawConn
	for i := 0; i < 3; i++ {
		c := dialRaw(t, addr)
		c.send("PING\r\n")
		if l := c.line(); l != "+PONG" {
			t.Fatalf("client %d: %q", i, l)
		}
		cs = append(cs, c)
	}
	extra := dialRaw(t, addr)
	if l := extra.line(); l != "-ERR max number of clients reached" {
		t.Fatalf("client beyond the maximum: %q", l)
	}
	cs[0].nc.Close()
	// The slot frees once the server has seen the close.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := dialRaw(t, addr)
		c.send("PING\r\n")
		l, err := c.br.ReadString('\n')
		if err == nil && l == "+PONG\r\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after a client left: %q %v", l, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	idle := listenExtra(t, n, Options{IdleTimeout: 200 * time.Millisecond})
	c := dialRaw(t, idle)
	c.send("PING\r\n")
	if l := c.line(); l != "+PONG" {
		t.Fatal(l)
	}
	if !c.closed() {
		t.Fatal("an idle client was not disconnected")
	}
}

// panicBackend panics on every read: a bug below the server must close
// that connection, not the process.
type panicBackend struct{ Backend }

func (panicBackend) Get(context.Context, string) (node.Item, error) { panic("boom") }

func TestPanicClosesOnlyItsConnection(t *testing.T) {
	n := startNode(t, "solo", nil)
	addr := listenExtra(t, panicBackend{n}, Options{})
	other := dialRaw(t, addr)
	c := dialRaw(t, addr)
	c.send("GET k\r\n")
	if !c.closed() {
		t.Fatal("connection still open after a panic")
	}
	other.send("SET k v\r\n")
	if l := other.line(); l != "+OK" {
		t.Fatalf("other client after the panic: %q", l)
	}
}

func TestAuth(t *testing.T) {
	n := startNode(t, "solo", nil)
	addr := listenExtra(t, n, Options{Auth: usersFile(t)})
	steps := []struct{ send, want string }{
		{"GET k\r\n", "-NOAUTH Authentication required."},
		{"SET k v\r\n", "-NOAUTH Authentication required."},
		{"CONFIG GET *\r\n", "-NOAUTH Authentication required."},
		{"PING\r\n", "-NOAUTH Authentication required."},
		{"AUTH wrong\r\n", "-WRONGPASS invalid username-password pair or user is disabled."},
		{"AUTH nobody nobody-pw\r\n", "-WRONGPASS invalid username-password pair or user is disabled."},
		{"HELLO 2 AUTH app wrong\r\n", "-WRONGPASS invalid username-password pair or user is disabled."},
		{"*12\r\n", "-ERR Protocol error: unauthenticated multibulk length"},
	}
	c := dialRaw(t, addr)
	for _, s := range steps {
		c.send(s.send)
		if l := c.line(); l != s.want {
			t.Fatalf("%q: %q, want %q", s.send, l, s.want)
		}
	}
	if !c.closed() {
		t.Fatal("connection open after an unauthenticated oversized request")
	}

	// A read user reads; writes and admin commands are refused.
	ro := dialRaw(t, addr)
	for _, s := range []struct{ send, want string }{
		{"AUTH ro ro-pw\r\n", "+OK"},
		{"GET k\r\n", "$-1"},
		{"SET k v\r\n", "-NOPERM User ro has no permissions to run the 'set' command"},
		{"DEL k\r\n", "-NOPERM User ro has no permissions to run the 'del' command"},
		{"CONFIG GET maxclients\r\n", "-NOPERM User ro has no permissions to run the 'config' command"},
		{"CLIENT LIST\r\n", "-NOPERM User ro has no permissions to run the 'client|list' command"},
		// Pipelined, batched: the same refusals, in order.
		{"GET a\r\nSET b v\r\nGET c\r\n", "$-1"},
	} {
		ro.send(s.send)
		if l := ro.line(); l != s.want {
			t.Fatalf("ro %q: %q, want %q", s.send, l, s.want)
		}
	}
	if l := ro.line(); l != "-NOPERM User ro has no permissions to run the 'set' command" {
		t.Fatalf("pipelined SET of a read user: %q", l)
	}
	if l := ro.line(); l != "$-1" {
		t.Fatalf("pipelined GET after: %q", l)
	}

	// A write user writes; the default user (admin) runs admin commands;
	// HELLO 2 AUTH authenticates too.
	app := dialRaw(t, addr)
	for _, s := range []struct{ send, want string }{
		{"HELLO 2 AUTH app app-pw\r\n", "*14"},
	} {
		app.send(s.send)
		if l := app.line(); l != s.want {
			t.Fatalf("app %q: %q, want %q", s.send, l, s.want)
		}
	}
	app.send("PING\r\n")
	for app.line() != "+PONG" {
	}
	for _, s := range []struct{ send, want string }{
		{"SET k v\r\n", "+OK"},
		{"CONFIG GET maxclients\r\n", "-NOPERM User app has no permissions to run the 'config' command"},
		{"FLUSHDB\r\n", "-NOPERM User app has no permissions to run the 'flushdb' command"},
		{"INCR counter\r\n", ":1"},
	} {
		app.send(s.send)
		if l := app.line(); l != s.want {
			t.Fatalf("app %q: %q, want %q", s.send, l, s.want)
		}
	}
	admin := dialRaw(t, addr)
	admin.send("AUTH default-pw\r\nCONFIG GET maxclients\r\n")
	if l := admin.line(); l != "+OK" {
		t.Fatal(l)
	}
	if l := admin.line(); l != "*2" {
		t.Fatalf("CONFIG GET as admin: %q", l)
	}
}
