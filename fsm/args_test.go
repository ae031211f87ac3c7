package fsm

import (
	"fmt"
	"strings"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"", "", true},
		{"", "a", false},
		{"**", "", true},
		{"a*", "", false},
		{"a", "a", true},
		{"a", "ab", false},
		{"a*", "abc", true},
		{"a*", "ba", false},
		{"*a", "ba", true},
		{"*a", "ab", false},
		{"a*c", "abbbc", true},
		{"a*c", "abbbcd", false},
		{"a**c", "ac", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a?c", "abbc", false},
		{"?", "", false},
		{"[abc]", "b", true},
		{"[abc]", "d", false},
		{"[^abc]", "d", true},
		{"[^abc]", "a", false},
		{"[a-c]x", "bx", true},
		{"[c-a]x", "bx", true}, // reversed range
		{"[a-c]", "d", false},
		{"[\\]]", "]", true},
		{"[\\-]", "-", true},
		{"\\*", "*", true},
		{"\\*", "a", false},
		{"a\\?c", "a?c", true},
		{"a\\?c", "abc", false},
		{"a\\", "a\\", true}, // a trailing backslash is literal
		{"[", "", false},
		{"[a", "a", true}, // unterminated class: what was given
		{"[a", "b", false},
		{"user:*:name", "user:42:name", true},
		{"user:*:name", "user:42:email", false},
		{"*/*", "a/b", true}, // '/' is an ordinary byte, unlike path.Match
		{"h?llo", "h\xffllo", true},
		{"*a*b*c*", "xaybzc", true},
		{"*a*b*c*", "xaybz", false},
		{strings.Repeat("*a", 30) + "b", strings.Repeat("a", 60), false}, // no exponential blow-up
	} {
		if got := GlobMatch([]byte(tc.pattern), []byte(tc.s)); got != tc.want {
			t.Errorf("GlobMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestLiteralPrefix(t *testing.T) {
	for pattern, want := range map[string]string{
		"":            "",
		"*":           "",
		"user:*":      "user:",
		"user:1?":     "user:1",
		"a[bc]":       "a",
		"a\\*b*":      "a*b",
		"plain":       "plain",
		"trailing\\":  "trailing\\",
		"esc\\[x]*yz": "esc[x]",
	} {
		if got := string(literalPrefix([]byte(pattern))); got != want {
			t.Errorf("literalPrefix(%q) = %q, want %q", pattern, got, want)
		}
		// Every key the pattern matches starts with the prefix.
		for _, s := range []string{want, want + "x", want + "yz", want + "]"} {
			if GlobMatch([]byte(pattern), []byte(s)) && !strings.HasPrefix(s, want) {
				t.Errorf("%q matches %q without the prefix %q", pattern, s, want)
			}
		}
	}
}

func TestParseInt(t *testing.T) {
	for s, want := range map[string]int64{"0": 0, "7": 7, "-7": -7, "9223372036854775807": 1<<63 - 1, "-9223372036854775808": -1 << 63} {
		if got, ok := ParseInt([]byte(s)); !ok || got != want {
			t.Errorf("ParseInt(%q) = %d, %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "+1", "01", "-0", "-01", " 1", "1 ", "1.5", "x", "9223372036854775808", "0x10"} {
		if _, ok := ParseInt([]byte(s)); ok {
			t.Errorf("ParseInt(%q) accepted", s)
		}
	}
}

func TestCursorTable(t *testing.T) {
	var tab cursorTable
	id := tab.put("k1", t0)
	if id == 0 || id >= 1<<63 {
		t.Fatalf("cursor %d", id)
	}
	if again := tab.put("k1", t0); again != id {
		t.Fatalf("the same position got cursors %d and %d: nodes running one SCAN would disagree", id, again)
	}
	if after, ok := tab.get(id, t0); !ok || after != "k1" {
		t.Fatalf("get: %q %v", after, ok)
	}
	if _, ok := tab.get(id+1, t0); ok {
		t.Error("an unknown cursor was found")
	}
	if _, ok := tab.get(id, t0+cursorTTL+1); ok {
		t.Error("an expired cursor was found")
	}
	for i := 0; i < maxCursors+10; i++ {
		tab.put(fmt.Sprint("x", i), t0)
	}
	if _, ok := tab.get(id, t0); ok {
		t.Error("the oldest cursor survived eviction")
	}
	if len(tab.pos) > maxCursors {
		t.Errorf("%d cursors kept", len(tab.pos))
	}
}
