package resp

import (
	"github.com/tidwall/redcon"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/ring"
)

// Multi-key changes: MSETNX, RENAME, RENAMENX and COPY. Each is one
// Backend.WriteMulti, carried out atomically by the owner of the keys'
// slot under every key's lock, each key's write versioned and replicated.
// The keys must hash to one slot, in proxy mode too (the only way one
// node can change them all atomically): keys of several slots get
// CROSSSLOT, as from Redis Cluster, and a {hash tag} puts keys together.

// sameSlot reports whether two keys hash to one slot.
func sameSlot(a, b []byte) bool { return ring.SlotOf(a) == ring.SlotOf(b) }

func cmdMSetNX(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	if len(args)%2 != 1 {
		s.writeErr(c, "ERR wrong number of arguments for 'msetnx' command")
		return
	}
	m := kv.Multi{Kind: kv.MultiMSetNX}
	for i := 1; i < len(args); i += 2 {
		if ring.SlotOf(args[i]) != ring.SlotOf(args[1]) {
			s.writeErr(c, errCrossSlot)
			return
		}
		m.Keys = append(m.Keys, string(args[i]))
		m.Values = append(m.Values, args[i+1])
	}
	res, err := s.b.WriteMulti(s.cmdCtx(), m)
	if err != nil {
		s.writeNodeErr(c, err)
		return
	}
	c.WriteInt(boolInt(res.Applied))
}

func cmdRename(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	if !sameSlot(args[1], args[2]) {
		s.writeErr(c, errCrossSlot)
		return
	}
	kind, nx := kv.MultiRename, isOpt(args[0], "RENAMENX")
	if nx {
		kind = kv.MultiRenameNX
	}
	res, err := s.b.WriteMulti(s.cmdCtx(), kv.Multi{Kind: kind, Keys: []string{string(args[1]), string(args[2])}})
	switch {
	case err != nil:
		s.writeNodeErr(c, err)
	case !res.SourceExisted:
		s.writeErr(c, "ERR no such key")
	case nx:
		c.WriteInt(boolInt(res.Applied))
	default:
		c.WriteString("OK")
	}
}

// cmdCopy: COPY source destination [DB 0] [REPLACE] (one database).
func cmdCopy(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	kind := kv.MultiCopy
	for i := 3; i < len(args); i++ {
		switch {
		case isOpt(args[i], "REPLACE"):
			kind = kv.MultiCopyReplace
		case isOpt(args[i], "DB") && i+1 < len(args):
			i++
			db, ok := parseInt(args[i])
			if !ok {
				s.writeErr(c, errNotInteger)
				return
			}
			if db != 0 {
				s.writeErr(c, "ERR DB index is out of range")
				return
			}
		default:
			s.writeErr(c, "ERR syntax error")
			return
		}
	}
	if string(args[1]) == string(args[2]) {
		s.writeErr(c, "ERR source and destination objects are the same")
		return
	}
	if !sameSlot(args[1], args[2]) {
		s.writeErr(c, errCrossSlot)
		return
	}
	res, err := s.b.WriteMulti(s.cmdCtx(), kv.Multi{Kind: kind, Keys: []string{string(args[1]), string(args[2])}})
	if err != nil {
		s.writeNodeErr(c, err)
		return
	}
	c.WriteInt(boolInt(res.Applied))
}
