package auth

import (
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLookupAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	write(t, path, "# comment\n\nread  rrrrrrrrrrrrrrrr dash\nwrite wwwwwwwwwwwwwwww\nadmin aaaaaaaaaaaaaaaa ops\n")
	toks, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]Principal{
		"rrrrrrrrrrrrrrrr": {"dash", RoleRead},
		"wwwwwwwwwwwwwwww": {"line 4", RoleWrite},
		"aaaaaaaaaaaaaaaa": {"ops", RoleAdmin},
	} {
		if p, ok := toks.Lookup(tok); !ok || p != want {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v", tok, p, ok, want)
		}
	}
	for _, bad := range []string{"", "rrrrrrrrrrrrrrr", "rrrrrrrrrrrrrrrrr", "read"} {
		if p, ok := toks.Lookup(bad); ok {
			t.Errorf("Lookup(%q) found %+v", bad, p)
		}
	}
	if !(RoleNone < RoleRead && RoleRead < RoleWrite && RoleWrite < RoleAdmin) {
		t.Fatal("roles must be ordered weakest first")
	}

	write(t, path, "read rrrrrrrrrrrrrrrr\n")
	if err := toks.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := toks.Lookup("aaaaaaaaaaaaaaaa"); ok {
		t.Fatal("a token removed from the file still works after Reload")
	}
	write(t, path, "superuser xxxxxxxxxxxxxxxx\n")
	if err := toks.Reload(); err == nil {
		t.Fatal("Reload accepted an unknown role")
	}
	if _, ok := toks.Lookup("rrrrrrrrrrrrrrrr"); !ok {
		t.Fatal("a failed Reload dropped the tokens in force")
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	for i, text := range []string{"read short\n", "none xxxxxxxxxxxxxxxx\n", "read\n", "read xxxxxxxxxxxxxxxx name extra\n"} {
		p := filepath.Join(dir, "f"+string(rune('a'+i)))
		write(t, p, text)
		if _, err := Load(p); err == nil {
			t.Errorf("Load accepted %q", text)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("Load accepted a missing file")
	}
}
