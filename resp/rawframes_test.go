package resp_test

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Frame-level matching for rawConn.expect when flushOK is set.
//
// A follower that cannot vouch for its state for a moment (on this 2-core
// machine under load, a heartbeat late by half the heartbeat timeout, or
// applying a tick behind) sends its tracking clients the flush-everything
// invalidation and forgets what they read (node/feed.go, hub.go). That is
// the contract, not a fault: the client is told to drop everything. A
// byte-exact test of tracking on a follower then sees such a push between
// any two replies, and instead of the invalidation of one key it waited
// for. With flushOK, expect reads frame by frame: a flush push where none
// is wanted is skipped, and one where a key's invalidation is wanted
// stands for it (it covers every key).

// The flush-everything invalidation, as a RESP3 push and as the RESP2
// message on a REDIRECT connection; and the start of either's
// invalidation of a list of keys.
const (
	flushPush     = ">2\r\n$10\r\ninvalidate\r\n_\r\n"
	flushMessage  = "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"
	keyPushPrefix = ">2\r\n$10\r\ninvalidate\r\n*"
	keyMsgPrefix  = "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*"
)

func isFlush(frame string) bool { return frame == flushPush || frame == flushMessage }

func isKeyInvalidation(frame string) bool {
	return strings.HasPrefix(frame, keyPushPrefix) || strings.HasPrefix(frame, keyMsgPrefix)
}

// readFrame reads one whole RESP2/RESP3 frame, bytes as sent.
func readFrame(rd *bufio.Reader) (string, error) {
	var b strings.Builder
	if err := copyFrame(rd, &b); err != nil {
		return b.String(), err
	}
	return b.String(), nil
}

func copyFrame(rd *bufio.Reader, b *strings.Builder) error {
	line, err := rd.ReadString('\n')
	b.WriteString(line)
	if err != nil {
		return err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return fmt.Errorf("malformed frame line %q", line)
	}
	head := line[1 : len(line)-2]
	switch line[0] {
	case '$', '!', '=': // bulk: length, then payload and CRLF
		n, err := strconv.Atoi(head)
		if err != nil {
			return err
		}
		if n < 0 {
			return nil
		}
		buf := make([]byte, n+2)
		k, err := io.ReadFull(rd, buf)
		b.Write(buf[:k])
		return err
	case '*', '>', '~', '%', '|': // aggregates
		n, err := strconv.Atoi(head)
		if err != nil {
			return err
		}
		if line[0] == '%' || line[0] == '|' {
			n *= 2
		}
		for range max(n, 0) {
			if err := copyFrame(rd, b); err != nil {
				return err
			}
		}
		return nil
	default: // + - : _ , # ( one line
		return nil
	}
}

// expectFrames is expect for a connection with flushOK set.
func (c *rawConn) expectFrames(want string) {
	c.t.Helper()
	wr := bufio.NewReader(strings.NewReader(want))
	for {
		w, err := readFrame(wr)
		if err == io.EOF && w == "" {
			return
		}
		if err != nil {
			c.t.Fatalf("bad expectation %q: %v", want, err)
		}
		for {
			got, err := readFrame(c.rd)
			if err != nil {
				c.t.Fatalf("reading %q of %q: got %q, %v", w, want, got, err)
			}
			if isFlush(got) {
				c.flushes++
			}
			if got == w || isFlush(got) && isKeyInvalidation(w) {
				break
			}
			if isFlush(got) {
				continue // the follower could not vouch for a moment
			}
			c.t.Fatalf("got %q, want %q (of %q)", got, w, want)
		}
	}
}

// nextFrame reads the next frame that is not a flush-everything
// invalidation, counting those it skips (flushOK connections).
func (c *rawConn) nextFrame() string {
	c.t.Helper()
	for {
		got, err := readFrame(c.rd)
		if err != nil {
			c.t.Fatalf("reading a frame: got %q, %v", got, err)
		}
		if !isFlush(got) {
			return got
		}
		c.flushes++
	}
}
