package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peercache/peercache/internal/testredis"
	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/peer"
	"github.com/peercache/peercache/store"
)

// shardDump is every key of a Redis shard with its serialized value and
// remaining lifetime: equal dumps mean byte-identical shards.
func shardDump(t *testing.T, rs *testredis.Server) map[string]string {
	t.Helper()
	ctx := context.Background()
	c := rs.Client()
	out := map[string]string{}
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		d, err := c.Dump(ctx, k).Result()
		if err != nil {
			t.Fatalf("DUMP %s: %v", k, err)
		}
		out[k] = d
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func writeSecret(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if _, errs, code := cliRun(t, "", "keygen", "--out", path); code != 0 {
		t.Fatalf("keygen: %d %s", code, errs)
	}
	return path
}

// Acceptance (peer transport, security): three processes with a cluster
// secret, each with its own real Redis. Without the secret nothing gets
// in: a forged peer request naming a real member, on the peer port and on
// the HTTP port; a node without the secret, or with another one, pointed
// at the seeds; and with the secret, an import of a version from the far
// future is refused. Every shard is byte-identical afterwards.
func TestPeerSecurity(t *testing.T) {
	dir := t.TempDir()
	secret := writeSecret(t, dir, "cluster.key")
	other := writeSecret(t, dir, "other.key")
	b, _ := os.ReadFile(secret)
	key, err := peer.ParseSecret(b)
	if err != nil {
		t.Fatal(err)
	}

	var procs []*proc
	var reds []*testredis.Server
	for i := 1; i <= 3; i++ {
		rs := testredis.Start(t)
		seed := ""
		if i > 1 {
			seed = procs[0].gossip
		}
		procs = append(procs, startProcArgs(t, fmt.Sprintf("n%d", i), seed,
			[]string{"--cluster-secret-file", secret, "--redis-addr", rs.Addr()}))
		reds = append(reds, rs)
	}
	members := func(p *proc) []string {
		code, body := httpDo(t, "GET", "http://"+p.http+"/v1/cluster", nil)
		var doc clusterDoc
		if code != 200 || json.Unmarshal(body, &doc) != nil {
			return nil
		}
		var names []string
		for _, m := range doc.Members {
			names = append(names, m.Name)
		}
		return names
	}
	waitUntil(t, 20*time.Second, "three members everywhere", func() bool {
		for _, p := range procs {
			if len(members(p)) != 3 {
				return false
			}
		}
		return true
	})
	for i := 0; i < 200; i++ {
		if code, body := httpDo(t, "PUT", fmt.Sprintf("http://%s/v1/keys/k%d", procs[0].http, i), []byte("v")); code != 204 {
			t.Fatalf("PUT: %d %s", code, body)
		}
	}
	// The key n1 owns, for the imports below (the owner answers reads).
	var owned string
	for i := 0; owned == ""; i++ {
		k := fmt.Sprintf("k%d", i)
		if exists, _ := reds[0].Client().Exists(context.Background(), k).Result(); exists == 1 {
			owned = k
		}
	}
	before := make([]map[string]string, 3)
	for i, rs := range reds {
		before[i] = shardDump(t, rs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// (a) Forged requests naming a real member, without the secret.
	forger, err := peer.NewClient(peer.ClientConfig{Name: "n2"})
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()
	evil := []store.Entry{{Key: owned, Value: []byte("evil"), Version: uint64(time.Now().UnixNano())}}
	if _, err := forger.Import(ctx, procs[0].peer, evil); !errors.Is(err, peer.ErrUnavailable) {
		t.Errorf("forged import on the peer port: %v, want refused", err)
	}
	if _, err := forger.Write(ctx, procs[0].peer, owned, kv.Mutation{Value: []byte("evil")}); !errors.Is(err, peer.ErrUnavailable) {
		t.Errorf("forged write on the peer port: %v, want refused", err)
	}
	for _, path := range []string{"/internal/v1/import", "/internal/v1/keys/" + owned, "/internal/v1/handoff/" + owned, "/internal/v1/invalidate"} {
		if code, body := httpDo(t, "POST", "http://"+procs[0].http+path, []byte("PCB1")); code != 404 {
			t.Errorf("POST %s on the HTTP port: %d %s, want 404", path, code, body)
		}
	}

	// (b) Nodes without the secret, or with another one, pointed at the
	// seeds: never members anywhere.
	startProcArgs(t, "rogue", procs[0].gossip, nil)
	startProcArgs(t, "stranger", procs[0].gossip, []string{"--cluster-secret-file", other})
	time.Sleep(5 * time.Second) // several gossip rounds and join attempts (fast profile)
	for _, p := range procs {
		if ms := members(p); len(ms) != 3 {
			t.Errorf("%s lists members %v", p.http, ms)
		}
	}
	if !strings.Contains(procs[0].out.String(), "gossip refused") {
		t.Errorf("the seed logged no refused join:\n%s", procs[0].out.String())
	}

	// (c) With the secret: an import whose version lies far in the future
	// is refused.
	member, err := peer.NewClient(peer.ClientConfig{Name: "n2", Auth: peer.Auth{Secret: key}})
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	evil[0].Version = math.MaxUint64
	res, err := member.Import(ctx, procs[0].peer, evil)
	if err != nil || len(res) != 1 || res[0] != kv.Refused {
		t.Errorf("import of version 2^64-1 with the secret: %v %v, want refused", res, err)
	}
	waitUntil(t, 5*time.Second, "the refusal is logged", func() bool {
		return strings.Contains(procs[0].out.String(), "too far in the future")
	})

	for i, rs := range reds {
		if after := shardDump(t, rs); !maps.Equal(before[i], after) {
			t.Errorf("shard of n%d changed: %d keys before, %d after", i+1, len(before[i]), len(after))
		}
	}
	code, body := httpDo(t, "GET", "http://"+procs[1].http+"/v1/keys/"+owned, nil)
	if code != 200 || string(body) != "v" {
		t.Errorf("GET %s after the attacks: %d %s", owned, code, body)
	}
	// A write after the attacks still works (the clock did not move).
	if code, body := httpDo(t, "PUT", "http://"+procs[2].http+"/v1/keys/"+owned, []byte("w")); code != 204 {
		t.Errorf("PUT after the attacks: %d %s", code, body)
	}
}
