package baseline

import (
	"strings"
	"sync"

	"github.com/tidwall/redcon"
)

// RESPFloor is the Redis-protocol floor of a Go server on this machine: a
// redcon server (one goroutine per connection, replies of a pipeline in
// one write, as peercache's RESP port) that answers SET and GET from a map
// and nothing else a cache must do (no routing, versions, expiry, limits
// beyond a key count, metrics). bench/cluster.sh runs redis-benchmark
// against it beside redis-server, so that the cost of Go's networking is
// told apart from peercache's own.
type RESPFloor struct {
	mu      sync.RWMutex
	vals    map[string][]byte
	maxKeys int
}

// NewRESPFloor returns an empty floor server that keeps at most maxKeys
// keys (SET of a new key beyond that answers an error).
func NewRESPFloor(maxKeys int) *RESPFloor {
	return &RESPFloor{vals: make(map[string][]byte), maxKeys: maxKeys}
}

// Handle answers one command (redcon's handler).
func (f *RESPFloor) Handle(conn redcon.Conn, cmd redcon.Command) {
	name := strings.ToLower(string(cmd.Args[0]))
	switch {
	case name == "set" && len(cmd.Args) >= 3:
		v := append([]byte(nil), cmd.Args[2]...)
		f.mu.Lock()
		_, exists := f.vals[string(cmd.Args[1])]
		if !exists && len(f.vals) >= f.maxKeys {
			f.mu.Unlock()
			conn.WriteError("ERR the floor server is full")
			return
		}
		f.vals[string(cmd.Args[1])] = v
		f.mu.Unlock()
		conn.WriteString("OK")
	case name == "get" && len(cmd.Args) == 2:
		f.mu.RLock()
		v, ok := f.vals[string(cmd.Args[1])]
		f.mu.RUnlock()
		if ok {
			conn.WriteBulk(v)
		} else {
			conn.WriteNull()
		}
	case name == "ping":
		conn.WriteString("PONG")
	case name == "config": // redis-benchmark asks for CONFIG GET save/appendonly
		conn.WriteArray(0)
	default:
		conn.WriteError("ERR unknown command")
	}
}
