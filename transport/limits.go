package transport

import (
	"context"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftcache/raftcache/internal/deadline"
)

// Bounds that keep a node's memory and goroutines finite under a flood.
// docs/security.md ("Limits") explains how they fit together.
const (
	// DefaultMaxInflight bounds the requests one node works on at once.
	// Past it, requests are refused at once with 503 and Retry-After
	// rather than queued without bound: a client (or the load balancer)
	// retries elsewhere or later, and the node's memory stays bounded.
	DefaultMaxInflight = 4096
	// DefaultMaxConns bounds the open HTTP connections of one node. It is
	// well above DefaultMaxInflight, so that connections that are not
	// inside a handler (idle, or still sending their headers) always
	// exist to be reclaimed when the cap is reached (see connLimiter).
	DefaultMaxConns = 10000
	// MaxStreamsPerConn is the per-connection in-flight bound: HTTP/1.1
	// handles one request at a time per connection by construction, and
	// HTTP/2 (when negotiated) advertises this SETTINGS_MAX_CONCURRENT_STREAMS.
	MaxStreamsPerConn = 100
	// MaxHeaderBytes bounds a request's header block (Go allows 4 KiB of
	// slack on top). With the connection cap it bounds the memory that
	// clients sending headers slowly can pin.
	MaxHeaderBytes = 16 << 10

	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second

	// retryAfterSeconds is the Retry-After of every overload answer.
	retryAfterSeconds = "1"
)

// ServerLimits are the connection-level bounds of the HTTP listener. Zero
// fields take the defaults above.
type ServerLimits struct {
	MaxConns          int           // open connections; past it, reclaim or refuse (see connLimiter)
	ReadHeaderTimeout time.Duration // from accept (or the end of the previous request) to the end of the headers
	ReadTimeout       time.Duration // a whole request, body included
	WriteTimeout      time.Duration // from the end of the headers to the end of the response
	IdleTimeout       time.Duration // a keep-alive connection with no request
}

func (l *ServerLimits) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	def(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&l.ReadTimeout, DefaultReadTimeout)
	def(&l.WriteTimeout, DefaultWriteTimeout)
	def(&l.IdleTimeout, DefaultIdleTimeout)
	if l.ReadTimeout < l.ReadHeaderTimeout {
		l.ReadTimeout = l.ReadHeaderTimeout
	}
}

// limit admits at most cap(s.inflight) requests at a time. Probes are
// always admitted, so a saturated node still reports that it is alive,
// and so is /v1/node, so a busy member does not hold the cluster's feature
// level back. Watch streams do not end, so they have their own bound
// (node.Config.MaxWatches) instead.
func (s *Server) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/livez" || r.URL.Path == "/readyz" || r.URL.Path == "/v1/node" || isWatch(r) {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case s.inflight <- struct{}{}:
			defer func() { <-s.inflight }()
			next.ServeHTTP(w, r)
		default:
			s.overloaded.Add(1)
			writeError(w, &requestError{http.StatusServiceUnavailable, "overloaded",
				"too many requests in flight on this node; retry shortly"})
		}
	})
}

// HTTPServer is an http.Server whose listener is bounded by a connLimiter.
// Serve it on a listener passed through Listener first.
type HTTPServer struct {
	*http.Server
	conns *connLimiter
}

// ConnStats are the connection limiter's counters.
type ConnStats struct {
	Open    int    // connections open now
	Evicted uint64 // connections closed to make room (idle or still sending headers)
	Refused uint64 // connections refused with 503: the cap was full of requests in handlers
}

// Listener bounds ln by the connection cap. Wrap the plain TCP listener,
// before TLS, so that connections still in their handshake count too.
func (s *HTTPServer) Listener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, l: s.conns}
}

// ConnStats reports the open, evicted and refused connections so far.
func (s *HTTPServer) ConnStats() ConnStats { return s.conns.stats() }

// connMetrics is implemented by *Server, which exports ConnStats.
type connMetrics interface{ setConnStats(func() ConnStats) }

// NewHTTPServer wraps h in an http.Server with the timeouts, header limit
// and connection cap a network-facing server needs, so a slow or hostile
// client cannot hold connections or memory indefinitely.
func NewHTTPServer(h http.Handler, lim ServerLimits) *HTTPServer {
	lim.defaults()
	cl := newConnLimiter(lim.MaxConns)
	srv := &HTTPServer{conns: cl, Server: &http.Server{
		Handler:           cl.track(h),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ConnContext:       cl.connContext,
		ConnState:         cl.connState,
		// HTTP/2 multiplexes requests on one connection: bound them like
		// HTTP/1.1's one at a time, only wider. Go's other HTTP/2 bounds
		// (header table, frame size, 1 MiB receive windows) are finite.
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: MaxStreamsPerConn},
	}}
	if m, ok := h.(connMetrics); ok {
		m.setConnStats(srv.ConnStats)
	}
	if s, ok := h.(*Server); ok {
		srv.RegisterOnShutdown(s.CloseStreams)
	}
	return srv
}

// connLimiter caps the open connections. When the cap is reached, a new
// connection does not wait in the kernel's backlog (where a probe would
// time out behind a flood): the limiter closes the connection that has
// been reclaimable longest, reclaimable meaning not inside a handler: idle
// between keep-alive requests, or not yet done sending its request
// headers (a slowloris connection is one of these). Only if every
// connection is inside a handler is the new one refused, with a canned
// 503 and Retry-After. A flood of slow connections therefore churns among
// itself, while requests being served are never cut and a fresh
// connection (a /livez probe, a client) always gets in.
type connLimiter struct {
	max int

	mu   sync.Mutex
	open int
	// The reclaimable connections, longest reclaimable first: a list
	// threaded through the trackedConns, so that a connection going idle
	// after each request allocates nothing.
	head, tail *trackedConn

	evicted, refused atomic.Uint64

	// Handing memory back after a flood (see noteClosed); under mu.
	peak        int         // the most connections open since the last release
	armed       bool        // a release is scheduled
	armedAt     time.Time   // when it was
	lastRelease time.Time   // when memory was last handed back
	timer       *time.Timer // fires the scheduled release
}

// After a flood of connections ends, the memory its goroutines, buffers
// and stacks used would otherwise stay with the process until Go's next
// periodic GC (every 2 minutes) and be returned to the OS slowly after
// that. So when the open connections fall to a quarter of a peak of at
// least releasePeak, the limiter hands the memory back once the closing
// has settled (no close for releaseQuiet, or releaseMaxWait after it
// began), at most once per releaseEvery.
const (
	releasePeak    = 1000
	releaseQuiet   = 500 * time.Millisecond
	releaseMaxWait = 10 * time.Second
	releaseEvery   = 10 * time.Second
)

// noteClosed is called with l.mu held after a connection closed.
func (l *connLimiter) noteClosed() {
	now := time.Now()
	delay := max(releaseQuiet, l.lastRelease.Add(releaseEvery).Sub(now))
	if l.armed {
		if now.Sub(l.armedAt) < releaseMaxWait {
			l.timer.Reset(delay) // still closing: wait for the rest
		}
		return
	}
	if l.peak < releasePeak || l.open > l.peak/4 {
		return
	}
	l.armed, l.armedAt = true, now
	if l.timer == nil {
		l.timer = time.AfterFunc(delay, l.release)
	} else {
		l.timer.Reset(delay)
	}
}

func (l *connLimiter) release() {
	l.mu.Lock()
	if !l.armed {
		l.mu.Unlock()
		return
	}
	l.armed, l.peak, l.lastRelease = false, l.open, time.Now()
	l.mu.Unlock()
	releaseMemory()
}

// releaseMemory collects twice, since net/http pools each closed
// connection's 8 KiB of bufio buffers in sync.Pools, which survive one
// collection, and then returns the free memory to the OS.
var releaseMemory = func() {
	runtime.GC()
	debug.FreeOSMemory()
}

func newConnLimiter(max int) *connLimiter { return &connLimiter{max: max} }

func (l *connLimiter) stats() ConnStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return ConnStats{Open: l.open, Evicted: l.evicted.Load(), Refused: l.refused.Load()}
}

// admit decides on a freshly accepted connection: a tracked conn, or nil
// if it must be refused.
func (l *connLimiter) admit(c net.Conn) *trackedConn {
	l.mu.Lock()
	var victim *trackedConn
	if l.open >= l.max {
		if victim = l.head; victim != nil {
			l.unlist(victim)
		}
	}
	l.mu.Unlock()
	if victim != nil {
		l.evicted.Add(1)
		_ = victim.Close() // gives its slot back
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.max {
		return nil
	}
	l.open++
	l.peak = max(l.peak, l.open)
	tc := &trackedConn{Conn: deadline.Lazy(c), l: l}
	l.pushBack(tc) // until its first request is read
	return tc
}

// pushBack appends tc to the reclaimable list; l.mu is held.
func (l *connLimiter) pushBack(tc *trackedConn) {
	tc.prev, tc.next, tc.listed = l.tail, nil, true
	if l.tail != nil {
		l.tail.next = tc
	} else {
		l.head = tc
	}
	l.tail = tc
}

// unlist removes tc from the reclaimable list; l.mu is held.
func (l *connLimiter) unlist(tc *trackedConn) {
	if !tc.listed {
		return
	}
	if tc.prev != nil {
		tc.prev.next = tc.next
	} else {
		l.head = tc.next
	}
	if tc.next != nil {
		tc.next.prev = tc.prev
	} else {
		l.tail = tc.prev
	}
	tc.prev, tc.next, tc.listed = nil, nil, false
}

// refuse answers a connection over the cap without reading from it.
// Nothing blocks the accept loop: a fresh socket's send buffer is empty,
// and the deadline covers the impossible case that it is not.
func (l *connLimiter) refuse(c net.Conn) {
	l.refused.Add(1)
	_ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	_, _ = c.Write(refusal)
	_ = c.Close()
}

// refusal is the whole answer to a connection over the cap.
var refusal = func() []byte {
	body := `{"error":"too many connections to this node; retry shortly","code":"too_many_connections"}` + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n" +
		"Retry-After: " + retryAfterSeconds + "\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

type connKey struct{}

// trackedOf finds the trackedConn under c (a *tls.Conn wraps it).
func trackedOf(c net.Conn) *trackedConn {
	for i := 0; i < 4 && c != nil; i++ {
		switch v := c.(type) {
		case *trackedConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

func (l *connLimiter) connContext(ctx context.Context, c net.Conn) context.Context {
	if tc := trackedOf(c); tc != nil {
		return context.WithValue(ctx, connKey{}, tc)
	}
	return ctx
}

// connState makes a connection reclaimable again when it goes idle
// between requests.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	if st != http.StateIdle {
		return
	}
	if tc := trackedOf(c); tc != nil {
		l.mu.Lock()
		if !tc.closed && tc.busy == 0 && !tc.listed {
			l.pushBack(tc)
		}
		l.mu.Unlock()
	}
}

// track marks a connection as busy (not reclaimable) while a handler runs
// for it. An HTTP/1 connection becomes reclaimable again only when it is
// idle, after its response is written; an HTTP/2 one when its last
// stream's handler returns.
func (l *connLimiter) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tc, _ := r.Context().Value(connKey{}).(*trackedConn)
		if tc == nil {
			h.ServeHTTP(w, r)
			return
		}
		l.mu.Lock()
		tc.busy++
		l.unlist(tc)
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			tc.busy--
			if tc.busy == 0 && r.ProtoMajor >= 2 && !tc.closed && !tc.listed {
				l.pushBack(tc)
			}
			l.mu.Unlock()
		}()
		h.ServeHTTP(w, r)
	})
}

// trackedConn is one admitted connection.
type trackedConn struct {
	net.Conn
	l *connLimiter
	// guarded by l.mu
	listed     bool         // in the reclaimable list
	prev, next *trackedConn // its neighbours there
	busy       int          // handlers running
	closed     bool
}

// Close gives the connection's slot back (once) and closes it.
func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	first := !c.closed
	if first {
		c.closed = true
		c.l.open--
		c.l.unlist(c)
		c.l.noteClosed()
	}
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// CloseWrite lets the server half-close before closing, as it does on a
// plain TCP connection, so an error answer to a request whose body it did
// not read is not lost to a reset. (net.Conn, embedded, does not carry it.)
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// limitListener applies a connLimiter to accepted connections.
type limitListener struct {
	net.Listener
	l *connLimiter
}

func (ln *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc := ln.l.admit(c); tc != nil {
			return tc, nil
		}
		ln.l.refuse(c)
	}
}
