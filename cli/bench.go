package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/bench"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "load-test a running cluster (like redis-benchmark)",
		Description: `Runs each workload in turn with --clients concurrent clients, each on its own
keep-alive connection, for --duration (or --requests requests), and prints
the throughput, latency percentiles and errors. Keys are drawn uniformly from
--keys keys under --key-prefix; the read workloads preload them first.

Workloads:
   set          PUT /v1/kv/{key} on the leader
   get-strong   GET /v1/kv/{key} on the leader (linearizable)
   get-stale    GET /v1/kv/{key}?consistency=stale, clients spread over the followers
   incr         POST /v1/incr/{key} on the leader
   mix          --read-ratio reads (--mix-reads strong or stale), the rest PUTs

Exits 1 if any request failed (transport error or non-2xx answer).

   raftcache bench
   raftcache bench -t set,get-stale -c 32 --duration 5s
   raftcache bench -t mix --mix-reads stale --read-ratio 0.95 --json`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "workloads", Aliases: []string{"t"}, Value: strings.Join(bench.Workloads, ","), Usage: "comma-separated workloads to run"},
			&cli.IntFlag{Name: "clients", Aliases: []string{"c"}, Value: bench.DefaultClients, Usage: "concurrent clients"},
			&cli.IntFlag{Name: "value-size", Aliases: []string{"d"}, Value: bench.DefaultValueSize, Usage: "value size in bytes"},
			&cli.IntFlag{Name: "keys", Aliases: []string{"r"}, Value: bench.DefaultKeys, Usage: "size of the key space"},
			&cli.DurationFlag{Name: "duration", Value: bench.DefaultDuration, Usage: "length of each workload's run"},
			&cli.Int64Flag{Name: "requests", Aliases: []string{"n"}, Usage: "also stop each workload after this many requests (0: no count bound)"},
			&cli.Float64Flag{Name: "read-ratio", Value: bench.DefaultReadRatio, Usage: "fraction of reads in the mix workload"},
			&cli.StringFlag{Name: "mix-reads", Value: "strong", Usage: "consistency of the mix workload's reads: strong (leader) or stale (followers)"},
			&cli.StringFlag{Name: "key-prefix", Value: bench.DefaultKeyPrefix, Usage: "prefix of the keys written and read"},
			&cli.BoolFlag{Name: "json", Usage: `print {"results": [...]} as JSON instead of text`},
		},
		Action: runBench,
	}
}

func runBench(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("bench takes no arguments, got %q", c.Args().Slice())
	}
	var workloads []string
	for _, w := range strings.Split(c.String("workloads"), ",") {
		if w = strings.TrimSpace(w); w != "" {
			workloads = append(workloads, w)
		}
	}
	if len(workloads) == 0 {
		return usagef("--workloads is empty")
	}
	known := map[string]bool{}
	for _, w := range bench.Workloads {
		known[w] = true
	}
	for _, w := range workloads {
		if !known[w] {
			return usagef("unknown workload %q (want some of %s)", w, strings.Join(bench.Workloads, ", "))
		}
	}
	if c.Int("clients") <= 0 || c.Int("value-size") <= 0 || c.Int("keys") <= 0 {
		return usagef("--clients, --value-size and --keys must be positive")
	}
	if c.Duration("duration") <= 0 && c.Int64("requests") <= 0 {
		return usagef("give a positive --duration or --requests")
	}
	if r := c.Float64("read-ratio"); r <= 0 || r > 1 {
		return usagef("--read-ratio must be in (0, 1]")
	}
	if m := c.String("mix-reads"); m != "strong" && m != "stale" {
		return usagef("--mix-reads must be strong or stale")
	}

	tlsConfig, err := clientTLS(c)
	if err != nil {
		return err
	}
	eps := endpoints(c, tlsConfig != nil)
	if tlsConfig != nil {
		for _, e := range eps {
			if !strings.HasPrefix(e, "https://") {
				return usagef("--cacert, --cert and --key need https:// endpoints, not %q", e)
			}
		}
	}

	var results []*bench.Result
	var errs int64
	for _, w := range workloads {
		res, err := bench.Run(c.Context, bench.Config{
			Endpoints: eps,
			TLS:       tlsConfig,
			Token:     c.String("token"),
			Workload:  w,
			Clients:   c.Int("clients"),
			ValueSize: c.Int("value-size"),
			Keys:      c.Int("keys"),
			Duration:  c.Duration("duration"),
			Requests:  c.Int64("requests"),
			ReadRatio: c.Float64("read-ratio"),
			MixReads:  c.String("mix-reads"),
			KeyPrefix: c.String("key-prefix"),
			Timeout:   c.Duration("timeout"),
		})
		if err != nil {
			return err
		}
		results = append(results, res)
		errs += res.Errors
		if !c.Bool("json") {
			if err := bench.WriteText(c.App.Writer, res); err != nil {
				return err
			}
		}
		if c.Context.Err() != nil {
			break
		}
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Results []*bench.Result `json:"results"`
		}{results}); err != nil {
			return err
		}
	}
	if err := c.Context.Err(); err != nil {
		return err
	}
	if errs > 0 {
		return cli.Exit(fmt.Sprintf("bench: %d requests failed", errs), ExitError)
	}
	return nil
}
