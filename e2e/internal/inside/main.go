//go:build e2e

// Command inside is the e2e suite's client for a node the host cannot reach:
// during a network partition a disconnected container has no published port,
// so the suite copies this static binary into the container (docker cp) and
// runs it there (docker exec), against the node's own 127.0.0.1:8080.
//
// It reads one operation per line from stdin, "PUT key value", "DEL key",
// "GET key" or "RING -" (the node's ring members, comma-separated, from
// /v1/cluster), performs each once, in order, and prints one JSON line per
// operation: {"op","key","value","status","version","owner","err","ms"}.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

type result struct {
	Op      string `json:"op"`
	Key     string `json:"key"`
	Value   string `json:"value,omitempty"`
	Status  int    `json:"status"`
	Version uint64 `json:"version,omitempty"`
	Owner   string `json:"owner,omitempty"`
	Err     string `json:"err,omitempty"`
	Millis  int64  `json:"ms"`
}

// withAuth adds the client password ("": none) to req.
func withAuth(req *http.Request, password string) {
	if password != "" {
		req.SetBasicAuth("default", password)
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "node HTTP address")
	timeout := flag.Duration("timeout", 3*time.Second, "per-request timeout")
	pwFile := flag.String("password-file", "", "file holding the client password (user default); absent or empty: no credentials")
	flag.Parse()
	c := &http.Client{Timeout: *timeout}
	password := ""
	if *pwFile != "" {
		if b, err := os.ReadFile(*pwFile); err == nil {
			password = strings.TrimSpace(string(b))
		}
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) < 2 {
			continue
		}
		r := result{Op: f[0], Key: f[1]}
		var method string
		var body io.Reader
		switch f[0] {
		case "PUT":
			if len(f) < 3 {
				r.Err = "PUT needs a value"
				enc.Encode(r)
				continue
			}
			method, r.Value, body = http.MethodPut, f[2], strings.NewReader(f[2])
		case "DEL":
			method = http.MethodDelete
		case "GET":
			method = http.MethodGet
		case "RING":
			r.Status, r.Value, r.Err = ring(c, *addr, password)
			enc.Encode(r)
			continue
		default:
			r.Err = "unknown op"
			enc.Encode(r)
			continue
		}
		start := time.Now()
		req, err := http.NewRequest(method, "http://"+*addr+"/v1/keys/"+url.PathEscape(f[1]), body)
		if err != nil {
			r.Err = err.Error()
			enc.Encode(r)
			continue
		}
		withAuth(req, password)
		resp, err := c.Do(req)
		if err != nil {
			r.Err = err.Error()
		} else {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			r.Status = resp.StatusCode
			r.Version, _ = strconv.ParseUint(resp.Header.Get("X-Peercache-Version"), 10, 64)
			r.Owner = resp.Header.Get("X-Peercache-Owner")
			if method == http.MethodGet && r.Status == http.StatusOK {
				r.Value = string(b)
			} else if r.Status >= 300 {
				r.Err = strings.TrimSpace(string(b))
			}
		}
		r.Millis = time.Since(start).Milliseconds()
		if err := enc.Encode(r); err != nil {
			fmt.Fprintln(os.Stderr, "inside:", err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "inside: reading stdin:", err)
		os.Exit(1)
	}
}

// ring returns the node's ring members from /v1/cluster.
func ring(c *http.Client, addr, password string) (int, string, string) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/cluster", nil)
	if err != nil {
		return 0, "", err.Error()
	}
	withAuth(req, password)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err.Error()
	}
	defer resp.Body.Close()
	var doc struct {
		Ring struct {
			Members []string `json:"members"`
		} `json:"ring"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return resp.StatusCode, "", err.Error()
	}
	return resp.StatusCode, strings.Join(doc.Ring.Members, ","), ""
}
