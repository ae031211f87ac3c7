package transport_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftcache/raftcache/internal/testlog"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
	"github.com/raftcache/raftcache/transport"
)

const (
	maxValue = 1 << 20          // node.Config.MaxValueSize in these tests
	deadline = 10 * time.Second // generous bound for any wait on Raft
)

// testNode is one real node (Raft on loopback, bolt files in t.TempDir())
// behind a real HTTP server.
type testNode struct {
	*node.Node
	srv  *httptest.Server
	addr string // host:port of the HTTP server
	url  string
}

func testLogger(t testing.TB, name string) hclog.Logger {
	return testlog.New(t, name, hclog.Info)
}

// startNode starts a node whose advertised HTTP address is its own test
// server's, so redirects point at something real.
func startNode(t *testing.T, id string, bootstrap bool) *testNode {
	t.Helper()
	return startNodeWith(t, id, bootstrap, nil)
}

// startNodeWith is startNode with mod applied to the node's config.
func startNodeWith(t *testing.T, id string, bootstrap bool, mod func(*node.Config)) *testNode {
	t.Helper()
	logger := testLogger(t, id)
	var api http.Handler
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.ServeHTTP(w, r) // set before Start, so no race
	}))
	addr := srv.Listener.Addr().String()
	cfg := node.Config{
		ID:               id,
		RaftAddr:         "127.0.0.1:0",
		HTTPAddr:         addr,
		DataDir:          t.TempDir(),
		Bootstrap:        bootstrap,
		Logger:           logger,
		HeartbeatTimeout: 50 * time.Millisecond,
		ElectionTimeout:  50 * time.Millisecond,
		MaxValueSize:     maxValue,
	}
	if mod != nil {
		mod(&cfg)
	}
	n, err := node.New(cfg)
	if err != nil {
		srv.Close()
		t.Fatalf("node.New(%s): %v", id, err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Logf("closing %s: %v", id, err)
		}
	})
	api = transport.New(n, transport.Config{Logger: logger})
	srv.Start()
	t.Cleanup(srv.Close) // runs before the node closes
	return &testNode{Node: n, srv: srv, addr: addr, url: "http://" + addr}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(deadline)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("timed out after %v waiting for %s", deadline, what)
		}
	}
}

// servesStrongReads reports whether n is a leader that has applied an
// entry of its term and registered its HTTP address.
func servesStrongReads(n *testNode) bool {
	if !n.IsLeader() || n.FSM().MemberAddr(n.ID()) != n.addr {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := n.Get(ctx, []byte("readiness-probe"), node.ReadOptions{})
	return errors.Is(err, fsm.ErrNotFound)
}

// startLeader starts a one-node cluster and waits until it serves.
func startLeader(t *testing.T) *testNode {
	t.Helper()
	n := startNode(t, "n1", true)
	waitFor(t, "n1 to lead and serve strong reads", func() bool { return servesStrongReads(n) })
	return n
}

// response is a fully read HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string {
	return fmt.Sprintf("%d %s", r.status, r.body)
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func send(t *testing.T, c *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return response{resp.StatusCode, resp.Header, body}
}

// do sends method to base+path (path as it goes on the wire: escaped).
func do(t *testing.T, method, url string, body io.Reader, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return send(t, noRedirects, req)
}

// raw writes a request exactly as given on a new connection to addr and
// reads one response.
func raw(t *testing.T, addr, request string) response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * deadline))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", request, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, body}
}

// errorBody is the JSON of every error response.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// wantError checks status, JSON content type and the error code.
func wantError(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d (body %s)", what, r.status, status, r.body)
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	var e errorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Errorf("%s: body %q is not JSON: %v", what, r.body, err)
		return
	}
	if e.Code != code || e.Error == "" {
		t.Errorf("%s: error body %+v, want code %q and a message", what, e, code)
	}
}

// decodeJSON unmarshals r's body into v, failing the test otherwise.
func decodeJSON(t *testing.T, r response, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}
