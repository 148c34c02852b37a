package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/resp"
)

// respFront is the Redis protocol listener (--resp-addr) that runs next to
// the node: bound before the node starts (a taken port fails at once),
// serving once the node is active, closed before the node leaves. A nil
// *respFront (no --resp-addr) does nothing.
type respFront struct {
	srv *resp.Server
	log *slog.Logger
}

// listenRESPPort binds --resp-addr (nil, nil when it is empty).
func listenRESPPort(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usageError{fmt.Errorf("--resp-addr %s: %w", addr, err)}
	}
	return ln, nil
}

// listenRESP makes the Redis protocol server on ln (nil: none), in Redis
// Cluster mode with --resp-cluster.
func listenRESP(ln net.Listener, cluster bool, n *node.Node, peerTimeout time.Duration, opts resp.Options, log *slog.Logger) (*respFront, error) {
	if ln == nil {
		return nil, nil
	}
	// A command may wait for one peer call (--peer-timeout) and for the
	// node's re-targeting while views of the ring differ (at most 2 s).
	timeout := max(resp.DefaultCommandTimeout, peerTimeout+3*time.Second)
	opts.Listener, opts.Cluster, opts.CommandTimeout, opts.Version, opts.Logger = ln, cluster, timeout, version, log.With("component", "resp")
	srv, err := resp.Listen(n, opts)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("--resp-addr: %w", err)
	}
	return &respFront{srv: srv, log: log}, nil
}

func (f *respFront) serve() {
	if f == nil {
		return
	}
	f.srv.Start()
	f.log.Info("redis protocol listener serving", "resp", f.srv.Addr().String())
}

// close stops listening and closes client connections (idempotent).
func (f *respFront) close() {
	if f == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.srv.Close(ctx); err != nil {
		f.log.Warn("closing the redis protocol listener", "err", err)
	}
}
