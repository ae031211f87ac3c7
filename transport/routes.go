package transport

import (
	"net/http"
	"strings"
)

// The key routes (GET, HEAD, PUT and DELETE /v1/kv/{key}) carry nearly
// all of a cache's traffic, and gorilla/mux costs them a regexp match
// and two copies of the request (its variables and its route go into
// the context). route serves them directly, with exactly the router's
// outcome: the router matches the escaped path, never cleaned, so
// /v1/kv/{key:.+} is every escaped path with that prefix and something
// after it (an escaped path has no newline for "." to miss). Everything
// else, other methods on a key (405) included, goes through the router.

const (
	kvTemplate = "/v1/kv/{key:.+}"
	kvPrefix   = "/v1/kv/"
)

// kvHandlers are the key routes' handlers, instrumented and behind
// their auth check, the same values the router serves.
type kvHandlers struct{ get, put, del http.Handler }

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	// The decoded path starts with the prefix whenever the escaped one
	// does (escaping only adds to it), so it is the cheap first test.
	if len(r.URL.Path) > len(kvPrefix) && strings.HasPrefix(r.URL.Path, kvPrefix) {
		if h := s.kv.of(r.Method); h != nil {
			if p := r.URL.EscapedPath(); len(p) > len(kvPrefix) && strings.HasPrefix(p, kvPrefix) {
				h.ServeHTTP(w, r)
				return
			}
		}
	}
	s.router.ServeHTTP(w, r)
}

func (k *kvHandlers) of(method string) http.Handler {
	switch method {
	case http.MethodGet, http.MethodHead:
		return k.get
	case http.MethodPut:
		return k.put
	case http.MethodDelete:
		return k.del
	}
	return nil
}
