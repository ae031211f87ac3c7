package transport

import (
	"net/http"
)

// DefaultMaxInflight bounds the requests one node works on at once. Past
// it, requests are refused at once with 503 and Retry-After rather than
// queued without bound: a client (or the load balancer) retries elsewhere
// or later, and the node's memory stays bounded under a flood.
const DefaultMaxInflight = 4096

// limit admits at most cap(s.inflight) requests at a time. Probes are
// always admitted, so a saturated node still reports that it is alive.
func (s *Server) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/livez" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case s.inflight <- struct{}{}:
			defer func() { <-s.inflight }()
			next.ServeHTTP(w, r)
		default:
			writeError(w, &requestError{http.StatusServiceUnavailable, "overloaded",
				"too many requests in flight on this node; retry shortly"})
		}
	})
}
