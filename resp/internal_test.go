package resp

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

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
			if done, err = f.advanceAt(buf[start:end], 0); err != nil {
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
	if _, err := f.advanceAt([]byte("?what\r\n"), 0); !errors.Is(err, errBadReply) {
		t.Errorf("a malformed reply: %v", err)
	}
	f = framer{}
	if _, err := f.advanceAt([]byte("*x\r\n"), 0); !errors.Is(err, errBadReply) {
		t.Errorf("a malformed array: %v", err)
	}
}

// TestFramerRESP3: the framer finds the end of RESP3 replies (relay
// connections of RESP3 clients speak RESP3), whole or cut anywhere.
func TestFramerRESP3(t *testing.T) {
	for _, reply := range []string{
		"%2\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n",
		",1.5\r\n", ",inf\r\n", "_\r\n", "#t\r\n", "(12345678901234567890\r\n",
		"~2\r\n$1\r\nx\r\n:1\r\n", "~0\r\n", "%0\r\n",
		"*2\r\n*2\r\n$1\r\nm\r\n,1.5\r\n*2\r\n$1\r\nn\r\n,2\r\n",
		"!21\r\nSYNTAX invalid syntax\r\n", "=8\r\ntxt:abcd\r\n",
		"%1\r\n$1\r\nk\r\n%1\r\n$1\r\nj\r\n*-1\r\n",
		"$5\r\n$-1\r\n\r\n", // the bytes of a value are not a header
	} {
		for cut := 1; cut < len(reply); cut++ {
			var f framer
			if done, err := f.advanceAt([]byte(reply[:cut]), 0); done || err != nil {
				t.Fatalf("%q cut at %d: done %v, err %v; want incomplete", reply, cut, done, err)
			}
		}
		var f framer
		done, err := f.advanceAt([]byte(reply+"+NEXT\r\n"), 0)
		if !done || err != nil || f.off != len(reply) {
			t.Fatalf("%q: done %v, err %v, end %d; want done at %d", reply, done, err, f.off, len(reply))
		}
	}
	for _, bad := range []string{"|1\r\n+a\r\n+b\r\n+c\r\n", "%x\r\n", "$3\r\nabcXY", "?\r\n"} {
		var f framer
		if _, err := f.advanceAt([]byte(bad), 0); !errors.Is(err, errBadReply) {
			t.Errorf("%q: %v, want errBadReply", bad, err)
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

// A relay frame's attempt field carries the index a resend's first
// attempt applies above (level 5) on resends only, and reads back.
func TestAttemptField(t *testing.T) {
	for _, c := range []struct {
		attempt int
		after   uint64
		want    string
	}{{1, 42, "1"}, {2, 42, "2:42"}, {2, 0, "2"}, {7, 1 << 40, "7:1099511627776"}} {
		got := attemptField(c.attempt, c.after)
		if got != c.want {
			t.Errorf("attemptField(%d, %d) = %q, want %q", c.attempt, c.after, got, c.want)
		}
		n, after, ok := parseAttempt([]byte(got))
		if !ok || n != c.attempt || (c.attempt > 1 && after != c.after) || (c.attempt == 1 && after != 0) {
			t.Errorf("parseAttempt(%q) = %d, %d, %v", got, n, after, ok)
		}
	}
	for _, bad := range []string{"0", "1:0", "1:", ":5", "1:x", "1:5:6", "0:5", "-1", ""} {
		if _, _, ok := parseAttempt([]byte(bad)); ok {
			t.Errorf("parseAttempt(%q) accepted", bad)
		}
	}
}
