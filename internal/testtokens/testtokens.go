// Package testtokens writes token files for tests of the token roles, the
// same way an operator would, and loads them with auth.Load.
package testtokens

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftcache/raftcache/auth"
)

// File writes lines (`ROLE TOKEN [NAME]`) to a token file in a temporary
// directory and returns it loaded, with its path for reload tests.
func File(t testing.TB, lines ...string) (*auth.Tokens, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	toks, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return toks, path
}
