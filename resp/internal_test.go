package resp

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
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
		if got := globMatch([]byte(tc.pattern), []byte(tc.s)); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
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
			if globMatch([]byte(pattern), []byte(s)) && !strings.HasPrefix(s, want) {
				t.Errorf("%q matches %q without the prefix %q", pattern, s, want)
			}
		}
	}
}

func TestFramer(t *testing.T) {
	replies := []string{
		"+OK\r\n",
		"-ERR boom\r\n",
		":-42\r\n",
		"$-1\r\n",
		"*-1\r\n",
		"*0\r\n",
		"$0\r\n\r\n",
		"$5\r\nab\r\nc\r\n", // CR LF inside a bulk
		"*3\r\n$1\r\na\r\n*2\r\n:1\r\n*0\r\n$-1\r\n",
		"*2\r\n$4\r\n1234\r\n*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", // a SCAN reply
	}
	all := strings.Join(replies, "")
	// Fed a byte at a time, the framer finds each reply's end exactly.
	buf := []byte(all)
	start := 0
	for i, want := range replies {
		var f framer
		done := false
		for end := start; end <= len(buf); end++ {
			var err error
			if done, err = f.advance(buf[start:end]); err != nil {
				t.Fatalf("reply %d: %v", i, err)
			}
			if done {
				if got := string(buf[start : start+f.off]); got != want {
					t.Fatalf("reply %d: framed %q, want %q", i, got, want)
				}
				break
			}
		}
		if !done {
			t.Fatalf("reply %d %q: never complete", i, want)
		}
		start += f.off
	}
	var f framer
	if _, err := f.advance([]byte("?what\r\n")); !errors.Is(err, errBadReply) {
		t.Errorf("a malformed reply: %v", err)
	}
	f = framer{}
	if _, err := f.advance([]byte("*x\r\n")); !errors.Is(err, errBadReply) {
		t.Errorf("a malformed array: %v", err)
	}
}

func TestAppendRESP3(t *testing.T) {
	for in, want := range map[string]string{
		"$-1\r\n":                         "_\r\n",
		"*-1\r\n":                         "_\r\n",
		"*3\r\n$1\r\na\r\n$-1\r\n:-1\r\n": "*3\r\n$1\r\na\r\n_\r\n:-1\r\n",
		":-1\r\n":                         ":-1\r\n",
		"$5\r\n$-1\r\n\r\n":               "$5\r\n$-1\r\n\r\n", // the bytes of a value are not a null
		"+OK\r\n":                         "+OK\r\n",
	} {
		if got := string(appendRESP3(nil, []byte(in))); got != want {
			t.Errorf("appendRESP3(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestErrorReply(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fsm.ErrNotInteger, "ERR value is not an integer or out of range"},
		{fsm.ErrOverflow, "ERR increment or decrement would overflow"},
		{fmt.Errorf("%w: x", node.ErrNotLeader), "TRYAGAIN "},
		{node.ErrNoLeader, "TRYAGAIN "},
		{node.ErrUnavailable, "TRYAGAIN "},
		{node.ErrClosed, "TRYAGAIN "},
		{node.ErrTooStale, "TRYAGAIN "},
		{node.ErrIndexTimeout, "TRYAGAIN "},
		{fmt.Errorf("%w: lost", node.ErrUnknownOutcome), "UNKNOWN "},
		{node.ErrTooLarge, "OOM "},
		{node.ErrTooMany, "ERR "},
		{replyError("ERR syntax error"), "ERR syntax error"},
		{errors.New("other"), "ERR other"},
	} {
		if got := errorReply(tc.err); !strings.HasPrefix(got, tc.want) {
			t.Errorf("errorReply(%v) = %q, want prefix %q", tc.err, got, tc.want)
		}
	}
}

func TestParseInt(t *testing.T) {
	for s, want := range map[string]int64{"0": 0, "7": 7, "-7": -7, "9223372036854775807": 1<<63 - 1, "-9223372036854775808": -1 << 63} {
		if got, err := parseInt([]byte(s)); err != nil || got != want {
			t.Errorf("parseInt(%q) = %d, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "+1", "01", "-0", "-01", " 1", "1 ", "1.5", "x", "9223372036854775808", "0x10"} {
		if _, err := parseInt([]byte(s)); err == nil {
			t.Errorf("parseInt(%q) accepted", s)
		}
	}
}

func TestCursorTable(t *testing.T) {
	tab := newCursorTable()
	id := tab.put([]byte("k1"))
	if id == 0 || id >= 1<<63 {
		t.Fatalf("cursor %d", id)
	}
	if after, ok := tab.get(id); !ok || string(after) != "k1" {
		t.Fatalf("get: %q %v", after, ok)
	}
	if _, ok := tab.get(id + 1); ok {
		t.Error("an unknown cursor was found")
	}
	for i := 0; i < maxCursors+10; i++ {
		tab.put([]byte("x"))
	}
	if _, ok := tab.get(id); ok {
		t.Error("the oldest cursor survived eviction")
	}
	if len(tab.pos) > maxCursors {
		t.Errorf("%d cursors kept", len(tab.pos))
	}
}
