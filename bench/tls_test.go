package bench

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/raftcache/raftcache/internal/testcerts"
	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/internal/testtokens"
	"github.com/raftcache/raftcache/transport"
)

const benchToken = "bench-write-token-0123456789"

// startSecureNode runs a one-node cluster on HTTPS (a certificate of ca)
// that requires a write token.
func startSecureNode(t *testing.T, ca *testcerts.CA) string {
	t.Helper()
	toks, _ := testtokens.File(t, "write "+benchToken)
	return testcluster.Start(t, 1, testcluster.Options{HTTP: &transport.Config{}, TLS: ca.ServerConfig(t, nil), Tokens: toks}).Leader(t).URL
}

// TestRunTLSAndToken: with the CA and a token, every request of a run
// (discovery, preload, the workload) is served; without either, discovery
// fails and says why.
func TestRunTLSAndToken(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real node")
	}
	ca := testcerts.NewCA(t, "bench CA")
	url := startSecureNode(t, ca)
	trust := &tls.Config{RootCAs: ca.Pool()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, w := range []string{Set, GetStrong} {
		res, err := Run(ctx, Config{Endpoints: []string{url}, Workload: w, Clients: 4, Keys: 20, Requests: 200,
			TLS: trust, Token: benchToken, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatalf("%s: %v", w, err)
		}
		if res.Errors != 0 || res.Ops != 200 {
			t.Errorf("%s: %d ops, errors %v", w, res.Ops, res.ErrorKinds)
		}
	}

	for name, cfg := range map[string]Config{
		"no token": {TLS: trust},
		"no CA":    {Token: benchToken},
	} {
		cfg.Endpoints, cfg.Workload, cfg.Requests, cfg.Timeout = []string{url}, Set, 10, 10*time.Second // the refusal comes at once; a loaded machine may take over 1 s to say why
		_, err := Run(ctx, cfg)
		want := map[string]string{"no token": "401", "no CA": "certificate"}[name]
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error mentioning %q", name, err, want)
		}
	}
}

// TestTokenTransport: the token goes with a redirect to a member, not to
// another host.
func TestTokenTransport(t *testing.T) {
	got := map[string]string{}
	record := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got[name] = r.Header.Get("Authorization")
		}))
	}
	member, stranger := record("member"), record("stranger")
	defer member.Close()
	defer stranger.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		to := member.URL
		if r.URL.Path == "/away" {
			to = stranger.URL
		}
		http.Redirect(w, r, to+"/v1/kv/k", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()

	tt := newTokenTransport(http.DefaultTransport, "t0ken", []string{redirector.URL})
	tt.allow([]string{member.URL})
	hc := &http.Client{Transport: tt}
	for _, path := range []string{"/v1/kv/k", "/away"} {
		resp, err := hc.Get(redirector.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got["member"] != "Bearer t0ken" {
		t.Errorf("the member got Authorization %q", got["member"])
	}
	if v, ok := got["stranger"]; !ok || v != "" {
		t.Errorf("the other host got Authorization %q (reached: %t)", v, ok)
	}
}

// TestDiscoverRefusalIsFinal: a certificate the client does not trust, or
// a refused token, ends discovery at once with that reason, where an
// answer without a leader is asked again until the deadline.
func TestDiscoverRefusalIsFinal(t *testing.T) {
	untrusted := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer untrusted.Close()
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
	}))
	defer refusing.Close()
	leaderless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"members":[]}`))
	}))
	defer leaderless.Close()

	for _, c := range []struct {
		name      string
		endpoints []string
		want      string
		final     bool
	}{
		{"untrusted certificate", []string{untrusted.URL}, "certificate", true},
		{"token refused", []string{refusing.URL}, "401", true},
		{"both", []string{untrusted.URL, refusing.URL}, "certificate", true},
		{"one may still name a leader", []string{refusing.URL, leaderless.URL}, "no leader", false},
	} {
		wait := time.Minute
		if !c.final {
			wait = 500 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		_, err := Discover(ctx, &http.Client{}, c.endpoints)
		ended := ctx.Err() != nil
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error mentioning %q", c.name, err, c.want)
		}
		if ended == c.final {
			t.Errorf("%s: discovery ended with its deadline: %v, want %v", c.name, ended, !c.final)
		}
	}
}
