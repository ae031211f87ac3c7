package transport_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

type writeResult struct {
	Version uint64 `json:"version"`
	Index   uint64 `json:"index"`
}

// put writes value to key (escaped path) and returns the decoded answer.
func put(t *testing.T, n *testNode, key, value string, query string) writeResult {
	t.Helper()
	url := n.URL + "/v1/kv/" + key
	if query != "" {
		url += "?" + query
	}
	r := do(t, http.MethodPut, url, strings.NewReader(value))
	if r.status != http.StatusOK {
		t.Fatalf("PUT %s: %s", url, r)
	}
	var w writeResult
	decodeJSON(t, r, &w)
	if w.Version == 0 || w.Index == 0 || r.header.Get("X-Raft-Index") != strconv.FormatUint(w.Index, 10) {
		t.Fatalf("PUT %s: %+v with X-Raft-Index %q", url, w, r.header.Get("X-Raft-Index"))
	}
	return w
}

// get reads key (escaped path) and checks the value and the headers every
// hit carries.
func get(t *testing.T, n *testNode, key, want string) response {
	t.Helper()
	r := do(t, http.MethodGet, n.URL+"/v1/kv/"+key, nil)
	if r.status != http.StatusOK || string(r.body) != want {
		t.Fatalf("GET %s = %s, want 200 %q", key, r, want)
	}
	if r.header.Get("ETag") == "" || r.header.Get("X-Raft-Index") == "" || r.header.Get("X-Served-By") != n.ID() {
		t.Fatalf("GET %s: headers %v", key, r.header)
	}
	return r
}

func TestPutGetDelete(t *testing.T) {
	n := startLeader(t)

	w1 := put(t, n, "greeting", "hello", "")
	r := get(t, n, "greeting", "hello")
	if etag := r.header.Get("ETag"); etag != `"`+strconv.FormatUint(w1.Version, 10)+`"` {
		t.Errorf("ETag %q, want the version %d quoted", etag, w1.Version)
	}
	if idx, _ := strconv.ParseUint(r.header.Get("X-Raft-Index"), 10, 64); idx < w1.Index {
		t.Errorf("X-Raft-Index %d of the read is before the write's index %d", idx, w1.Index)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if r.header.Get("X-Expires-At") != "" {
		t.Errorf("X-Expires-At on a key without TTL: %q", r.header.Get("X-Expires-At"))
	}

	// Overwrite: a new, larger version and ETag.
	w2 := put(t, n, "greeting", "bonjour", "")
	if w2.Version <= w1.Version {
		t.Errorf("overwrite version %d, not after %d", w2.Version, w1.Version)
	}
	r = get(t, n, "greeting", "bonjour")
	if r.header.Get("ETag") != `"`+strconv.FormatUint(w2.Version, 10)+`"` {
		t.Errorf("ETag after overwrite %q, want version %d", r.header.Get("ETag"), w2.Version)
	}

	// HEAD: same headers, no body.
	h := do(t, http.MethodHead, n.URL+"/v1/kv/greeting", nil)
	if h.status != http.StatusOK || len(h.body) != 0 || h.header.Get("Content-Length") != "7" ||
		h.header.Get("ETag") != r.header.Get("ETag") || h.header.Get("X-Served-By") != n.ID() {
		t.Errorf("HEAD = %s, headers %v", h, h.header)
	}

	// An empty value is a value.
	put(t, n, "empty", "", "")
	get(t, n, "empty", "")

	// DELETE reports whether a live key was removed.
	d := do(t, http.MethodDelete, n.URL+"/v1/kv/greeting", nil)
	var del struct {
		Deleted *bool   `json:"deleted"`
		Index   *uint64 `json:"index"`
	}
	decodeJSON(t, d, &del)
	if d.status != http.StatusOK || del.Deleted == nil || !*del.Deleted || del.Index == nil || *del.Index <= w2.Index {
		t.Fatalf("DELETE = %s", d)
	}
	d = do(t, http.MethodDelete, n.URL+"/v1/kv/greeting", nil)
	if d.status != http.StatusOK || !strings.Contains(string(d.body), `"deleted":false`) {
		t.Errorf("second DELETE = %s, want deleted false", d)
	}

	wantError(t, "GET after delete", do(t, http.MethodGet, n.URL+"/v1/kv/greeting", nil), http.StatusNotFound, "not_found")
	h = do(t, http.MethodHead, n.URL+"/v1/kv/greeting", nil)
	if h.status != http.StatusNotFound || len(h.body) != 0 {
		t.Errorf("HEAD after delete = %s", h)
	}
	wantError(t, "GET never written", do(t, http.MethodGet, n.URL+"/v1/kv/never", nil), http.StatusNotFound, "not_found")
}

// expiresAt returns the X-Expires-At header of a GET of key, in ms.
func expiresAt(t *testing.T, n *testNode, key string) int64 {
	t.Helper()
	r := do(t, http.MethodGet, n.URL+"/v1/kv/"+key, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %s", key, r)
	}
	ms, err := strconv.ParseInt(r.header.Get("X-Expires-At"), 10, 64)
	if err != nil {
		t.Fatalf("GET %s: X-Expires-At %q: %v", key, r.header.Get("X-Expires-At"), err)
	}
	return ms
}

func TestPutTTL(t *testing.T) {
	n := startLeader(t)
	// The expiry is the leader's clock at the write plus the TTL; the
	// bounds are the wall clock around the request (no timing assertion).
	for _, tc := range []struct {
		query string
		ttl   time.Duration
	}{
		{"ttl=1", time.Second},                  // plain seconds
		{"ttl=1500ms", 1500 * time.Millisecond}, // Go duration
		{"ttl=2h", 2 * time.Hour},
	} {
		before := time.Now()
		put(t, n, "ttl-key", "v", tc.query)
		after := time.Now()
		got := expiresAt(t, n, "ttl-key")
		lo, hi := before.Add(tc.ttl).UnixMilli()-1, after.Add(tc.ttl).UnixMilli()
		if got < lo || got > hi {
			t.Errorf("%s: X-Expires-At %d, want between %d and %d", tc.query, got, lo, hi)
		}
	}

	// A plain PUT clears the expiry.
	put(t, n, "ttl-key", "forever", "")
	if r := get(t, n, "ttl-key", "forever"); r.header.Get("X-Expires-At") != "" {
		t.Errorf("PUT without ttl kept X-Expires-At %q", r.header.Get("X-Expires-At"))
	}

	// A short TTL really expires.
	put(t, n, "short", "v", "ttl=200ms")
	put(t, n, "long", "v", "ttl=1h")
	waitFor(t, "the 200ms key to expire", func() bool {
		return do(t, http.MethodGet, n.URL+"/v1/kv/short", nil).status == http.StatusNotFound
	})
	wantError(t, "expired key", do(t, http.MethodGet, n.URL+"/v1/kv/short", nil), http.StatusNotFound, "not_found")
	get(t, n, "long", "v")
}
