package transport_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// opaque builds a request whose path goes on the wire exactly as given:
// neither net/url nor net/http may clean or re-escape it.
func opaque(t *testing.T, n *testNode, method, path string, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, n.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = "//" + n.HTTPAddr() + path
	return send(t, noRedirects, req)
}

func TestDotSegmentsAreKeyBytes(t *testing.T) {
	n := startLeader(t)

	r := opaque(t, n, http.MethodPut, "/v1/kv/a/../b", "dots")
	if r.status != http.StatusOK {
		t.Fatalf("PUT /v1/kv/a/../b = %s (a 301 here means the path was cleaned)", r)
	}
	if r := opaque(t, n, http.MethodGet, "/v1/kv/a/../b", ""); r.status != 200 || string(r.body) != "dots" {
		t.Fatalf("GET /v1/kv/a/../b = %s", r)
	}
	// The key is the four bytes a/../b, not b.
	get(t, n, url.PathEscape("a/../b"), "dots")
	wantError(t, "GET b", do(t, http.MethodGet, n.URL+"/v1/kv/b", nil), 404, "not_found")

	// The same through a raw connection, and for other uncleaned forms.
	for path, key := range map[string]string{
		"/v1/kv/./c":     "./c",
		"/v1/kv//lead":   "/lead",
		"/v1/kv/d/":      "d/",
		"/v1/kv/x/./../": "x/./../",
	} {
		r := raw(t, n.HTTPAddr(), "PUT "+path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nraw")
		if r.status != http.StatusOK {
			t.Errorf("raw PUT %s = %s", path, r)
			continue
		}
		get(t, n, url.PathEscape(key), "raw")
	}
	wantError(t, "GET c", do(t, http.MethodGet, n.URL+"/v1/kv/c", nil), 404, "not_found")
	wantError(t, "GET lead", do(t, http.MethodGet, n.URL+"/v1/kv/lead", nil), 404, "not_found")
}

func TestEscapedSlashIsTheSameKey(t *testing.T) {
	n := startLeader(t)
	put(t, n, "a%2Fb", "escaped", "")
	get(t, n, "a/b", "escaped")
	put(t, n, "a/b", "plain", "")
	get(t, n, "a%2Fb", "plain")
	get(t, n, "a%2fb", "plain") // lower-case hex
	if s := stats(t, n); *s.Keys != 1 {
		t.Fatalf("%d keys, want the one key a/b", *s.Keys)
	}
}

func TestArbitraryKeyBytesRoundTrip(t *testing.T) {
	n := startLeader(t)
	keys := []string{
		"\x00\xff spaces ?#",
		"100%",
		"ünïcødé/キー",
		"\r\n\t",
		"+plus&amp=eq;semi",
		strings.Repeat("\x80", 10),
	}
	for i, k := range keys {
		put(t, n, url.PathEscape(k), "value-"+k, "")
		get(t, n, url.PathEscape(k), "value-"+k)
		if i == 0 {
			// Not the same key as a near miss.
			wantError(t, "near miss", do(t, http.MethodGet, n.URL+"/v1/kv/"+url.PathEscape("\x00\xff spaces "), nil), 404, "not_found")
		}
	}
	if s := stats(t, n); *s.Keys != len(keys) {
		t.Fatalf("%d keys, want %d", *s.Keys, len(keys))
	}
}

// TestBadPercentEncoding: net/http itself refuses a request line with an
// invalid escape (400, before any handler runs); the key never reaches the
// node.
func TestBadPercentEncoding(t *testing.T) {
	n := startLeader(t)
	for _, path := range []string{"/v1/kv/%zz", "/v1/kv/a%", "/v1/kv/a%2"} {
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			r := raw(t, n.HTTPAddr(), m+" "+path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv")
			if r.status != http.StatusBadRequest {
				t.Errorf("%s %s = %s, want 400", m, path, r)
			}
		}
	}
	if s := stats(t, n); *s.Keys != 0 {
		t.Fatalf("%d keys written by malformed requests", *s.Keys)
	}
}
