package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftcache/raftcache/internal/testlog"

	"github.com/raftcache/raftcache/auth"
	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
	"github.com/raftcache/raftcache/transport"
)

// The CLI tests run the real command line (run) against an in-process
// cluster: real nodes (Raft on loopback, bolt files in t.TempDir()) behind
// real HTTP servers.

const (
	waitDeadline = 30 * time.Second // generous bound for any wait on Raft (2 busy cores, -race)
	// raftTimeout is the nodes' heartbeat and election timeout: short for
	// quick elections, long enough not to flap under -race.
	raftTimeout = 150 * time.Millisecond
)

type tnode struct {
	id   string
	addr string // the HTTP server's host:port, also the advertised HTTP address
	url  string
	n    *node.Node
	srv  *httptest.Server
}

func startTNode(t *testing.T, id string, bootstrap bool) *tnode {
	return startTNodeOpts(t, id, bootstrap, tnodeOpts{})
}

// tnodeOpts secure a test node's API, and wire the level fetcher.
type tnodeOpts struct {
	tls    *tls.Config  // serve HTTPS with this configuration
	auth   *auth.Tokens // require tokens
	levels bool         // ask members for their feature levels (plain HTTP), as raftcache node does
}

func startTNodeOpts(t *testing.T, id string, bootstrap bool, opt tnodeOpts) *tnode {
	t.Helper()
	logger := testlog.New(t, id, hclog.Warn)
	tn := &tnode{id: id}
	tn.srv = httptest.NewUnstartedServer(nil)
	tn.addr = tn.srv.Listener.Addr().String()
	tn.url = "http://" + tn.addr
	if opt.tls != nil {
		tn.url = "https://" + tn.addr
		tn.srv.TLS = opt.tls.Clone()
		tn.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	}
	cfg := node.Config{
		ID:               id,
		RaftAddr:         "127.0.0.1:0",
		HTTPAddr:         tn.addr,
		DataDir:          t.TempDir(),
		Bootstrap:        bootstrap,
		Logger:           logger,
		HeartbeatTimeout: raftTimeout,
		ElectionTimeout:  raftTimeout,
		MaxValueSize:     1 << 20,
	}
	if opt.levels {
		cfg.FetchLevel = levelFetcher(false, nil)
	}
	n, err := node.New(cfg)
	if err != nil {
		tn.srv.Close()
		t.Fatalf("node.New(%s): %v", id, err)
	}
	tn.n = n
	tn.srv.Config.Handler = transport.New(n, transport.Config{Logger: logger.Named("http"), Auth: opt.auth, TLS: opt.tls != nil})
	if opt.tls != nil {
		tn.srv.StartTLS()
	} else {
		tn.srv.Start()
	}
	return tn
}

func (tn *tnode) stop() {
	tn.srv.Close()
	_ = tn.n.Close()
}

type tcluster struct {
	t     *testing.T
	mu    sync.Mutex
	nodes []*tnode
}

// newTestCluster starts size nodes: n1 bootstraps, the others are added
// through it. It returns once every node knows every member's HTTP
// address and is ready, and a leader serves strong reads.
func newTestCluster(t *testing.T, size int) *tcluster {
	return newTestClusterOpts(t, size, tnodeOpts{}, client.Config{})
}

// newTestClusterOpts is newTestCluster with secured nodes; adminCfg is the
// client configuration (TLS, token) that adds the members.
func newTestClusterOpts(t *testing.T, size int, opt tnodeOpts, adminCfg client.Config) *tcluster {
	t.Helper()
	tc := &tcluster{t: t}
	_ = t.TempDir() // removed after tc.close
	t.Cleanup(tc.close)
	first := startTNodeOpts(t, "n1", true, opt)
	tc.nodes = append(tc.nodes, first)
	waitFor(t, "n1 to lead", func() bool { return servesStrongReads(first) })
	adminCfg.Endpoints = []string{first.url}
	admin, err := client.New(adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for i := 2; i <= size; i++ {
		tn := startTNodeOpts(t, fmt.Sprintf("n%d", i), false, opt)
		tc.nodes = append(tc.nodes, tn)
		ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
		err := admin.AddMember(ctx, client.Member{ID: tn.id, RaftAddr: tn.n.RaftAddr(), HTTPAddr: tn.addr})
		cancel()
		if err != nil {
			t.Fatalf("adding %s: %v", tn.id, err)
		}
	}
	tc.waitSettled(size)
	return tc
}

// add starts a node that is not yet a member; it is stopped with the
// cluster.
func (tc *tcluster) add(id string) *tnode {
	tn := startTNode(tc.t, id, false)
	tc.mu.Lock()
	tc.nodes = append(tc.nodes, tn)
	tc.mu.Unlock()
	return tn
}

// waitSettled waits until size members are listed by every member with
// their HTTP addresses, each ready, and a leader serves strong reads.
func (tc *tcluster) waitSettled(size int) {
	tc.t.Helper()
	waitFor(tc.t, fmt.Sprintf("%d members, all ready", size), func() bool {
		for _, tn := range tc.members() {
			members, err := tn.n.Members()
			if err != nil || len(members) != size || !tn.n.Ready() {
				return false
			}
			for _, m := range members {
				if m.HTTPAddr == "" {
					return false
				}
			}
		}
		return true
	})
	tc.leader()
}

// members are the running nodes that belong to the cluster.
func (tc *tcluster) members() []*tnode {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	var ids map[string]bool
	for _, tn := range tc.nodes {
		if ms, err := tn.n.Members(); err == nil && tn.n.IsLeader() {
			ids = map[string]bool{}
			for _, m := range ms {
				ids[m.ID] = true
			}
		}
	}
	var out []*tnode
	for _, tn := range tc.nodes {
		if ids == nil || ids[tn.id] {
			out = append(out, tn)
		}
	}
	return out
}

// close stops every node at once (see client/helpers_test.go: one after
// another lets a survivor's heartbeat reach a closing store).
func (tc *tcluster) close() {
	tc.mu.Lock()
	nodes := tc.nodes
	tc.mu.Unlock()
	for _, tn := range nodes {
		tn.srv.Close()
	}
	var wg sync.WaitGroup
	for _, tn := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = tn.n.Close()
		}()
	}
	wg.Wait()
}

func (tc *tcluster) leader() *tnode {
	tc.t.Helper()
	var l *tnode
	waitFor(tc.t, "a leader that serves", func() bool {
		for _, tn := range tc.members() {
			if servesStrongReads(tn) {
				l = tn
				return true
			}
		}
		return false
	})
	return l
}

func (tc *tcluster) node(id string) *tnode {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for _, tn := range tc.nodes {
		if tn.id == id {
			return tn
		}
	}
	tc.t.Fatalf("no node %s", id)
	return nil
}

// endpoints is the --endpoints value: the first node only, so that the
// CLI has to learn the others.
func (tc *tcluster) endpoints() string { return tc.nodes[0].url }

func servesStrongReads(tn *tnode) bool {
	if !tn.n.IsLeader() || tn.n.FSM().MemberAddr(tn.id) != tn.addr {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := tn.n.Get(ctx, []byte("readiness-probe"), node.ReadOptions{})
	return errors.Is(err, fsm.ErrNotFound)
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(waitDeadline)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("timed out after %v waiting for %s", waitDeadline, what)
		}
	}
}

// cliResult is one run of the command line.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command line with args (no program name) and stdin.
func runCLI(t testing.TB, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"raftcache"}, args...), strings.NewReader(stdin), &out, &errb)
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// cliOK runs the command line against endpoints with -o json, requires
// exit code 0, and decodes stdout (exactly one JSON document) into out.
func cliOK(t testing.TB, endpoints string, out any, args ...string) {
	t.Helper()
	r := runCLI(t, "", append([]string{"-e", endpoints, "--timeout", "20s", "-o", "json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("raftcache %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	decodeOne(t, r.stdout, out)
}

// decodeOne decodes s, which must hold exactly one JSON document.
func decodeOne(t testing.TB, s string, out any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, s)
	}
	if dec.More() {
		t.Fatalf("output holds more than one JSON document:\n%s", s)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("decoding %s: %v", raw, err)
		}
	}
}
