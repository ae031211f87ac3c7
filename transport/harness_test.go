package transport_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/node"
	"github.com/raftcache/raftcache/transport"
)

const (
	maxValue = 1 << 20          // transport.Config.MaxValueSize in these tests
	deadline = 10 * time.Second // bound on one request or connection step
)

// testNode is one real node behind a real HTTP server whose address it
// advertises, so redirects point at something real.
type testNode = testcluster.Node

// waitFor polls cond with the harness's deadline.
var waitFor = testcluster.WaitFor

// startCluster starts a cluster of size nodes behind HTTP servers serving
// the API with MaxValueSize maxValue; it returns once they agree on a
// leader that serves strong reads.
func startCluster(t *testing.T, size int) *testcluster.Cluster {
	t.Helper()
	return testcluster.Start(t, size, testcluster.Options{HTTP: &transport.Config{}, MaxValueSize: maxValue})
}

// startNodeWith starts one node (bootstrapping a cluster of its own, or
// to be added by the test) whose node configuration mod adjusts.
func startNodeWith(t *testing.T, id string, bootstrap bool, mod func(*node.Config)) *testNode {
	t.Helper()
	return testcluster.New(t, testcluster.Options{HTTP: &transport.Config{}, MaxValueSize: maxValue,
		Configure: func(_ string, c *testcluster.NodeConfig) { mod(&c.Node) }}).StartNode(id, bootstrap)
}

// startLeader starts a one-node cluster and returns it once it serves.
func startLeader(t *testing.T) *testNode {
	t.Helper()
	return startCluster(t, 1).Leader(t)
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
