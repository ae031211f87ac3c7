package transport_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftcache/raftcache/auth"
	"github.com/raftcache/raftcache/transport"
)

const (
	readToken  = "read-token-0123456789"
	writeToken = "write-token-0123456789"
	adminToken = "admin-token-0123456789"
)

func writeTokens(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// authLeader starts a single-node cluster whose API requires tokens.
func authLeader(t *testing.T) (url string, tokens *auth.Tokens, tokenFile string) {
	t.Helper()
	n := startLeader(t)
	tokenFile = filepath.Join(t.TempDir(), "tokens")
	writeTokens(t, tokenFile, "# role token name", "read "+readToken+" dashboards", "write "+writeToken+" app", "admin "+adminToken)
	tokens, err := auth.Load(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(transport.New(n.Node, transport.Config{Auth: tokens}))
	t.Cleanup(srv.Close)
	return srv.URL, tokens, tokenFile
}

func authDo(t *testing.T, method, url, token string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Code string }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Code
}

func TestAuthRoles(t *testing.T) {
	url, _, _ := authLeader(t)
	member := `{"id":"n9","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`
	cases := []struct {
		method, path, token, body string
		status                    int
		code                      string
	}{
		{"GET", "/livez", "", "", 200, ""},
		{"GET", "/readyz", "", "", 200, ""},
		{"GET", "/v1/node", "", "", 200, ""},
		{"GET", "/v1/kv/k", "", "", 401, "unauthorized"},
		{"GET", "/v1/kv/k", "not-a-token-at-all-000", "", 401, "unauthorized"},
		{"GET", "/metrics", "", "", 401, "unauthorized"},
		{"PUT", "/v1/kv/k", readToken, "v", 403, "forbidden"},
		{"GET", "/v1/kv/k", readToken, "", 404, "not_found"},
		{"PUT", "/v1/kv/k", writeToken, "v", 200, ""},
		{"GET", "/v1/kv/k", readToken, "", 200, ""},
		{"POST", "/v1/incr/c", readToken, "", 403, "forbidden"},
		{"DELETE", "/v1/keys?prefix=k", readToken, "", 403, "forbidden"},
		{"POST", "/v1/cluster/members", writeToken, member, 403, "forbidden"},
		{"DELETE", "/v1/cluster/members/n1", writeToken, "", 403, "forbidden"},
		{"GET", "/v1/snapshot", writeToken, "", 403, "forbidden"},
		{"POST", "/v1/cluster/transfer-leadership", writeToken, "", 403, "forbidden"},
		{"GET", "/v1/snapshot", adminToken, "", 200, ""},
		{"GET", "/v1/cluster", readToken, "", 200, ""},
		{"PUT", "/v1/kv/k2", adminToken, "v", 200, ""},
	}
	for _, c := range cases {
		status, code := authDo(t, c.method, url+c.path, c.token, c.body)
		if status != c.status || (c.code != "" && code != c.code) {
			t.Errorf("%s %s with %q: %d %s, want %d %s", c.method, c.path, c.token, status, code, c.status, c.code)
		}
	}
}

// A reload takes a removed token away at once; a broken file keeps the old
// tokens in force.
func TestAuthReload(t *testing.T) {
	url, tokens, file := authLeader(t)
	if status, _ := authDo(t, "PUT", url+"/v1/kv/r", writeToken, "v"); status != 200 {
		t.Fatalf("write token before reload: %d", status)
	}
	writeTokens(t, file, "read "+readToken)
	if err := tokens.Reload(); err != nil {
		t.Fatal(err)
	}
	if status, code := authDo(t, "PUT", url+"/v1/kv/r", writeToken, "v"); status != 401 || code != "unauthorized" {
		t.Fatalf("removed write token after reload: %d %s", status, code)
	}
	writeTokens(t, file, "superuser "+adminToken)
	if err := tokens.Reload(); err == nil {
		t.Fatal("a token file with an unknown role was accepted")
	}
	if status, _ := authDo(t, "GET", url+"/v1/kv/r", readToken, ""); status != 200 {
		t.Fatalf("read token after a failed reload: %d", status)
	}
}

func TestLoadAuthRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"short token":  "read short",
		"unknown role": "root " + adminToken,
		"extra field":  "read " + readToken + " name extra",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := auth.Load(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := auth.Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing token file was accepted")
	}
}
