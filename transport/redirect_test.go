package transport_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftcache/raftcache/internal/testcluster"
)

// withStableLeader runs check against a stable leader and a follower. If
// the check fails only because leadership moved while it ran (a loaded
// 2-core machine under -race can cause an election), it runs again
// with the new leader, for up to 3*deadline; a failure under a steady
// leader is final.
func withStableLeader(t *testing.T, c *testcluster.Cluster, check func(leader, follower *testNode) error) {
	t.Helper()
	giveUp := time.Now().Add(3 * deadline)
	for attempt := 1; ; attempt++ {
		leader := c.WaitAgreed(t)
		followers := c.Followers(leader)
		term := leader.Status().Term
		err := check(leader, followers[0])
		if err == nil {
			return
		}
		moved := !leader.IsLeader() || leader.Status().Term != term
		if !moved || time.Now().After(giveUp) {
			t.Fatalf("attempt %d (leadership moved: %v): %v", attempt, moved, err)
		}
		t.Logf("attempt %d failed while leadership moved (%v); retrying", attempt, err)
	}
}

func TestFollowerRedirects(t *testing.T) {
	c := startCluster(t, 3)
	withStableLeader(t, c, func(leader, f *testNode) error {
		for _, tc := range []struct {
			method, path, body string
		}{
			{http.MethodPut, "/v1/kv/r1?ttl=1h", "body"},
			{http.MethodPut, "/v1/kv/x%2Fy%00?ttl=5s&cas=0", "body"},
			{http.MethodDelete, "/v1/kv/r1", ""},
			{http.MethodGet, "/v1/kv/r1", ""},
			{http.MethodGet, "/v1/kv/r1?consistency=strong", ""},
		} {
			r := do(t, tc.method, f.URL+tc.path, strings.NewReader(tc.body))
			want := "http://" + leader.HTTPAddr() + tc.path
			if r.status != http.StatusTemporaryRedirect || r.header.Get("Location") != want {
				return errors.New(tc.method + " " + tc.path + " on a follower: " + r.String() + ", Location " +
					r.header.Get("Location") + "; want 307 to " + want)
			}
			if r.header.Get("X-Served-By") != f.ID() || !strings.Contains(string(r.body), `"code":"redirect"`) {
				return errors.New("redirect response: " + r.String())
			}
		}
		return nil
	})
	// Bad requests are refused by the follower itself, not redirected.
	f := c.Followers(c.WaitAgreed(t))[0]
	wantError(t, "bad ttl on a follower", do(t, http.MethodPut, f.URL+"/v1/kv/x?ttl=abc", strings.NewReader("v")), 400, "bad_ttl")
	wantError(t, "empty key on a follower", do(t, http.MethodPut, f.URL+"/v1/kv/", strings.NewReader("v")), 400, "empty_key")
	wantError(t, "bad consistency on a follower", do(t, http.MethodGet, f.URL+"/v1/kv/x?consistency=bogus", nil), 400, "bad_consistency")

	// Nothing was written by the redirected requests themselves.
	for _, n := range c.Nodes() {
		if s := stats(t, n); *s.Keys != 0 {
			t.Errorf("%s holds %d keys after redirects only", n.ID(), *s.Keys)
		}
	}
}

// TestFollowerStatus: a caught-up follower is ready and names the leader.
func TestFollowerStatus(t *testing.T) {
	c := startCluster(t, 3)
	withStableLeader(t, c, func(leader, f *testNode) error {
		if r := do(t, http.MethodGet, f.URL+"/readyz", nil); r.status != http.StatusOK {
			return errors.New("/readyz on a follower: " + r.String())
		}
		c := cluster(t, f)
		if c.NodeID != f.ID() || c.State != "Follower" || c.Leader == nil || c.Leader.ID != leader.ID() ||
			c.Leader.HTTPAddr != leader.HTTPAddr() || len(c.Members) != 3 {
			return errors.New("/v1/cluster on a follower: " + trunc(fmt.Sprintf("%+v", c)))
		}
		for _, m := range c.Members {
			if m.HTTPAddr == "" || m.RaftAddr == "" || m.Voter == nil || !*m.Voter {
				return fmt.Errorf("member %+v", m)
			}
		}
		return nil
	})
}

// TestFollowingRedirects uses Go's default client, which follows 307 and
// must re-send the body; then a stale read on the follower sees the write.
func TestFollowingRedirects(t *testing.T) {
	c := startCluster(t, 3)
	follows := &http.Client{Timeout: 30 * time.Second}
	withStableLeader(t, c, func(leader, f *testNode) error {
		body := strings.Repeat("payload ", 1000)
		req, _ := http.NewRequest(http.MethodPut, f.URL+"/v1/kv/followed%2Fkey?ttl=1h", strings.NewReader(body))
		r := send(t, follows, req)
		if r.status != http.StatusOK || r.header.Get("X-Served-By") != leader.ID() {
			return errors.New("followed PUT: " + r.String() + " served by " + r.header.Get("X-Served-By"))
		}
		var w writeResult
		decodeJSON(t, r, &w)

		// The leader stored the whole body under the unescaped key.
		get(t, leader, "followed/key", body)

		// A stale read on the follower is served there, once it applied w.
		stale := do(t, http.MethodGet, f.URL+"/v1/kv/followed%2Fkey?consistency=stale&min_index="+strconv.FormatUint(w.Index, 10), nil)
		if stale.status != http.StatusOK || string(stale.body) != body || stale.header.Get("X-Served-By") != f.ID() ||
			stale.header.Get("Location") != "" {
			return errors.New("stale read on the follower: " + trunc(stale.String()) + " served by " + stale.header.Get("X-Served-By"))
		}
		if stale.header.Get("X-Last-Contact") == "" || stale.header.Get("X-Expires-At") == "" {
			return errors.New("stale read headers: " + strings.Join(stale.header.Values("X-Last-Contact"), ","))
		}

		// DELETE through the follower, followed.
		req, _ = http.NewRequest(http.MethodDelete, f.URL+"/v1/kv/followed%2Fkey", nil)
		if d := send(t, follows, req); d.status != http.StatusOK || !strings.Contains(string(d.body), `"deleted":true`) {
			return errors.New("followed DELETE: " + d.String())
		}
		return nil
	})
}

// TestRedirectKeepsDotSegmentKey: the key "a/../b" written through a
// follower must land on the leader as "a/../b". A client resolving the
// Location header removes dot segments (RFC 3986 5.2; Go's http.Client
// and curl both do), so the Location must spell dot segments escaped.
func TestRedirectKeepsDotSegmentKey(t *testing.T) {
	c := startCluster(t, 3)
	follows := &http.Client{Timeout: 30 * time.Second}
	withStableLeader(t, c, func(leader, f *testNode) error {
		req, _ := http.NewRequest(http.MethodPut, f.URL+"/", strings.NewReader("dots"))
		req.URL.Opaque = "//" + f.HTTPAddr() + "/v1/kv/a/../b"
		r := send(t, follows, req)
		if r.status != http.StatusOK {
			return errors.New("followed PUT: " + r.String())
		}
		if g := do(t, http.MethodGet, leader.URL+"/v1/kv/"+url.PathEscape("a/../b"), nil); g.status != http.StatusOK {
			b := do(t, http.MethodGet, leader.URL+"/v1/kv/b", nil)
			t.Fatalf("key a/../b: %s; key b: %s: the redirect wrote another key", g, b)
		}
		return nil
	})
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
