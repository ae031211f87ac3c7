package transport_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestBadRequestsAreRejectedAndHarmless sends every kind of malformed
// request to a leader holding some keys: each must get the right 4xx with
// a JSON error code, and afterwards the keys must be exactly as they were.
func TestBadRequestsAreRejectedAndHarmless(t *testing.T) {
	n := startLeader(t)
	put(t, n, "keep-1", "one", "")
	put(t, n, "keep-2", "two", "ttl=1h")
	put(t, n, "a%2Fb", "slash", "")
	before := map[string]response{}
	for _, k := range []string{"keep-1", "keep-2", "a%2Fb"} {
		before[k] = do(t, http.MethodGet, n.URL+"/v1/kv/"+k, nil)
	}
	statsBefore := stats(t, n)

	kv := n.URL + "/v1/kv/"
	type badReq struct {
		method, url string
		body        string
		status      int
		code        string
	}
	long := strings.Repeat("k", 1025)
	var cases []badReq
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodHead} {
		for _, u := range []string{n.URL + "/v1/kv/", n.URL + "/v1/kv"} {
			cases = append(cases, badReq{m, u, "", 400, "empty_key"})
		}
		cases = append(cases,
			badReq{m, kv + long, "", 400, "key_too_large"},
			badReq{m, kv + url.PathEscape(strings.Repeat("\xff", 1025)), "", 400, "key_too_large"},
		)
	}
	for _, ttl := range []string{"abc", "-5", "0", "1e99", "0s", "-1s", "1.5", "99999999999999999999", "3153600001", "876001h", "5x"} {
		cases = append(cases, badReq{http.MethodPut, kv + "ttl-victim?ttl=" + url.QueryEscape(ttl), "v", 400, "bad_ttl"})
	}
	for _, q := range []string{
		"consistency=bogus", "consistency=STRONG", "consistency=stale&min_index=-1", "consistency=stale&min_index=x",
		"consistency=stale&max_stale=x", "consistency=stale&max_stale=-1s", "consistency=stale&max_stale=0",
		"min_index=5", "consistency=strong&min_index=5", "max_stale=1s",
	} {
		code := "bad_consistency"
		switch {
		case strings.Contains(q, "min_index=-") || strings.Contains(q, "min_index=x"):
			code = "bad_min_index"
		case strings.Contains(q, "stale&max_stale"):
			code = "bad_max_stale"
		}
		cases = append(cases, badReq{http.MethodGet, kv + "keep-1?" + q, "", 400, code})
	}
	cases = append(cases,
		badReq{http.MethodGet, n.URL + "/nope", "", 404, "no_route"},
		badReq{http.MethodGet, n.URL + "/v1/kvx/a", "", 404, "no_route"},
		badReq{http.MethodGet, n.URL + "/v2/kv/a", "", 404, "no_route"},
		badReq{http.MethodDelete, n.URL + "/v1/cluster/members/", "", 404, "no_route"},
		badReq{http.MethodPost, kv + "keep-1", "x", 405, "method_not_allowed"},
		badReq{http.MethodPatch, kv + "keep-1", "x", 405, "method_not_allowed"},
		badReq{http.MethodPut, n.URL + "/v1/cluster", "", 405, "method_not_allowed"},
		badReq{http.MethodDelete, n.URL + "/v1/stats", "", 405, "method_not_allowed"},
		badReq{http.MethodGet, n.URL + "/v1/cluster/members", "", 405, "method_not_allowed"},
		badReq{http.MethodPost, n.URL + "/livez", "", 405, "method_not_allowed"},
		badReq{http.MethodDelete, n.URL + "/v1/cluster/members/nosuch", "", 404, "unknown_member"},
		badReq{http.MethodDelete, n.URL + "/v1/cluster/members/n1?force=maybe", "", 400, "bad_force"},
		badReq{http.MethodPost, n.URL + "/v1/cluster/members/n1/demote?force=2x", "", 400, "bad_force"},
	)
	members := n.URL + "/v1/cluster/members"
	good := map[string]string{"id": "n9", "raft_addr": "127.0.0.1:1", "http_addr": "127.0.0.1:2"}
	memberJSON := func(field, value string) string {
		m := map[string]string{}
		for k, v := range good {
			m[k] = v
		}
		m[field] = value
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, body := range []string{"", "{", "[]", `"n9"`, `{"id":"n9","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2","voter":"yes"}`,
		`{"id":"n9","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2","extra":1}`} {
		cases = append(cases, badReq{http.MethodPost, members, body, 400, "bad_json"})
	}
	cases = append(cases, badReq{http.MethodPost, members, `{"id":` + strings.Repeat(" ", 70<<10) + `"n9"}`, 413, "body_too_large"})
	for _, fv := range [][2]string{
		{"id", ""}, {"id", strings.Repeat("i", 129)},
		{"raft_addr", ""}, {"raft_addr", "nope"}, {"raft_addr", "127.0.0.1"}, {"raft_addr", "127.0.0.1:0"},
		{"raft_addr", "127.0.0.1:65536"}, {"raft_addr", ":8080"}, {"raft_addr", "127.0.0.1:x"}, {"raft_addr", "127.0.0.1:-1"},
		{"http_addr", ""}, {"http_addr", "h"}, {"http_addr", "[::1]:99999"},
	} {
		cases = append(cases, badReq{http.MethodPost, members, memberJSON(fv[0], fv[1]), 400, "bad_member"})
	}

	for _, c := range cases {
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		what := fmt.Sprintf("%s %.80s %.40q", c.method, c.url, c.body)
		r := do(t, c.method, c.url, body)
		if c.method == http.MethodHead {
			if r.status != c.status || len(r.body) != 0 {
				t.Errorf("%s: %s, want %d and no body", what, r, c.status)
			}
			continue
		}
		wantError(t, what, r, c.status, c.code)
		if r.header.Get("X-Served-By") != n.ID() {
			t.Errorf("%s: X-Served-By %q", what, r.header.Get("X-Served-By"))
		}
	}

	// Nothing was written, lost or changed.
	for k, want := range before {
		got := do(t, http.MethodGet, n.URL+"/v1/kv/"+k, nil)
		if got.status != 200 || !bytes.Equal(got.body, want.body) || got.header.Get("ETag") != want.header.Get("ETag") ||
			got.header.Get("X-Expires-At") != want.header.Get("X-Expires-At") {
			t.Errorf("%s changed: %s (ETag %s), was %s (ETag %s)", k, got, got.header.Get("ETag"), want, want.header.Get("ETag"))
		}
	}
	wantError(t, "the ttl victim", do(t, http.MethodGet, kv+"ttl-victim", nil), 404, "not_found")
	if after := stats(t, n); *after.Keys != *statsBefore.Keys || after.Digest != statsBefore.Digest {
		t.Errorf("stats changed: %d keys, digest %s; was %d, %s", *after.Keys, after.Digest, *statsBefore.Keys, statsBefore.Digest)
	}
	if ms, err := n.Members(); err != nil || len(ms) != 1 {
		t.Errorf("members after bad requests: %+v %v", ms, err)
	}
}

func TestKeySizeLimitIsAfterDecoding(t *testing.T) {
	n := startLeader(t)
	k1024 := strings.Repeat("k", 1024)
	put(t, n, k1024, "plain", "")
	get(t, n, k1024, "plain")
	// 1024 bytes that take 3072 characters to write are still 1024 bytes.
	enc := url.PathEscape(strings.Repeat("\xff", 1024))
	put(t, n, enc, "escaped", "")
	get(t, n, enc, "escaped")
}

func TestValueSizeLimit(t *testing.T) {
	n := startLeader(t)
	kv := n.URL + "/v1/kv/"

	// Exactly the limit is accepted, with and without Content-Length.
	put(t, n, "max", strings.Repeat("m", maxValue), "")
	r := chunkedPut(t, kv+"max-chunked", maxValue)
	if r.status != http.StatusOK {
		t.Fatalf("chunked PUT of exactly the limit: %s", r)
	}

	// One byte more is 413 either way. With Content-Length the server
	// answers from the headers; send them alone, so the answer cannot race
	// with the client still writing the body.
	r = raw(t, n.HTTPAddr(), "PUT /v1/kv/big HTTP/1.1\r\nHost: x\r\nContent-Length: "+fmt.Sprint(maxValue+1)+"\r\n\r\n")
	wantError(t, "Content-Length over the limit", r, http.StatusRequestEntityTooLarge, "value_too_large")
	r = raw(t, n.HTTPAddr(), "PUT /v1/kv/big HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\n")
	wantError(t, "huge Content-Length", r, http.StatusRequestEntityTooLarge, "value_too_large")
	r = chunkedPut(t, kv+"big", maxValue+1)
	wantError(t, "chunked body over the limit", r, http.StatusRequestEntityTooLarge, "value_too_large")

	wantError(t, "the refused key", do(t, http.MethodGet, kv+"big", nil), 404, "not_found")
	if r := do(t, http.MethodHead, kv+"max-chunked", nil); r.header.Get("Content-Length") != fmt.Sprint(maxValue) {
		t.Errorf("max-chunked stored with Content-Length %q", r.header.Get("Content-Length"))
	}
}

// chunkedPut sends size bytes with chunked transfer encoding: the request
// has no Content-Length (ContentLength -1 on the server).
func chunkedPut(t *testing.T, url string, size int) response {
	t.Helper()
	body := io.LimitReader(repeatReader('c'), int64(size))
	req, err := http.NewRequest(http.MethodPut, url, struct{ io.Reader }{body}) // hide the length
	if err != nil {
		t.Fatal(err)
	}
	if req.ContentLength != 0 {
		t.Fatalf("request has ContentLength %d; want it unknown", req.ContentLength)
	}
	return send(t, noRedirects, req)
}

type repeatReader byte

func (b repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

type statsBody struct {
	NodeID       string `json:"node_id"`
	Keys         *int   `json:"keys"`
	Bytes        int64  `json:"bytes"`
	AppliedIndex uint64 `json:"applied_index"`
	Digest       string `json:"digest"`
}

func stats(t *testing.T, n *testNode) statsBody {
	t.Helper()
	r := do(t, http.MethodGet, n.URL+"/v1/stats", nil)
	var s statsBody
	decodeJSON(t, r, &s)
	if r.status != 200 || s.Keys == nil || s.Digest == "" {
		t.Fatalf("GET /v1/stats = %s", r)
	}
	return s
}
