package transport_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/transport"
)

// limitedServer serves h through NewHTTPServer's listener on loopback and
// stops it at cleanup.
func limitedServer(t *testing.T, h http.Handler, lim transport.ServerLimits) (*transport.HTTPServer, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := transport.NewHTTPServer(h, lim)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(srv.Listener(ln))
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return srv, ln.Addr().String()
}

// dialSlow opens a connection that starts a request and never finishes
// its headers.
func dialSlow(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, deadline)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: a"); err != nil {
		t.Fatal(err)
	}
	return c
}

// closedByServer reports whether the server closed c within the deadline
// (EOF or reset rather than a timeout).
func closedByServer(c net.Conn, within time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

// rawGet sends one request on a fresh connection and reads the answer.
func rawGet(t *testing.T, addr, path string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(deadline))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	return resp, b
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

// At the cap, a new connection takes the place of the one that has waited
// longest without being in a handler: a slow client cannot lock a probe
// out.
func TestConnCapReclaimsSlowConnections(t *testing.T) {
	srv, addr := limitedServer(t, okHandler, transport.ServerLimits{MaxConns: 4, ReadHeaderTimeout: time.Minute})
	var slow []net.Conn
	for range 4 {
		slow = append(slow, dialSlow(t, addr))
	}
	for i := range 3 {
		waitFor(t, "the cap to be full", func() bool { return srv.ConnStats().Open == 4 })
		resp, body := rawGet(t, addr, "/livez")
		if resp.StatusCode != http.StatusOK || string(body) != "ok" {
			t.Fatalf("probe %d with the cap full of slow connections: %d %q", i, resp.StatusCode, body)
		}
		// The oldest slow connection made room.
		if !closedByServer(slow[i], deadline) {
			t.Fatalf("slow connection %d was not closed to make room", i)
		}
		waitFor(t, "the probe's slot to be given back", func() bool { return srv.ConnStats().Open == 3 })
		slow = append(slow, dialSlow(t, addr)) // and filled again
	}
	if closedByServer(slow[len(slow)-1], 100*time.Millisecond) {
		t.Error("the newest slow connection was closed too: only the longest-waiting should be")
	}
	st := srv.ConnStats()
	if st.Evicted != 3 || st.Refused != 0 {
		t.Errorf("stats %+v, want 3 evicted, 0 refused", st)
	}
}

// An idle keep-alive connection is reclaimable from when it went idle;
// one inside a handler is never cut, and when every connection is in a
// handler a new one is refused with 503, Retry-After and a JSON error.
func TestConnCapNeverCutsRequestsInHandlers(t *testing.T) {
	release := make(chan struct{})
	var entered sync.WaitGroup
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			entered.Done()
			select {
			case <-release:
			case <-time.After(deadline):
			}
		}
		io.WriteString(w, "ok")
	})
	srv, addr := limitedServer(t, h, transport.ServerLimits{MaxConns: 2, ReadHeaderTimeout: time.Minute})
	hc := &http.Client{Timeout: 2 * deadline, Transport: &http.Transport{MaxConnsPerHost: 2}}
	defer hc.CloseIdleConnections()

	results := make(chan error, 2)
	entered.Add(2)
	for range 2 {
		go func() {
			resp, err := hc.Get("http://" + addr + "/block")
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			results <- err
		}()
	}
	entered.Wait()

	resp, body := rawGet(t, addr, "/livez")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("with every connection in a handler: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	var e struct{ Error, Code string }
	if err := json.Unmarshal(body, &e); err != nil || e.Code != "too_many_connections" {
		t.Fatalf("refusal body %q: %v", body, err)
	}
	close(release)
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("a request in a handler was cut: %v", err)
		}
	}
	// Both connections are idle now, so reclaimable: a fresh one gets in.
	waitFor(t, "the blocked requests' connections to go idle", func() bool {
		r, _ := rawGet(t, addr, "/livez")
		return r.StatusCode == http.StatusOK
	})
	if st := srv.ConnStats(); st.Refused < 1 || st.Evicted < 1 {
		t.Errorf("stats %+v: want a refusal, then an eviction of an idle connection", st)
	}
}

// Slow clients are cut by the header timeout, whether they trickle a
// request or never send a byte, and their slots are given back.
func TestSlowClientsAreCutByTheHeaderTimeout(t *testing.T) {
	srv, addr := limitedServer(t, okHandler, transport.ServerLimits{ReadHeaderTimeout: 300 * time.Millisecond})
	slow := dialSlow(t, addr)
	idle, err := net.DialTimeout("tcp", addr, deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	start := time.Now()
	for _, c := range []net.Conn{slow, idle} {
		if !closedByServer(c, deadline) {
			t.Fatal("a slow connection outlived the header timeout")
		}
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Errorf("cut after %v, before the 300ms header timeout", took)
	}
	waitFor(t, "the slots to be given back", func() bool { return srv.ConnStats().Open == 0 })
}

// HTTP/2 (when negotiated) multiplexes requests on one connection: the
// server advertises MaxStreamsPerConn, so a client opens a second
// connection rather than a 101st stream.
func TestHTTP2StreamsPerConnectionAreBounded(t *testing.T) {
	const requests = transport.MaxStreamsPerConn + 20
	release := make(chan struct{})
	var mu sync.Mutex
	perConn := map[string]int{}
	inHandler := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "not HTTP/2", http.StatusHTTPVersionNotSupported)
			return
		}
		mu.Lock()
		perConn[r.RemoteAddr]++
		inHandler++
		mu.Unlock()
		select {
		case <-release:
		case <-time.After(deadline):
		}
	})
	ts := httptest.NewUnstartedServer(nil)
	ts.Config = transport.NewHTTPServer(h, transport.ServerLimits{}).Server
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes cut by Close
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()
	hc := ts.Client()
	defer hc.CloseIdleConnections()

	errs := make(chan error, requests)
	for range requests {
		go func() {
			resp, err := hc.Get(ts.URL)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			errs <- err
		}()
	}
	waitFor(t, "every request in a handler", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return inHandler == requests
	})
	close(release)
	for range requests {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for addr, n := range perConn {
		if n > transport.MaxStreamsPerConn {
			t.Errorf("%d concurrent streams on connection %s, bound %d", n, addr, transport.MaxStreamsPerConn)
		}
	}
	if len(perConn) < 2 {
		t.Errorf("%d requests on %d connection(s): the stream bound did not apply", requests, len(perConn))
	}
}

// Past the in-flight bound, requests are refused at once with 503
// overloaded and Retry-After, probes excepted.
func TestInflightBoundRefusesWithRetryAfter(t *testing.T) {
	n := startLeader(t)
	api := transport.New(n.Node, transport.Config{MaxInflight: 1})
	srv, addr := limitedServer(t, api, transport.ServerLimits{})

	// Hold the one slot with a PUT whose body has not all arrived. It is
	// written on a raw connection: Go's client may keep the headers in its
	// buffer until the body ends, and then no handler would be running. A
	// probe that arrives just before the PUT takes the slot itself (and
	// the PUT is refused): then start over with a new PUT.
	var held net.Conn
	var r *http.Response
	var body []byte
	waitFor(t, "a PUT to hold the slot and another request to be refused as overloaded", func() bool {
		if held != nil {
			held.Close()
		}
		var err error
		if held, err = net.DialTimeout("tcp", addr, deadline); err != nil {
			t.Fatal(err)
		}
		_ = held.SetDeadline(time.Now().Add(2 * deadline))
		if _, err := io.WriteString(held, "PUT /v1/kv/held HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nx"); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(time.Second); time.Now().Before(end); {
			if r, body = rawGet(t, addr, "/v1/kv/other"); r.StatusCode == http.StatusServiceUnavailable {
				return true
			}
		}
		return false
	})
	defer held.Close()
	if r.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), `"overloaded"`) {
		t.Errorf("overload answer: Retry-After %q, body %s", r.Header.Get("Retry-After"), body)
	}
	if r, body := rawGet(t, addr, "/livez"); r.StatusCode != http.StatusOK {
		t.Errorf("/livez on an overloaded node: %d %s", r.StatusCode, body)
	}
	if _, err := io.WriteString(held, "y"); err != nil { // the rest of the body: the PUT completes
		t.Fatal(err)
	}
	if r, err := http.ReadResponse(bufio.NewReader(held), nil); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("the held PUT: %v %v", r, err)
	}
	if r, body := rawGet(t, addr, "/v1/kv/held"); r.StatusCode != http.StatusOK || string(body) != "xy" {
		t.Errorf("after the slot is free: %d %s", r.StatusCode, body)
	}
	if r, body := rawGet(t, addr, "/metrics"); !regexp.MustCompile(`raftcache_http_overloaded_total [1-9]`).Match(body) ||
		!strings.Contains(string(body), "raftcache_http_connections_open ") {
		t.Errorf("metrics (%d) lack the overload and connection counters", r.StatusCode)
	}
	_ = srv
}

// A prefix delete removes any number of keys, at most fsm.MaxBatch per
// Raft entry; a flush is one entry.
func TestPrefixDeleteIsBoundedPerEntry(t *testing.T) {
	n := startLeader(t)
	const under = fsm.MaxBatch + 5
	for start := 0; start < under; start += fsm.MaxBatch {
		var ops []string
		for i := start; i < min(start+fsm.MaxBatch, under); i++ {
			ops = append(ops, fmt.Sprintf(`{"op":"set","key":"p/%05d","value":"v"}`, i))
		}
		body := `{"atomic":false,"ops":[` + strings.Join(ops, ",") + `]}`
		if r := do(t, http.MethodPost, n.URL+"/v1/batch", strings.NewReader(body)); r.status != http.StatusOK {
			t.Fatalf("batch: %s", r)
		}
	}
	do(t, http.MethodPut, n.URL+"/v1/kv/q", strings.NewReader("kept"))

	var d struct{ Deleted, Entries int }
	r := do(t, http.MethodDelete, n.URL+"/v1/keys?prefix=p/", nil)
	if err := json.Unmarshal(r.body, &d); err != nil || r.status != http.StatusOK || d.Deleted != under || d.Entries != 2 {
		t.Fatalf("DELETE prefix=p/ over %d keys: %s; want %d deleted in 2 entries", under, r, under)
	}
	r = do(t, http.MethodDelete, n.URL+"/v1/keys?prefix="+strings.Repeat("x", transport.MaxKeySize+1), nil)
	wantError(t, "a prefix longer than a key", r, http.StatusBadRequest, "bad_prefix")
	r = do(t, http.MethodDelete, n.URL+"/v1/keys?all=true", nil)
	if err := json.Unmarshal(r.body, &d); err != nil || d.Deleted != 1 || d.Entries != 1 {
		t.Fatalf("flush: %s; want 1 deleted in 1 entry", r)
	}
}
