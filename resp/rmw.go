package resp

import (
	"errors"
	"strconv"

	"github.com/tidwall/redcon"

	"github.com/peercache/peercache/node"
)

// Read-modify-write string commands: INCR and its kin, APPEND, and STRLEN.
// Each is one Backend.Write with a node.Op, carried out atomically by the
// key's owner under the key's lock, versioned and replicated like any
// write; the owner answers with the new value.

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
