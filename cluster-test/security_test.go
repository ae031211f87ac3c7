package clustertest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/internal/testcerts"
)

// The security tests run real processes with the settings of
// docs/security.md: HTTPS on the API, mutual TLS between members on the
// Raft port, bearer tokens with roles. Every certificate is made here, in
// Go, in the test's temporary directory.

const (
	secReadToken  = "read-token-0123456789abcdef"
	secWriteToken = "write-token-0123456789abcdef"
	secAdminToken = "admin-token-0123456789abcdef"
)

// pki is one test's certificate authorities and files.
type pki struct {
	t testing.TB
	// api is the CA of the members' HTTPS certificates and of client
	// certificates; apiCA its file. serverCert and serverKey are the
	// members' HTTPS certificate (valid as a client certificate too, which
	// a member presents when it joins a cluster that requires one).
	api                   *testcerts.CA
	apiCA                 string
	serverCert, serverKey string
	// peer signs the members' Raft certificates; rogue is another CA.
	peer, rogue *testcerts.CA
	peerCA      string
	tokens      string // token file: one token per role
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{t: t, api: testcerts.NewCA(t, "raftcache API CA"), peer: testcerts.NewCA(t, "raftcache peer CA"), rogue: testcerts.NewCA(t, "rogue CA")}
	p.serverCert, p.serverKey, p.apiCA = p.api.WriteFiles(t, t.TempDir(), "server")
	dir := t.TempDir()
	p.peerCA = filepath.Join(dir, "peer-ca.pem")
	if err := os.WriteFile(p.peerCA, p.peer.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	p.tokens = filepath.Join(dir, "tokens")
	tokens := fmt.Sprintf("read %s dashboards\nwrite %s web-app\nadmin %s ops\n", secReadToken, secWriteToken, secAdminToken)
	if err := os.WriteFile(p.tokens, []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// peerArgs are the Raft TLS flags of a member whose certificate ca signed;
// it trusts the peer CA, whoever signed its own certificate.
func (p *pki) peerArgs(ca *testcerts.CA, id string) []string {
	cert, key, _ := ca.WriteFiles(p.t, p.t.TempDir(), "peer-"+id)
	return []string{"--peer-cert", cert, "--peer-key", key, "--peer-ca", p.peerCA}
}

// trust is the client side of TLS: the API CA, and certs if any.
func (p *pki) trust(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.api.Pool(), Certificates: certs, MinVersion: tls.VersionTLS12}
}

// TestSecurity: a three-node cluster on HTTPS, with mutual TLS between
// members and a token file, forms and replicates; tokens are enforced by
// role; the Go client, the CLI and bench work through a follower; a fourth
// node whose peer certificate another CA signed gets nothing while the
// cluster keeps serving.
func TestSecurity(t *testing.T) {
	p := newPKI(t)
	respAddrs := map[int]string{} // Redis ports of n1..n3
	for i := 0; i < 3; i++ {
		respAddrs[i] = freeAddr(t, "127.0.0.1") // never a port handed out before
	}
	opt := Options{
		Args: []string{
			"--tls-cert", p.serverCert, "--tls-key", p.serverKey, "--tls-ca", p.apiCA,
			"--token-file", p.tokens, "--join-ca", p.apiCA, "--join-token", secAdminToken,
		},
		NodeArgs: func(i int) []string {
			id := fmt.Sprintf("n%d", i+1)
			if i == 3 { // the rogue
				return p.peerArgs(p.rogue, id)
			}
			return append(p.peerArgs(p.peer, id), "--resp-addr", respAddrs[i])
		},
		TLS:   p.trust(),
		Token: secAdminToken,
	}
	c := NewCluster(t, opt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*deadline)
	defer cancel()

	t.Run("forms and replicates", func(t *testing.T) {
		leader := c.WaitForLeader()
		follower := c.Followers(leader)[0]
		idx := c.Put(follower, "secret", "s3cr3t")
		for _, n := range c.Nodes {
			c.WaitForIndex(n, idx)
			r, err := n.Request(ctx, "GET", "/v1/kv/secret?consistency=stale", secReadToken, nil)
			if err != nil || r.Status != http.StatusOK || string(r.Body) != "s3cr3t" {
				t.Fatalf("stale read on %s: %v %+v", n.ID, err, r)
			}
		}
		c.WaitConverged()

		// The API speaks only TLS.
		r, err := Do(ctx, plainClient, "GET", "http://"+leader.HTTPAddr+"/v1/kv/secret", nil)
		if err != nil || r.Status != http.StatusBadRequest {
			t.Errorf("plaintext request to the API: %v %+v, want Go's 400 for HTTP on an HTTPS port", err, r)
		}
		// The Raft port refuses a certificate the peer CA did not sign,
		// and takes one it did.
		if err := raftHandshake(leader.RaftAddr, p.api.Pair(t, "web-app")); err == nil {
			t.Error("the Raft port accepted a certificate of the API CA")
		}
		if err := raftHandshake(leader.RaftAddr, p.peer.Pair(t, "member")); err != nil {
			t.Errorf("the Raft port refused a peer certificate: %v", err)
		}
	})

	t.Run("token roles", func(t *testing.T) {
		leader := c.WaitForLeader()
		// A join names its binary's feature level: a new cluster runs at the newest.
		bogus := fmt.Sprintf(`{"id":"n9","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2","voter":false,"feature_level":%d}`, fsm.FeatureLevel)
		for _, tc := range []struct {
			method, path, token, body string
			status                    int
		}{
			{"GET", "/v1/kv/secret", "", "", http.StatusUnauthorized},
			{"GET", "/v1/kv/secret", "not-a-token-0123456789", "", http.StatusUnauthorized},
			{"PUT", "/v1/kv/secret", "", "x", http.StatusUnauthorized},
			{"PUT", "/v1/kv/secret", "bad-token-0123456789", "x", http.StatusUnauthorized},
			{"GET", "/v1/kv/roles", secReadToken, "", http.StatusNotFound},
			{"PUT", "/v1/kv/roles", secReadToken, "x", http.StatusForbidden},
			{"DELETE", "/v1/kv/secret", secReadToken, "", http.StatusForbidden},
			{"PUT", "/v1/kv/roles", secWriteToken, "w", http.StatusOK},
			{"GET", "/v1/kv/roles", secReadToken, "", http.StatusOK},
			{"POST", "/v1/cluster/members", secWriteToken, bogus, http.StatusForbidden},
			{"DELETE", "/v1/cluster/members/n3", secWriteToken, "", http.StatusForbidden},
			{"POST", "/v1/cluster/transfer-leadership", secWriteToken, "", http.StatusForbidden},
			{"GET", "/v1/snapshot", secWriteToken, "", http.StatusForbidden},
			{"POST", "/v1/cluster/members", secAdminToken, bogus, http.StatusOK},
			{"DELETE", "/v1/cluster/members/n9", secAdminToken, "", http.StatusOK},
			{"GET", "/v1/snapshot", secAdminToken, "", http.StatusOK},
			{"GET", "/livez", "", "", http.StatusOK},
		} {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r, err := leader.Request(ctx, tc.method, tc.path, tc.token, body)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			if r.Status != tc.status {
				t.Errorf("%s %s with token %q: %d %s, want %d", tc.method, tc.path, tc.token, r.Status, r.Body, tc.status)
			}
		}
		// The admin's membership changes took effect.
		v, err := leader.View()
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Members) != 3 {
			t.Errorf("members after adding and removing n9: %+v", v.Members)
		}
	})

	t.Run("Go client through a follower", func(t *testing.T) {
		leader := c.WaitForLeader()
		follower := c.Followers(leader)[0]
		cl, err := client.New(client.Config{
			Endpoints:       []string{follower.URL()}, // the only member it is told about
			TLS:             p.trust(),
			Token:           secWriteToken,
			RefreshInterval: -1, // learns the leader from the follower's redirect
		})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		w, err := cl.Set(ctx, "via-follower", []byte("v1"))
		if err != nil {
			t.Fatalf("Set through %s: %v", follower.ID, err)
		}
		item, err := cl.Get(ctx, "via-follower")
		if err != nil || string(item.Value) != "v1" || item.Index < w.Index {
			t.Fatalf("strong Get: %+v, %v", item, err)
		}
		if got := cl.Leader(); got != leader.URL() {
			t.Errorf("the client's leader is %q, want %s", got, leader.URL())
		}
		if _, err := cl.Incr(ctx, "via-follower-count", 2); err != nil {
			t.Errorf("Incr: %v", err)
		}
		noCA, err := client.New(client.Config{Endpoints: []string{follower.URL()}, Token: secWriteToken})
		if err != nil {
			t.Fatal(err)
		}
		defer noCA.Close()
		if _, err := noCA.Get(ctx, "via-follower"); !errors.Is(err, client.ErrTLS) {
			t.Errorf("a client without the CA: %v, want ErrTLS", err)
		}
	})

	t.Run("CLI and bench through a follower", func(t *testing.T) {
		follower := c.Followers(c.WaitForLeader())[0]
		run := func(args ...string) string {
			t.Helper()
			cmd := exec.CommandContext(ctx, binary, append([]string{"-e", follower.URL(), "--timeout", "20s"}, args...)...)
			cmd.Env = append(os.Environ(), "RAFTCACHE_CACERT="+p.apiCA, "RAFTCACHE_TOKEN="+secWriteToken)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("raftcache %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return string(out)
		}
		run("set", "cli-key", "cli-value")
		if got := run("get", "cli-key"); got != "cli-value" {
			t.Errorf("get: %q", got)
		}
		var res struct {
			Results []struct {
				Ops, Errors int64
			}
		}
		out := run("bench", "-t", "set", "-n", "100", "-c", "4", "-r", "20", "--json")
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Results) != 1 || res.Results[0].Ops != 100 {
			t.Errorf("bench: %v\n%s", err, out)
		}
	})

	t.Run("Redis port: TLS and tokens, relayed with the caller's token", func(t *testing.T) {
		leader := c.WaitForLeader()
		var fi int
		for i, n := range c.Nodes[:3] {
			if n != leader {
				fi = i
				break
			}
		}
		addr := respAddrs[fi] // a follower's Redis port
		rdb := func(token string, tlsConf *tls.Config) *redis.Client {
			r := redis.NewClient(&redis.Options{Addr: addr, Password: token, TLSConfig: tlsConf, MaxRetries: -1,
				DialTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second})
			t.Cleanup(func() { r.Close() })
			return r
		}
		w := rdb(secWriteToken, p.trust())
		Eventually(t, "a write through the follower's Redis port", func() error {
			return w.Set(ctx, "resp:secret", "v", 0).Err()
		})
		if got, err := w.Get(ctx, "resp:secret").Result(); err != nil || got != "v" {
			t.Fatalf("GET with a write token: %q, %v", got, err)
		}
		r := rdb(secReadToken, p.trust())
		if got, err := r.Get(ctx, "resp:secret").Result(); err != nil || got != "v" {
			t.Fatalf("GET with a read token: %q, %v", got, err)
		}
		if err := r.Set(ctx, "resp:secret", "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Errorf("SET with a read token: %v, want NOPERM", err)
		}
		if err := rdb("", p.trust()).Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
			t.Errorf("PING without a token: %v, want NOAUTH", err)
		}
		if err := rdb("not-a-token-0123456789", p.trust()).Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
			t.Errorf("PING with an unknown token: %v, want WRONGPASS", err)
		}
		if err := rdb(secWriteToken, nil).Ping(ctx).Err(); err == nil {
			t.Error("plaintext PING on the TLS Redis port succeeded")
		}
		// The write reached every member through Raft.
		resp, err := leader.Request(ctx, "GET", "/v1/kv/resp:secret", secReadToken, nil)
		if err != nil || resp.Status != http.StatusOK || string(resp.Body) != "v" {
			t.Fatalf("the Redis write read over HTTP: %v %+v", err, resp)
		}
	})

	t.Run("a peer of another CA gets nothing", func(t *testing.T) {
		leader := c.WaitForLeader()
		follower := c.Followers(leader)[0]
		rogue := c.AddNode(opt, 3)
		defer rogue.Kill()
		rogue.Start(leader.URL()) // an admin token and the API CA: the HTTP join itself is allowed
		defer func() {
			if r, err := leader.Request(ctx, "DELETE", "/v1/cluster/members/"+rogue.ID, secAdminToken, nil); err != nil || r.Status != http.StatusOK {
				t.Errorf("removing %s: %v %+v", rogue.ID, err, r)
			}
		}()
		isMember := func() (voter, ok bool) {
			v, err := leader.View()
			if err != nil {
				return false, false
			}
			for _, m := range v.Members {
				if m.ID == rogue.ID {
					return m.Voter, true
				}
			}
			return false, false
		}
		Eventually(t, rogue.ID+" in the configuration", func() error {
			if _, ok := isMember(); !ok {
				return errors.New("not listed by the leader")
			}
			return nil
		})

		// Keep writing through a follower for a few seconds: every write
		// is served and replicated to the good members; the rogue gets no
		// entry and no vote.
		began, writes := time.Now(), 0
		var idx uint64
		for ; time.Since(began) < 3*time.Second || writes < 20; writes++ {
			idx = c.Put(follower, fmt.Sprintf("during-%d", writes), "v")
			v, err := rogue.View()
			if err != nil {
				t.Fatalf("the rogue's view: %v", err)
			}
			if v.AppliedIndex != 0 || v.CommitIndex != 0 || v.Leader != nil {
				t.Fatalf("the rogue applied %d, knows commit %d and leader %+v", v.AppliedIndex, v.CommitIndex, v.Leader)
			}
			if voter, _ := isMember(); voter {
				t.Fatalf("the rogue became a voter")
			}
		}
		for _, n := range []*Node{leader, follower} {
			c.WaitForIndex(n, idx)
		}
		r, err := rogue.Request(ctx, "GET", "/v1/kv/secret?consistency=stale", secReadToken, nil)
		if err != nil || r.Status != http.StatusNotFound {
			t.Errorf("stale read of secret on the rogue: %v %+v, want 404", err, r)
		}
		r, err = follower.Request(ctx, "GET", "/v1/kv/during-0?consistency=stale", secReadToken, nil)
		if err != nil || r.Status != http.StatusOK {
			t.Errorf("stale read on a good follower: %v %+v", err, r)
		}
		t.Logf("%d writes in %v while the rogue stood by", writes, time.Since(began).Round(time.Millisecond))
	})
}

// TestSecurityClientCertificates: members started with --tls-client-ca
// refuse, at the TLS layer, a client without a certificate or with one
// another CA signed, and serve one with a certificate of their CA; a
// second member joins by presenting its own certificate.
func TestSecurityClientCertificates(t *testing.T) {
	p := newPKI(t)
	clientCert := p.api.Pair(t, "web-app")
	c := NewCluster(t, Options{
		Nodes: 2,
		Args: []string{"--tls-cert", p.serverCert, "--tls-key", p.serverKey, "--tls-ca", p.apiCA,
			"--tls-client-ca", p.apiCA, "--join-ca", p.apiCA},
		TLS: p.trust(clientCert),
	})
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	follower := c.Followers(c.WaitForLeader())[0]

	for name, cfg := range map[string]*tls.Config{
		"no client certificate":              p.trust(),
		"a client certificate of another CA": p.trust(p.rogue.Pair(t, "web-app")),
	} {
		t.Run(name, func(t *testing.T) {
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
			r, err := Do(ctx, hc, "GET", follower.URL()+"/v1/cluster", nil)
			if err == nil {
				t.Fatalf("served: %d %s", r.Status, r.Body)
			}
			if !strings.Contains(err.Error(), "tls: ") {
				t.Errorf("refused, but not by TLS: %v", err)
			}
			cl, err := client.New(client.Config{Endpoints: []string{follower.URL()}, TLS: cfg})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if _, err := cl.Set(ctx, "k", []byte("v")); !errors.Is(err, client.ErrTLS) {
				t.Errorf("Go client: %v, want ErrTLS", err)
			}
		})
	}

	t.Run("with a client certificate", func(t *testing.T) {
		cl, err := client.New(client.Config{Endpoints: []string{follower.URL()}, TLS: p.trust(clientCert)})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if _, err := cl.Set(ctx, "k", []byte("v")); err != nil {
			t.Fatalf("Set: %v", err)
		}
		if item, err := cl.Get(ctx, "k"); err != nil || string(item.Value) != "v" {
			t.Fatalf("Get: %+v, %v", item, err)
		}
	})
}

// raftHandshake connects to a Raft port with cert and reports whether the
// member accepted it: under TLS 1.3 a refusal can arrive after the
// client's side of the handshake, on the first read; an accepted
// connection just waits for an RPC, so the read times out.
func raftHandshake(addr string, cert tls.Certificate) error {
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}})
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 1))
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return fmt.Errorf("connection refused after the handshake: %w", err)
}
