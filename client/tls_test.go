package client_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftcache/raftcache/auth"
	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/internal/testcerts"
	"github.com/raftcache/raftcache/internal/testtokens"
)

const (
	readToken  = "read-token-0123456789"
	writeToken = "write-token-0123456789"
	adminToken = "admin-token-0123456789"
)

// testAuth is a token file with one token per role.
func testAuth(t *testing.T) *auth.Tokens {
	t.Helper()
	toks, _ := testtokens.File(t, "read "+readToken, "write "+writeToken+" app", "admin "+adminToken+" ops")
	return toks
}

// TestTLSThroughFollower: a client that knows only a follower of an HTTPS
// cluster with tokens writes and reads through the follower's redirect to
// the leader, presenting its token on every hop, and learns the other
// members as https.
func TestTLSThroughFollower(t *testing.T) {
	ca := testcerts.NewCA(t, "client CA")
	trust := &tls.Config{RootCAs: ca.Pool()}
	tc := newTestClusterOpts(t, 3, tnodeOpts{tls: ca.ServerConfig(t, nil), auth: testAuth(t)})
	leader := tc.leader()
	follower := tc.followers(leader)[0]
	for _, tn := range tc.nodes() {
		tn.forget()
	}

	c := newClient(t, client.Config{Endpoints: []string{follower.url}, TLS: trust, Token: writeToken, RefreshInterval: -1})
	ctx := callCtx(t)
	if _, err := c.Set(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Set through the follower: %v", err)
	}
	item, err := c.Get(ctx, "k")
	if err != nil || string(item.Value) != "v" {
		t.Fatalf("strong Get: %q, %v", item.Value, err)
	}
	if got := c.Leader(); got != leader.url {
		t.Errorf("Leader() = %q, want %q", got, leader.url)
	}
	for _, e := range c.Endpoints() {
		if !strings.HasPrefix(e, "https://") {
			t.Errorf("learned endpoint %q is not https", e)
		}
	}
	redirected := follower.requests(func(s seenReq) bool { return s.Method == "PUT" && s.Path == "/v1/kv/k" })
	if len(redirected) != 1 || redirected[0].Status != http.StatusTemporaryRedirect {
		t.Errorf("the follower saw %+v, want one PUT answered 307", redirected)
	}
	for _, s := range leader.requests(func(seenReq) bool { return true }) {
		if s.Auth != "Bearer "+writeToken {
			t.Errorf("the leader got %s %s with Authorization %q", s.Method, s.Path, s.Auth)
		}
	}
	if len(leader.requests(func(s seenReq) bool { return s.Method == "PUT" && s.Status == 200 })) != 1 {
		t.Error("the leader did not serve the PUT")
	}

	// The roles still apply behind TLS.
	reader := newClient(t, client.Config{Endpoints: []string{follower.url}, TLS: trust, Token: readToken})
	if _, err := reader.Set(ctx, "k", []byte("w")); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("Set with a read token: %v, want ErrForbidden", err)
	}
	anon := newClient(t, client.Config{Endpoints: []string{follower.url}, TLS: trust})
	if _, err := anon.Get(ctx, "k"); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("Get without a token: %v, want ErrUnauthorized", err)
	}
}

// TestTLSHandshakeFailures: a server certificate the client does not
// trust, a server that refuses the client's certificate (or its lack of
// one), and a scheme mismatch each end the call quickly with an error that
// says so; no request reaches the API.
func TestTLSHandshakeFailures(t *testing.T) {
	ca, rogue := testcerts.NewCA(t, "client CA"), testcerts.NewCA(t, "rogue CA")
	goodCert, goodKey, caFile := ca.WriteFiles(t, t.TempDir(), "app")
	badCert, badKey, _ := rogue.WriteFiles(t, t.TempDir(), "intruder")

	// Members that require client certificates of ca.
	secure := startTNodeOpts(t, tnodeOpts{tls: ca.ServerConfig(t, ca)})
	plain := startTNode(t)

	withCert := func(cert, key string) *tls.Config {
		cfg, err := client.TLSConfigFromFiles(caFile, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	for _, tt := range []struct {
		name     string
		endpoint string
		tls      *tls.Config
		check    func(error) bool
	}{
		{"untrusted server certificate", secure.url, &tls.Config{RootCAs: rogue.Pool(), Certificates: []tls.Certificate{ca.Pair(t, "app")}},
			func(err error) bool { var ua x509.UnknownAuthorityError; return errors.As(err, &ua) }},
		{"system roots", secure.url, nil, func(err error) bool { var ua x509.UnknownAuthorityError; return errors.As(err, &ua) }},
		{"no client certificate", secure.url, withCert("", ""), func(err error) bool { return strings.Contains(err.Error(), "certificate required") }},
		{"client certificate of another CA", secure.url, withCert(badCert, badKey), func(err error) bool {
			// Go's TLS client sends no certificate the server's list of
			// acceptable CAs does not cover.
			return strings.Contains(err.Error(), "certificate required") || strings.Contains(err.Error(), "unknown certificate authority")
		}},
		{"https to a plaintext member", "https://" + plain.addr, withCert("", ""), func(error) bool { return true }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			secure.forget()
			c := newClient(t, client.Config{Endpoints: []string{tt.endpoint}, TLS: tt.tls, Timeout: 20 * time.Second})
			began := time.Now()
			_, err := c.Set(callCtx(t), "k", []byte("v"))
			if !errors.Is(err, client.ErrTLS) || errors.Is(err, client.ErrUnknownOutcome) || !tt.check(err) {
				t.Fatalf("Set: %v, want ErrTLS with the cause", err)
			}
			if d := time.Since(began); d > 5*time.Second {
				t.Errorf("took %v: a handshake failure is not worth retrying until the timeout", d)
			}
			if seen := secure.requests(func(seenReq) bool { return true }); len(seen) != 0 {
				t.Errorf("the API saw %+v", seen)
			}
		})
	}

	t.Run("plaintext to an https member", func(t *testing.T) {
		c := newClient(t, client.Config{Endpoints: []string{"http://" + secure.addr}})
		_, err := c.Set(callCtx(t), "k", []byte("v"))
		if err == nil || !strings.Contains(err.Error(), "use https://") {
			t.Fatalf("Set: %v, want a hint to use https", err)
		}
	})

	t.Run("client certificate", func(t *testing.T) {
		c := newClient(t, client.Config{Endpoints: []string{secure.addr}, TLS: withCert(goodCert, goodKey)})
		ctx := callCtx(t)
		if _, err := c.Set(ctx, "k", []byte("v")); err != nil {
			t.Fatalf("Set with a client certificate: %v", err)
		}
		if item, err := c.Get(ctx, "k"); err != nil || string(item.Value) != "v" {
			t.Fatalf("Get: %q, %v", item.Value, err)
		}
	})

	t.Run("own HTTPClient", func(t *testing.T) {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		c := newClient(t, client.Config{Endpoints: []string{secure.url}, TLS: withCert(goodCert, goodKey), HTTPClient: hc})
		if _, err := c.Get(callCtx(t), "k"); err != nil {
			t.Fatalf("Get: %v", err)
		}
		if cfg := hc.Transport.(*http.Transport).TLSClientConfig; cfg != nil && (cfg.RootCAs != nil || len(cfg.Certificates) > 0) {
			t.Error("the caller's transport was modified")
		}
	})
}

func TestTLSConfig(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	dir := t.TempDir()
	leafCert, leafKey, caFile := ca.WriteFiles(t, dir, "app")
	_, otherKey, _ := ca.WriteFiles(t, dir, "other")
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg, err := client.TLSConfigFromFiles(caFile, leafCert, leafKey)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs == nil || len(cfg.Certificates) != 1 || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("config %+v", cfg)
	}
	if cfg, err := client.TLSConfigFromFiles("", "", ""); err != nil || cfg.RootCAs != nil || cfg.Certificates != nil {
		t.Errorf("no files: %+v, %v; want system roots and no certificate", cfg, err)
	}
	for name, files := range map[string][3]string{
		"missing CA":          {filepath.Join(dir, "nope"), "", ""},
		"CA not PEM":          {junk, "", ""},
		"certificate alone":   {caFile, leafCert, ""},
		"key alone":           {caFile, "", leafKey},
		"key of another":      {caFile, leafCert, otherKey},
		"missing certificate": {caFile, filepath.Join(dir, "nope"), leafKey},
	} {
		if _, err := client.TLSConfigFromFiles(files[0], files[1], files[2]); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	if _, err := client.New(client.Config{Endpoints: []string{"https://127.0.0.1:1", "http://127.0.0.1:2"}, TLS: cfg}); err == nil {
		t.Error("an http:// endpoint with Config.TLS was accepted")
	}
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:1"}, TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Endpoints(); len(got) != 1 || got[0] != "https://127.0.0.1:1" {
		t.Errorf("host:port with TLS: %v, want https", got)
	}
	type rt struct{ http.RoundTripper }
	if _, err := client.New(client.Config{Endpoints: []string{"https://127.0.0.1:1"}, TLS: cfg,
		HTTPClient: &http.Client{Transport: rt{http.DefaultTransport}}}); err == nil {
		t.Error("Config.TLS with a RoundTripper it cannot configure was accepted")
	}
}
