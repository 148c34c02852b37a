package baseline

import (
	"errors"
	"net"
	"strings"
	"sync"

	"github.com/tidwall/redcon"

	"github.com/peercache/peercache/internal/respreader"
)

// RESPFloor is the Redis-protocol floor of a Go server on this machine:
// the connection loop of peercache's RESP port (one goroutine per
// connection, requests read by internal/respreader with its default
// limits, the replies of the requests that arrived together written at
// once through redcon's Writer) answering SET and GET from a map, and
// nothing else a cache must do (no routing, versions, expiry, auth,
// metrics). bench/cluster.sh runs redis-benchmark against it beside
// redis-server, so that the cost of Go's networking is told apart from
// peercache's own. It is for loopback benchmarks only.
type RESPFloor struct {
	mu      sync.RWMutex
	vals    map[string][]byte
	maxKeys int

	connMu sync.Mutex
	conns  map[net.Conn]struct{}
}

// NewRESPFloor returns an empty floor server that keeps at most maxKeys
// keys (SET of a new key beyond that answers an error).
func NewRESPFloor(maxKeys int) *RESPFloor {
	return &RESPFloor{vals: make(map[string][]byte), maxKeys: maxKeys, conns: make(map[net.Conn]struct{})}
}

// Serve answers the connections of ln until ln is closed, then closes
// them and returns once their goroutines have ended.
func (f *RESPFloor) Serve(ln net.Listener) error {
	var wg sync.WaitGroup
	defer func() {
		f.connMu.Lock()
		for nc := range f.conns {
			nc.Close()
		}
		f.connMu.Unlock()
		wg.Wait()
	}()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		f.connMu.Lock()
		f.conns[nc] = struct{}{}
		f.connMu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.serveConn(nc)
		}()
	}
}

// serveConn reads requests and answers them until the client leaves or
// sends something malformed or oversized; a panic closes only this
// connection.
func (f *RESPFloor) serveConn(nc net.Conn) {
	defer func() {
		recover()
		nc.Close()
		f.connMu.Lock()
		delete(f.conns, nc)
		f.connMu.Unlock()
	}()
	rd := respreader.New(nc, respreader.Limits{}, nil)
	wr := redcon.NewWriter(nc)
	var cmds []redcon.Command
	for {
		var err error
		if cmds, err = rd.Read(cmds[:0]); err != nil {
			if msg := respreader.ErrorReply(err); msg != "" {
				wr.WriteError(msg)
			}
			wr.Flush()
			return
		}
		for _, cmd := range cmds {
			f.handle(wr, cmd.Args)
		}
		clear(cmds)
		if wr.Flush() != nil {
			return
		}
	}
}

// handle answers one command.
func (f *RESPFloor) handle(w *redcon.Writer, args [][]byte) {
	name := strings.ToLower(string(args[0]))
	switch {
	case name == "set" && len(args) >= 3:
		v := append([]byte(nil), args[2]...)
		f.mu.Lock()
		_, exists := f.vals[string(args[1])]
		if !exists && len(f.vals) >= f.maxKeys {
			f.mu.Unlock()
			w.WriteError("ERR the floor server is full")
			return
		}
		f.vals[string(args[1])] = v
		f.mu.Unlock()
		w.WriteString("OK")
	case name == "get" && len(args) == 2:
		f.mu.RLock()
		v, ok := f.vals[string(args[1])]
		f.mu.RUnlock()
		if ok {
			w.WriteBulk(v)
		} else {
			w.WriteNull()
		}
	case name == "ping":
		w.WriteString("PONG")
	case name == "config": // redis-benchmark asks for CONFIG GET save/appendonly
		w.WriteArray(0)
	default:
		w.WriteError("ERR unknown command")
	}
}
