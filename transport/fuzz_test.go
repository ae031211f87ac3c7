package transport

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/raftcache/raftcache/internal/fuzznode"
	"github.com/raftcache/raftcache/node"
)

// FuzzParseTTL: any string is either refused or a TTL within bounds.
func FuzzParseTTL(f *testing.F) {
	for _, s := range []string{"", "30", "30s", "1h30m", "-5", "0", "1e99", "9223372036854775807", "1.5h", "abc", "100000000h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseTTL(s)
		if err == nil && (d < 0 || d > maxTTL || (s != "" && d == 0)) {
			t.Fatalf("parseTTL(%q) = %v", s, d)
		}
	})
}

// FuzzReadOptions: any query string is refused or gives options a read
// can use (a positive wait; staleness options only with stale reads).
func FuzzReadOptions(f *testing.F) {
	for _, q := range []string{"", "consistency=stale", "consistency=stale&min_index=7", "max_stale=2s&consistency=stale",
		"consistency=strong&min_index=1", "min_index=-1", "consistency=%ff", "max_stale=-1s"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		opt, wait, err := readOptions(query{values: v})
		if err != nil {
			return
		}
		if wait <= 0 || (opt.Consistency == node.Strong && (opt.MinIndex > 0 || opt.MaxStale > 0)) {
			t.Fatalf("readOptions(%q) = %+v, wait %v", q, opt, wait)
		}
	})
}

// FuzzQuery: query reads a query string as url.Values does, whether it
// takes it in place or through url.ParseQuery.
func FuzzQuery(f *testing.F) {
	for _, q := range []string{"", "consistency=stale", "a=1&a=2", "a&b=", "=x&a=y", "&&a=1", "a=%41", "a=1;b=2", "a=b=c", "a+b=c"} {
		f.Add(q, "a")
	}
	f.Fuzz(func(t *testing.T, raw, key string) {
		r := &http.Request{URL: &url.URL{RawQuery: raw}}
		if got, want := queryFrom(r).Get(key), r.URL.Query().Get(key); got != want {
			t.Fatalf("query %q, key %q: %q, url.Values says %q", raw, key, got, want)
		}
	})
}

// FuzzHTTPRequest sends arbitrary paths, queries, headers and bodies to a
// real node: it never panics, never answers 500, and always answers JSON
// errors.
func FuzzHTTPRequest(f *testing.F) {
	for _, s := range []struct{ method, target, header, body string }{
		{"PUT", "/v1/kv/a?ttl=30s", "", "v"},
		{"PUT", "/v1/kv/a%2Fb?cas=0", "If-None-Match: *", "v"},
		{"GET", "/v1/kv/a/../b?consistency=stale&min_index=1", "", ""},
		{"POST", "/v1/incr/c?by=-3&ttl=1", "Idempotency-Key: k1", ""},
		{"POST", "/v1/batch", "", `{"ops":[{"op":"set","key":"x","value":"1"},{"op":"incr","key":"x"}]}`},
		{"POST", "/v1/batch/get", "", `{"keys":["x","y"]}`},
		{"GET", "/v1/keys?prefix=a&limit=2&cursor=a", "", ""},
		{"DELETE", "/v1/keys?prefix=", "", ""},
		{"PUT", "/v1/ttl/a?ttl=0", "", ""},
		{"POST", "/v1/cluster/members", "", `{"id":"x","raft_addr":"h:0","http_addr":"h:1"}`},
		{"PUT", "/v1/kv/" + strings.Repeat("k", 1100), "", ""},
	} {
		f.Add(s.method, s.target, s.header, []byte(s.body))
	}
	h := New(fuzznode.Get(f), Config{})
	f.Fuzz(func(t *testing.T, method, target, header string, body []byte) {
		if method == "" || strings.ContainsAny(method, " \t\r\n/?#") || len(method) > 16 {
			return
		}
		req, err := http.NewRequest(method, "http://raftcache"+"/"+strings.TrimPrefix(target, "/"), bytes.NewReader(body))
		if err != nil {
			return
		}
		if k, v, ok := strings.Cut(header, ":"); ok && k != "" && !strings.ContainsAny(k, " \r\n") && !strings.ContainsAny(v, "\r\n") {
			req.Header.Set(k, strings.TrimSpace(v))
		}
		if strings.HasPrefix(req.URL.Path, "/v1/cluster/members") || strings.HasPrefix(req.URL.Path, "/v1/restore") ||
			strings.HasPrefix(req.URL.Path, "/v1/cluster/transfer") {
			return // would change the shared cluster's membership or contents wholesale
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable && rec.Code != http.StatusGatewayTimeout {
			t.Fatalf("%s %s: %d %s", method, target, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%s %s: %d without a JSON body", method, target, rec.Code)
		}
	})
}
