// Package cli is the raftcache command line: `raftcache node` runs a
// cluster member, and the other commands talk to a running cluster through
// package client. It is the only package that reads flags, environment
// variables and signals, and the only one that wires node, transport and
// client together.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/client"
)

// Exit codes, for scripts.
const (
	ExitOK       = 0
	ExitError    = 1
	ExitUsage    = 2
	ExitNotFound = 3
)

// defaultEndpoints reach the single default node and the Procfile cluster.
var defaultEndpoints = []string{"http://127.0.0.1:7070", "http://127.0.0.1:8001", "http://127.0.0.1:8002", "http://127.0.0.1:8003"}

// Main runs the command line with args (os.Args) and returns the exit code.
func Main(args []string) int {
	return run(args, os.Stdin, os.Stdout, os.Stderr)
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := app.RunContext(ctx, args)
	if err == nil {
		return ExitOK
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(stderr, "Error:", err)
	if errors.Is(err, client.ErrNotFound) {
		return ExitNotFound
	}
	if isUsageError(err) {
		return ExitUsage
	}
	return ExitError
}

// usageError marks errors in how the command was called.
type usageError struct{ error }

func isUsageError(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "raftcache",
		Usage: "a strongly consistent, Raft-replicated cache cluster",
		Description: `Run a node:      raftcache node --id n1 --http-addr 127.0.0.1:8001 --raft-addr 127.0.0.1:9001 --data-dir data/n1 --bootstrap
Use a cluster:   raftcache set greeting hello; raftcache get greeting; raftcache status`,
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{
				Name: "endpoints", Aliases: []string{"e"}, EnvVars: []string{"RAFTCACHE_ENDPOINTS"},
				Value: cli.NewStringSlice(defaultEndpoints...),
				Usage: "cluster member URLs (any member; redirects to the leader are followed)",
			},
			&cli.DurationFlag{Name: "timeout", Value: 0, Usage: "bound on each command (default 10s)", EnvVars: []string{"RAFTCACHE_TIMEOUT"}},
		},
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return usageError{err}
		},
		Commands: []*cli.Command{
			nodeCommand(),
			getCommand(),
			setCommand(),
			delCommand(),
			statusCommand(),
			benchCommand(),
		},
	}
}

// newClient builds a client from the global flags.
func newClient(c *cli.Context) (*client.Client, error) {
	return client.New(client.Config{Endpoints: c.StringSlice("endpoints"), Timeout: c.Duration("timeout")})
}
