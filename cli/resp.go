package cli

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

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

// respFlags are the Redis front's own settings; --resp-addr is with the
// addresses, and TLS and tokens are shared with the HTTP API.
func respFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "resp-max-clients", EnvVars: []string{"RAFTCACHE_RESP_MAX_CLIENTS"}, Value: 10000,
			Usage: "open Redis-protocol connections at most; more are refused with `max number of clients reached`"},
		&cli.Int64Flag{Name: "resp-max-push-bytes", EnvVars: []string{"RAFTCACHE_RESP_MAX_PUSH_BYTES"}, Value: 32 << 20,
			Usage: "pub/sub messages and invalidations waiting for one connection at most (bytes); past it the connection is closed (Redis: client-output-buffer-limit pubsub)"},
		&cli.IntFlag{Name: "resp-relay-conns", EnvVars: []string{"RAFTCACHE_RESP_RELAY_CONNS"}, Value: 2,
			Usage: "shared, pipelined connections a follower keeps to the leader's Redis port for the commands it relays (per token and protocol; blocking pops use their own)",
			Action: func(_ *cli.Context, v int) error {
				if v < 1 {
					return usagef("--resp-relay-conns must be at least 1, not %d", v)
				}
				return nil
			}},
	}
}

// respConfig is the Redis front's configuration: the same
// tokens and TLS certificate as the HTTP API (with --tls-client-ca, Redis
// clients need a client certificate too), and for relaying to the leader
// the client side used between members.
func respConfig(c *cli.Context, sec *security, logger hclog.Logger) resp.Config {
	return resp.Config{Logger: logger, Version: node.BuildInfo().Version,
		Auth: sec.auth, TLS: sec.serverTLS, ForwardTLS: sec.peerHTTP,
		RelayConns: c.Int("resp-relay-conns"),
		Limits:     resp.Limits{MaxClients: c.Int("resp-max-clients"), MaxPushBytes: c.Int64("resp-max-push-bytes")}}
}

// serveRESP serves the Redis protocol on ln (nothing if ln is nil) and
// returns the graceful stop: stop accepting, let commands in flight
// finish until ctx ends, close the connections.
func serveRESP(n *node.Node, ln net.Listener, cfg resp.Config, serveErr chan<- error) func(context.Context) {
	if ln == nil {
		return func(context.Context) {}
	}
	logger := cfg.Logger
	srv := resp.New(n, cfg)
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
