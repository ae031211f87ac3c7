package transport

import "net/http"

// ViaRouter serves every request through the router, as before the key
// routes had their own path (routes.go), so a test can compare the two.
func (s *Server) ViaRouter() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Served-By"] = s.servedBy
		s.limit(s.router).ServeHTTP(w, r)
	})
}
