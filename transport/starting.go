package transport

import (
	"net/http"
	"sync/atomic"
)

// Starting is the HTTP handler of a node that is still opening its stores
// and restoring its snapshot, which can take minutes for a big cache. It
// answers /livez at once (the process is alive: a liveness probe must not
// kill it in a loop while it restores), /readyz and every other route 503
// "starting", until Serve hands it the node's API. The caller listens on
// the HTTP address and serves a Starting before it opens the node, so the
// address answers from the first moment of the process.
type Starting struct {
	api   atomic.Pointer[Server]
	stats atomic.Pointer[func() ConnStats]
}

// NewStarting returns a handler that serves only /livez until Serve.
func NewStarting() *Starting { return &Starting{} }

// Serve makes every later request go to api.
func (st *Starting) Serve(api *Server) {
	if f := st.stats.Load(); f != nil {
		api.setConnStats(*f)
	}
	st.api.Store(api)
}

// setConnStats lets NewHTTPServer wire the connection statistics to the
// API that will serve later (see connMetrics).
func (st *Starting) setConnStats(f func() ConnStats) {
	st.stats.Store(&f)
	if api := st.api.Load(); api != nil {
		api.setConnStats(f)
	}
}

// ServeHTTP implements http.Handler.
func (st *Starting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if api := st.api.Load(); api != nil {
		api.ServeHTTP(w, r)
		return
	}
	if r.URL.Path == "/livez" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "phase": "starting"})
		return
	}
	w.Header().Set("Retry-After", "1")
	code := "unavailable"
	if r.URL.Path == "/readyz" {
		code = "not_ready"
	}
	writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "starting: opening the stores and restoring the latest snapshot", Code: code})
}
