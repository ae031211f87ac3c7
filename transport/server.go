// Package transport is raftcache's HTTP API (v1): routing, request parsing
// and validation, leader redirects, and the table that maps errors to
// status codes. It holds no state of its own and implements no command:
// every key operation is a command of the engine in package fsm (the
// internal rc.* commands), run through node.Node.Exec for writes or on one
// node.Node.View for reads, and its reply is encoded as the API's JSON.
// The API is documented in docs/api.md.
package transport

import (
	"crypto/tls"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/hashicorp/go-hclog"

	"github.com/raftcache/raftcache/auth"
	"github.com/raftcache/raftcache/internal/deadline"
	"github.com/raftcache/raftcache/node"
)

// Limits and defaults of the API. Keys and values are bounded by node
// (node.MaxKeySize, node.Config.MaxValueSize), which checks every command
// before proposing it; these names are node's, for existing users.
const (
	MaxKeySize          = node.MaxKeySize          // bytes, after percent-decoding
	DefaultMaxValueSize = node.DefaultMaxValueSize // bytes; set node.Config.MaxValueSize
	maxJSONBody         = 64 << 10
	defaultMinIndexWait = time.Second
	defaultWriteTimeout = 10 * time.Second
)

// Config configures the HTTP front.
type Config struct {
	Logger      hclog.Logger // nil discards
	Pprof       bool         // serve Go's profiler under /debug/pprof/ (admin role)
	MaxInflight int          // requests handled at once (probes excepted); default DefaultMaxInflight
	// Auth, if set, requires a bearer token with a sufficient role on
	// every route but /livez and /readyz.
	Auth *auth.Tokens
	// TLS says the API is served over TLS, so redirects and peer calls
	// use https; PeerClientTLS is the client side for those peer calls
	// (the CA that signed the members' certificates, and a client
	// certificate if members require one).
	TLS           bool
	PeerClientTLS *tls.Config
}

// Server serves the HTTP API of one node.
type Server struct {
	node     *node.Node
	cfg      Config
	logger   hclog.Logger
	router   *mux.Router
	handler  http.Handler // kvRoute and router behind the in-flight limit
	kv       kvHandlers   // the key routes' handlers, as registered with router
	servedBy []string     // X-Served-By, shared by every response (routes.go)
	// Shared deadlines, one per timeout (see within).
	writeDeadlines, indexDeadlines deadline.Shared
	inflight                       chan struct{}
	// overloaded counts requests refused by the in-flight bound;
	// connStats, once NewHTTPServer wraps this Server, the listener's.
	overloaded atomic.Uint64
	connStats  atomic.Pointer[func() ConnStats]
	metrics    *metrics
	peers      *http.Client // for ?scope=cluster fan-out
	// streamsDone is closed by CloseStreams: watch streams end, so a
	// graceful shutdown does not wait for them.
	streamsDone chan struct{}
	closeOnce   sync.Once
}

// CloseStreams ends every watch stream (and refuses new ones). Call it
// before shutting the HTTP server down: streams do not end on their own.
// NewHTTPServer registers it with the server's Shutdown.
func (s *Server) CloseStreams() { s.closeOnce.Do(func() { close(s.streamsDone) }) }

// New builds the API handler for n.
func New(n *node.Node, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	s := &Server{node: n, cfg: cfg, logger: cfg.Logger, streamsDone: make(chan struct{}), peers: &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: cfg.PeerClientTLS, MaxIdleConnsPerHost: 4},
	}}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	s.cfg = cfg
	s.inflight = make(chan struct{}, cfg.MaxInflight)
	s.metrics = s.newMetrics()
	s.servedBy = []string{n.ID()}
	s.router = s.routes()
	s.handler = s.limit(http.HandlerFunc(s.route))
	return s
}

func (s *Server) routes() *mux.Router {
	r := mux.NewRouter()
	// Keys are matched on the escaped path and never cleaned: /v1/kv/a/../b
	// is the key "a/../b", not a 301 to another key, and %2F stays a byte
	// of the key.
	r.SkipClean(true)
	r.UseEncodedPath()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &requestError{http.StatusNotFound, "no_route", "no such endpoint: " + r.URL.Path})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &requestError{http.StatusMethodNotAllowed, "method_not_allowed", r.Method + " is not allowed on " + r.URL.Path})
	})

	read := func(h http.HandlerFunc) http.HandlerFunc { return s.require(auth.RoleRead, h) }
	write := func(h http.HandlerFunc) http.HandlerFunc { return s.require(auth.RoleWrite, h) }
	admin := func(h http.HandlerFunc) http.HandlerFunc { return s.require(auth.RoleAdmin, h) }
	// Every route's handler records its latency under the route's
	// template (metrics.go); a handler resolves its observers once.
	handle := func(path string, h http.HandlerFunc) *mux.Route {
		return r.Handle(path, s.metrics.route(path, h))
	}

	// The key routes are also served without the router, by kvRoute.
	s.kv.get = s.metrics.route(kvTemplate, read(s.handleGet))
	s.kv.put = s.metrics.route(kvTemplate, write(s.handlePut))
	s.kv.del = s.metrics.route(kvTemplate, write(s.handleDelete))
	r.Handle(kvTemplate, s.kv.get).Methods(http.MethodGet, http.MethodHead)
	r.Handle(kvTemplate, s.kv.put).Methods(http.MethodPut)
	r.Handle(kvTemplate, s.kv.del).Methods(http.MethodDelete)
	handle("/v1/incr/{key:.+}", write(s.handleIncr)).Methods(http.MethodPost)
	handle("/v1/ttl/{key:.+}", write(s.handleSetTTL)).Methods(http.MethodPut, http.MethodDelete)
	handle("/v1/keys", read(s.handleKeys)).Methods(http.MethodGet)
	handle("/v1/keys", write(s.handleDeletePrefix)).Methods(http.MethodDelete)
	handle("/v1/batch", write(s.handleBatch)).Methods(http.MethodPost)
	handle("/v1/batch/get", read(s.handleBatchGet)).Methods(http.MethodPost)
	handle("/v1/watch", read(s.handleWatch)).Methods(http.MethodGet)
	handle("/v1/eval", read(s.handleEval)).Methods(http.MethodPost) // a script that may write checks for write itself (eval.go)
	handle("/v1/kv/", s.handleEmptyKey)
	handle("/v1/kv", s.handleEmptyKey)

	handle("/v1/cluster", read(s.handleCluster)).Methods(http.MethodGet)
	handle("/v1/cluster/formation", admin(s.handleFormation)).Methods(http.MethodGet)
	handle("/v1/cluster/members", admin(s.handleAddMember)).Methods(http.MethodPost)
	handle("/v1/cluster/members/{id}", admin(s.handleRemoveMember)).Methods(http.MethodDelete)
	handle("/v1/cluster/members/{id}/promote", admin(s.handleVoter(true))).Methods(http.MethodPost)
	handle("/v1/cluster/members/{id}/demote", admin(s.handleVoter(false))).Methods(http.MethodPost)
	handle("/v1/cluster/transfer-leadership", admin(s.handleTransfer)).Methods(http.MethodPost)
	handle("/v1/snapshot", admin(s.handleSnapshot)).Methods(http.MethodGet)
	handle("/v1/restore", admin(s.handleRestore)).Methods(http.MethodPost)
	handle("/v1/stats", read(s.handleStats)).Methods(http.MethodGet)

	handle("/metrics", read(s.metrics.handler().ServeHTTP)).Methods(http.MethodGet)
	if s.cfg.Pprof {
		handle("/debug/pprof/profile", admin(pprof.Profile))
		handle("/debug/pprof/trace", admin(pprof.Trace))
		r.PathPrefix("/debug/pprof/").Handler(s.metrics.route("/debug/pprof/", admin(pprof.Index)))
	}

	// Open like the probes: the leader asks every member for its feature
	// level with no credentials of a caller to pass on.
	handle("/v1/node", s.handleNode).Methods(http.MethodGet)
	handle("/livez", s.handleLivez).Methods(http.MethodGet, http.MethodHead)
	handle("/readyz", s.handleReadyz).Methods(http.MethodGet, http.MethodHead)
	return r
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header()["X-Served-By"] = s.servedBy
	s.handler.ServeHTTP(w, r)
}

// within bounds r's work by timeout without a timer per request (package
// deadline; one Shared per timeout). Release it when done.
func (s *Server) within(r *http.Request, timeout time.Duration) *deadline.Ctx {
	d := &s.writeDeadlines
	if timeout == defaultMinIndexWait {
		d = &s.indexDeadlines
	}
	return d.Within(r.Context(), timeout)
}

func (s *Server) setConnStats(f func() ConnStats) { s.connStats.Store(&f) }
