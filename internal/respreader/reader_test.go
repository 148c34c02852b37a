package respreader

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tidwall/redcon"
)

// readAll parses everything in in, the way resp's serveConn does, and
// returns the requests and the error that ended the stream.
func readAll(t testing.TB, in io.Reader, lim Limits, authed bool) ([][]string, error) {
	t.Helper()
	r := New(in, lim, func() bool { return authed })
	var out [][]string
	for {
		cmds, err := r.Read(nil)
		for _, c := range cmds {
			args := make([]string, len(c.Args))
			for i, a := range c.Args {
				args[i] = string(a)
			}
			out = append(out, args)
		}
		if err != nil {
			return out, err
		}
	}
}

func TestReader(t *testing.T) {
	small := Limits{MaxBulkBytes: 100, MaxQueryBytes: 1000}
	cases := []struct {
		name   string
		in     string
		lim    Limits
		noAuth bool
		want   [][]string
		err    string // "" = the stream ended cleanly (io.EOF)
	}{
		{name: "multibulk", in: "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", want: [][]string{{"GET", "k"}}},
		{name: "pipeline", in: "*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n", want: [][]string{{"PING"}, {"SET", "k", ""}}},
		{name: "binary value", in: "*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\x00\xff\r\n", want: [][]string{{"ECHO", "\r\n\x00\xff"}}},
		{name: "empty requests skipped", in: "*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", want: [][]string{{"PING"}}},
		{name: "inline", in: "SET k \"a b\\x41\\n\" 'it\\'s'\r\nPING\n\r\n", want: [][]string{{"SET", "k", "a bA\n", "it's"}, {"PING"}}},
		{name: "inline unbalanced", in: "SET k \"abc\r\n", err: "Protocol error: unbalanced quotes in request"},
		{name: "inline quote then text", in: "SET \"k\"x v\r\n", err: "Protocol error: unbalanced quotes in request"},
		// The 32-byte packet that crashed redcon's reader.
		{name: "bulk length overflow", in: "*1\r\n$9223372036854775807\r\nabc\r\n", err: "Protocol error: invalid bulk length"},
		{name: "multibulk too long", in: "*3000000000\r\n", err: "Protocol error: invalid multibulk length"},
		{name: "multibulk beyond a million", in: "*1048577\r\n", err: "Protocol error: invalid multibulk length"},
		{name: "bulk beyond the limit", in: "*1\r\n$2000000000\r\n", err: "Protocol error: invalid bulk length"},
		{name: "bulk just beyond a small limit", in: "*1\r\n$101\r\n", lim: small, err: "Protocol error: invalid bulk length"},
		{name: "bulk at a small limit", in: "*1\r\n$100\r\n" + strings.Repeat("x", 100) + "\r\n", lim: small, want: [][]string{{strings.Repeat("x", 100)}}},
		{name: "negative bulk", in: "*1\r\n$-1\r\n", err: "Protocol error: invalid bulk length"},
		{name: "bad multibulk count", in: "*x\r\n", err: "Protocol error: invalid multibulk length"},
		{name: "multibulk without CR", in: "*1\n", err: "Protocol error: invalid multibulk length"},
		{name: "missing dollar", in: "*1\r\n:1\r\n", err: "Protocol error: expected '$', got ':'"},
		{name: "unprintable instead of dollar", in: "*1\r\n\x01", err: `Protocol error: expected '$', got '\x01'`},
		{name: "bulk without its CRLF", in: "*1\r\n$1\r\nabc\r\n", err: "Protocol error: invalid bulk length"},
		{name: "inline too big", in: strings.Repeat("a", maxInline+2), err: "Protocol error: too big inline request"},
		{name: "multibulk header too big", in: "*" + strings.Repeat("1", maxInline+2), err: "Protocol error: too big mbulk count string"},
		{name: "bulk header too big", in: "*1\r\n$" + strings.Repeat("1", maxInline+2), err: "Protocol error: too big bulk count string"},
		{name: "query limit", in: "*20\r\n" + strings.Repeat("$100\r\n"+strings.Repeat("x", 100)+"\r\n", 12), lim: small, err: "Protocol error: query buffer limit reached"},
		{name: "unauthenticated many args", in: "*11\r\n", noAuth: true, err: "Protocol error: unauthenticated multibulk length"},
		{name: "unauthenticated big bulk", in: "*2\r\n$4\r\nAUTH\r\n$16385\r\n", noAuth: true, err: "Protocol error: unauthenticated bulk length"},
		{name: "unauthenticated inline many args", in: strings.Repeat("a ", 11) + "\r\n", noAuth: true, err: "Protocol error: unauthenticated multibulk length"},
		{name: "unauthenticated AUTH", in: "*2\r\n$4\r\nAUTH\r\n$3\r\npwd\r\n", noAuth: true, want: [][]string{{"AUTH", "pwd"}}},
		{name: "incomplete at the end", in: "*2\r\n$3\r\nGET\r\n$1\r\n", want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Whole, and one byte per read: a request split anywhere
			// parses the same.
			for _, in := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got, err := readAll(t, in, tc.lim, !tc.noAuth)
				if tc.err == "" {
					if !errors.Is(err, io.EOF) {
						t.Fatalf("error %v, want EOF", err)
					}
				} else if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if len(got) != len(tc.want) {
					t.Fatalf("requests %q, want %q", got, tc.want)
				}
				for i := range got {
					if strings.Join(got[i], "|") != strings.Join(tc.want[i], "|") {
						t.Fatalf("request %d = %q, want %q", i, got[i], tc.want[i])
					}
				}
			}
		})
	}
}

// A request's bytes are its own: the reader reuses its buffer, so a
// handler that keeps a value (the in-memory store does) must not see it
// change when the next requests arrive.
func TestReaderRequestsOwnTheirBytes(t *testing.T) {
	var in bytes.Buffer
	for i := 0; i < 2000; i++ {
		in.WriteString("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8\r\n")
		in.WriteString(strings.Repeat(string(rune('a'+i%26)), 8))
		in.WriteString("\r\n")
	}
	r := New(iotest.HalfReader(&in), Limits{}, nil)
	var kept []redcon.Command
	for {
		cmds, err := r.Read(nil)
		kept = append(kept, cmds...)
		if err != nil {
			break
		}
	}
	if len(kept) != 2000 {
		t.Fatalf("%d requests, want 2000", len(kept))
	}
	for i, c := range kept {
		if want := strings.Repeat(string(rune('a'+i%26)), 8); string(c.Args[2]) != want {
			t.Fatalf("request %d value %q, want %q", i, c.Args[2], want)
		}
	}
}

// Requests read together share allocations, but each one's arguments are
// capped: a handler that appends to one cannot write into its neighbours.
func TestReaderRequestsDoNotOverlap(t *testing.T) {
	in := strings.NewReader(strings.Repeat("*2\r\n$3\r\nGET\r\n$2\r\nk1\r\n", 40))
	r := New(in, Limits{}, nil)
	cmds, err := r.Read(nil)
	if err != nil || len(cmds) != 40 {
		t.Fatalf("read %d requests, %v; want 40", len(cmds), err)
	}
	for i := range cmds {
		_ = append(cmds[i].Args[1], "XXXXXXXX"...)
		_ = append(cmds[i].Args, []byte("extra"))
		_ = append(cmds[i].Raw, "YYYYYYYY"...)
	}
	for i, c := range cmds {
		if len(c.Args) != 2 || string(c.Args[0]) != "GET" || string(c.Args[1]) != "k1" || string(c.Raw) != "*2\r\n$3\r\nGET\r\n$2\r\nk1\r\n" {
			t.Fatalf("request %d changed by its neighbour: %q %q", i, c.Args, c.Raw)
		}
	}
}

// Memory follows what arrived, not what a header declares, and a large
// buffer is let go once its request is served.
func TestReaderBuffer(t *testing.T) {
	pr, pw := io.Pipe()
	r := New(pr, Limits{MaxBulkBytes: 8 << 20, MaxQueryBytes: 16 << 20}, nil)
	go func() {
		pw.Write([]byte("*1\r\n$8000000\r\n"))
		pw.Write(bytes.Repeat([]byte("x"), 1000))
		pw.Close()
	}()
	cmds, err := r.Read(nil)
	if len(cmds) != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read: %d requests, %v", len(cmds), err)
	}
	if len(r.buf) > 2*readChunk {
		t.Fatalf("buffer %d bytes after 1 kB of an 8 MB argument", len(r.buf))
	}

	big := "*1\r\n$1000000\r\n" + strings.Repeat("y", 1000000) + "\r\n"
	r = New(strings.NewReader(big+"*1\r\n$4\r\nPING\r\n"), Limits{}, nil)
	var all []redcon.Command
	err = nil
	for len(all) < 2 && err == nil {
		cmds, err = r.Read(nil)
		all = append(all, cmds...)
	}
	if err != nil || len(all) != 2 || len(all[0].Args[0]) != 1000000 || string(all[1].Args[0]) != "PING" {
		t.Fatalf("big request then PING: %d requests, %v", len(all), err)
	}
	if _, err := r.Read(nil); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
	if len(r.buf) > shrinkAbove {
		t.Fatalf("buffer still %d bytes once idle", len(r.buf))
	}
}

// FuzzReader: any byte stream, in any split, ends in requests and an
// error, never a panic, and never a request larger than the limits.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
		"*1\r\n$9223372036854775807\r\nabc\r\n",
		"PING\r\nSET k \"v\\x00\"\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$-1\r\n",
		"*-1\r\n*0\r\n$3\r\n",
	} {
		f.Add([]byte(s), uint8(0), false)
	}
	lim := Limits{MaxBulkBytes: 512, MaxQueryBytes: 4096}
	f.Fuzz(func(t *testing.T, in []byte, split uint8, authed bool) {
		var rd io.Reader = bytes.NewReader(in)
		if split%2 == 1 {
			rd = iotest.OneByteReader(rd)
		}
		r := New(rd, lim, func() bool { return authed })
		for {
			cmds, err := r.Read(nil)
			for _, c := range cmds {
				if len(c.Args) == 0 {
					t.Fatal("empty request")
				}
				total := 0
				for _, a := range c.Args {
					total += len(a)
					if len(a) > lim.MaxBulkBytes {
						t.Fatalf("argument of %d bytes", len(a))
					}
				}
				if total > lim.MaxQueryBytes {
					t.Fatalf("request of %d bytes", total)
				}
			}
			if err != nil {
				return
			}
		}
	})
}

// FuzzParseLen holds parseLen to strconv.Atoi's answer on the lengths it
// accepts (at most 18 bytes).
func FuzzParseLen(f *testing.F) {
	for _, s := range []string{"0", "1", "-1", "+7", "-", "+", "", "007", "123456789012345678", "12a", " 1", "1 ", "--1", "9999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseLen([]byte(s))
		want, err := strconv.Atoi(s)
		if len(s) > 18 {
			if ok {
				t.Fatalf("parseLen(%q) accepted a length of more than 18 bytes", s)
			}
			return
		}
		if ok != (err == nil) || ok && got != want {
			t.Fatalf("parseLen(%q) = %d, %v; strconv.Atoi: %d, %v", s, got, ok, want, err)
		}
	})
}
