// Package cli is the raftcache command line: `raftcache node` runs a
// cluster member, and the other commands talk to a running cluster through
// package client. It is the only package that reads flags, environment
// variables and signals, and the only one that wires node, transport and
// client together.
package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/client"
)

// Exit codes, for scripts.
const (
	ExitOK       = 0
	ExitError    = 1
	ExitUsage    = 2
	ExitNotFound = 3
	// ExitRemoved: `raftcache node` stopped because the node was removed
	// from the cluster. Started again with the same flags, it rejoins as
	// a learner (systemd: RestartPreventExitStatus=4 keeps it out).
	ExitRemoved = 4
	// ExitWedged: `raftcache node` stopped because Raft refused every
	// write on this leader for good (node/transferguard.go,
	// hashicorp/raft#696). Started again, it rejoins as it was; systemd's
	// Restart=on-failure does that.
	ExitWedged = 5
)

// defaultEndpoints reach the single default node and the Procfile cluster.
var defaultEndpoints = []string{"http://127.0.0.1:7070", "http://127.0.0.1:8001", "http://127.0.0.1:8002", "http://127.0.0.1:8003"}

// Main runs the command line with args (os.Args) and returns the exit code.
func Main(args []string) int {
	return run(args, os.Stdin, os.Stdout, os.Stderr)
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	st := &runState{}
	app := newApp(stdin, stdout, stderr, st)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := app.RunContext(ctx, reorderArgs(app, args))
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	if st.output == "" { // the global flags did not parse: look for -o json anyway
		st.output = os.Getenv("RAFTCACHE_OUTPUT")
		for i, a := range args {
			switch {
			case (a == "-o" || a == "--output" || a == "-output") && i+1 < len(args):
				st.output = args[i+1]
			case strings.HasPrefix(a, "--output=") || strings.HasPrefix(a, "-o="):
				st.output = a[strings.IndexByte(a, '=')+1:]
			}
		}
	}
	if st.output == outputJSON {
		// Machine-readable, on stderr: stdout holds results only.
		writeJSONError(stderr, err, code)
		return code
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, msg)
		}
		return code
	}
	fmt.Fprintln(stderr, "Error:", err)
	return code
}

// exitCode maps an error to the process's exit status.
func exitCode(err error) int {
	var ec cli.ExitCoder
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ec):
		return ec.ExitCode()
	case errors.Is(err, client.ErrNotFound):
		return ExitNotFound
	case isUsageError(err), errors.Is(err, client.ErrBadRequest) && !refusedByState(err):
		// A request the server refuses as malformed (400) came from the
		// command line's arguments.
		return ExitUsage
	}
	return ExitError
}

// refusedByState says whether a 400 is about the data or the cluster (a
// corrupt backup file, a transfer the cluster cannot make) rather than
// about how the command was called.
func refusedByState(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) && (ce.Code == "bad_backup" || ce.Code == "invalid")
}

// runState is what one run learns from the global flags before a command
// runs, for reporting its error.
type runState struct {
	output string
}

// usageError marks errors in how the command was called.
type usageError struct{ error }

func isUsageError(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func newApp(stdin io.Reader, stdout, stderr io.Writer, st *runState) *cli.App {
	app := &cli.App{
		Name:  "raftcache",
		Usage: "a strongly consistent, Raft-replicated cache cluster",
		UsageText: `raftcache [global options] command [command options] [arguments...]

Global options go anywhere: raftcache get greeting -o json works.
Flags may follow arguments; after "--" everything is an argument.`,
		Description: `Run a node:      raftcache node --id n1 --http-addr 127.0.0.1:8001 --raft-addr 127.0.0.1:9001 --data-dir data/n1 --bootstrap
Use a cluster:   raftcache set greeting hello; raftcache get greeting; raftcache status
Machine output:  raftcache -o json status | jq .leader

Exit codes: 0 ok, 1 error, 2 usage error (or a request the server refused
as malformed), 3 key not found.
Shell completion: source <(raftcache completion bash)`,
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		// Errors are reported (and exit codes chosen) by run, never by
		// os.Exit inside the library.
		ExitErrHandler: func(*cli.Context, error) {},
		Flags: []cli.Flag{
			&cli.StringSliceFlag{
				Name: "endpoints", Aliases: []string{"e"}, EnvVars: []string{"RAFTCACHE_ENDPOINTS"},
				Value: cli.NewStringSlice(defaultEndpoints...),
				Usage: "cluster member URLs, comma-separated (any member; the others are learned, redirects to the leader are followed)",
			},
			&cli.StringFlag{
				Name: "output", Aliases: []string{"o"}, EnvVars: []string{"RAFTCACHE_OUTPUT"}, Value: outputText,
				Usage: "output format: text, json (one JSON document on stdout; errors as JSON on stderr) or table",
			},
			&cli.DurationFlag{Name: "timeout", Value: 0, EnvVars: []string{"RAFTCACHE_TIMEOUT"},
				Usage: "bound on the whole command, retries included (default: 10s per call; 30m for snapshot save and restore)"},
			&cli.StringFlag{Name: "token", EnvVars: []string{"RAFTCACHE_TOKEN"},
				Usage: "bearer token for a cluster that requires one (prefer the env var: flags show in ps)"},
			&cli.StringFlag{Name: "cacert", EnvVars: []string{"RAFTCACHE_CACERT"}, TakesFile: true,
				Usage: "CA (PEM) that signed the members' HTTPS certificates (default: the system roots); with it, or --cert, the default endpoints are https"},
			&cli.StringFlag{Name: "cert", EnvVars: []string{"RAFTCACHE_CERT"}, TakesFile: true,
				Usage: "client certificate (PEM) for members that require one (--tls-client-ca)"},
			&cli.StringFlag{Name: "key", EnvVars: []string{"RAFTCACHE_KEY"}, TakesFile: true,
				Usage: "key (PEM) of --cert"},
			&cli.BoolFlag{Name: "version", Usage: "print the version and exit (as the version command)"},
		},
		Before: func(c *cli.Context) error {
			out := c.String("output")
			switch out {
			case outputText, outputJSON, outputTable:
				st.output = out
				return nil
			}
			return usagef("--output must be text, json or table, not %q", out)
		},
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return usageError{err}
		},
		Action: func(c *cli.Context) error {
			if c.Bool("version") {
				return printVersion(c)
			}
			args := c.Args().Slice()
			if len(args) > 0 && args[0] == "help" { // raftcache help [COMMAND]
				if len(args) == 1 {
					return cli.ShowAppHelp(c)
				}
				if c.App.Command(args[1]) == nil {
					return usagef("no help for %q: not a command", args[1])
				}
				return cli.ShowCommandHelp(c, args[1])
			}
			if len(args) > 0 {
				return usagef("unknown command %q (raftcache --help lists them)", args[0])
			}
			return cli.ShowAppHelp(c)
		},
		Commands: []*cli.Command{
			nodeCommand(),
			getCommand(),
			setCommand(),
			delCommand(),
			incrCommand(),
			keysCommand(),
			delPrefixCommand(),
			statsCommand(),
			statusCommand(),
			membersCommand(),
			transferCommand(),
			snapshotCommand(),
			restoreCommand(),
			benchCommand(),
			completionCommand(),
			versionCommand(),
			recoverCommand(),
		},
	}
	for _, cmd := range app.Commands {
		cmdDefaults(cmd)
	}
	return app
}

// cmdDefaults gives every command the same usage-error handling: an error
// that run turns into exit code 2, without help text on stdout (which may
// be a JSON consumer's).
func cmdDefaults(cmd *cli.Command) {
	cmd.OnUsageError = func(c *cli.Context, err error, isSubcommand bool) error { return usageError{err} }
	cmd.HideHelpCommand = true
	if len(cmd.Subcommands) > 0 && cmd.Action == nil {
		cmd.Action = func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown command %q for %s", c.Args().First(), c.Command.FullName())
			}
			var names []string
			for _, sub := range c.Command.Subcommands {
				names = append(names, sub.Name)
			}
			return usagef("%s needs a subcommand: %s (--help for more)", c.Command.FullName(), strings.Join(names, ", "))
		}
	}
	for _, sub := range cmd.Subcommands {
		cmdDefaults(sub)
	}
}

// newClient builds a client from the global flags.
func newClient(c *cli.Context) (*client.Client, error) {
	tlsConfig, err := clientTLS(c)
	if err != nil {
		return nil, err
	}
	cl, err := client.New(client.Config{
		Endpoints: endpoints(c, tlsConfig != nil),
		Timeout:   c.Duration("timeout"),
		Token:     c.String("token"),
		TLS:       tlsConfig,
	})
	if err != nil {
		return nil, usageError{err}
	}
	return cl, nil
}

// clientTLS is the client side of TLS from --cacert, --cert and --key; nil
// when none is given (https endpoints then trust the system roots).
func clientTLS(c *cli.Context) (*tls.Config, error) {
	ca, cert, key := c.String("cacert"), c.String("cert"), c.String("key")
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	if (cert == "") != (key == "") {
		return nil, usagef("--cert and --key go together")
	}
	cfg, err := client.TLSConfigFromFiles(ca, cert, key)
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

// endpoints is --endpoints; its default is https when TLS is configured.
func endpoints(c *cli.Context, tls bool) []string {
	eps := c.StringSlice("endpoints")
	if tls && !c.IsSet("endpoints") {
		eps = nil
		for _, e := range defaultEndpoints {
			eps = append(eps, "https://"+strings.TrimPrefix(e, "http://"))
		}
	}
	return eps
}

// withClient runs f with a client and closes it afterwards. With
// --timeout, the whole command (every call f makes) is bounded by it;
// without, each call gets the client's default bound.
func withClient(c *cli.Context, f func(cl *client.Client) error) error {
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	if d := c.Duration("timeout"); d > 0 {
		ctx, cancel := context.WithTimeout(c.Context, d)
		defer cancel()
		c.Context = ctx
	}
	return f(cl)
}

// longContext bounds a command that moves a whole backup: --timeout if
// given, else long (the client's default of 10s is for single calls).
func longContext(c *cli.Context) (context.Context, context.CancelFunc) {
	d := c.Duration("timeout")
	if d <= 0 {
		d = 30 * time.Minute
	}
	return context.WithTimeout(c.Context, d)
}
