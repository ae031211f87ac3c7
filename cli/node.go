package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/node"
	"github.com/raftcache/raftcache/transport"
)

func nodeCommand() *cli.Command {
	flags := nodeFlags()
	return &cli.Command{
		Name:  "node",
		Usage: "run a cluster member",
		Description: `With no flags, runs a single node on 127.0.0.1:7070 (Raft 127.0.0.1:7071)
with data in ./data, bootstrapping a one-node cluster.

A node given --join asks the listed members to add it, retrying until one
does, and never bootstraps; a node given neither --join nor --bootstrap
bootstraps when its data directory is empty if its Raft address is on
loopback, and elsewhere refuses to start on an empty data directory (a
member restarted without --join on a wiped disk would otherwise form a
second cluster). With --bootstrap-expect N and
--join listing all N members, identical flags on every member form one
cluster (a member whose data directory was lost joins the others' instead).
A node restarted on its data directory rejoins with the same flags. Bound
to 0.0.0.0, a node advertises its host name (see the --*-advertise flags).

   raftcache node --id n1 --http-addr 127.0.0.1:8001 --raft-addr 127.0.0.1:9001 --data-dir data/n1 --bootstrap
   raftcache node --id n2 --http-addr 127.0.0.1:8002 --raft-addr 127.0.0.1:9002 --data-dir data/n2 --join http://127.0.0.1:8001
   raftcache node --http-addr 0.0.0.0:8001 --raft-addr 0.0.0.0:9001 --data-dir /data --bootstrap-expect 3 --join http://rc1:8001,http://rc2:8001,http://rc3:8001`,
		Flags: flags,
		// The same flag values must be passed: altsrc sets them in place.
		Before: altsrc.InitInputSourceWithContext(flags, altsrc.NewYamlSourceFromFlagFunc("config")),
		Action: runNode,
	}
}

// nodeFlags are the node's settings. Each can also come from an
// environment variable (RAFTCACHE_<NAME>) or from the YAML file named by
// --config (keys are the flag names); a flag on the command line wins over
// the environment, which wins over the file.
func nodeFlags() []cli.Flag {
	env := func(name string) []string { return []string{"RAFTCACHE_" + name} }
	flags := []cli.Flag{
		&cli.StringFlag{Name: "config", EnvVars: env("CONFIG"), Usage: "YAML file of node settings, keyed by flag name (flags and env vars override it)"},
		&cli.StringFlag{Name: "id", EnvVars: env("ID"), Usage: "unique, stable member id (default: this host's name with --join, --bootstrap-expect or a wildcard --raft-addr; else the Raft address)"},
		&cli.StringFlag{Name: "http-addr", EnvVars: env("HTTP_ADDR"), Value: "127.0.0.1:7070", Usage: "client API address (host:port)"},
		&cli.StringFlag{Name: "resp-addr", EnvVars: env("RESP_ADDR"), Usage: "Redis-protocol address (host:port), e.g. 127.0.0.1:6379; empty: none"},
		&cli.StringFlag{Name: "raft-addr", EnvVars: env("RAFT_ADDR"), Value: "127.0.0.1:7071", Usage: "Raft transport address (host:port); keep it on a private interface"},
		&cli.StringFlag{Name: "raft-advertise", EnvVars: env("RAFT_ADVERTISE"), Usage: "Raft address other members dial (host:port, a DNS name or an IP; default --raft-addr, or this host's name for a 0.0.0.0 bind)"},
		&cli.StringFlag{Name: "http-advertise", EnvVars: env("HTTP_ADVERTISE"), Usage: "client API address registered for this node: redirects and relays name it (default --http-addr, or this host's name for a 0.0.0.0 bind)"},
		&cli.StringFlag{Name: "resp-advertise", EnvVars: env("RESP_ADVERTISE"), Usage: "Redis-protocol address registered for this node: followers relay to it (default --resp-addr, or this host's name for a 0.0.0.0 bind)"},
		&cli.StringFlag{Name: "data-dir", EnvVars: env("DATA_DIR"), Value: "data", Usage: "directory for the Raft log, stable store and snapshots"},
		&cli.BoolFlag{Name: "sync-leader-appends", EnvVars: env("SYNC_LEADER_APPENDS"), Usage: "with the pebble store, have the leader sync each append before replicating it (hashicorp/raft's own order) instead of in parallel; slower, for comparison (docs/consistency.md)"},
		&cli.StringFlag{Name: "log-store", EnvVars: env("LOG_STORE"), Usage: "Raft log and stable store: pebble (one fsync per append) or bolt (raft-boltdb); wal (raft-wal) is kept for old data dirs, see docs/benchmarks.md (default: the one the data directory holds, pebble for a new one; a mismatch is refused)"},
		&cli.Int64Flag{Name: "wal-segment-size", EnvVars: env("WAL_SEGMENT_SIZE"), Usage: "WAL segment file size in bytes (default 64 MiB); the log is truncated a segment at a time"},
		&cli.BoolFlag{Name: "bootstrap", EnvVars: env("BOOTSTRAP"), Usage: "form a new cluster if the data directory holds none"},
		&cli.BoolFlag{Name: "non-voter", EnvVars: env("NON_VOTER"), Usage: "join as a non-voting member (replicates and serves stale reads; does not vote)"},
		&cli.StringSliceFlag{Name: "join", EnvVars: env("JOIN"), Usage: "URLs of members to join through (comma-separated); with --bootstrap-expect, all N members, this one included"},
		&cli.IntFlag{Name: "bootstrap-expect", EnvVars: env("BOOTSTRAP_EXPECT"), Usage: "form a new cluster of N voters with the N members --join lists, once all answer and none holds Raft state (identical flags on every member)"},
		&cli.Int64Flag{Name: "max-value-size", EnvVars: env("MAX_VALUE_SIZE"), Value: node.DefaultMaxValueSize, Usage: "largest value accepted, in bytes"},
		&cli.StringFlag{Name: "max-memory", EnvVars: env("MAX_MEMORY"), Value: "auto", Usage: "bound on cached keys, values and overhead, e.g. 256MB; above it --maxmemory-policy applies. auto: half the container's memory limit (or the machine's memory) less Raft's share, with GOMEMLIMIT to match; 0: no bound"},
		&cli.BoolFlag{Name: "pprof", EnvVars: env("PPROF"), Usage: "serve Go's profiler under /debug/pprof/ on the HTTP address"},
		&cli.StringFlag{Name: "log-level", EnvVars: env("LOG_LEVEL"), Value: "info", Usage: "trace, debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", EnvVars: env("LOG_FORMAT"), Value: "text", Usage: "text or json"},
		&cli.DurationFlag{Name: "raft-heartbeat-timeout", EnvVars: env("RAFT_HEARTBEAT_TIMEOUT"), Value: time.Second, Usage: "follower waits this long without a leader before an election"},
		&cli.DurationFlag{Name: "raft-election-timeout", EnvVars: env("RAFT_ELECTION_TIMEOUT"), Value: time.Second, Usage: "candidate waits this long for votes"},
		&cli.DurationFlag{Name: "catch-up-hold", EnvVars: env("CATCH_UP_HOLD"), Usage: "after a start that followed no clean stop, the node votes only once caught up with a leader, or after this long without one; 0: five election timeouts (docs/operations.md, \"A damaged log store\")"},
		&cli.Uint64Flag{Name: "snapshot-threshold", EnvVars: env("SNAPSHOT_THRESHOLD"), Value: 8192, Usage: "log entries between snapshots"},
		&cli.DurationFlag{Name: "snapshot-interval", EnvVars: env("SNAPSHOT_INTERVAL"), Value: 30 * time.Second, Usage: "how often to check the snapshot threshold"},
		&cli.Uint64Flag{Name: "trailing-logs", EnvVars: env("TRAILING_LOGS"), Value: 10240, Usage: "log entries kept after a snapshot"},
		&cli.DurationFlag{Name: "promote-after", EnvVars: env("PROMOTE_AFTER"), Value: 10 * time.Second, Usage: "as leader: promote a learner that asked for a vote once it has been caught up and healthy this long"},
		&cli.Uint64Flag{Name: "ready-max-lag", EnvVars: env("READY_MAX_LAG"), Value: 1024, Usage: "a follower applied within this many entries of the leader's commit index is ready (GET /readyz); unready beyond twice that"},
		&cli.Uint64Flag{Name: "promote-max-lag", EnvVars: env("PROMOTE_MAX_LAG"), Value: 256, Usage: "as leader: a learner within this many entries of the commit index counts as caught up"},
	}
	flags = append(flags, securityFlags()...)
	flags = append(flags, respFlags()...)
	flags = append(flags, limitFlags()...)
	flags = append(flags, evictionFlags()...)
	for i, f := range flags[1:] {
		flags[i+1] = fileSettable(f)
	}
	return flags
}

// fileSettable lets a flag take its value from the --config file.
func fileSettable(f cli.Flag) cli.Flag {
	switch f := f.(type) {
	case *cli.StringFlag:
		return altsrc.NewStringFlag(f)
	case *cli.BoolFlag:
		return altsrc.NewBoolFlag(f)
	case *cli.StringSliceFlag:
		return altsrc.NewStringSliceFlag(f)
	case *cli.Int64Flag:
		return altsrc.NewInt64Flag(f)
	case *cli.IntFlag:
		return altsrc.NewIntFlag(f)
	case *cli.Uint64Flag:
		return altsrc.NewUint64Flag(f)
	case *cli.DurationFlag:
		return altsrc.NewDurationFlag(f)
	}
	return f
}

func runNode(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("node takes no arguments, got %q", c.Args().Slice())
	}
	level := hclog.LevelFromString(c.String("log-level"))
	if level == hclog.NoLevel {
		return usagef("--log-level must be trace, debug, info, warn or error, not %q", c.String("log-level"))
	}
	format := c.String("log-format")
	if format != "text" && format != "json" {
		return usagef("--log-format must be text or json, not %q", format)
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "raftcache",
		Level:      level,
		Output:     c.App.ErrWriter,
		JSONFormat: format == "json",
	})
	join := splitURLs(c.StringSlice("join"))
	expect := c.Int("bootstrap-expect")
	if err := checkFormationFlags(c, join, expect); err != nil {
		return err
	}
	id, err := defaultID(c, join, expect)
	if err != nil {
		return err
	}
	// Without --bootstrap, --join or --bootstrap-expect a node forms a
	// cluster of one by itself only on a loopback Raft address (the
	// no-flags try-out); elsewhere it needs state of its own (node.ErrNoState).
	implicit := !c.Bool("bootstrap") && len(join) == 0 && expect == 0
	local := loopbackAddr(c.String("raft-addr"))

	sec, err := loadSecurity(c, logger)
	if err != nil {
		return err
	}
	jc, err := joinClient(c, join)
	if err != nil {
		return err
	}
	maxMemory, err := maxMemoryBound(c, logger)
	if err != nil {
		return err
	}
	policy, err := evictionPolicy(c)
	if err != nil {
		return err
	}
	limits, maxInflight, err := serverLimits(c, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.String("http-addr"))
	if err != nil {
		return fmt.Errorf("listen on --http-addr: %w", err)
	}
	httpAddr := ln.Addr().String()
	// Serve /livez before the stores open and the snapshot is restored
	// (minutes for a big cache): a liveness probe must not kill a node
	// that is restoring. The same server serves the API once the node runs.
	starting := transport.NewStarting()
	srv := transport.NewHTTPServer(starting, limits)
	ln = srv.Listener(ln) // the connection cap counts TLS handshakes too
	serveErr := make(chan error, 2)
	if sec.serverTLS != nil {
		ln = tls.NewListener(ln, sec.serverTLS)
	}
	go func() { serveErr <- srv.Serve(ln) }()
	respLn, err := listenRESP(c.String("resp-addr"))
	if err != nil {
		srv.Close()
		return err
	}
	httpAddr, respAddr, err := advertised(c, ln, respLn)
	if err != nil {
		ln.Close()
		if respLn != nil {
			respLn.Close()
		}
		return err
	}
	n, err := node.New(node.Config{
		ID:                id,
		RaftAddr:          c.String("raft-addr"),
		RaftAdvertise:     c.String("raft-advertise"),
		HTTPAddr:          httpAddr,
		RESPAddr:          respAddr,
		DataDir:           c.String("data-dir"),
		LogStore:          c.String("log-store"),
		SyncLeaderAppends: c.Bool("sync-leader-appends"),
		WALSegmentSize:    int(c.Int64("wal-segment-size")),
		Bootstrap:         c.Bool("bootstrap") || implicit && local,
		NeedState:         implicit && !local,
		Logger:            logger,
		HeartbeatTimeout:  c.Duration("raft-heartbeat-timeout"),
		ElectionTimeout:   c.Duration("raft-election-timeout"),
		CatchUpHold:       c.Duration("catch-up-hold"),
		SnapshotThreshold: c.Uint64("snapshot-threshold"),
		SnapshotInterval:  c.Duration("snapshot-interval"),
		TrailingLogs:      c.Uint64("trailing-logs"),
		MaxMemory:         maxMemory,
		MaxMemoryPolicy:   policy,
		MaxValueSize:      c.Int64("max-value-size"),
		PeerTLS:           sec.peerTLS,
		Probe:             nodeProber(sec.serverTLS != nil, sec.peerHTTP),
		AskView:           viewAsker(sec.serverTLS != nil, sec.peerHTTP),
		PromoteAfter:      c.Duration("promote-after"),
		PromoteMaxLag:     c.Uint64("promote-max-lag"),
		ReadyMaxLag:       c.Uint64("ready-max-lag"),
	})
	if err != nil {
		srv.Close()
		if respLn != nil {
			respLn.Close()
		}
		if errors.Is(err, node.ErrNoState) { // a missing flag: exit status 2
			return usagef("%v: given neither --bootstrap, --join nor --bootstrap-expect, a node on a non-loopback Raft address does not form a cluster by itself (a member restarted so on a wiped disk would form one beside the real cluster); pass --join URL to join a cluster, or --bootstrap to start a new one", err)
		}
		return err
	}
	api := transport.New(n, transport.Config{
		Logger: logger.Named("http"), Pprof: c.Bool("pprof"),
		Auth: sec.auth, TLS: sec.serverTLS != nil, PeerClientTLS: sec.peerHTTP, MaxInflight: maxInflight,
	})
	starting.Serve(api)
	stopRESP := serveRESP(n, respLn, respConfig(c, sec, logger.Named("resp")), serveErr)
	logger.Info("serving", "id", id, "http_addr", n.HTTPAddr(), "resp_addr", n.RESPAddr(), "raft_addr", n.RaftAddr(), "data_dir", c.String("data-dir"),
		"cluster_id", n.ClusterID(), "version", node.BuildInfo().String())

	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	if len(join) == 0 && n.NeedsJoin() {
		// Removed from the cluster earlier: nobody will contact this node,
		// so it asks the members it last knew to take it back.
		scheme := "http://"
		if sec.serverTLS != nil {
			scheme = "https://"
		}
		for _, a := range n.KnownPeers() {
			join = append(join, scheme+a)
		}
		logger.Warn("this node is not in its own latest configuration (it was removed); asking the members it knew to add it back as a learner", "members", join)
		if len(join) == 0 {
			logger.Error("this node was removed and knows no member to ask; start it with --join URL")
		}
	}
	if len(join) > 0 {
		self := client.Member{ID: id, RaftAddr: n.RaftAddr(), HTTPAddr: n.HTTPAddr(), RESPAddr: n.RESPAddr(),
			FeatureLevel: n.FeatureLevel(), Incarnation: n.Incarnation()}
		if expect > 0 && !n.HasState() {
			go formCluster(ctx, logger, n, join, jc, self, c.Bool("non-voter"))
		} else {
			go joinCluster(ctx, logger, join, jc, self, c.Bool("non-voter"), n.Ready, n.AdoptClusterID)
		}
	}
	if sec.auth != nil {
		sec.reloadTokensOnHUP(logger, ctx.Done())
	}

	select {
	case <-c.Context.Done():
		logger.Info("shutting down")
		err = nil
	case err = <-serveErr:
		logger.Error("server failed", "error", err)
	case <-n.Removed():
		why := n.RemovedReason()
		logger.Error("exiting: this node was removed from the cluster. Start it again with the same flags to rejoin as a learner (promoted once caught up)",
			"reason", why, "exit_code", ExitRemoved)
		err = cli.Exit(fmt.Sprintf("raftcache node: %v; exiting with status %d", why, ExitRemoved), ExitRemoved)
	case <-n.Wedged():
		why := n.WedgedReason()
		logger.Error("exiting: Raft refuses every write on this leader and only a restart clears it; the other members elect a leader meanwhile. Start it again with the same flags",
			"reason", why, "exit_code", ExitWedged)
		err = cli.Exit(fmt.Sprintf("raftcache node: %v; exiting with status %d", why, ExitWedged), ExitWedged)
	}
	cancel()
	// Graceful: hand leadership over first (requests still arriving are
	// redirected to the new leader), let in-flight requests finish within
	// a bound, then stop Raft. A removed node has nothing to hand over and
	// nothing to finish, and a wedged one can do neither: they exit
	// promptly.
	drain := 10 * time.Second
	if code, _ := exitOf(n); code != 0 {
		drain = 2 * time.Second
	} else {
		n.HandOffLeadership(5 * time.Second)
	}
	shutCtx, done := context.WithTimeout(context.Background(), drain)
	defer done()
	if serr := srv.Shutdown(shutCtx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		logger.Warn("HTTP shutdown", "error", serr)
	}
	stopRESP(shutCtx)
	if code, what := exitOf(n); code != 0 {
		// A removed or wedged node must be gone promptly (its supervisor
		// restarts it). If closing hangs, say where, and exit anyway: its
		// log is synced, and nothing else waits for it.
		watchdog := time.AfterFunc(10*time.Second, func() {
			logger.Error("closing a "+what+" node is taking too long; exiting without it (goroutines follow on stderr)", "exit_code", code)
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			os.Exit(code)
		})
		defer watchdog.Stop()
	}
	if cerr := n.Close(); cerr != nil {
		logger.Warn("raft shutdown", "error", cerr)
	}
	return err
}

// maxMemoryBound is --max-memory, or with "auto" the default bound
// (memory.go), which also sets GOMEMLIMIT.
func maxMemoryBound(c *cli.Context, logger hclog.Logger) (int64, error) {
	v := strings.TrimSpace(c.String("max-memory"))
	if v != "auto" && v != "" {
		n, err := parseSize(v)
		if err != nil {
			return 0, usagef("--max-memory: %v", err)
		}
		return n, nil
	}
	limit, source := memoryLimit()
	if limit == 0 {
		logger.Warn("memory limit unknown: the cache is not bounded; set --max-memory")
		return 0, nil
	}
	bound, goLimit := autoMaxMemory(limit, c.Int64("max-value-size"))
	set := setGoMemoryLimit(goLimit)
	logger.Info("memory bound from the memory limit (set --max-memory to choose it)", "max_memory", bound, "limit", limit, "source", source, "gomemlimit_set", set, "gomemlimit", goLimit)
	return bound, nil
}

// joinCluster makes this node a member through the members at urls,
// retrying each step with jittered backoff until it succeeds or ctx ends.
//
// Every add is learner first (etcd's learners, Consul's autopilot): the
// leader adds a new node as a non-voter and, unless nonVoter, promotes it
// once it has caught up and stayed healthy; a node that cannot replicate
// (unreachable, or refused by peer TLS) never becomes a voter, so it never
// weakens the quorum. A node that is already a member (a restart) only
// refreshes its record, keeping its vote, unless its data directory is
// not the registered one (a wiped disk): the leader then re-adds it as a
// non-voter. Until it is a voter, the node asks again every few seconds,
// so a leader change does not lose its wish for a vote.
//
// It adopts the cluster id of the cluster it joins (adopt: a node of
// another cluster is refused, and stops asking).
func joinCluster(ctx context.Context, logger hclog.Logger, urls []string, cfg client.Config, self client.Member, nonVoter bool, caughtUp func() bool, adopt func(string) error) {
	cfg.Endpoints, cfg.Timeout = urls, 10*time.Second
	cl, err := client.New(cfg)
	if err != nil {
		logger.Error("join", "error", err)
		return
	}
	defer cl.Close()
	var refused, foreign error
	var state string
	if !retry(ctx, logger, "join", func() error {
		view, err := cl.Cluster(ctx)
		if err != nil {
			return err
		}
		if foreign = adopt(view.ClusterID); foreign != nil {
			return nil // retrying cannot help: this data directory is another cluster's
		}
		req := joinRequest(self, view)
		learner := nonVoter
		for _, m := range view.Members {
			// A member that is a non-voter by choice (added with
			// --non-voter) stays one; promote it with members promote.
			learner = learner || (m.ID == self.ID && !m.Voter && m.State != "catching_up")
		}
		add := func(req client.Member) {
			if learner {
				err = cl.AddNonVoter(ctx, req)
				state = "learner"
			} else {
				state, err = cl.AddMemberState(ctx, req)
			}
		}
		add(req)
		if errors.Is(err, client.ErrFeatureLevel) && req.FeatureLevel == 0 {
			// Refused without a level: the level rose since the view was
			// read (a new cluster raises it right after formation, as its
			// founders register), so the leader knows every field: ask
			// again at once with them rather than log a failure.
			req = self
			add(req)
		}
		if errors.Is(err, client.ErrFeatureLevel) && req.FeatureLevel != 0 {
			refused = err // retrying cannot help: this binary is too old
			return nil
		}
		return err // refused without a level: the level rose meanwhile, ask again with it
	}) {
		return
	}
	if foreign != nil {
		logger.Error("refusing to join: the members listed in --join are of another cluster than this node's data directory", "error", foreign)
		return
	}
	if refused != nil {
		logger.Error("the cluster refused to let this node join: its binary is older than the cluster's feature level; run a newer binary on this node",
			"feature_level", self.FeatureLevel, "error", refused)
		return
	}
	if state == "learner" || state == "voter" {
		logger.Info("joined the cluster", "via", urls, "state", state)
		return
	}
	logger.Info("joined the cluster as a learner; the leader promotes it once it has caught up and stayed healthy", "via", urls, "state", state)
	// Wait to be a voter, asking again now and then (a new leader does
	// not know the wish of the old one). Bounded by ctx: the node's life.
	for attempt := 0; ; attempt++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		view, err := cl.Cluster(ctx)
		if err != nil || view.Leader == nil {
			continue
		}
		for _, m := range view.Members {
			if m.ID != self.ID {
				continue
			}
			switch {
			case m.Voter:
				logger.Info("promoted: this node is a voter", "caught_up", caughtUp())
				return
			case m.State != "catching_up" || attempt%5 == 4:
				if _, err := cl.AddMemberState(ctx, joinRequest(self, view)); err != nil {
					logger.Debug("asking again for a vote", "error", err)
				}
			}
		}
	}
}

// Errors of this package's own making (most come from the client and are
// passed on).
var (
	// errNoHTTPAddr: a member whose HTTP address is not registered yet
	// cannot be asked anything.
	errNoHTTPAddr = errors.New("no HTTP address registered")
	// errLevelUnknown: a member answered GET /v1/node with neither its
	// level nor 404.
	errLevelUnknown = errors.New("feature level unknown")
)

// joinRequest is what self sends to join a cluster that view describes.
// Below cluster level 2 the leader may run a binary from before levels,
// which refuses fields it does not know and never refuses a level, so the
// level and incarnation are left out; from level 2 on every member knows
// them.
func joinRequest(self client.Member, view *client.Cluster) client.Member {
	if view.ClusterFeatureLevel < 2 {
		self.FeatureLevel, self.Incarnation = 0, ""
	}
	return self
}

// levelFetcher is node.Config.FetchLevel: the level nodeProber finds.
func levelFetcher(useTLS bool, tlsConfig *tls.Config) func(context.Context, node.Member) (uint32, error) {
	probe := nodeProber(useTLS, tlsConfig)
	return func(ctx context.Context, m node.Member) (uint32, error) {
		info, err := probe(ctx, m)
		return info.Level, err
	}
}

// memberClient is how a node asks another member about itself: the URL
// scheme, and a client with a short timeout that does not follow
// redirects (a member answers for itself; a redirect is not an answer).
func memberClient(useTLS bool, tlsConfig *tls.Config) (string, *http.Client) {
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	return scheme, &http.Client{
		Timeout:       2 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: tlsConfig, MaxIdleConnsPerHost: 1},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// viewAsker is node.Config.AskView: GET /v1/cluster on a member.
func viewAsker(useTLS bool, tlsConfig *tls.Config) func(context.Context, string) (node.PeerView, error) {
	scheme, hc := memberClient(useTLS, tlsConfig)
	return func(ctx context.Context, addr string) (node.PeerView, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+"/v1/cluster", nil)
		if err != nil {
			return node.PeerView{}, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return node.PeerView{}, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return node.PeerView{}, fmt.Errorf("GET /v1/cluster on %s: %s", addr, resp.Status)
		}
		var body struct {
			State   string `json:"state"`
			Members []struct {
				ID string `json:"id"`
			} `json:"members"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
			return node.PeerView{}, err
		}
		v := node.PeerView{Leader: body.State == "Leader"}
		for _, m := range body.Members {
			v.Members = append(v.Members, m.ID)
		}
		return v, nil
	}
}

// nodeProber is node.Config.Probe: GET /v1/node on the member's HTTP
// address. A member that answers 404 runs a binary from before feature
// levels (level 1, nothing else known); one that does not answer, or
// answers anything else, is unreachable.
func nodeProber(useTLS bool, tlsConfig *tls.Config) func(context.Context, node.Member) (node.NodeInfo, error) {
	scheme, hc := memberClient(useTLS, tlsConfig)
	return func(ctx context.Context, m node.Member) (node.NodeInfo, error) {
		if m.HTTPAddr == "" {
			return node.NodeInfo{}, errNoHTTPAddr
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+m.HTTPAddr+"/v1/node", nil)
		if err != nil {
			return node.NodeInfo{}, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return node.NodeInfo{}, err
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusNotFound:
			return node.NodeInfo{ID: m.ID, Level: 1}, nil
		default:
			return node.NodeInfo{}, fmt.Errorf("%w: GET /v1/node on %s: %s", errLevelUnknown, m.ID, resp.Status)
		}
		var body struct {
			ID           string  `json:"id"`
			Version      string  `json:"version"`
			Revision     string  `json:"revision"`
			FeatureLevel uint32  `json:"feature_level"`
			Incarnation  string  `json:"incarnation"`
			State        string  `json:"state"`
			AppliedIndex *uint64 `json:"applied_index"`
			Removed      string  `json:"removed"`
			MaxMemory    int64   `json:"max_memory"`
			Registered   *bool   `json:"registered"` // nil from a binary before it
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil {
			return node.NodeInfo{}, fmt.Errorf("%w: GET /v1/node on %s: %v", errLevelUnknown, m.ID, err)
		}
		info := node.NodeInfo{ID: body.ID, Level: max(body.FeatureLevel, 1), Incarnation: body.Incarnation, State: body.State, Removed: body.Removed != "", MaxMemory: body.MaxMemory,
			Unregistered: body.Registered != nil && !*body.Registered}
		if body.Version != "" {
			info.Version = node.Build{Version: body.Version, Revision: body.Revision}.String()
		}
		if body.AppliedIndex != nil {
			info.AppliedIndex, info.HasIndex = *body.AppliedIndex, true
		}
		return info, nil
	}
}

// retry runs f until it succeeds (true) or ctx ends (false).
func retry(ctx context.Context, logger hclog.Logger, what string, f func() error) bool {
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if attempt%5 == 1 {
			logger.Warn(what+" failed, retrying", "attempt", attempt, "error", err)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff + rand.N(backoff/2)):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// joinClient is how a joining node talks to the members: an admin token
// (--join-token), and for https:// members the CA of their certificates
// (--join-ca; default the system roots) and this node's own --tls-cert as
// a client certificate, for members that require one (--tls-client-ca).
func joinClient(c *cli.Context, join []string) (client.Config, error) {
	cfg := client.Config{Token: c.String("join-token")}
	ca, cert, key := c.String("join-ca"), c.String("tls-cert"), c.String("tls-key")
	if len(join) == 0 || (ca == "" && cert == "") {
		return cfg, nil
	}
	for _, j := range join {
		for _, u := range strings.Split(j, ",") {
			if u = strings.TrimSpace(u); u != "" && !strings.HasPrefix(strings.ToLower(u), "https://") {
				if ca != "" {
					return cfg, usagef("--join-ca needs https:// --join URLs, not %q", u)
				}
				return cfg, nil // joining plaintext members: no TLS to configure
			}
		}
	}
	tlsConfig, err := client.TLSConfigFromFiles(ca, cert, key)
	if err != nil {
		return cfg, usagef("joining over https (--join-ca, --tls-cert): %v", err)
	}
	cfg.TLS = tlsConfig
	return cfg, nil
}

// exitOf is the exit status of a node that must stop (removed from the
// cluster, or wedged by a Raft bug) and what it is; 0 for a node that
// stops because it was asked to.
func exitOf(n *node.Node) (int, string) {
	switch {
	case n.RemovedReason() != nil:
		return ExitRemoved, "removed"
	case n.WedgedReason() != nil:
		return ExitWedged, "wedged"
	}
	return 0, ""
}

// loopbackAddr says whether addr (host:port) is on a loopback interface:
// 127.0.0.0/8, ::1 or localhost.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
