package transport_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/raftcache/raftcache/transport"
)

// TestStartingServesLivezOnly: before the node's API exists (stores
// opening, snapshot restoring) the HTTP address answers /livez 200,
// /readyz and every other route 503; once Serve hands it the API, every
// request goes there.
func TestStartingServesLivezOnly(t *testing.T) {
	st := transport.NewStarting()
	srv := httptest.NewServer(transport.NewHTTPServer(st, transport.ServerLimits{}).Handler)
	defer srv.Close()
	for path, want := range map[string]int{"/livez": http.StatusOK, "/readyz": http.StatusServiceUnavailable, "/v1/kv/k": http.StatusServiceUnavailable, "/metrics": http.StatusServiceUnavailable} {
		r := do(t, http.MethodGet, srv.URL+path, nil)
		if r.status != want {
			t.Errorf("starting: GET %s: %s, want %d", path, r, want)
		}
	}
	wantError(t, "starting /readyz", do(t, http.MethodGet, srv.URL+"/readyz", nil), http.StatusServiceUnavailable, "not_ready")
	wantError(t, "starting /v1/kv", do(t, http.MethodPut, srv.URL+"/v1/kv/k", nil), http.StatusServiceUnavailable, "unavailable")

	n := startLeader(t)
	st.Serve(n.API)
	waitFor(t, "the API behind the starting handler to be ready", func() bool {
		return do(t, http.MethodGet, srv.URL+"/readyz", nil).status == http.StatusOK
	})
	if r := do(t, http.MethodGet, srv.URL+"/v1/kv/missing", nil); r.status != http.StatusNotFound {
		t.Errorf("after Serve: GET a missing key: %s, want 404 from the API", r)
	}
}
