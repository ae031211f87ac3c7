package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestReorderArgs(t *testing.T) {
	app := newApp(nil, nil, nil, &runState{})
	for _, tt := range []struct{ in, want string }{
		{"set k v --ttl 30s", "set --ttl 30s -- k v"},
		{"set --ttl 30s k v", "set --ttl 30s -- k v"},
		{"set k v --ttl=30s -o json", "-o json set --ttl=30s -- k v"},
		{"-e http://x get k --stale", "-e http://x get --stale -- k"},
		{"get -- -k", "get -- -k"},
		{"set k -- --ttl", "set -- k --ttl"},
		{"incr k --by -5", "incr --by -5 -- k"},
		{"members add n4 --raft-addr a:1 --http-addr b:2 --non-voter", "members add --raft-addr a:1 --http-addr b:2 --non-voter -- n4"},
		{"snapshot save - -o json", "-o json snapshot save -- -"},
		{"get k --bogus", "get --bogus -- k"},
		{"status", "status"},
		{"members", "members"},
		{"get k --generate-bash-completion", "get k --generate-bash-completion"},
		{"bogus k -o json", "bogus k -o json"},
	} {
		got := strings.Join(reorderArgs(app, append([]string{"raftcache"}, strings.Fields(tt.in)...))[1:], " ")
		if got != tt.want {
			t.Errorf("reorderArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"get"},
		{"get", "a", "b"},
		{"get", "--bogus", "k"},
		{"--bogus", "status"},
		{"bogus"},
		{"-o", "yaml", "status"},
		{"set"},
		{"set", ""},
		{"set", "k", "v", "--ttl", "soon"},
		{"del"},
		{"incr", "k", "--by", "x"},
		{"keys", "extra"},
		{"keys", "--limit", "-1"},
		{"del-prefix"},
		{"del-prefix", ""},
		{"stats", "x"},
		{"status", "x"},
		{"members", "bogus"},
		{"members", "add", "n4"},
		{"members", "add", "--raft-addr", "a:1", "--http-addr", "b:2"},
		{"members", "remove"},
		{"members", "promote"},
		{"members", "demote", "a", "b"},
		{"transfer-leadership", "n2"},
		{"snapshot"},
		{"snapshot", "save"},
		{"snapshot", "bogus"},
		{"snapshot", "inspect"},
		{"restore"},
		{"completion"},
		{"completion", "fish"},
		{"-e", "ftp://x", "status"},
	} {
		r := runCLI(t, "", append([]string{"-e", "http://127.0.0.1:1", "--timeout", "1s"}, args...)...)
		if r.code != ExitUsage {
			t.Errorf("raftcache %q: exit %d, want %d (stderr %q)", args, r.code, ExitUsage, r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("raftcache %q printed to stdout: %q", args, r.stdout)
		}
		if r.stderr == "" {
			t.Errorf("raftcache %q said nothing on stderr", args)
		}
	}
	// In json mode, the error is a JSON document on stderr.
	r := runCLI(t, "", "-o", "json", "get")
	var doc struct {
		Code     string `json:"code"`
		ExitCode int    `json:"exit_code"`
	}
	decodeOne(t, r.stderr, &doc)
	if r.code != ExitUsage || doc.Code != "usage" || doc.ExitCode != ExitUsage {
		t.Fatalf("json usage error: %+v", r)
	}
	// Also when the global flags themselves do not parse.
	r = runCLI(t, "", "-o", "json", "--bogus", "status")
	decodeOne(t, r.stderr, &doc)
	if r.code != ExitUsage || doc.Code != "usage" {
		t.Fatalf("json usage error for a bad global flag: %+v", r)
	}
	// Arguments only the server finds malformed (a 400) are usage errors too.
	tc := newTestCluster(t, 1)
	for _, args := range [][]string{
		{"keys", "--limit", "100000"},
		{"members", "add", "n9", "--raft-addr", "nonsense", "--http-addr", "127.0.0.1:80"},
	} {
		if r := runCLI(t, "", append([]string{"-e", tc.endpoints()}, args...)...); r.code != ExitUsage || !strings.Contains(r.stderr, "400") {
			t.Errorf("raftcache %q: exit %d (%s), want %d", args, r.code, r.stderr, ExitUsage)
		}
	}
	// An unreachable cluster is an error, not a usage error.
	if r := runCLI(t, "", "-e", "http://127.0.0.1:1", "--timeout", "300ms", "get", "k"); r.code != ExitError {
		t.Fatalf("unreachable cluster: %+v", r)
	}
}

// TestHelpHasExamples: every command's --help exits 0 and shows at least
// one example invocation.
func TestHelpHasExamples(t *testing.T) {
	app := newApp(nil, nil, nil, &runState{})
	var walk func(path []string, cmds []*cli.Command)
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := append(slices.Clone(path), c.Name)
			r := runCLI(t, "", append(p, "--help")...)
			if r.code != 0 {
				t.Errorf("%q --help: exit %d", p, r.code)
			}
			if !strings.Contains(r.stdout, "   raftcache "+p[0]) && !strings.Contains(r.stdout, "   raftcache ") {
				t.Errorf("%q --help shows no example:\n%s", p, r.stdout)
			}
			walk(p, c.Subcommands)
		}
	}
	walk(nil, app.Commands)
	if r := runCLI(t, "", "--help"); r.code != 0 || !strings.Contains(r.stdout, "Exit codes") {
		t.Fatalf("--help: %+v", r)
	}
	if r := runCLI(t, "", "help", "restore"); r.code != 0 || !strings.Contains(r.stdout, "raftcache restore backup.snap") {
		t.Fatalf("help restore: %+v", r)
	}
	if r := runCLI(t, "", "help", "bogus"); r.code != ExitUsage {
		t.Fatalf("help bogus: %+v", r)
	}
}

func TestCompletion(t *testing.T) {
	if r := runCLI(t, "", "completion", "bash"); r.code != 0 || !strings.Contains(r.stdout, "complete -o bashdefault -o default -F _raftcache_complete raftcache") {
		t.Fatalf("bash completion: %+v", r)
	}
	if r := runCLI(t, "", "completion", "zsh"); r.code != 0 || !strings.Contains(r.stdout, "compdef _raftcache_complete raftcache") {
		t.Fatalf("zsh completion: %+v", r)
	}
	// The candidates the scripts ask the binary for depend on os.Args
	// (urfave/cli), so cluster-test checks them on the real binary.
}

// TestTokenSent: --token and RAFTCACHE_TOKEN reach the server as a bearer
// token.
func TestTokenSent(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "token required", "code": "unauthorized"})
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write([]byte("v"))
	}))
	defer srv.Close()
	if r := runCLI(t, "", "-e", srv.URL, "get", "k"); r.code != ExitError || !strings.Contains(r.stderr, "401") {
		t.Fatalf("without a token: %+v", r)
	}
	if r := runCLI(t, "", "-e", srv.URL, "--token", "s3cret", "get", "k"); r.code != 0 || r.stdout != "v" {
		t.Fatalf("with --token: %+v", r)
	}
	t.Setenv("RAFTCACHE_TOKEN", "s3cret")
	if r := runCLI(t, "", "-e", srv.URL, "get", "k"); r.code != 0 || r.stdout != "v" {
		t.Fatalf("with RAFTCACHE_TOKEN: %+v", r)
	}
}
