package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/raftcache/raftcache/node"
)

// TestNodeProberRegistration: the leader's probe reads "registered" from
// GET /v1/node; a binary from before it (no field) counts as registered,
// as it always was, so an upgrade never holds back a promotion.
func TestNodeProberRegistration(t *testing.T) {
	for _, c := range []struct {
		name, body   string
		unregistered bool
	}{
		{"registered", `{"id":"n2","feature_level":4,"applied_index":7,"registered":true}`, false},
		{"unregistered", `{"id":"n2","feature_level":4,"applied_index":7,"registered":false}`, true},
		{"older binary", `{"id":"n2","feature_level":3,"applied_index":7}`, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/node" {
				http.NotFound(w, r)
				return
			}
			_, _ = w.Write([]byte(c.body))
		}))
		info, err := nodeProber(false, nil)(context.Background(), node.Member{ID: "n2", HTTPAddr: strings.TrimPrefix(srv.URL, "http://")})
		srv.Close()
		if err != nil || info.Unregistered != c.unregistered || !info.HasIndex || info.AppliedIndex != 7 {
			t.Errorf("%s: %+v, %v; want Unregistered %v", c.name, info, err, c.unregistered)
		}
	}
}
