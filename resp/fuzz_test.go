package resp

import (
	"bufio"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/peercache/peercache/node"
)

// FuzzServer sends each input as one connection's whole request stream to
// a live server in front of a real node (seed corpus: redis-cli and
// redis-benchmark traffic captured on the wire, testdata/fuzz/FuzzServer,
// plus hostile inputs) and checks that the process does not panic, that
// another client's PING keeps answering, and that the heap stays bounded.
//
//	go test -run XXX -fuzz FuzzServer -fuzztime 60s ./resp/
func FuzzServer(f *testing.F) {
	for _, s := range []string{
		"*1\r\n$9223372036854775807\r\nabc\r\n",
		"*3000000000\r\n",
		"*1\r\n$2000000000\r\n",
		"SET k \"a\\x00b\" EX 10\r\nGET k\r\nMGET k k k\r\nDEL k\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n",
		"CLIENT SETNAME x\r\nCLIENT LIST\r\nINFO all\r\nCONFIG GET *\r\nCOMMAND DOCS get\r\nHELLO 3\r\nHELLO 2 AUTH default x\r\n",
		"SET k v PXAT 9223372036854775807\r\nEXPIRE k -9223372036854775808\r\nSETEX k 0 v\r\nPSETEX k 99999999999999999 v\r\n",
	} {
		f.Add([]byte(s))
	}
	n := startNode(f, "fuzz", nil, func(c *node.Config) { c.MemoryMaxBytes = 16 << 20 })
	addr := listenExtra(f, n, Options{
		Limits:         Limits{MaxBulkBytes: 64 << 10, MaxQueryBytes: 1 << 20},
		CommandTimeout: time.Second,
	})
	watch, err := net.Dial("tcp", addr)
	if err != nil {
		f.Fatal(err)
	}
	defer watch.Close()
	wr := bufio.NewReader(watch)
	execs := 0
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v (did the server die?)", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		// Write and half-close, reading the replies meanwhile: the server
		// answers what it can and ends the connection at the end of the
		// stream or at the first protocol error.
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.Write(in)
			c.(*net.TCPConn).CloseWrite()
		}()
		if _, err := io.Copy(io.Discard, c); err != nil && !isReset(err) {
			t.Fatalf("reading replies: %v", err)
		}
		<-done

		watch.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(watch, "PING\r\n"); err != nil {
			t.Fatalf("PING: %v", err)
		}
		if l, err := wr.ReadString('\n'); err != nil || l != "+PONG\r\n" {
			t.Fatalf("PING from another client: %q %v", l, err)
		}
		if execs++; execs%200 == 0 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > 256<<20 {
				t.Fatalf("heap in use %d MB", ms.HeapInuse>>20)
			}
		}
	})
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}
