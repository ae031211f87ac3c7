// Package testcluster starts in-process raftcache clusters for tests: real
// nodes (real Raft on 127.0.0.1:0, bolt files in t.TempDir()), each
// optionally behind a real HTTP server (the transport API) and a real
// Redis-protocol server (resp). It is the one cluster starter of every
// package's in-process tests, with one Raft timing (package timing);
// cluster-test runs real processes instead, and node's own tests (package
// node, which this package imports) keep a small local helper on the same
// timing. Only tests import this package.
//
// A cluster is closed when its test ends: HTTP and Redis servers first,
// then every node at once, then its directories are removed.
//
// Methods that wait take the calling test's t, so that a subtest that
// waits fails itself; they poll with a generous deadline (timing.Wait)
// and never rely on a sleep.
package testcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftcache/raftcache/auth"
	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/internal/testcluster/timing"
	"github.com/raftcache/raftcache/internal/testlog"
	"github.com/raftcache/raftcache/node"
	"github.com/raftcache/raftcache/resp"
	"github.com/raftcache/raftcache/transport"
)

// NoHTTPAddr is the HTTP address a node without an HTTP server
// advertises: nothing listens there, so a dial is refused at once.
const NoHTTPAddr = "127.0.0.1:1"

// Options say what a cluster's nodes serve and how.
type Options struct {
	// HTTP, if not nil, puts every node behind a real HTTP server (an
	// httptest server on 127.0.0.1:0) serving transport.New with a copy
	// of this configuration; the node advertises that server's address.
	// Logger is set per node; TLS is set when Options.TLS is.
	HTTP *transport.Config
	// TLS, if not nil, serves the HTTP API over TLS with (a clone of)
	// this server configuration. The Redis port's TLS is RESP.TLS.
	TLS *tls.Config
	// RESP, if not nil, puts every node behind a Redis-protocol server
	// with a copy of this configuration. Logger is set per node.
	RESP *resp.Config
	// Tokens, if not nil, is the Auth of both fronts.
	Tokens *auth.Tokens
	// MaxMemory is every node's node.Config.MaxMemory (0: unbounded).
	MaxMemory int64
	// MaxMemoryPolicy is every node's node.Config.MaxMemoryPolicy.
	MaxMemoryPolicy fsm.EvictPolicy
	// MaxValueSize is every node's node.Config.MaxValueSize (0: node's
	// default).
	MaxValueSize int64
	// Level is the feature level every member reports to the leader (0:
	// this binary's, fsm.FeatureLevel): the cluster reaches it, and
	// WaitAgreed waits for it. 1 keeps a cluster at the level of the
	// binaries before feature levels (every write in the first format).
	Level uint32
	// Configure, if set, changes a node's configuration before it starts:
	// timings, memory bound, which fronts it has and their settings. Leave
	// ID, DataDir and Bootstrap alone; the addresses are set afterwards
	// (those of the servers the node then has).
	Configure func(id string, c *NodeConfig)
	// WrapHTTP, if set, wraps every node's API handler: the HTTP server
	// serves what it returns (a test's hooks, request records).
	WrapHTTP func(n *Node, api http.Handler) http.Handler
	// LogLevel is the level of the nodes' logs, which go to t.Log;
	// default hclog.Warn.
	LogLevel hclog.Level
}

// NodeConfig is one node's configuration, as Options.Configure sees it.
type NodeConfig struct {
	Node node.Config
	HTTP *transport.Config // nil: no HTTP server
	TLS  *tls.Config       // nil: plain HTTP
	RESP *resp.Config      // nil: no Redis server
}

// Cluster is a set of in-process nodes. Nodes are started (StartNode) and
// made members (Join); Start does both for a whole cluster.
type Cluster struct {
	t   testing.TB
	opt Options

	mu     sync.Mutex
	nodes  []*Node
	voters map[string]bool // ids joined as voters: WaitAgreed waits for their promotion
}

// Node is one node of a cluster and its servers. The embedded *node.Node
// is the running node (Restart replaces it).
type Node struct {
	*node.Node
	// URL is the HTTP API's base URL (http:// or https://), "" without
	// HTTP; HTTPAddr() is its host:port.
	URL  string
	API  *transport.Server // the API handler, nil without HTTP
	HTTP *httptest.Server  // nil without HTTP
	RESP *resp.Server      // nil without a Redis server; RESPAddr() is its address
	Dir  string            // the data directory

	c       *Cluster
	cfg     NodeConfig
	logger  hclog.Logger
	served  chan error // the Redis server's Serve result
	stopped bool
}

// New returns a cluster without nodes, closed when t ends.
func New(t testing.TB, opt Options) *Cluster {
	t.Helper()
	if opt.LogLevel == hclog.NoLevel {
		opt.LogLevel = hclog.Warn
	}
	c := &Cluster{t: t, opt: opt}
	// t.TempDir registers the removal of every temp dir of t when first
	// called: before close, so that it runs after close.
	_ = t.TempDir()
	t.Cleanup(c.close)
	return c
}

// Start starts size nodes: n1 bootstraps, then n2... are added as voters
// through the leader. It returns once WaitAgreed holds.
func Start(t testing.TB, size int, opt Options) *Cluster {
	t.Helper()
	c := New(t, opt)
	// Every node starts before any is added: the others know no peers,
	// so they stand by until then.
	nodes := []*Node{c.StartNode("n1", true)}
	for i := 2; i <= size; i++ {
		nodes = append(nodes, c.StartNode(fmt.Sprintf("n%d", i), false))
	}
	WaitFor(t, "n1 to lead and serve strong reads", nodes[0].ServesStrongReads)
	for _, n := range nodes[1:] {
		c.Join(t, n, true)
	}
	c.WaitAgreed(t)
	return c
}

// StartNode starts a node with id that bootstraps a new cluster if
// bootstrap is set (and then stands for election at once: timing.ElectNow),
// and otherwise waits to be added (Join, or a test's own call). It does
// not wait for anything.
func (c *Cluster) StartNode(id string, bootstrap bool) *Node {
	t := c.t
	t.Helper()
	cfg := NodeConfig{
		Node: node.Config{
			ID:                id,
			RaftAddr:          "127.0.0.1:0",
			HTTPAddr:          NoHTTPAddr,
			DataDir:           t.TempDir(),
			Bootstrap:         bootstrap,
			HeartbeatTimeout:  timing.HeartbeatTimeout,
			ElectionTimeout:   timing.ElectionTimeout,
			SnapshotThreshold: timing.SnapshotThreshold,
			SnapshotInterval:  timing.SnapshotInterval,
			TrailingLogs:      timing.TrailingLogs,
			MaxMemory:         c.opt.MaxMemory,
			MaxMemoryPolicy:   c.opt.MaxMemoryPolicy,
			MaxValueSize:      c.opt.MaxValueSize,
			FetchLevel: func(context.Context, node.Member) (uint32, error) {
				return c.level(), nil // every member runs this binary
			},
			// The leader asks members about themselves in process (what
			// GET /v1/node answers over HTTP): learners are promoted once
			// caught up for PromoteAfter, and removals check the quorum.
			Probe:        c.probe,
			PromoteAfter: timing.PromoteAfter,
		},
		TLS: c.opt.TLS,
	}
	if c.opt.HTTP != nil {
		h := *c.opt.HTTP
		if c.opt.Tokens != nil {
			h.Auth = c.opt.Tokens
		}
		cfg.HTTP = &h
	}
	if c.opt.RESP != nil {
		r := *c.opt.RESP
		if c.opt.Tokens != nil {
			r.Auth = c.opt.Tokens
		}
		cfg.RESP = &r
	}
	if c.opt.Configure != nil {
		c.opt.Configure(id, &cfg)
	}
	n := &Node{c: c, Dir: cfg.Node.DataDir, logger: testlog.New(t, id, c.opt.LogLevel)}
	// Listen before the node starts: it advertises its servers' addresses.
	httpLn, respLn := n.listen(t, cfg, "127.0.0.1:0", "127.0.0.1:0")
	if httpLn != nil {
		cfg.Node.HTTPAddr = httpLn.Addr().String()
	}
	if respLn != nil {
		cfg.Node.RESPAddr = respLn.Addr().String()
	}
	n.cfg = cfg
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	n.start(t, httpLn, respLn)
	if bootstrap && !n.IsLeader() {
		if err := timing.ElectNow(n.RaftAddr(), n.ClusterID()); err != nil {
			t.Logf("testcluster: %s elects itself after its heartbeat timeout: %v", id, err)
		}
	}
	return n
}

// listen opens the listeners n's configuration asks for.
func (n *Node) listen(t testing.TB, cfg NodeConfig, httpAddr, respAddr string) (httpLn, respLn net.Listener) {
	t.Helper()
	var err error
	if cfg.HTTP != nil {
		if httpLn, err = net.Listen("tcp", httpAddr); err != nil {
			t.Fatalf("%s: HTTP listener: %v", cfg.Node.ID, err)
		}
	}
	if cfg.RESP != nil {
		if respLn, err = net.Listen("tcp", respAddr); err != nil {
			if httpLn != nil {
				httpLn.Close()
			}
			t.Fatalf("%s: Redis listener: %v", cfg.Node.ID, err)
		}
	}
	return httpLn, respLn
}

// start starts the node of n.cfg and its servers on the listeners.
func (n *Node) start(t testing.TB, httpLn, respLn net.Listener) {
	t.Helper()
	cfg := n.cfg
	cfg.Node.Logger = n.logger
	nn, err := node.New(cfg.Node)
	if err != nil {
		for _, ln := range []net.Listener{httpLn, respLn} {
			if ln != nil {
				ln.Close()
			}
		}
		t.Fatalf("node.New(%s): %v", cfg.Node.ID, err)
	}
	// From now on a restart binds the same Raft address.
	n.cfg.Node.RaftAddr = nn.RaftAddr()
	n.c.mu.Lock()
	n.Node = nn
	n.stopped = false
	n.c.mu.Unlock()
	if httpLn != nil {
		hc := *cfg.HTTP
		hc.Logger = n.logger.Named("http")
		hc.TLS = hc.TLS || cfg.TLS != nil
		n.API = transport.New(nn, hc)
		var h http.Handler = n.API
		if n.c.opt.WrapHTTP != nil {
			h = n.c.opt.WrapHTTP(n, n.API)
		}
		n.HTTP = &httptest.Server{Listener: httpLn, Config: &http.Server{Handler: h}}
		if cfg.TLS != nil {
			n.HTTP.TLS = cfg.TLS.Clone()
			n.HTTP.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
			n.HTTP.StartTLS()
		} else {
			n.HTTP.Start()
		}
		n.URL = n.HTTP.URL
	}
	if respLn != nil {
		rc := *cfg.RESP
		rc.Logger = n.logger.Named("resp")
		n.RESP = resp.New(nn, rc)
		n.served = make(chan error, 1)
		go func(s *resp.Server, served chan<- error) { served <- s.Serve(respLn) }(n.RESP, n.served)
	}
}

// Join adds n to the cluster through whichever running node leads,
// retrying while leadership moves. It returns once the leader has added
// n and registered its addresses; WaitAgreed waits for n to catch up.
func (c *Cluster) Join(t testing.TB, n *Node, voter bool) {
	t.Helper()
	m := node.Member{ID: n.ID(), RaftAddr: n.RaftAddr(), HTTPAddr: n.HTTPAddr(), RESPAddr: n.RESPAddr(), Voter: voter, Level: n.FeatureLevel()}
	var last error
	WaitForState(t, "adding "+m.ID, func() bool {
		for _, o := range c.Running() {
			if o == n || !o.IsLeader() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			last = o.AddMember(ctx, m)
			cancel()
			return last == nil
		}
		return false
	}, func() string { return fmt.Sprintf("last error %v", last) })
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.voters == nil {
		c.voters = map[string]bool{}
	}
	c.voters[m.ID] = voter
}

// Add starts a node with id, adds it as a voter and waits until the
// cluster agrees on it (WaitAgreed).
func (c *Cluster) Add(t testing.TB, id string) *Node {
	t.Helper()
	n := c.StartNode(id, false)
	c.Join(t, n, true)
	c.WaitAgreed(t)
	return n
}

// Nodes returns every node started, stopped ones included, in the order
// they were started.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.nodes...)
}

// Running returns the nodes that are not stopped.
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.Nodes() {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// Node returns the node with id; it fails the test if there is none.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.Nodes() {
		if n.ID() == id {
			return n
		}
	}
	c.t.Fatalf("testcluster: no node %s", id)
	return nil
}

// URLs returns every node's HTTP API URL, in start order.
func (c *Cluster) URLs() []string {
	var out []string
	for _, n := range c.Nodes() {
		out = append(out, n.URL)
	}
	return out
}

// RESPAddrs returns every node's Redis-protocol address, in start order.
func (c *Cluster) RESPAddrs() []string {
	var out []string
	for _, n := range c.Nodes() {
		out = append(out, n.RESPAddr())
	}
	return out
}

// Leader waits for a running node that leads, serves strong reads and
// has its own addresses registered, and returns it.
func (c *Cluster) Leader(t testing.TB) *Node {
	t.Helper()
	var l *Node
	WaitForState(t, "a leader that serves strong reads", func() bool {
		l = c.serving()
		return l != nil
	}, c.State)
	return l
}

func (c *Cluster) serving() *Node {
	for _, n := range c.Running() {
		if n.ServesStrongReads() {
			return n
		}
	}
	return nil
}

// WaitAgreed waits until a leader serves strong reads (Leader) and every
// running member of its configuration is ready (has applied what it
// knows committed), knows that leader with its addresses, and lists every
// member with its registered addresses. It returns the leader.
func (c *Cluster) WaitAgreed(t testing.TB) *Node {
	t.Helper()
	var leader *Node
	WaitForState(t, "a serving leader every member knows", func() bool {
		leader = c.serving()
		return leader != nil && c.agreed(leader)
	}, c.State)
	return leader
}

// probe answers for a running member of this cluster as its GET /v1/node
// would; a stopped or unknown one is unreachable.
func (c *Cluster) probe(_ context.Context, m node.Member) (node.NodeInfo, error) {
	c.mu.Lock()
	var running *node.Node // a node is started and stopped under c.mu
	for _, n := range c.nodes {
		if !n.stopped && n.Node != nil && n.Node.ID() == m.ID {
			running = n.Node
		}
	}
	c.mu.Unlock()
	if running != nil {
		{
			info := running.Info()
			if info.Level > c.level() {
				info.Level = c.level()
			}
			return info, nil
		}
	}
	return node.NodeInfo{}, fmt.Errorf("member %s is not running", m.ID)
}

// level is the feature level the cluster's members report.
func (c *Cluster) level() uint32 {
	if c.opt.Level == 0 {
		return fsm.FeatureLevel
	}
	return c.opt.Level
}

func (c *Cluster) agreed(leader *Node) bool {
	if leader.ClusterLevel() < c.level() {
		return false
	}
	members, err := leader.Members()
	if err != nil {
		return false
	}
	running := map[string]*Node{}
	for _, n := range c.Running() {
		running[n.ID()] = n
	}
	c.mu.Lock()
	for _, m := range members {
		if c.voters[m.ID] && !m.Voter {
			c.mu.Unlock()
			return false // added as a voter: a learner until the leader promotes it
		}
	}
	c.mu.Unlock()
	for _, m := range members {
		if m.HTTPAddr == "" {
			return false
		}
		n := running[m.ID]
		if n == nil {
			continue // stopped, or not one of ours
		}
		l, ok := n.Leader()
		if !ok || l.ID != leader.ID() || l.HTTPAddr != leader.HTTPAddr() || l.RESPAddr != leader.RESPAddr() || !n.Ready() {
			return false
		}
		ms, err := n.Members()
		if err != nil || len(ms) != len(members) {
			return false
		}
		voter := map[string]bool{}
		for _, o := range members {
			voter[o.ID] = o.Voter
		}
		for _, o := range ms { // every member sees the promotions too
			if v, ok := voter[o.ID]; !ok || v != o.Voter {
				return false
			}
		}
		for _, o := range members {
			if n.FSM().MemberAddr(o.ID) != o.HTTPAddr || n.FSM().MemberRESPAddr(o.ID) != o.RESPAddr {
				return false
			}
		}
	}
	return true
}

// Followers returns the running members other than leader.
func (c *Cluster) Followers(leader *Node) []*Node {
	ids := map[string]bool{}
	if ms, err := leader.Members(); err == nil {
		for _, m := range ms {
			ids[m.ID] = true
		}
	}
	var out []*Node
	for _, n := range c.Running() {
		if n != leader && ids[n.ID()] {
			out = append(out, n)
		}
	}
	return out
}

// State describes every node, for a failure message.
func (c *Cluster) State() string {
	var b strings.Builder
	for _, n := range c.Nodes() {
		if !n.Running() {
			fmt.Fprintf(&b, "\n%s: stopped", n.ID())
			continue
		}
		fmt.Fprintf(&b, "\n%s: %+v ready=%v serves=%v", n.ID(), n.Status(), n.Ready(), n.ServesStrongReads())
	}
	return b.String()
}

// ServesStrongReads reports whether n is running, leads, has applied an
// entry of its term (a strong read answers) and has its own addresses
// registered. The probe is a strong read of a key that does not exist: it
// counts as a miss in the node's statistics.
func (n *Node) ServesStrongReads() bool {
	if !n.Running() || !n.IsLeader() || n.FSM().MemberAddr(n.ID()) != n.HTTPAddr() ||
		n.FSM().MemberRESPAddr(n.ID()) != n.RESPAddr() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := n.Get(ctx, []byte("testcluster-readiness-probe"), node.ReadOptions{})
	return errors.Is(err, fsm.ErrNotFound)
}

// Running reports whether n has been started and not stopped since.
func (n *Node) Running() bool {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	return !n.stopped
}

// Stop closes n's servers (connections are refused from now on) and then
// the node. Its data directory stays, for Restart.
func (n *Node) Stop() {
	n.c.mu.Lock()
	if n.stopped {
		n.c.mu.Unlock()
		return
	}
	n.stopped = true
	n.c.mu.Unlock()
	n.closeServers()
	if err := n.Node.Close(); err != nil {
		n.c.t.Logf("testcluster: closing %s: %v", n.ID(), err)
	}
}

func (n *Node) closeServers() {
	if n.API != nil {
		n.API.CloseStreams()
	}
	if n.HTTP != nil {
		n.HTTP.Close()
	}
	if n.RESP != nil {
		n.RESP.Close()
		if err := <-n.served; err != nil {
			n.c.t.Errorf("testcluster: Serve on %s's Redis port: %v", n.ID(), err)
		}
	}
}

// Restart starts a stopped node again on its data directory and with its
// addresses (Raft, HTTP, Redis), as an operator restarts a member. It
// does not wait for the node to catch up.
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	if n.Running() {
		t.Fatalf("testcluster: restarting %s, which runs", n.ID())
	}
	var httpLn, respLn net.Listener
	// The ports were free a moment ago; another process may hold one
	// briefly, so retry the bind.
	WaitFor(t, n.ID()+"'s ports to be free", func() bool {
		var err error
		if n.cfg.HTTP != nil {
			if httpLn, err = net.Listen("tcp", n.cfg.Node.HTTPAddr); err != nil {
				return false
			}
		}
		if n.cfg.RESP != nil {
			if respLn, err = net.Listen("tcp", n.cfg.Node.RESPAddr); err != nil {
				if httpLn != nil {
					httpLn.Close()
				}
				return false
			}
		}
		if ln, err := net.Listen("tcp", n.cfg.Node.RaftAddr); err != nil {
			for _, l := range []net.Listener{httpLn, respLn} {
				if l != nil {
					l.Close()
				}
			}
			return false
		} else {
			ln.Close()
		}
		return true
	})
	n.start(t, httpLn, respLn)
}

// close stops every node at once: servers first, then the nodes in
// parallel. Closing them one after another lets the survivors elect a
// leader whose heartbeat can reach a node between its Raft shutdown and
// its store closing, and hashicorp/raft then panics ("failed to save
// current term: database not open").
func (c *Cluster) close() {
	var running []*Node
	c.mu.Lock()
	for _, n := range c.nodes {
		if !n.stopped {
			n.stopped = true
			running = append(running, n)
		}
	}
	c.mu.Unlock()
	for _, n := range running {
		n.closeServers()
	}
	var wg sync.WaitGroup
	for _, n := range running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = n.Node.Close()
		}()
	}
	wg.Wait()
}

// WaitFor polls cond until it holds, failing the test after timing.Wait.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitForState(t, what, cond, nil)
}

// WaitForState is WaitFor that adds state() to the failure message.
func WaitForState(t testing.TB, what string, cond func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(timing.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			s := ""
			if state != nil {
				s = ": " + state()
			}
			t.Fatalf("timed out after %v waiting for %s%s", timing.Wait, what, s)
		}
		time.Sleep(timing.Poll)
	}
}

// Ctx returns a context that ends after timing.Wait or with the test.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timing.Wait)
	t.Cleanup(cancel)
	return ctx
}
