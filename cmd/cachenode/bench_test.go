package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/peercache/peercache/bench/load"
)

// A node started with CACHENODE_RESP_ADDR serves the Redis protocol; the
// bench subcommand loads it over HTTP and RESP; SIGTERM still exits 0 with
// Redis clients connected.
func TestRESPListenerAndBench(t *testing.T) {
	respAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startProc(t, "r1", "", "CACHENODE_RESP_ADDR="+respAddr)
	waitUntil(t, 20*time.Second, "the node is ready", func() bool {
		code, _ := httpDo(t, "GET", "http://"+p.http+"/readyz", nil)
		return code == 200
	})
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: respAddr, MaxRetries: -1})
	defer rc.Close()
	waitUntil(t, 10*time.Second, "the RESP listener answers", func() bool { return rc.Ping(ctx).Err() == nil })
	if err := rc.Set(ctx, "via-resp", "hello", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if code, body := httpDo(t, "GET", "http://"+p.http+"/v1/keys/via-resp", nil); code != 200 || string(body) != "hello" {
		t.Fatalf("GET over HTTP of a key SET over RESP: %d %s", code, body)
	}

	for _, args := range [][]string{
		{"--target", "http", "--addrs", p.http},
		{"--target", "resp", "--addrs", respAddr, "--pipeline", "8", "--dist", "zipf"},
	} {
		var out, errOut bytes.Buffer
		args = append([]string{"bench", "--ops", "500", "--concurrency", "4", "--keys", "50", "--preload", "--json"}, args...)
		if code := run(args, &out, &errOut); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out.String(), errOut.String())
		}
		var res load.Result
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
		if res.Ops != 500 || res.Errors != 0 || res.Hits != res.Reads || res.Preload == nil || res.Preload.Ops != 50 {
			t.Fatalf("%v: %+v", args, res)
		}
	}
	var out bytes.Buffer
	if code := run([]string{"bench", "--target", "resp", "--addrs", respAddr, "--ops", "100", "--concurrency", "2"}, &out, &out); code != 0 ||
		!strings.Contains(out.String(), "ops/s") || !strings.Contains(out.String(), "p99.9") || !strings.Contains(out.String(), "errors: none") {
		t.Fatalf("text output (exit %d):\n%s", code, out.String())
	}
	if code := run([]string{"bench", "--target", "udp"}, &out, &out); code != exitUsage {
		t.Fatalf("bad target: exit %d", code)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.out)
		}
		p.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30 s after SIGTERM")
	}
	if err := rc.Ping(ctx).Err(); err == nil {
		t.Fatal("the RESP listener still answers after the node stopped")
	}
}
