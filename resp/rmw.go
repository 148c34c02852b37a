package resp

import (
	"errors"
	"strconv"
	"time"

	"github.com/tidwall/redcon"

	"github.com/peercache/peercache/node"
)

// Read-modify-write string commands (INCR and its kin, APPEND, SETRANGE,
// GETDEL, GETSET) and the reads that go with them (STRLEN, GETRANGE, TYPE,
// EXPIRETIME). Each write is one Backend.Write with a node.Op, carried out
// atomically by the key's owner under the key's lock, versioned and
// replicated like any write; the owner answers with the new value (the old
// one for GETDEL and GETSET).

func cmdIncr(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	var by int64 = 1
	switch {
	case isOpt(args[0], "DECR"):
		by = -1
	case isOpt(args[0], "INCRBY"), isOpt(args[0], "DECRBY"):
		v, ok := parseInt(args[2])
		if !ok {
			s.writeErr(c, errNotInteger)
			return
		}
		if isOpt(args[0], "DECRBY") {
			if v == -1<<63 {
				s.writeErr(c, "ERR decrement would overflow")
				return
			}
			v = -v
		}
		by = v
	}
	res, err := s.b.Write(s.cmdCtx(), string(args[1]), node.Mutation{Op: node.OpIncrBy, Value: strconv.AppendInt(nil, by, 10)})
	if err != nil {
		s.writeNodeErr(c, err)
		return
	}
	n, ok := parseInt(res.Value)
	if !ok { // cannot happen: the owner wrote a canonical integer
		s.writeErr(c, errNotInteger)
		return
	}
	c.WriteInt64(n)
}

func cmdIncrByFloat(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	res, err := s.b.Write(s.cmdCtx(), string(args[1]), node.Mutation{Op: node.OpIncrByFloat, Value: args[2]})
	if err != nil {
		s.writeNodeErr(c, err)
		return
	}
	c.WriteBulk(res.Value)
}

func cmdAppend(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	res, err := s.b.Write(s.cmdCtx(), string(args[1]), node.Mutation{Op: node.OpAppend, Value: args[2]})
	if err != nil {
		s.writeNodeErr(c, err)
		return
	}
	c.WriteInt(len(res.Value))
}

func cmdStrlen(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	it, err := s.b.Get(s.cmdCtx(), string(args[1]))
	switch {
	case err == nil:
		c.WriteInt(len(it.Value))
	case errors.Is(err, node.ErrNotFound):
		c.WriteInt(0)
	default:
		s.writeNodeErr(c, err)
	}
}

func cmdSetRange(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	off, ok := parseInt(args[2])
	switch {
	case !ok:
		s.writeErr(c, errNotInteger)
		return
	case off < 0:
		s.writeErr(c, "ERR offset is out of range")
		return
	case off+int64(len(args[3])) > node.MaxSetRangeOffset+1:
		s.writeErr(c, "ERR string exceeds maximum allowed size (proto-max-bulk-len)")
		return
	}
	res, err := s.b.Write(s.cmdCtx(), string(args[1]), node.Mutation{Op: node.OpSetRange, Value: node.SetRangeValue(int(off), args[3])})
	if err != nil {
		s.writeNodeErr(c, err)
		return
	}
	c.WriteInt(len(res.Value))
}

// cmdGetDel is GETDEL and GETSET: the old value, or nil.
func cmdGetDel(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	m := node.Mutation{Op: node.OpGetDel}
	if isOpt(args[0], "GETSET") {
		m = node.Mutation{Op: node.OpGetSet, Value: args[2]}
	}
	s.writeOldValue(c, string(args[1]), m)
}

// writeOldValue carries out m, an operation answering with the value the
// key had, and writes that value (nil: the key did not exist).
func (s *Server) writeOldValue(c redcon.Conn, key string, m node.Mutation) {
	res, err := s.b.Write(s.cmdCtx(), key, m)
	switch {
	case err != nil:
		s.writeNodeErr(c, err)
	case res.Existed:
		c.WriteBulk(res.Value)
	default:
		c.WriteNull()
	}
}

func cmdGetRange(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	start, ok1 := parseInt(args[2])
	end, ok2 := parseInt(args[3])
	if !ok1 || !ok2 {
		s.writeErr(c, errNotInteger)
		return
	}
	it, err := s.b.Get(s.cmdCtx(), string(args[1]))
	if err != nil && !errors.Is(err, node.ErrNotFound) {
		s.writeNodeErr(c, err)
		return
	}
	c.WriteBulk(substr(it.Value, start, end))
}

// substr is GETRANGE's slice of v: negative indexes count from the end,
// both ends inclusive and clamped, as Redis 7.
func substr(v []byte, start, end int64) []byte {
	n := int64(len(v))
	if start < 0 && end < 0 && start > end {
		return nil
	}
	if start < 0 {
		start += n
	}
	if end < 0 {
		end += n
	}
	start, end = max(start, 0), min(max(end, 0), n-1)
	if n == 0 || start > end {
		return nil
	}
	return v[start : end+1]
}

func cmdType(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	_, err := s.b.Get(s.cmdCtx(), string(args[1]))
	switch {
	case err == nil:
		c.WriteString("string")
	case errors.Is(err, node.ErrNotFound):
		c.WriteString("none")
	default:
		s.writeNodeErr(c, err)
	}
}

// cmdExpireTime is EXPIRETIME and PEXPIRETIME: the absolute expiry (Unix
// seconds or milliseconds), -1 without one, -2 for a missing key.
func cmdExpireTime(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	it, err := s.b.Get(s.cmdCtx(), string(args[1]))
	switch {
	case errors.Is(err, node.ErrNotFound):
		c.WriteInt(-2)
	case err != nil:
		s.writeNodeErr(c, err)
	case it.ExpireAt.IsZero():
		c.WriteInt(-1)
	case isOpt(args[0], "PEXPIRETIME"):
		c.WriteInt64(it.ExpireAt.UnixMilli())
	default:
		// To the nearest second, as Redis rounds it.
		c.WriteInt64((it.ExpireAt.UnixMilli() + 500) / 1000)
	}
}

// cmdGetEx is GETEX key [EX s | PX ms | EXAT t | PXAT t | PERSIST]: the
// value, and the expiry changed in the same step on the key's owner. An
// absolute time already past deletes the key (as Redis).
func cmdGetEx(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	key := string(args[1])
	if len(args) == 2 {
		it, err := s.b.Get(s.cmdCtx(), key)
		s.writeGet(c, it, err)
		return
	}
	var m node.Mutation
	switch {
	case len(args) == 3 && isOpt(args[2], "PERSIST"):
		m = node.Mutation{Op: node.OpGetEx, Value: []byte("0")}
	case len(args) == 4:
		unit, absolute := time.Second, false
		switch {
		case isOpt(args[2], "EX"):
		case isOpt(args[2], "PX"):
			unit = time.Millisecond
		case isOpt(args[2], "EXAT"):
			absolute = true
		case isOpt(args[2], "PXAT"):
			unit, absolute = time.Millisecond, true
		default:
			s.writeErr(c, errSyntax)
			return
		}
		v, ok := parseInt(args[3])
		if !ok {
			s.writeErr(c, errNotInteger)
			return
		}
		ttl, ok := ttlOf(v, unit, absolute, time.Now())
		switch {
		case !ok || v <= 0:
			s.writeErr(c, errInvalidExpire("getex"))
			return
		case ttl <= 0:
			m = node.Mutation{Op: node.OpGetDel} // an absolute time already past
		case absolute:
			m = node.Mutation{Op: node.OpGetEx, ExpireAt: instant(v, unit)}
		default:
			m = node.Mutation{Op: node.OpGetEx, Value: strconv.AppendInt(nil, max(ttl.Milliseconds(), 1), 10)}
		}
	default:
		s.writeErr(c, errSyntax)
		return
	}
	s.writeOldValue(c, key, m)
}
