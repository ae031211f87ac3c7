package deadline

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// Conn is a net.Conn whose deadlines re-arm the runtime's timer only when
// they must. net/http moves a keep-alive connection's deadlines eight
// times per request (header, body and idle read deadlines, the background
// read and its abort, the write deadline and its reset), and the Redis
// front moves its write deadline on every reply; each move re-arms a
// runtime timer: about 4% of a node's CPU under a read load. Most of those
// moves only push a deadline later. So a Conn arms a new deadline at once
// only when it is earlier than the armed one; a later one is remembered,
// and a read or write that times out at the earlier armed deadline before
// the wanted one re-arms the wanted one and carries on. Every deadline is
// still enforced at the time it was set to, no sooner and no later: only
// the timer moves less often. Both fronts wrap their accepted connections
// in one.
type Conn struct {
	net.Conn

	mu                  sync.Mutex
	readWant, readSet   time.Time // zero: none
	writeWant, writeSet time.Time
}

// Lazy wraps c.
func Lazy(c net.Conn) *Conn { return &Conn{Conn: c} }

// CloseWrite half-closes c when it can (a TCP connection), as net/http
// does on a plain connection; otherwise it does nothing.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// earlier reports whether deadline a comes before b (zero: never).
func earlier(a, b time.Time) bool {
	if a.IsZero() {
		return false
	}
	return b.IsZero() || a.Before(b)
}

func (c *Conn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.set(&c.readWant, &c.readSet, t, c.Conn.SetReadDeadline)
}

func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.set(&c.writeWant, &c.writeSet, t, c.Conn.SetWriteDeadline)
}

// set records t as the wanted deadline and arms it only if it is earlier
// than the armed one.
func (c *Conn) set(want, armed *time.Time, t time.Time, arm func(time.Time) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	*want = t
	if !earlier(t, *armed) {
		return nil
	}
	*armed = t
	return arm(t)
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

func (c *Conn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if !rearm(&c.mu, &c.readWant, &c.readSet, c.Conn.SetReadDeadline) {
			return n, err
		}
	}
}

func (c *Conn) Write(p []byte) (int, error) {
	written := 0
	for {
		n, err := c.Conn.Write(p)
		written += n
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return written, err
		}
		p = p[n:]
		if len(p) == 0 || !rearm(&c.mu, &c.writeWant, &c.writeSet, c.Conn.SetWriteDeadline) {
			return written, err
		}
	}
}
