package cli

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"strings"
	"testing"

	"github.com/raftcache/raftcache/auth"
	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/transport"
)

// The CLI tests run the real command line (run) against an in-process
// cluster: real nodes (Raft on loopback, bolt files in t.TempDir()) behind
// real HTTP servers.

// tnode is one node behind a real HTTP server whose address it advertises.
type tnode = testcluster.Node

// waitFor polls cond with the harness's deadline.
var waitFor = testcluster.WaitFor

// tnodeOpts secure a test node's API.
type tnodeOpts struct {
	tls  *tls.Config  // serve HTTPS with this configuration
	auth *auth.Tokens // require tokens
}

type tcluster struct {
	*testcluster.Cluster
	t *testing.T
}

// newTestCluster starts size nodes: n1 bootstraps, the others are added
// through it. It returns once every node knows every member's HTTP
// address and is ready, and a leader serves strong reads.
func newTestCluster(t *testing.T, size int) *tcluster {
	return newTestClusterOpts(t, size, tnodeOpts{})
}

// newTestClusterOpts is newTestCluster with secured nodes.
func newTestClusterOpts(t *testing.T, size int, opt tnodeOpts) *tcluster {
	t.Helper()
	c := testcluster.Start(t, size, testcluster.Options{HTTP: &transport.Config{}, MaxValueSize: 1 << 20, TLS: opt.tls, Tokens: opt.auth})
	return &tcluster{Cluster: c, t: t}
}

// add starts a node that is not yet a member; it is stopped with the
// cluster.
func (tc *tcluster) add(id string) *tnode { return tc.StartNode(id, false) }

func (tc *tcluster) leader() *tnode {
	tc.t.Helper()
	return tc.Leader(tc.t)
}

// endpoints is the --endpoints value: the first node only, so that the
// CLI has to learn the others.
func (tc *tcluster) endpoints() string { return tc.Nodes()[0].URL }

// cliResult is one run of the command line.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command line with args (no program name) and stdin.
func runCLI(t testing.TB, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"raftcache"}, args...), strings.NewReader(stdin), &out, &errb)
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// cliOK runs the command line against endpoints with -o json, requires
// exit code 0, and decodes stdout (exactly one JSON document) into out.
func cliOK(t testing.TB, endpoints string, out any, args ...string) {
	t.Helper()
	r := runCLI(t, "", append([]string{"-e", endpoints, "--timeout", "20s", "-o", "json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("raftcache %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	decodeOne(t, r.stdout, out)
}

// decodeOne decodes s, which must hold exactly one JSON document.
func decodeOne(t testing.TB, s string, out any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, s)
	}
	if dec.More() {
		t.Fatalf("output holds more than one JSON document:\n%s", s)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("decoding %s: %v", raw, err)
		}
	}
}
