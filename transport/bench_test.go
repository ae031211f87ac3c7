package transport_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/transport"
)

// The benchmarks measure the API's own cost per request on a real
// one-node cluster (the node's read or write included), two ways:
//
//   - handler: the request goes straight into the handler NewHTTPServer
//     serves, with a reused request and response writer, so allocs/op is
//     the server's own (routing, middleware, headers, the node) and does
//     not move with the machine's load;
//   - wire: a keep-alive client over loopback to the same handler behind
//     NewHTTPServer, net/http's own cost and the client's included.
//
// go test ./transport -run '^$' -bench 'HTTP' -benchmem

const benchValue = "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" // 100 bytes, as bench/compare.sh

func BenchmarkHTTPGet(b *testing.B) {
	n := benchNode(b)
	if r := benchDo(b, n.h, http.MethodPut, "/v1/kv/bench-read", benchValue); r.code != http.StatusOK {
		b.Fatalf("preload: %d", r.code)
	}
	for _, c := range []struct{ name, path string }{
		{"strong", "/v1/kv/bench-read"},
		{"stale", "/v1/kv/bench-read?consistency=stale"},
	} {
		b.Run(c.name+"/handler", func(b *testing.B) { benchHandler(b, n.h, http.MethodGet, c.path, "") })
		b.Run(c.name+"/wire", func(b *testing.B) { benchWire(b, n.url, http.MethodGet, c.path, "") })
	}
}

func BenchmarkHTTPPut(b *testing.B) {
	n := benchNode(b)
	b.Run("handler", func(b *testing.B) { benchHandler(b, n.h, http.MethodPut, "/v1/kv/bench-write", benchValue) })
	b.Run("wire", func(b *testing.B) { benchWire(b, n.url, http.MethodPut, "/v1/kv/bench-write", benchValue) })
}

type benchServer struct {
	h   http.Handler // what NewHTTPServer serves
	url string
}

// benchNode starts a one-node cluster and serves its API through
// NewHTTPServer, as raftcache node does.
func benchNode(b *testing.B) benchServer {
	b.Helper()
	n := testcluster.Start(b, 1, testcluster.Options{HTTP: &transport.Config{}, MaxValueSize: maxValue}).Leader(b)
	srv := transport.NewHTTPServer(n.API, transport.ServerLimits{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(srv.Listener(ln)) }()
	b.Cleanup(func() { _ = srv.Close() })
	return benchServer{h: srv.Handler, url: "http://" + ln.Addr().String()}
}

// benchWriter is a reusable http.ResponseWriter.
type benchWriter struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *benchWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.body.Write(p)
}

func (w *benchWriter) reset() {
	clear(w.h)
	w.code = 0
	w.body.Reset()
}

// benchBody is a request body that can be rewound without allocating.
type benchBody struct{ strings.Reader }

func (*benchBody) Close() error { return nil }

func benchRequest(b *testing.B, method, path, body string) (*http.Request, *benchBody) {
	b.Helper()
	// A cancellable context like net/http's, so the handler sees a
	// request that can end early.
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, method, "http://bench"+path, nil)
	if err != nil {
		b.Fatal(err)
	}
	bb := &benchBody{}
	bb.Reset(body)
	req.Body, req.ContentLength = bb, int64(len(body))
	return req, bb
}

func benchDo(b *testing.B, h http.Handler, method, path, body string) *benchWriter {
	req, _ := benchRequest(b, method, path, body)
	w := &benchWriter{h: http.Header{}}
	h.ServeHTTP(w, req)
	return w
}

func benchHandler(b *testing.B, h http.Handler, method, path, body string) {
	req, bb := benchRequest(b, method, path, body)
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		bb.Reset(body)
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("%s %s: %d %s", method, path, w.code, w.body.Bytes())
		}
	}
}

func benchWire(b *testing.B, base, method, path, body string) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer c.CloseIdleConnections()
	bb := &benchBody{}
	b.ReportAllocs()
	for b.Loop() {
		bb.Reset(body)
		req, err := http.NewRequest(method, base+path, bb)
		if err != nil {
			b.Fatal(err)
		}
		req.ContentLength = int64(len(body))
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s %s: %d", method, path, resp.StatusCode)
		}
	}
}
