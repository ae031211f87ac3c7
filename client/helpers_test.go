package client_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftcache/raftcache/auth"
	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/transport"
)

const (
	maxValue     = 1 << 20          // transport.Config.MaxValueSize in these tests
	callDeadline = 20 * time.Second // bound on one client call
)

// waitFor polls cond with the harness's deadline.
var waitFor = testcluster.WaitFor

// tnode is one node of a testcluster behind a real HTTP server that
// records every request and can inject faults through hook.
type tnode struct {
	*testcluster.Node
	id   string // the node's id
	addr string // host:port of the HTTP server, the node's advertised HTTP address
	url  string
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

// Unwrap lets http.ResponseController flush watch streams.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.recordOnce()
	return w.ResponseWriter.(http.Hijacker).Hijack()
}

// tnodeOpts secure a test node's API.
type tnodeOpts struct {
	tls  *tls.Config  // serve HTTPS with this configuration
	auth *auth.Tokens // require tokens
}

// tcluster is a testcluster whose nodes' handlers are tnodes.
type tcluster struct {
	*testcluster.Cluster
	t     *testing.T
	mu    sync.Mutex
	tnode map[*testcluster.Node]*tnode
}

func (tc *tcluster) options(opt tnodeOpts) testcluster.Options {
	return testcluster.Options{
		HTTP:         &transport.Config{},
		MaxValueSize: maxValue,
		TLS:          opt.tls,
		Tokens:       opt.auth,
		WrapHTTP: func(n *testcluster.Node, api http.Handler) http.Handler {
			tn := &tnode{Node: n, id: n.ID(), addr: n.HTTPAddr(), api: api}
			tn.url = "http://" + tn.addr
			if opt.tls != nil {
				tn.url = "https://" + tn.addr
			}
			tc.mu.Lock()
			tc.tnode[n] = tn
			tc.mu.Unlock()
			return tn
		},
	}
}

func (tc *tcluster) of(n *testcluster.Node) *tnode {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.tnode[n]
}

// startTNode starts a one-node cluster (its node is n1) and returns its
// node once it serves.
func startTNode(t *testing.T) *tnode {
	return startTNodeOpts(t, tnodeOpts{})
}

func startTNodeOpts(t *testing.T, opt tnodeOpts) *tnode {
	t.Helper()
	return newTestClusterOpts(t, 1, opt).leader()
}

// newTestCluster starts size nodes: n1 bootstraps, the others are added
// through it. It returns once every node knows all members' HTTP
// addresses and the leader serves strong reads.
func newTestCluster(t *testing.T, size int) *tcluster {
	return newTestClusterOpts(t, size, tnodeOpts{})
}

// newTestClusterOpts is newTestCluster with secured nodes.
func newTestClusterOpts(t *testing.T, size int, opt tnodeOpts) *tcluster {
	t.Helper()
	tc := &tcluster{t: t, tnode: map[*testcluster.Node]*tnode{}}
	tc.Cluster = testcluster.Start(t, size, tc.options(opt))
	return tc
}

// nodes returns every node, in start order.
func (tc *tcluster) nodes() []*tnode {
	var out []*tnode
	for _, n := range tc.Nodes() {
		out = append(out, tc.of(n))
	}
	return out
}

// add starts a node with id that is not a member yet.
func (tc *tcluster) add(id string) *tnode {
	return tc.of(tc.StartNode(id, false))
}

// leader waits for a node that leads and serves strong reads.
func (tc *tcluster) leader() *tnode {
	tc.t.Helper()
	return tc.of(tc.Leader(tc.t))
}

func (tc *tcluster) followers(leader *tnode) []*tnode {
	var out []*tnode
	for _, n := range tc.Followers(leader.Node) {
		out = append(out, tc.of(n))
	}
	return out
}

func (tc *tcluster) urls() []string { return tc.URLs() }

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
