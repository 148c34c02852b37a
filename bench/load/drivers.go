package load

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/peercache/peercache/ring"
)

// ---- HTTP ----

type httpDriver struct {
	client *http.Client
	bases  []string // "http://addr/v1/keys/"
	value  []byte
	// user and password: HTTP Basic credentials (none when password is "").
	user, password string
}

func newHTTPDriver(cfg Config, value []byte) *httpDriver {
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.Concurrency * len(cfg.Addrs),
		MaxIdleConnsPerHost: cfg.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	d := &httpDriver{client: &http.Client{Transport: t, Timeout: cfg.Timeout}, value: value,
		user: cmp.Or(cfg.User, "default"), password: cfg.Password}
	for _, a := range cfg.Addrs {
		d.bases = append(d.bases, "http://"+a+"/v1/keys/")
	}
	return d
}

// httpStatusError is an unexpected HTTP status.
type httpStatusError struct {
	status int
	body   string
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.status, strings.TrimSpace(e.body))
}

func (d *httpDriver) do(ctx context.Context, addr int, ops []op, res []opResult) {
	for i, o := range ops {
		res[i] = d.one(ctx, d.bases[addr]+url.PathEscape(o.key), o.read)
	}
}

func (d *httpDriver) one(ctx context.Context, u string, read bool) opResult {
	var req *http.Request
	var err error
	if read {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(d.value))
	}
	if err != nil {
		return opResult{out: failed, err: err}
	}
	if d.password != "" {
		req.SetBasicAuth(d.user, d.password)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return opResult{out: failed, err: err}
	}
	defer resp.Body.Close()
	switch {
	case read && resp.StatusCode == http.StatusOK:
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return opResult{out: failed, err: err}
		}
		return opResult{out: hit}
	case read && resp.StatusCode == http.StatusNotFound:
		io.Copy(io.Discard, resp.Body)
		return opResult{out: miss}
	case !read && (resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusOK):
		io.Copy(io.Discard, resp.Body)
		return opResult{out: written}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return opResult{out: failed, err: &httpStatusError{status: resp.StatusCode, body: string(body)}}
}

func (d *httpDriver) close() { d.client.CloseIdleConnections() }

// ---- RESP ----

type respDriver struct {
	clients []*redis.Client
	value   []byte
}

func newRESPDriver(cfg Config, value []byte) *respDriver {
	d := &respDriver{value: value}
	for _, a := range cfg.Addrs {
		d.clients = append(d.clients, redis.NewClient(&redis.Options{
			Addr:            a,
			Username:        cfg.User,
			Password:        cfg.Password,
			Protocol:        2, // RESP2: peercache speaks only RESP2 (redis too, of course)
			PoolSize:        cfg.Concurrency,
			MinIdleConns:    0,
			DialTimeout:     2 * time.Second,
			ReadTimeout:     cfg.Timeout,
			WriteTimeout:    cfg.Timeout,
			DisableIdentity: true,
			MaxRetries:      -1, // count failures, do not hide them
			MaintNotificationsConfig: &maintnotifications.Config{
				Mode: maintnotifications.ModeDisabled,
			},
		}))
	}
	return d
}

func (d *respDriver) do(ctx context.Context, addr int, ops []op, res []opResult) {
	c := d.clients[addr]
	if len(ops) == 1 {
		res[0] = d.result(ops[0], d.one(ctx, c, ops[0]))
		return
	}
	cmds := make([]redis.Cmder, len(ops))
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, o := range ops {
			if o.read {
				cmds[i] = p.Get(ctx, o.key)
			} else {
				cmds[i] = p.Set(ctx, o.key, d.value, 0)
			}
		}
		return nil
	})
	for i, o := range ops {
		e := cmds[i].Err()
		if e == nil && err != nil && !errors.Is(err, redis.Nil) && !isRedisError(err) {
			e = err // the pipeline as a whole failed (network)
		}
		res[i] = d.result(o, e)
	}
}

func (d *respDriver) one(ctx context.Context, c *redis.Client, o op) error {
	if o.read {
		return c.Get(ctx, o.key).Err()
	}
	return c.Set(ctx, o.key, d.value, 0).Err()
}

func (d *respDriver) result(o op, err error) opResult {
	switch {
	case err == nil && o.read:
		return opResult{out: hit}
	case err == nil:
		return opResult{out: written}
	case o.read && errors.Is(err, redis.Nil):
		return opResult{out: miss}
	}
	return opResult{out: failed, err: err}
}

func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

func (d *respDriver) close() {
	for _, c := range d.clients {
		c.Close()
	}
}

// ---- errors ----

// errorKind classifies a failed operation for the error summary.
func errorKind(err error) string {
	var se *httpStatusError
	var ne net.Error
	var re redis.Error
	switch {
	case err == nil:
		return "unknown"
	case errors.As(err, &se):
		return fmt.Sprintf("http %d", se.status)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &re):
		msg := re.Error()
		if i := strings.IndexByte(msg, ' '); i > 0 {
			msg = msg[:i]
		}
		return "redis " + msg
	default:
		return "other"
	}
}

// ---- remote-only keys ----

// clusterInfo is the part of GET /v1/cluster the key filter needs.
type clusterInfo struct {
	Self string `json:"self"`
	Ring struct {
		Members []string `json:"members"`
		VNodes  int      `json:"vnodes"`
	} `json:"ring"`
}

// remoteKeys returns the first cfg.Keys key names that the node at
// cfg.Addrs[0] does not own in its current ring (so reads through it are
// forwarded). It assumes the default key hash (xxhash64).
func remoteKeys(ctx context.Context, cfg *Config) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cfg.Addrs[0]+"/v1/cluster", nil)
	if err != nil {
		return nil, err
	}
	if cfg.Password != "" {
		req.SetBasicAuth(cmp.Or(cfg.User, "default"), cfg.Password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("remote-only: %w", err)
	}
	defer resp.Body.Close()
	var ci clusterInfo
	if err := json.NewDecoder(resp.Body).Decode(&ci); err != nil {
		return nil, fmt.Errorf("remote-only: decoding /v1/cluster: %w", err)
	}
	if len(ci.Ring.Members) < 2 {
		return nil, fmt.Errorf("remote-only: %s's ring has %d members; need at least 2", ci.Self, len(ci.Ring.Members))
	}
	r := ring.New(ci.Ring.Members, ring.Options{VNodes: ci.Ring.VNodes})
	keys := make([]string, 0, cfg.Keys)
	for i := 0; len(keys) < cfg.Keys; i++ {
		k := keyName(cfg.KeyPrefix, i)
		if r.Owner(k) != ci.Self {
			keys = append(keys, k)
		}
	}
	return keys, nil
}
