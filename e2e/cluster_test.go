//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// client talks to nodes through their published 127.0.0.1 ports, with
// keep-alive connections.
type client struct {
	hc *http.Client
	// password is the client password of the deployment (docker-compose's
	// keygen service writes it): set once, before the first request that
	// needs it; "" sends no credentials.
	password string
}

// newRequest is http.NewRequestWithContext with the deployment's
// credentials.
func (c *client) newRequest(ctx context.Context, method, url string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err == nil && c.password != "" {
		req.SetBasicAuth("default", c.password)
	}
	return req, err
}

func newClient() *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &client{hc: &http.Client{Transport: tr, Timeout: 6 * time.Second}}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// reply is the outcome of one request. Err is set when no HTTP answer came.
type reply struct {
	Status  int
	Body    string
	Version uint64
	Owner   string
	Source  string // X-Peercache-Source of a read
	Err     error
}

// outcome names a reply for failure statistics.
func (r reply) outcome() string {
	if r.Err != nil {
		msg := r.Err.Error()
		for _, s := range []string{"connection refused", "connection reset", "EOF", "timeout", "deadline exceeded"} {
			if strings.Contains(msg, s) {
				return s
			}
		}
		return msg
	}
	body := strings.TrimSpace(r.Body)
	var e struct{ Error string }
	if json.Unmarshal([]byte(body), &e) == nil && e.Error != "" {
		body = e.Error
	}
	if len(body) > 60 {
		body = body[:60]
	}
	return fmt.Sprintf("%d %s", r.Status, body)
}

func (c *client) do(ctx context.Context, method, base, key, value string) reply {
	var body io.Reader
	if method == http.MethodPut {
		body = strings.NewReader(value)
	}
	req, err := c.newRequest(ctx, method, base+"/v1/keys/"+url.PathEscape(key), body)
	if err != nil {
		return reply{Err: err}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return reply{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return reply{Err: fmt.Errorf("reading the answer: %w", err)}
	}
	r := reply{Status: resp.StatusCode, Body: string(b), Owner: resp.Header.Get("X-Peercache-Owner"),
		Source: resp.Header.Get("X-Peercache-Source")}
	r.Version, _ = strconv.ParseUint(resp.Header.Get("X-Peercache-Version"), 10, 64)
	return r
}

func (c *client) status(ctx context.Context, base, path string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// clusterDoc is the part of /v1/cluster the suite reads.
type clusterDoc struct {
	Self  string `json:"self"`
	State string `json:"state"`
	Ready bool   `json:"ready"`
	Ring  struct {
		Version  uint64   `json:"version"`
		Members  []string `json:"members"`
		Checksum string   `json:"checksum"`
	} `json:"ring"`
	Members []struct {
		Name      string `json:"name"`
		State     string `json:"state"`
		Suspect   bool   `json:"suspect"`
		Migrating bool   `json:"migrating"`
		InRing    bool   `json:"in_ring"`
	} `json:"members"`
	Handoff bool `json:"handoff_active"`
}

func (c *client) cluster(ctx context.Context, base string) (clusterDoc, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var d clusterDoc
	req, err := c.newRequest(ctx, http.MethodGet, base+"/v1/cluster", nil)
	if err != nil {
		return d, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return d, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return d, fmt.Errorf("GET %s/v1/cluster: %s", base, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		return d, fmt.Errorf("GET %s/v1/cluster: %w", base, err)
	}
	return d, nil
}

// converged reports whether every node sees exactly the ring want (node
// names), with one checksum, every ring member active and none migrating.
// why says what is still missing.
func (c *client) converged(ctx context.Context, nodes []container, want []string) (ok bool, why string) {
	want = slices.Sorted(slices.Values(want))
	var sum string
	for _, n := range nodes {
		d, err := c.cluster(ctx, n.Base())
		if err != nil {
			return false, err.Error()
		}
		got := slices.Sorted(slices.Values(d.Ring.Members))
		if !slices.Equal(got, want) {
			return false, fmt.Sprintf("%s sees ring %v, want %v", n.Hostname, got, want)
		}
		if sum == "" {
			sum = d.Ring.Checksum
		} else if d.Ring.Checksum != sum {
			return false, fmt.Sprintf("%s has ring checksum %s, another node %s", n.Hostname, d.Ring.Checksum, sum)
		}
		if !d.Ready {
			return false, n.Hostname + " is not ready"
		}
		for _, m := range d.Members {
			if !slices.Contains(want, m.Name) {
				continue
			}
			if m.Migrating || m.State != "active" || m.Suspect {
				return false, fmt.Sprintf("%s sees %s %s (migrating %v, suspect %v)", n.Hostname, m.Name, m.State, m.Migrating, m.Suspect)
			}
		}
	}
	return true, ""
}

// waitConverged polls until converged or the timeout; it returns how long
// that took.
func (c *client) waitConverged(ctx context.Context, nodes []container, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	var want []string
	for _, n := range nodes {
		want = append(want, n.Hostname)
	}
	why := ""
	for time.Since(start) < timeout {
		var ok bool
		if ok, why = c.converged(ctx, nodes, want); ok {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return time.Since(start), fmt.Errorf("no convergence on %d nodes within %s: %s", len(nodes), timeout, why)
}

// waitReady polls /readyz of every node until all answer 200.
func (c *client) waitReady(ctx context.Context, nodes []container, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, n := range nodes {
		for {
			code, err := c.status(ctx, n.Base(), "/readyz")
			if code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s (%s) not ready within %s: %d %v", n.Hostname, n.Base(), timeout, code, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}
