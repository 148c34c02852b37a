// Package respreader reads client requests of the Redis protocol (RESP
// multibulk and inline, as redis-cli and telnet send them, pipelined or
// split across reads) off a connection, with a limit on every length a
// client declares: argument counts, bulk lengths, header and inline lines,
// and the bytes of one request buffered before it is complete. No length a
// client sends is trusted before it is checked: lengths of more than 18
// digits are refused before any arithmetic, and each is compared with its
// limit before it is used, so memory follows the bytes that arrived, not
// what a header declares. Malformed or oversized input is a
// *ProtocolError carrying Redis' own error text.
//
// It knows nothing of commands, of authentication beyond the "authed"
// callback given to New (which selects the tighter pre-AUTH limits), or of
// the node: package resp serves what it reads.
package respreader

import (
	"errors"
	"io"
	"strconv"

	"github.com/tidwall/redcon"
)

// Limits bound what one client may make the server hold. Zero fields take
// the defaults below.
type Limits struct {
	// MaxBulkBytes bounds one argument ("$<n>" of a multibulk request); a
	// longer one is answered "invalid bulk length" and the connection is
	// closed, as Redis' proto-max-bulk-len.
	MaxBulkBytes int
	// MaxQueryBytes bounds the bytes of one request that are buffered
	// before it is complete (all its arguments together, or one inline
	// line); beyond it the connection is closed, as Redis'
	// client-query-buffer-limit.
	MaxQueryBytes int
}

// Defaults of Limits. Redis allows 512 MB bulks and a 1 GB query buffer;
// a cache whose values are at most node.DefaultMaxValueBytes (1 MiB) needs
// far less, and every byte here is a byte one client can make a node hold.
const (
	// DefaultMaxBulkBytes is Limits.MaxBulkBytes when zero: the largest
	// value (1 MiB) plus 64 KiB.
	DefaultMaxBulkBytes = 1<<20 + 64<<10
	// DefaultMaxQueryBytes is Limits.MaxQueryBytes when zero.
	DefaultMaxQueryBytes = 64 << 20
	// maxArgs bounds the argument count of one request (Redis: 2^31-1, but
	// any count it accepts beyond a million is an attack on a cache).
	maxArgs = 1 << 20
	// maxInline bounds an inline request and the "*<n>" and "$<n>" header
	// lines (Redis' PROTO_INLINE_MAX_SIZE).
	maxInline = 64 << 10
	// Before AUTH, a client may send no more than Redis allows an
	// unauthenticated one: 10 arguments of 16 KiB each.
	maxArgsNoAuth = 10
	maxBulkNoAuth = 16 << 10

	readChunk   = 16 << 10 // bytes asked of the socket per read
	maxChunk    = 64 << 10 // at most this many bytes of requests share one allocation
	argvChunk   = 64       // arguments allocated together
	shrinkAbove = 64 << 10 // an idle buffer larger than this is let go
)

// ProtocolError is a malformed or oversized request. Its text is what the
// client is told (after "ERR "); the connection is then closed, as Redis
// does.
type ProtocolError struct{ msg string }

// Error returns "Protocol error: " and the text the client is told.
func (e *ProtocolError) Error() string { return "Protocol error: " + e.msg }

var (
	errMultibulkLen    = &ProtocolError{"invalid multibulk length"}
	errBulkLen         = &ProtocolError{"invalid bulk length"}
	errNoAuthMultibulk = &ProtocolError{"unauthenticated multibulk length"}
	errNoAuthBulk      = &ProtocolError{"unauthenticated bulk length"}
	errBigInline       = &ProtocolError{"too big inline request"}
	errBigMultibulk    = &ProtocolError{"too big mbulk count string"}
	errBigBulkCount    = &ProtocolError{"too big bulk count string"}
	errQuotes          = &ProtocolError{"unbalanced quotes in request"}
	errQueryBuffer     = &ProtocolError{"query buffer limit reached"}
)

// Reader parses requests (RESP multibulk and inline, as redis-cli and
// telnet send them) off a connection, within Limits. It never allocates
// more than the bytes a request has actually sent plus the next read
// chunk, and it parses each byte once: a request split across reads
// resumes where the previous read stopped.
type Reader struct {
	rd  io.Reader
	lim Limits
	// authed reports whether the client has authenticated (the tighter
	// pre-auth limits apply until then).
	authed func() bool

	buf        []byte
	start, end int // buf[start:end] is read and not yet consumed

	// The multibulk request being parsed (argc > 0): its argument count,
	// how many arguments are complete, where parsing resumes (absolute
	// index into buf) and the argument spans, relative to start.
	argc  int
	pos   int
	marks []int
	// scan is where the search for the end of the current line resumes
	// (absolute index; 0: at the line's start), so that a line arriving a
	// byte at a time is not searched again from its start each time.
	scan int
}

// OrDefaults returns l with its zero (or negative) fields set to the
// defaults.
func (l Limits) OrDefaults() Limits {
	if l.MaxBulkBytes <= 0 {
		l.MaxBulkBytes = DefaultMaxBulkBytes
	}
	if l.MaxQueryBytes <= 0 {
		l.MaxQueryBytes = DefaultMaxQueryBytes
	}
	return l
}

// New returns a Reader of rd within lim (zero fields: the defaults).
// authed reports whether the client has authenticated; until it does, the
// tighter pre-AUTH limits apply (nil: always authenticated).
func New(rd io.Reader, lim Limits, authed func() bool) *Reader {
	lim = lim.OrDefaults()
	if authed == nil {
		authed = func() bool { return true }
	}
	return &Reader{rd: rd, lim: lim, authed: authed, buf: make([]byte, readChunk)}
}

// Read returns the requests that are complete in what has arrived,
// reading from the connection (blocking) when none is. Each Command owns
// its bytes (Raw is a fresh copy; Args slice it), so handlers may keep
// them. Errors: *ProtocolError for bad input, else the connection's.
func (r *Reader) Read(cmds []redcon.Command) ([]redcon.Command, error) {
	for {
		var err error
		cmds, err = r.parse(cmds)
		if err != nil || len(cmds) > 0 {
			return cmds, err
		}
		if err := r.fill(); err != nil {
			return cmds, err
		}
	}
}

// fill reads once from the connection into the buffer, making room first.
func (r *Reader) fill() error {
	if r.start == r.end {
		// Nothing pending: start over (and let a large buffer go).
		r.pos -= r.start
		r.scan = 0
		r.start, r.end = 0, 0
		if len(r.buf) > shrinkAbove {
			r.buf = make([]byte, readChunk)
		}
	}
	if len(r.buf)-r.end < readChunk/2 {
		pending := r.end - r.start
		if pending >= r.lim.MaxQueryBytes {
			return errQueryBuffer
		}
		if r.start > 0 && pending <= len(r.buf)/2 {
			copy(r.buf, r.buf[r.start:r.end])
		} else {
			n := 2 * len(r.buf)
			if n < pending+readChunk {
				n = pending + readChunk
			}
			if max := r.lim.MaxQueryBytes + readChunk; n > max {
				n = max
			}
			nb := make([]byte, n)
			copy(nb, r.buf[r.start:r.end])
			r.buf = nb
		}
		r.pos -= r.start
		if r.scan > 0 {
			r.scan -= r.start
		}
		r.end = pending
		r.start = 0
	}
	n, err := r.rd.Read(r.buf[r.end:])
	r.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// parse appends the complete requests in buf[start:end] to cmds.
func (r *Reader) parse(cmds []redcon.Command) ([]redcon.Command, error) {
	// The requests complete in this call are copied out into shared
	// chunks: one allocation for a pipeline rather than two per request.
	// What is handed out is capped (three-index slices) and never written
	// again, so a chunk outlives this call only through its requests.
	var chunk []byte
	var argv [][]byte
	for r.start < r.end {
		if r.argc == 0 {
			if r.buf[r.start] != '*' {
				cmd, ok, err := r.inline()
				if err != nil || !ok {
					return cmds, err
				}
				if len(cmd.Args) > 0 {
					cmds = append(cmds, cmd)
				}
				continue
			}
			line, next, err := r.line(r.start+1, errBigMultibulk)
			if err != nil || next < 0 {
				return cmds, err
			}
			n, ok := parseLen(line)
			switch {
			case !ok || n > maxArgs:
				return cmds, errMultibulkLen
			case n > maxArgsNoAuth && !r.authed():
				return cmds, errNoAuthMultibulk
			case n <= 0:
				// "*0" and "*-1" are empty requests: Redis skips them.
				r.start = next
				continue
			}
			r.argc, r.pos, r.marks = n, next, r.marks[:0]
		}
		for len(r.marks) < 2*r.argc {
			if r.pos >= r.end {
				return cmds, r.checkQuery()
			}
			if c := r.buf[r.pos]; c != '$' {
				return cmds, &ProtocolError{"expected '$', got '" + printable(c) + "'"}
			}
			line, next, err := r.line(r.pos+1, errBigBulkCount)
			if err != nil {
				return cmds, err
			}
			if next < 0 {
				return cmds, r.checkQuery()
			}
			n, ok := parseLen(line)
			switch {
			case !ok || n < 0 || n > r.lim.MaxBulkBytes:
				return cmds, errBulkLen
			case n > maxBulkNoAuth && !r.authed():
				return cmds, errNoAuthBulk
			}
			if r.end-next < n+2 {
				// The argument has not all arrived. Its size is known and
				// within the limits; the query limit bounds the sum.
				if next-r.start+n+2 > r.lim.MaxQueryBytes {
					return cmds, errQueryBuffer
				}
				return cmds, nil
			}
			if r.buf[next+n] != '\r' || r.buf[next+n+1] != '\n' {
				return cmds, errBulkLen
			}
			r.marks = append(r.marks, next-r.start, next-r.start+n)
			r.pos = next + n + 2
		}
		// Complete: copy it out, so the buffer can be reused.
		size := r.pos - r.start
		if cap(chunk)-len(chunk) < size {
			chunk = make([]byte, 0, max(size, min(r.end-r.start, maxChunk)))
		}
		off := len(chunk)
		chunk = append(chunk, r.buf[r.start:r.pos]...)
		raw := chunk[off:len(chunk):len(chunk)]
		if cap(argv)-len(argv) < r.argc {
			argv = make([][]byte, 0, max(r.argc, argvChunk))
		}
		args := argv[len(argv) : len(argv)+r.argc : len(argv)+r.argc]
		argv = argv[:len(argv)+r.argc]
		for i := range args {
			args[i] = raw[r.marks[2*i]:r.marks[2*i+1]:r.marks[2*i+1]]
		}
		cmds = append(cmds, redcon.Command{Raw: raw, Args: args})
		r.start, r.argc = r.pos, 0
	}
	return cmds, nil
}

// checkQuery fails once the pending request has outgrown the query limit.
func (r *Reader) checkQuery() error {
	if r.end-r.start > r.lim.MaxQueryBytes {
		return errQueryBuffer
	}
	return nil
}

// line finds the CRLF-terminated line starting at from: it returns the
// line without its terminator and the index after it, or next = -1 when
// the line has not all arrived (tooLong once it exceeds maxInline).
func (r *Reader) line(from int, tooLong error) (line []byte, next int, err error) {
	i := from
	if r.scan > i {
		i = r.scan
	}
	for ; i < r.end; i++ {
		if r.buf[i] == '\n' {
			r.scan = 0
			if i == from || r.buf[i-1] != '\r' {
				if tooLong == errBigMultibulk {
					return nil, 0, errMultibulkLen
				}
				return nil, 0, errBulkLen
			}
			return r.buf[from : i-1], i + 1, nil
		}
		if i-from > maxInline {
			return nil, 0, tooLong
		}
	}
	if r.end-from > maxInline {
		return nil, 0, tooLong
	}
	r.scan = r.end
	return nil, -1, nil
}

// inline parses one inline request (words separated by spaces, quotes as
// redis-cli's): ok is false when its line has not all arrived.
func (r *Reader) inline() (cmd redcon.Command, ok bool, err error) {
	i := max(r.start, r.scan)
	for ; i < r.end && r.buf[i] != '\n'; i++ {
	}
	if i-r.start > min(maxInline, r.lim.MaxBulkBytes, r.lim.MaxQueryBytes) {
		return cmd, false, errBigInline
	}
	if i == r.end {
		r.scan = i
		return cmd, false, nil
	}
	r.scan = 0
	line := r.buf[r.start:i]
	r.start = i + 1
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	args, err := splitArgs(line)
	if err != nil {
		return cmd, false, err
	}
	if len(args) > maxArgsNoAuth && !r.authed() {
		return cmd, false, errNoAuthMultibulk
	}
	if len(args) == 0 {
		return cmd, true, nil
	}
	var w redcon.Writer
	w.WriteArray(len(args))
	for _, a := range args {
		w.WriteBulk(a)
	}
	return redcon.Command{Raw: w.Buffer(), Args: args}, true, nil
}

// splitArgs splits an inline request as Redis' sdssplitargs: words
// separated by blanks; "double quotes" with \n \r \t \b \a \\ \" and \xHH
// escapes; 'single quotes' with \' only. A closing quote must be followed
// by a blank or the end.
func splitArgs(line []byte) ([][]byte, error) {
	var args [][]byte
	i := 0
	for {
		for i < len(line) && isBlank(line[i]) {
			i++
		}
		if i == len(line) {
			return args, nil
		}
		var arg []byte
		switch q := line[i]; q {
		case '"', '\'':
			i++
			closed := false
			for i < len(line) && !closed {
				c := line[i]
				switch {
				case q == '"' && c == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
					arg = append(arg, unhex(line[i+2])<<4|unhex(line[i+3]))
					i += 4
				case q == '"' && c == '\\' && i+1 < len(line):
					arg = append(arg, unescape(line[i+1]))
					i += 2
				case q == '\'' && c == '\\' && i+1 < len(line) && line[i+1] == '\'':
					arg = append(arg, '\'')
					i += 2
				case c == q:
					closed = true
					i++
					if i < len(line) && !isBlank(line[i]) {
						return nil, errQuotes
					}
				default:
					arg = append(arg, c)
					i++
				}
			}
			if !closed {
				return nil, errQuotes
			}
			if arg == nil {
				arg = []byte{}
			}
		default:
			j := i
			for j < len(line) && !isBlank(line[j]) {
				j++
			}
			arg = append([]byte(nil), line[i:j]...)
			i = j
		}
		args = append(args, arg)
	}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0 }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	default:
		return c
	}
}

// parseLen parses the decimal length of a "*<n>" or "$<n>" line. Lengths
// of more than 18 digits are refused before any arithmetic, so no value a
// client sends can overflow an index (redcon's reader did: a
// "$9223372036854775807" header crashed the process).
func parseLen(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	// strconv.Atoi's syntax (an optional sign, then decimal digits), by
	// hand: this runs twice or more per request. 18 digits cannot overflow.
	neg, i := false, 0
	switch b[0] {
	case '-':
		neg, i = true, 1
	case '+':
		i = 1
	}
	if i == len(b) {
		return 0, false
	}
	n := 0
	for ; i < len(b); i++ {
		d := b[i] - '0'
		if d > 9 {
			return 0, false
		}
		n = n*10 + int(d)
	}
	if neg {
		n = -n
	}
	return n, true
}

func printable(c byte) string {
	if c < 0x20 || c > 0x7e {
		return `\x` + strconv.FormatUint(uint64(c)|0x100, 16)[1:]
	}
	return string(c)
}

// ErrorReply is the RESP error text for a read error, "" when the
// connection simply ended.
func ErrorReply(err error) string {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return "ERR " + pe.Error()
	}
	return ""
}
