package transport

import (
	"errors"
	"os"
	"sync"
	"time"
)

// net/http moves a keep-alive connection's deadlines eight times per
// request (header, body and idle read deadlines, the background read and
// its abort, the write deadline and its reset), and each move re-arms a
// runtime timer: about 4% of a node's CPU under a read load. Most of those
// moves only push a deadline later. So a trackedConn arms a new deadline
// at once only when it is earlier than the armed one; a later one is
// remembered, and a read or write that times out at the earlier armed
// deadline before the wanted one re-arms the wanted one and carries on.
// Every deadline is still enforced at the time it was set to, no sooner
// and no later: only the timer moves less often.
type lazyDeadlines struct {
	mu                  sync.Mutex
	readWant, readSet   time.Time // zero: none
	writeWant, writeSet time.Time
}

// earlier reports whether deadline a comes before b (zero: never).
func earlier(a, b time.Time) bool {
	if a.IsZero() {
		return false
	}
	return b.IsZero() || a.Before(b)
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *trackedConn) SetReadDeadline(t time.Time) error {
	d := &c.deadlines
	d.mu.Lock()
	defer d.mu.Unlock()
	d.readWant = t
	if !earlier(t, d.readSet) {
		return nil
	}
	d.readSet = t
	return c.Conn.SetReadDeadline(t)
}

func (c *trackedConn) SetWriteDeadline(t time.Time) error {
	d := &c.deadlines
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writeWant = t
	if !earlier(t, d.writeSet) {
		return nil
	}
	d.writeSet = t
	return c.Conn.SetWriteDeadline(t)
}

// rearm is called after an operation timed out at the armed deadline set:
// it arms want instead and reports true if want is still ahead, else
// false (the timeout is real).
func rearm(mu *sync.Mutex, want, set *time.Time, arm func(time.Time) error) bool {
	mu.Lock()
	defer mu.Unlock()
	if *want == *set || (!want.IsZero() && !time.Now().Before(*want)) {
		return false
	}
	*set = *want
	return arm(*want) == nil
}

func (c *trackedConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		d := &c.deadlines
		if !rearm(&d.mu, &d.readWant, &d.readSet, c.Conn.SetReadDeadline) {
			return n, err
		}
	}
}

func (c *trackedConn) Write(p []byte) (int, error) {
	written := 0
	for {
		n, err := c.Conn.Write(p)
		written += n
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return written, err
		}
		p = p[n:]
		d := &c.deadlines
		if len(p) == 0 || !rearm(&d.mu, &d.writeWant, &d.writeSet, c.Conn.SetWriteDeadline) {
			return written, err
		}
	}
}
