package deadline

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// lazyPipe is a Conn over one end of a pipe, and the other end.
func lazyPipe(t *testing.T) (*Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return Lazy(a), b
}

// A deadline moved later is not armed at once, yet a read or write that
// outlives the earlier armed one is not cut: it goes on to the later one.
func TestLaterDeadlineDoesNotCutEarly(t *testing.T) {
	tc, peer := lazyPipe(t)
	if err := tc.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := tc.SetReadDeadline(time.Now().Add(deadlineTestWait)); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond) // past the first deadline: the point of the test
		_, _ = peer.Write([]byte("x"))
	}()
	buf := make([]byte, 1)
	if _, err := tc.Read(buf); err != nil {
		t.Fatalf("read cut at the earlier deadline: %v", err)
	}

	if err := tc.SetWriteDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := tc.SetWriteDeadline(time.Now().Add(deadlineTestWait)); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _ = io.ReadFull(peer, make([]byte, 3))
	}()
	if n, err := tc.Write([]byte("abc")); err != nil || n != 3 {
		t.Fatalf("write cut at the earlier deadline: %d, %v", n, err)
	}
}

// A deadline is still enforced at its time: an earlier one at once (how
// net/http aborts its background read), a later one when it comes.
func TestDeadlinesStillEnd(t *testing.T) {
	tc, _ := lazyPipe(t)
	done := make(chan error, 1)
	go func() {
		_, err := tc.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond) // let the read block (not needed for correctness)
	if err := tc.SetReadDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	wantDeadlineEnd(t, done, "a deadline in the past")

	// Moved later: ends at the later time, not the armed earlier one.
	start := time.Now()
	_ = tc.SetReadDeadline(start.Add(20 * time.Millisecond))
	_ = tc.SetReadDeadline(start.Add(200 * time.Millisecond))
	_, err := tc.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a timeout", err)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Fatalf("timed out after %v, before the 200ms deadline", waited)
	}
	// Cleared: a read blocks again, until a deadline ends it.
	_ = tc.SetReadDeadline(time.Time{})
	go func() {
		_, err := tc.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a read with no deadline returned: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	_ = tc.SetDeadline(time.Now())
	wantDeadlineEnd(t, done, "SetDeadline")
}

// wantDeadlineEnd waits for the result of a blocked read on done and
// fails unless what (a deadline set meanwhile) ended it with a timeout.
func wantDeadlineEnd(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: the blocked read returned %v, want a timeout", what, err)
		}
	case <-time.After(deadlineTestWait):
		t.Fatalf("%s did not end a blocked read", what)
	}
}

const deadlineTestWait = 10 * time.Second
