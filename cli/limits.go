package cli

import (
	"fmt"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/transport"
)

// limitFlags are the HTTP front's bounds under load and abuse
// (docs/security.md, "Limits").
func limitFlags() []cli.Flag {
	env := func(name string) []string { return []string{"RAFTCACHE_" + name} }
	return []cli.Flag{
		&cli.Int64Flag{Name: "max-connections", EnvVars: env("MAX_CONNECTIONS"), Value: transport.DefaultMaxConns, Usage: "open HTTP connections; at the cap the longest idle (or slowest to send its headers) is closed for a new one, and only if all are busy is it refused with 503"},
		&cli.Int64Flag{Name: "max-inflight", EnvVars: env("MAX_INFLIGHT"), Value: transport.DefaultMaxInflight, Usage: "HTTP requests handled at once (probes excepted); past it, 503 overloaded with Retry-After"},
		&cli.DurationFlag{Name: "http-read-header-timeout", EnvVars: env("HTTP_READ_HEADER_TIMEOUT"), Value: transport.DefaultReadHeaderTimeout, Usage: "a connection must send a request's headers within this (slow clients are cut)"},
		&cli.DurationFlag{Name: "http-read-timeout", EnvVars: env("HTTP_READ_TIMEOUT"), Value: transport.DefaultReadTimeout, Usage: "a whole request, body included, must arrive within this"},
		&cli.DurationFlag{Name: "http-write-timeout", EnvVars: env("HTTP_WRITE_TIMEOUT"), Value: transport.DefaultWriteTimeout, Usage: "a response must be written within this"},
		&cli.DurationFlag{Name: "http-idle-timeout", EnvVars: env("HTTP_IDLE_TIMEOUT"), Value: transport.DefaultIdleTimeout, Usage: "a keep-alive connection without a request is closed after this"},
	}
}

// serverLimits reads the limit flags. The connection cap is lowered to fit
// the process's file descriptor limit, keeping room for Raft, the stores
// and the Redis port: a cap the kernel cannot honour would stall accept
// instead of reclaiming connections.
func serverLimits(c *cli.Context, logger hclog.Logger) (transport.ServerLimits, int, error) {
	lim := transport.ServerLimits{
		MaxConns:          int(c.Int64("max-connections")),
		ReadHeaderTimeout: c.Duration("http-read-header-timeout"),
		ReadTimeout:       c.Duration("http-read-timeout"),
		WriteTimeout:      c.Duration("http-write-timeout"),
		IdleTimeout:       c.Duration("http-idle-timeout"),
	}
	inflight := int(c.Int64("max-inflight"))
	if lim.MaxConns < 1 || inflight < 1 {
		return lim, 0, usagef("--max-connections and --max-inflight must be at least 1")
	}
	for _, d := range []string{"http-read-header-timeout", "http-read-timeout", "http-write-timeout", "http-idle-timeout"} {
		if c.Duration(d) <= 0 {
			return lim, 0, usagef("--%s must be positive", d)
		}
	}
	const reserve = 512
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < uint64(lim.MaxConns)+reserve {
		fit := int(rl.Cur) - reserve
		if fit < 64 {
			return lim, 0, fmt.Errorf("the file descriptor limit (%d) leaves no room for HTTP connections; raise ulimit -n", rl.Cur)
		}
		logger.Warn("--max-connections lowered to fit the file descriptor limit", "max_connections", fit, "asked", lim.MaxConns, "nofile", rl.Cur)
		lim.MaxConns = fit
	}
	return lim, inflight, nil
}
