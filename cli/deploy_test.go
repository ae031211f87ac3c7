package cli

import (
	"strings"
	"testing"
)

func TestVersionCommandAndFlag(t *testing.T) {
	var v versionJSON
	decodeOne(t, runCLI(t, "", "-o", "json", "version").stdout, &v)
	if v.Version == "" || v.FeatureLevel == 0 || v.GoVersion == "" {
		t.Fatalf("version -o json: %+v", v)
	}
	r := runCLI(t, "", "--version")
	if r.code != ExitOK || !strings.Contains(r.stdout, "raftcache "+v.Version) || !strings.Contains(r.stdout, "feature level:") {
		t.Fatalf("--version: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// TestNodeFormationFlags checks the refusals that need no running node.
func TestNodeFormationFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bootstrap-expect", "3", "--join", "http://a:1,http://b:1"}, "exactly the 3 members"},
		{[]string{"--bootstrap-expect", "2", "--bootstrap"}, "exclude each other"},
		{[]string{"--bootstrap-expect", "-1"}, "0 or more"},
		{[]string{"--bootstrap", "--join", "http://a:1"}, "cluster of one beside"},
		{[]string{"--http-addr", "127.0.0.1:0", "--http-advertise", "0.0.0.0:8000"}, "wildcard"},
		{[]string{"--http-addr", "127.0.0.1:0", "--resp-advertise", "rc1:6379"}, "needs --resp-addr"},
		{[]string{"--resp-relay-conns", "0"}, "--resp-relay-conns must be at least 1"},
	} {
		args := append([]string{"node", "--data-dir", dir, "--raft-addr", "127.0.0.1:0"}, tc.args...)
		r := runCLI(t, "", args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, %q; want usage error %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

func TestRecoverRefusesEmptyDir(t *testing.T) {
	r := runCLI(t, "", "recover", "--data-dir", t.TempDir())
	if r.code != ExitError || !strings.Contains(r.stderr, "no Raft log store") {
		t.Fatalf("recover on an empty directory: %d %q", r.code, r.stderr)
	}
}
