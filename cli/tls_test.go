package cli

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/auth"
	"github.com/raftcache/raftcache/internal/testcerts"
	"github.com/raftcache/raftcache/internal/testtokens"
)

const (
	readToken  = "read-token-0123456789"
	writeToken = "write-token-0123456789"
	adminToken = "admin-token-0123456789"
)

// tlsFiles is a throw-away PKI on disk: the CA of the members' HTTPS
// certificates and a client certificate it signed, and one of another CA.
type tlsFiles struct {
	ca                         *testcerts.CA
	caFile                     string
	clientCert, clientKey      string
	rogueCert, rogueKey, rogue string // rogue: the other CA's file
}

func newTLSFiles(t *testing.T) *tlsFiles {
	t.Helper()
	f := &tlsFiles{ca: testcerts.NewCA(t, "cli test CA")}
	f.clientCert, f.clientKey, f.caFile = f.ca.WriteFiles(t, t.TempDir(), "ops")
	f.rogueCert, f.rogueKey, f.rogue = testcerts.NewCA(t, "rogue").WriteFiles(t, t.TempDir(), "ops")
	return f
}

// testAuth is a token file with one token per role.
func testAuth(t *testing.T) *auth.Tokens {
	t.Helper()
	toks, _ := testtokens.File(t, "read "+readToken, "write "+writeToken+" app", "admin "+adminToken+" ops")
	return toks
}

// TestTLSCommands runs data, cluster, snapshot and bench commands against
// a three-node cluster on HTTPS that requires client certificates and
// tokens, through a follower, with the flags and with the environment.
func TestTLSCommands(t *testing.T) {
	f := newTLSFiles(t)
	serverTLS := f.ca.ServerConfig(t, f.ca) // client certificates required
	tc := newTestClusterOpts(t, 3, tnodeOpts{tls: serverTLS, auth: testAuth(t)})
	leader := tc.leader()
	var follower *tnode
	for _, tn := range tc.Nodes() {
		if tn != leader {
			follower = tn
			break
		}
	}
	tlsFlags := []string{"-e", follower.URL, "--timeout", "20s", "--cacert", f.caFile, "--cert", f.clientCert, "--key", f.clientKey}
	cli := func(token string, args ...string) cliResult {
		t.Helper()
		return runCLI(t, "", append(append(append([]string{}, tlsFlags...), "--token", token), args...)...)
	}

	if r := cli(writeToken, "set", "greeting", "hello"); r.code != 0 {
		t.Fatalf("set through a follower: %+v", r)
	}
	if r := cli(readToken, "get", "greeting"); r.code != 0 || r.stdout != "hello" {
		t.Fatalf("get: %+v", r)
	}
	if r := cli(readToken, "set", "greeting", "x"); r.code != ExitError || !strings.Contains(r.stderr, "403") {
		t.Errorf("set with a read token: %+v, want a 403", r)
	}
	var view struct{ Members []map[string]any }
	cliOK(t, follower.URL, &view, append(tlsFlags[2:], "--token", adminToken, "members", "list")...)
	if len(view.Members) != 3 {
		t.Errorf("members list over TLS: %v", view)
	}
	if r := cli(adminToken, "status", "--check"); r.code != 0 {
		t.Errorf("status --check: %+v", r)
	}
	backup := filepath.Join(t.TempDir(), "b.snap")
	if r := cli(adminToken, "snapshot", "save", backup); r.code != 0 {
		t.Errorf("snapshot save: %+v", r)
	}
	if r := cli(writeToken, "bench", "-t", "set,get-strong", "-n", "40", "-c", "2", "-r", "10"); r.code != 0 {
		t.Errorf("bench: %+v", r)
	}

	// The same through the environment, flags in no particular place.
	t.Setenv("RAFTCACHE_CACERT", f.caFile)
	t.Setenv("RAFTCACHE_CERT", f.clientCert)
	t.Setenv("RAFTCACHE_KEY", f.clientKey)
	t.Setenv("RAFTCACHE_TOKEN", readToken)
	if r := runCLI(t, "", "get", "greeting", "-e", follower.URL); r.code != 0 || r.stdout != "hello" {
		t.Errorf("get with RAFTCACHE_CACERT/CERT/KEY: %+v", r)
	}
	t.Setenv("RAFTCACHE_TOKEN", writeToken) // the read workloads preload their keys
	if r := runCLI(t, "", "-e", follower.URL, "bench", "-t", "get-stale", "-n", "20", "-c", "2", "-r", "10"); r.code != 0 {
		t.Errorf("bench with the environment: %+v", r)
	}
	os.Unsetenv("RAFTCACHE_CERT")
	os.Unsetenv("RAFTCACHE_KEY")

	// Failures say what is wrong, quickly.
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no client certificate", []string{"-e", follower.URL, "get", "greeting"}, ExitError, "TLS handshake failed"},
		{"client certificate of another CA", []string{"-e", follower.URL, "--cert", f.rogueCert, "--key", f.rogueKey, "get", "greeting"}, ExitError, "TLS handshake failed"},
		{"untrusted server", []string{"-e", follower.URL, "--cacert", f.rogue, "--cert", f.clientCert, "--key", f.clientKey, "get", "greeting"}, ExitError, "certificate signed by unknown authority"},
		{"plaintext endpoint", []string{"-e", "http://" + follower.HTTPAddr(), "get", "greeting"}, ExitUsage, "not https"},
		{"cert without key", []string{"-e", follower.URL, "--cert", f.clientCert, "get", "greeting"}, ExitUsage, "--cert and --key"},
		{"missing CA file", []string{"-e", follower.URL, "--cacert", "/nonexistent/ca.pem", "get", "greeting"}, ExitUsage, "CA file"},
		{"bench on a plaintext endpoint", []string{"-e", "http://" + follower.HTTPAddr(), "bench", "-n", "1"}, ExitUsage, "https://"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", append([]string{"--timeout", "20s"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tt.code, tt.want)
			}
		})
	}
}

// TestTLSDefaultEndpoints: with TLS flags and no --endpoints, the default
// endpoints are https; given endpoints are kept as they are.
func TestTLSDefaultEndpoints(t *testing.T) {
	app := newApp(nil, nil, nil, &runState{})
	parse := func(args ...string) *cli.Context {
		set := flag.NewFlagSet("raftcache", flag.ContinueOnError)
		for _, fl := range app.Flags {
			if err := fl.Apply(set); err != nil {
				t.Fatal(err)
			}
		}
		if err := set.Parse(args); err != nil {
			t.Fatal(err)
		}
		return cli.NewContext(app, set, nil)
	}
	if got := endpoints(parse(), true); len(got) != len(defaultEndpoints) || got[0] != "https://127.0.0.1:7070" {
		t.Errorf("defaults with TLS: %v", got)
	}
	if got := endpoints(parse(), false); got[0] != "http://127.0.0.1:7070" {
		t.Errorf("defaults without TLS: %v", got)
	}
	if got := endpoints(parse("-e", "https://10.0.0.1:8001"), true); len(got) != 1 || got[0] != "https://10.0.0.1:8001" {
		t.Errorf("given endpoints: %v", got)
	}
}

// TestNodeJoinCA: --join-ca with plaintext join URLs is a usage error,
// found before the node starts.
func TestNodeJoinCA(t *testing.T) {
	f := newTLSFiles(t)
	r := runCLI(t, "", "node", "--id", "n9", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--data-dir", t.TempDir(), "--join", "http://127.0.0.1:1", "--join-ca", f.caFile)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "https://") {
		t.Errorf("node --join http://... --join-ca: %+v", r)
	}
	r = runCLI(t, "", "node", "--id", "n9", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--data-dir", t.TempDir(), "--join", "https://127.0.0.1:1", "--join-ca", "/nonexistent/ca.pem")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "CA file") {
		t.Errorf("node --join-ca with a missing file: %+v", r)
	}
}

// A node on a non-loopback Raft address given neither --bootstrap,
// --join nor --bootstrap-expect refuses an empty data directory (a member
// restarted so on a wiped disk would form a second cluster): a usage
// error naming the flags, before it listens for Raft.
func TestNodeWithoutFormationFlagsOffLoopback(t *testing.T) {
	r := runCLI(t, "", "node", "--id", "n9", "--http-addr", "127.0.0.1:0", "--resp-addr", "127.0.0.1:0", "--raft-addr", "0.0.0.0:0",
		"--data-dir", t.TempDir())
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--bootstrap") || !strings.Contains(r.stderr, "--join") {
		t.Errorf("node on 0.0.0.0 without --bootstrap or --join: %+v", r)
	}
	for addr, want := range map[string]bool{"127.0.0.1:7071": true, "127.9.0.1:1": true, "[::1]:7071": true, "localhost:7071": true,
		"0.0.0.0:7071": false, "10.0.0.1:7071": false, ":7071": false, "rc1:7071": false} {
		if got := loopbackAddr(addr); got != want {
			t.Errorf("loopbackAddr(%q) = %v", addr, got)
		}
	}
}
