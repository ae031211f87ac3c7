package transport_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/transport"
)

// From cluster level 6 an Idempotency-Key names one request: its retry
// is answered with the first result, the same key on any other request
// (another value, key, route or batch) is refused with 422 and changes
// nothing, and a request spelled differently but meaning the same (cas=0
// or If-None-Match: *, ttl in seconds or as a duration) is the same
// request.
func TestIdempotencyKeyReused(t *testing.T) {
	s := featStart(t, 0)
	if l := s.n.ClusterLevel(); l < fsm.LevelRequestDigest {
		t.Fatalf("setup: cluster level %d", l)
	}
	key := map[string]string{"Idempotency-Key": "req-1"}
	first := s.must(http.StatusOK, http.MethodPut, "/v1/kv/a", []byte("v1"), key)
	reused := func(method, path, body string, hdr map[string]string) {
		t.Helper()
		r := s.must(http.StatusUnprocessableEntity, method, path, []byte(body), hdr)
		featCode(t, r, "idempotency_key_reused")
		if r.header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("%s %s: a refused reuse says it was replayed", method, path)
		}
	}
	reused(http.MethodPut, "/v1/kv/a", "v2", key)        // another value
	reused(http.MethodPut, "/v1/kv/b", "v1", key)        // another key
	reused(http.MethodPut, "/v1/kv/a?ttl=60", "v1", key) // another TTL
	reused(http.MethodDelete, "/v1/kv/a", "", key)       // another route
	reused(http.MethodPost, "/v1/incr/counter", "", key) // another route
	reused(http.MethodPut, "/v1/ttl/a?ttl=60", "", key)  // another route
	if _, v, _ := s.get("a"); v != "v1" {
		t.Fatalf("a = %q after refused reuses, want v1", v)
	}
	if ok, _, _ := s.get("b"); ok {
		t.Fatal("b was written by a refused reuse")
	}
	again := s.must(http.StatusOK, http.MethodPut, "/v1/kv/a", []byte("v1"), key)
	if featVersion(t, again) != featVersion(t, first) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the retry after refused reuses: %s (replayed %q), first %s", again, again.header.Get("Idempotent-Replayed"), first)
	}

	// The same request spelled otherwise is a retry.
	k2 := map[string]string{"Idempotency-Key": "req-2"}
	p1 := s.must(http.StatusOK, http.MethodPut, "/v1/kv/c?cas=0&ttl=60", []byte("x"), k2)
	k2none := map[string]string{"Idempotency-Key": "req-2", "If-None-Match": "*"}
	p2 := s.must(http.StatusOK, http.MethodPut, "/v1/kv/c?ttl=1m", []byte("x"), k2none)
	if featVersion(t, p1) != featVersion(t, p2) || p2.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the same request spelled otherwise: %s then %s", p1, p2)
	}

	// Batches: the ops are the request.
	bk := map[string]string{"Idempotency-Key": "batch-1"}
	b1 := s.batch(http.StatusOK, `{"ops":[{"op":"incr","key":"bc","by":5}]}`, bk)
	b2 := s.batch(http.StatusOK, `{"ops":[{"op":"incr","key":"bc","by":5}]}`, bk)
	if string(b1.body) != string(b2.body) {
		t.Fatalf("a retried batch answered %s, first %s", b2, b1)
	}
	featCode(t, s.batch(http.StatusUnprocessableEntity, `{"ops":[{"op":"incr","key":"bc","by":6}]}`, bk), "idempotency_key_reused")
	featCode(t, s.batch(http.StatusUnprocessableEntity, `{"atomic":false,"ops":[{"op":"incr","key":"bc","by":5}]}`, bk), "idempotency_key_reused")
	if _, v, _ := s.get("bc"); v != "5" {
		t.Fatalf("bc = %q, want 5", v)
	}
	// A key that is a prefix of a used one is another key.
	s.must(http.StatusOK, http.MethodPut, "/v1/kv/d", []byte("1"), map[string]string{"Idempotency-Key": "req"})
}

// Below level 6 (a rolling upgrade under way) the key alone names the
// request, as before: a reuse is answered with the first result.
func TestIdempotencyKeyReusedBelowLevel6(t *testing.T) {
	n := testcluster.Start(t, 1, testcluster.Options{HTTP: &transport.Config{}, Level: fsm.LevelStoredBudget,
		Configure: func(_ string, c *testcluster.NodeConfig) { c.Node.FeatureLevel = fsm.LevelStoredBudget }}).Leader(t)
	s := &featServer{t: t, n: n.Node, url: n.URL}
	if l := s.n.ClusterLevel(); l != fsm.LevelStoredBudget {
		t.Fatalf("setup: cluster level %d", l)
	}
	key := map[string]string{"Idempotency-Key": "req-1"}
	first := s.must(http.StatusOK, http.MethodPut, "/v1/kv/a", []byte("v1"), key)
	r := s.must(http.StatusOK, http.MethodPut, "/v1/kv/a", []byte("v2"), key)
	if featVersion(t, r) != featVersion(t, first) || r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("a reuse below level 6: %s, first %s", r, first)
	}
	if _, v, _ := s.get("a"); v != "v1" {
		t.Fatalf("a = %q, want v1", v)
	}
}

// Raftcache-Resend: a keyed retry after a lost answer names the index its
// first attempt applies above. A key the server does not know while keys
// applied above that index were forgotten may have been applied and
// forgotten: 409 key_forgotten (outcome unknown, not worth sending
// again), nothing applied. (The raise to level 5
// counts everything before it as possibly forgotten, so index 0 is such a
// retry on any cluster.) A retry whose key is known is answered as ever;
// one whose first attempt could only apply after everything forgotten is
// applied.
func TestResendHeader(t *testing.T) {
	s := featStart(t, 0)
	h := func(key, after string) map[string]string {
		return map[string]string{"Idempotency-Key": key, "Raftcache-Resend": after}
	}
	featCode(t, s.must(http.StatusConflict, http.MethodPut, "/v1/kv/a", []byte("1"), h("r1", "0")), "key_forgotten")
	featCode(t, s.batch(http.StatusConflict, `{"ops":[{"op":"incr","key":"n"}]}`, h("r2", "0")), "key_forgotten")
	if ok, _, _ := s.get("a"); ok {
		t.Fatal("a refused resend wrote a")
	}
	if ok, _, _ := s.get("n"); ok {
		t.Fatal("a refused resend wrote n")
	}
	now := strconv.FormatUint(s.n.LocalView().Index(), 10)
	first := s.must(http.StatusOK, http.MethodPut, "/v1/kv/a", []byte("1"), h("r3", now))
	again := s.must(http.StatusOK, http.MethodPut, "/v1/kv/a", []byte("1"), h("r3", "0"))
	if featVersion(t, again) != featVersion(t, first) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("a resend of a known key: %s, first %s", again, first)
	}
	featCode(t, s.must(http.StatusBadRequest, http.MethodPut, "/v1/kv/a", []byte("1"), h("r4", "x")), "bad_resend")
	// Without a key it means nothing.
	s.must(http.StatusOK, http.MethodPut, "/v1/kv/b", []byte("1"), map[string]string{"Raftcache-Resend": "0"})
}
