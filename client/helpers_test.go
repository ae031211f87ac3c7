package client_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
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

const (
	maxValue     = 1 << 20          // node.Config.MaxValueSize in these tests
	waitDeadline = 30 * time.Second // generous bound for any wait on Raft (2 noisy cores, -race)
	callDeadline = 20 * time.Second // bound on one client call
	// raftTimeout is the nodes' heartbeat and election timeout. Short, so
	// failovers are quick; but at 100ms (a 50ms leader lease) a 3-node
	// cluster under -race on this busy 2-core machine went through 20s of
	// back-to-back elections, so a little longer.
	raftTimeout = 100 * time.Millisecond
)

// tnode is one real node (Raft on loopback, bolt files in t.TempDir())
// behind a real HTTP server that records every request and can inject
// faults through hook.
type tnode struct {
	id   string
	addr string // host:port of the HTTP server, the node's advertised HTTP address
	url  string
	n    *node.Node
	srv  *httptest.Server
	api  http.Handler

	hook atomic.Pointer[hookFunc]

	mu   sync.Mutex
	seen []seenReq
}

// hookFunc serves a request instead of the API; api is the real handler.
type hookFunc func(w http.ResponseWriter, r *http.Request, api http.Handler)

// seenReq is what a node saw of one request, and what it answered.
type seenReq struct {
	Method, Path, Query string
	Auth, IdemKey       string
	ContentLength       int64
	Status              int
	Replayed            bool
}

func (tn *tnode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	// The request is recorded when its answer starts (or its connection
	// is taken over), before the client can have it: a test that looks
	// right after its call returns finds the record. (Recorded after the
	// handler returned, a large answer could reach the client first.)
	sw.record = func() {
		tn.mu.Lock()
		tn.seen = append(tn.seen, seenReq{
			Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			Auth: r.Header.Get("Authorization"), IdemKey: r.Header.Get("Idempotency-Key"),
			ContentLength: r.ContentLength, Status: sw.status,
			Replayed: sw.Header().Get("Idempotent-Replayed") == "true",
		})
		tn.mu.Unlock()
	}
	if h := tn.hook.Load(); h != nil {
		(*h)(sw, r, tn.api)
	} else {
		tn.api.ServeHTTP(sw, r)
	}
	sw.recordOnce() // an empty 200
}

func (tn *tnode) setHook(h hookFunc) {
	if h == nil {
		tn.hook.Store(nil)
		return
	}
	tn.hook.Store(&h)
}

// requests returns the recorded requests that match filter.
func (tn *tnode) requests(filter func(seenReq) bool) []seenReq {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	var out []seenReq
	for _, s := range tn.seen {
		if filter(s) {
			out = append(out, s)
		}
	}
	return out
}

func (tn *tnode) forget() {
	tn.mu.Lock()
	tn.seen = nil
	tn.mu.Unlock()
}

// statusWriter remembers the status, records the request once the answer
// starts, and lets hooks hijack the connection.
type statusWriter struct {
	http.ResponseWriter
	status   int
	wrote    bool
	record   func()
	recorded sync.Once
}

func (w *statusWriter) recordOnce() { w.recorded.Do(w.record) }

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
		w.recordOnce()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.wrote = true
		w.recordOnce()
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.recordOnce()
	return w.ResponseWriter.(http.Hijacker).Hijack()
}

func testLogger(t testing.TB, name string) hclog.Logger {
	return testlog.New(t, name, hclog.Warn)
}

// startTNode starts one node; its advertised HTTP address is its own test
// server's, so redirects point at something real.
func startTNode(t *testing.T, id string, bootstrap bool) *tnode {
	return startTNodeOpts(t, id, bootstrap, tnodeOpts{})
}

// tnodeOpts secure a test node's API.
type tnodeOpts struct {
	tls  *tls.Config  // serve HTTPS with this configuration
	auth *auth.Tokens // require tokens
}

func startTNodeOpts(t *testing.T, id string, bootstrap bool, opt tnodeOpts) *tnode {
	t.Helper()
	logger := testLogger(t, id)
	tn := &tnode{id: id}
	tn.srv = httptest.NewUnstartedServer(tn)
	tn.addr = tn.srv.Listener.Addr().String()
	tn.url = "http://" + tn.addr
	if opt.tls != nil {
		tn.url = "https://" + tn.addr
		tn.srv.TLS = opt.tls.Clone()
	}
	n, err := node.New(node.Config{
		ID:               id,
		RaftAddr:         "127.0.0.1:0",
		HTTPAddr:         tn.addr,
		DataDir:          t.TempDir(),
		Bootstrap:        bootstrap,
		Logger:           logger,
		HeartbeatTimeout: raftTimeout,
		ElectionTimeout:  raftTimeout,
		MaxValueSize:     maxValue,
	})
	if err != nil {
		tn.srv.Close()
		t.Fatalf("node.New(%s): %v", id, err)
	}
	tn.n = n
	tn.api = transport.New(n, transport.Config{Logger: logger.Named("http"), Auth: opt.auth, TLS: opt.tls != nil})
	if opt.tls != nil {
		tn.srv.StartTLS()
	} else {
		tn.srv.Start()
	}
	return tn
}

// stop closes the node's HTTP server (connections are refused from now
// on) and then the node.
func (tn *tnode) stop() {
	tn.srv.Close()
	_ = tn.n.Close()
}

type tcluster struct {
	t     *testing.T
	nodes []*tnode
}

// newTestCluster starts size nodes: n1 bootstraps, the others are added
// with client.AddMember through n1. It returns once every node knows all
// members' HTTP addresses and the leader serves strong reads.
func newTestCluster(t *testing.T, size int) *tcluster {
	return newTestClusterOpts(t, size, tnodeOpts{}, client.Config{})
}

// newTestClusterOpts is newTestCluster with secured nodes; admin is the
// client configuration (TLS, token) that adds the members.
func newTestClusterOpts(t *testing.T, size int, opt tnodeOpts, admin client.Config) *tcluster {
	t.Helper()
	tc := &tcluster{t: t}
	_ = t.TempDir() // registers the removal of the nodes' dirs to run after tc.close
	t.Cleanup(tc.close)
	first := startTNodeOpts(t, "n1", true, opt)
	tc.nodes = append(tc.nodes, first)
	waitFor(t, "n1 to lead", func() bool { return servesStrongReads(first) })
	admin.Endpoints = []string{first.url}
	adminClient := newClient(t, admin)
	for i := 2; i <= size; i++ {
		tn := startTNodeOpts(t, fmt.Sprintf("n%d", i), false, opt)
		tc.nodes = append(tc.nodes, tn)
		ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
		err := adminClient.AddMember(ctx, client.Member{ID: tn.id, RaftAddr: tn.n.RaftAddr(), HTTPAddr: tn.addr})
		cancel()
		if err != nil {
			t.Fatalf("adding %s: %v", tn.id, err)
		}
	}
	waitFor(t, "every node to know all members and be ready", func() bool {
		for _, tn := range tc.nodes {
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
	return tc
}

// close stops every node at once: HTTP servers first, then the nodes in
// parallel. Closing them one after another lets the survivors elect a
// leader whose heartbeat can reach a node between its Raft shutdown and
// its store closing, and hashicorp/raft then panics ("failed to save
// current term: database not open"); see the report on node.Close.
func (tc *tcluster) close() {
	for _, tn := range tc.nodes {
		tn.srv.Close()
	}
	var wg sync.WaitGroup
	for _, tn := range tc.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = tn.n.Close()
		}()
	}
	wg.Wait()
}

// leader waits for a node that leads and serves strong reads.
func (tc *tcluster) leader() *tnode {
	tc.t.Helper()
	var l *tnode
	waitFor(tc.t, "a leader that serves", func() bool {
		for _, tn := range tc.nodes {
			if servesStrongReads(tn) {
				l = tn
				return true
			}
		}
		return false
	})
	return l
}

func (tc *tcluster) followers(leader *tnode) []*tnode {
	var out []*tnode
	for _, tn := range tc.nodes {
		if tn != leader {
			out = append(out, tn)
		}
	}
	return out
}

func (tc *tcluster) urls() []string {
	var out []string
	for _, tn := range tc.nodes {
		out = append(out, tn.url)
	}
	return out
}

// servesStrongReads reports whether n is a leader that has applied an
// entry of its term and registered its HTTP address.
func servesStrongReads(tn *tnode) bool {
	if !tn.n.IsLeader() || tn.n.FSM().MemberAddr(tn.id) != tn.addr {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := tn.n.Get(ctx, []byte("readiness-probe"), node.ReadOptions{})
	return errors.Is(err, fsm.ErrNotFound)
}

// waitFor polls cond until it holds or the deadline passes.
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

func newClient(t testing.TB, cfg client.Config) *client.Client {
	t.Helper()
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func callCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
	t.Cleanup(cancel)
	return ctx
}

// applyThenAnswer runs the real handler into a recorder; if it succeeded,
// answer(w) replaces the answer (the write was applied all the same),
// otherwise the real answer is copied out.
func applyThenAnswer(answer func(w http.ResponseWriter)) hookFunc {
	return func(w http.ResponseWriter, r *http.Request, api http.Handler) {
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, r)
		if rec.Code == http.StatusOK {
			if v := rec.Header().Get("Idempotent-Replayed"); v != "" {
				w.Header().Set("Idempotent-Replayed", v)
			}
			answer(w)
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}
}

// cancelAfter is an http.RoundTripper that cancels a context once it has
// passed on n answers with status, after the answer is complete: the call
// then ends knowing exactly what every attempt got.
type cancelAfter struct {
	next   http.RoundTripper
	status int
	mu     sync.Mutex
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := c.next.RoundTrip(r)
	if err == nil && res.StatusCode == c.status {
		c.mu.Lock()
		if c.n--; c.n == 0 {
			c.cancel()
		}
		c.mu.Unlock()
	}
	return res, err
}
