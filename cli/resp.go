package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"

	"github.com/hashicorp/go-hclog"

	"github.com/raftcache/raftcache/node"
	"github.com/raftcache/raftcache/resp"
)

// The optional Redis-protocol front (--resp-addr). Its listener is opened
// before the node starts, so the address replicated to the other members
// is the real one (port 0 resolved).

// listenRESP opens the Redis-protocol listener; nil when addr is empty.
func listenRESP(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on --resp-addr: %w", err)
	}
	return ln, nil
}

// listenerAddr is ln's address, or "" for no listener.
func listenerAddr(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// serveRESP serves the Redis protocol on ln (nothing if ln is nil) and
// returns the graceful stop: stop accepting, let commands in flight
// finish until ctx ends, close the connections.
func serveRESP(n *node.Node, ln net.Listener, maxValueSize int64, logger hclog.Logger, serveErr chan<- error) func(context.Context) {
	if ln == nil {
		return func(context.Context) {}
	}
	version := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
	}
	srv := resp.New(n, resp.Config{MaxValueSize: maxValueSize, Logger: logger, Version: version})
	go func() {
		if err := srv.Serve(ln); err != nil {
			serveErr <- fmt.Errorf("Redis-protocol server: %w", err)
		}
	}()
	return func(ctx context.Context) {
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
			logger.Warn("Redis-protocol shutdown", "error", err)
		}
	}
}
