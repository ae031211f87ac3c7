package transport_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The key routes' own path (routes.go) answers exactly as the router
// does: same status, error code, headers and body, for every method and
// for paths the router treats specially (escaped slashes, dot segments,
// empty keys, escapes in the prefix).
func TestKeyRoutesAnswerAsTheRouter(t *testing.T) {
	n := startLeader(t)
	put(t, n, "a", "va", "")
	put(t, n, "a%2Fb", "vab", "")
	paths := []string{
		"/v1/kv/a", "/v1/kv/a%2Fb", "/v1/kv/a/b", "/v1/kv/a/../b", "/v1/kv/./x", "/v1/kv//x",
		"/v1/kv/", "/v1/kv", "/v1/kv//", "/v1/kv%2Fa", "/v1/k%76/a", "/v1/kv/%41", "/v1/kv/a?consistency=stale",
		"/v1/kv/a?consistency=bogus", "/v1/kv/a?consistency=stale&min_index=1", "/v1/kv/a?cas=x", "/v1/kv/" + strings.Repeat("k", 2000),
		"/v1/kvx/a", "/v1/kv/missing",
	}
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodOptions, http.MethodPatch, http.MethodPut, http.MethodDelete}
	for _, path := range paths {
		for _, method := range methods {
			if method == http.MethodPut || method == http.MethodDelete {
				// Writes change the key: compare them on a fresh key of
				// the same form each time, and without the versions.
				if !strings.HasPrefix(path, "/v1/kv/a") {
					continue
				}
			}
			serve := func(h http.Handler, p string) *httptest.ResponseRecorder {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(method, p, strings.NewReader("v")))
				return w
			}
			fast, slow := path, path
			if method == http.MethodPut || method == http.MethodDelete {
				fast, slow = strings.Replace(path, "/v1/kv/a", "/v1/kv/fast-a", 1), strings.Replace(path, "/v1/kv/a", "/v1/kv/slow-a", 1)
			}
			got, want := serve(n.API, fast), serve(n.API.ViaRouter(), slow)
			what := method + " " + path
			if got.Code != want.Code {
				t.Errorf("%s: %d, the router answers %d (%s)", what, got.Code, want.Code, want.Body)
				continue
			}
			if method == http.MethodPut || method == http.MethodDelete {
				if code(got.Body.Bytes()) != code(want.Body.Bytes()) {
					t.Errorf("%s: %s, the router answers %s", what, got.Body, want.Body)
				}
				continue
			}
			if got.Body.String() != want.Body.String() {
				t.Errorf("%s: body %q, the router answers %q", what, got.Body, want.Body)
			}
			for _, h := range []string{"Content-Type", "Content-Length", "Etag", "X-Served-By", "Allow", "Retry-After"} {
				if g, w := got.Header().Values(h), want.Header().Values(h); strings.Join(g, ",") != strings.Join(w, ",") {
					t.Errorf("%s: %s %q, the router answers %q", what, h, g, w)
				}
			}
		}
	}
}

func code(body []byte) string {
	var e errorBody
	_ = json.Unmarshal(body, &e)
	return e.Code
}
