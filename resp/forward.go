package resp

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/tidwall/redcon"
)

// Forwarding. A plain Redis client talks to one address and does not
// follow MOVED, so a follower relays writes (and strong reads) to the
// leader itself: it keeps pooled RESP2 connections to the leader's
// Redis-protocol address (replicated through the log), writes the
// commands of a pipeline run in one go, and copies the leader's replies
// back. Each pooled connection first sends RAFTCACHE.FORWARDED, which
// tells the leader never to forward its commands again: a node that is
// no longer the leader answers TRYAGAIN instead, so two nodes that
// disagree about who leads cannot bounce a command between them.
//
// With a token file, a relay connection first authenticates with the
// token of the client it relays for (connections are pooled per token), so
// the leader applies the caller's role, never the follower's: a follower
// holds no credentials of its own. With TLS on the Redis port, relay
// connections use TLS too (Config.ForwardTLS).

// forwardedCmd marks a connection as a relay from another member.
const forwardedCmd = "RAFTCACHE.FORWARDED"

// errNotSent: the relay failed before any command was written; nothing
// was applied.
var errNotSent = errors.New("not sent")

// errReplyTooLarge: a reply from the leader passed Limits.MaxRelayReply.
// A relayed reply is held whole on the follower, so its size is bounded;
// the relay connection is dropped.
var errReplyTooLarge = errors.New("reply too large to relay through a follower; send the command to the leader, or use READONLY")

type forwarder struct {
	self        string // this node's id, sent with RAFTCACHE.FORWARDED
	timeout     time.Duration
	maxIdle     int
	dialTimeout time.Duration
	tls         *tls.Config // nil: plaintext
	maxReply    int         // bytes of one reply

	mu     sync.Mutex
	idle   map[poolKey][]*fconn
	closed bool
}

// poolKey identifies interchangeable relay connections: same leader, same
// caller identity.
type poolKey struct {
	addr  string
	token string // "" without a token file
}

type fconn struct {
	nc         net.Conn
	key        poolKey
	buf        []byte // read buffer: buf[start:end] holds unread bytes
	start, end int
}

func newForwarder(self string, timeout time.Duration, maxIdle int, tlsConf *tls.Config, maxReply int) *forwarder {
	return &forwarder{self: self, timeout: timeout, maxIdle: maxIdle, dialTimeout: 2 * time.Second,
		tls: tlsConf, maxReply: maxReply, idle: map[poolKey][]*fconn{}}
}

// get returns a live connection for key: an idle one that the peer has
// not closed, or a new one. Idle connections to other addresses (an
// earlier leader) are closed.
func (f *forwarder) get(key poolKey) (*fconn, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, errors.New("shutting down")
	}
	for k, conns := range f.idle {
		if k.addr != key.addr {
			for _, c := range conns {
				c.nc.Close()
			}
			delete(f.idle, k)
		}
	}
	for {
		conns := f.idle[key]
		if len(conns) == 0 {
			delete(f.idle, key)
			break
		}
		c := conns[len(conns)-1]
		f.idle[key] = conns[:len(conns)-1]
		if c.alive() {
			f.mu.Unlock()
			return c, nil
		}
		c.nc.Close()
	}
	f.mu.Unlock()
	return f.dial(key)
}

func (f *forwarder) dial(key poolKey) (*fconn, error) {
	d := &net.Dialer{Timeout: f.dialTimeout}
	var nc net.Conn
	var err error
	if f.tls != nil {
		nc, err = (&tls.Dialer{NetDialer: d, Config: f.tls}).Dial("tcp", key.addr)
	} else {
		nc, err = d.Dial("tcp", key.addr)
	}
	if err != nil {
		return nil, err
	}
	c := &fconn{nc: nc, key: key, buf: make([]byte, 16<<10)}
	_ = nc.SetDeadline(time.Now().Add(f.timeout))
	var hello []byte
	replies := 1
	if key.token != "" {
		replies = 2
		hello = redcon.AppendBulkString(redcon.AppendArray(hello, 2), "AUTH")
		hello = redcon.AppendBulkString(hello, key.token)
	}
	hello = redcon.AppendBulkString(redcon.AppendArray(hello, 2), forwardedCmd)
	hello = redcon.AppendBulkString(hello, f.self)
	if _, err := nc.Write(hello); err != nil {
		nc.Close()
		return nil, err
	}
	for range replies {
		reply, err := c.readReply(1 << 10)
		if err != nil || string(reply) != "+OK\r\n" {
			nc.Close()
			return nil, fmt.Errorf("%s did not accept a relay connection: %q %v", key.addr, reply, err)
		}
	}
	return c, nil
}

// alive reports whether an idle connection can be reused: nothing left
// unread, and the peer has not closed it.
func (c *fconn) alive() bool {
	nc := c.nc
	if tc, ok := nc.(*tls.Conn); ok {
		// Peek under TLS: an idle relay connection has no record pending
		// (session tickets were read with the first reply); a close_notify
		// or a closed socket shows as bytes or end-of-file.
		nc = tc.NetConn()
	}
	return c.start == c.end && connAlive(nc)
}

func (f *forwarder) put(c *fconn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || len(f.idle[c.key]) >= f.maxIdle {
		c.nc.Close()
		return
	}
	if cap(c.buf) > 64<<10 { // a large reply grew it: do not keep that while idle
		c.buf, c.start, c.end = make([]byte, 16<<10), 0, 0
	}
	f.idle[c.key] = append(f.idle[c.key], c)
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for a, conns := range f.idle {
		for _, c := range conns {
			c.nc.Close()
		}
		delete(f.idle, a)
	}
}

// relay sends the raw commands to addr, authenticated with token when it
// is not empty, on one connection and passes each
// reply, in order, to out. It returns how many replies were passed on;
// fewer than len(cmds) means the connection failed after the commands
// were (perhaps) received: their outcome is unknown. errNotSent means
// nothing was written.
func (f *forwarder) relay(addr, token string, cmds [][]byte, out func(i int, reply []byte)) (int, error) {
	c, err := f.get(poolKey{addr, token})
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errNotSent, err)
	}
	_ = c.nc.SetDeadline(time.Now().Add(f.timeout))
	bufs := net.Buffers(append([][]byte(nil), cmds...)) // WriteTo consumes its slice
	if _, err := bufs.WriteTo(c.nc); err != nil {
		c.nc.Close()
		return 0, err
	}
	for i := range cmds {
		reply, err := c.readReply(f.maxReply)
		if err != nil {
			c.nc.Close()
			return i, err
		}
		out(i, reply)
	}
	f.put(c)
	return len(cmds), nil
}

// readReply returns the next whole reply (valid until the next read), or
// errReplyTooLarge once it passes max bytes.
func (c *fconn) readReply(max int) ([]byte, error) {
	var fr framer
	for {
		if done, err := fr.advance(c.buf[c.start:c.end]); err != nil {
			return nil, err
		} else if done {
			reply := c.buf[c.start : c.start+fr.off]
			c.start += fr.off
			return reply, nil
		}
		if c.end-c.start >= max {
			return nil, errReplyTooLarge
		}
		if c.start > 0 { // make room at the end
			n := copy(c.buf, c.buf[c.start:c.end])
			c.start, c.end = 0, n
		}
		if c.end == len(c.buf) {
			c.buf = append(c.buf, make([]byte, len(c.buf))...)
		}
		n, err := c.nc.Read(c.buf[c.end:])
		c.end += n
		if err != nil && n == 0 {
			return nil, err
		}
	}
}

// framer finds the end of one RESP2 reply in a growing buffer without
// rescanning what it has already passed: leaf values (status, error,
// integer, bulk) are read by redcon.ReadNextRESP, and arrays are tracked
// as a stack of elements still to come, so a long array arriving in many
// reads costs linear time. off is where parsing resumes; offsets are
// relative to the start of the reply, which does not move while it is
// being framed.
type framer struct {
	off   int
	stack []int
}

var errBadReply = errors.New("malformed reply from the leader")

func (f *framer) advance(b []byte) (done bool, err error) {
	for f.off < len(b) {
		if b[f.off] == '*' {
			eol := bytes.Index(b[f.off:], []byte("\r\n"))
			if eol < 0 {
				return false, nil
			}
			n, err := strconv.Atoi(string(b[f.off+1 : f.off+eol]))
			if err != nil {
				return false, errBadReply
			}
			f.off += eol + 2
			if n > 0 {
				f.stack = append(f.stack, n)
				continue
			}
		} else {
			n, r := redcon.ReadNextRESP(b[f.off:])
			if r.Type == 0 {
				switch b[f.off] {
				case '+', '-', ':', '$':
					return false, nil // incomplete
				}
				return false, errBadReply
			}
			f.off += n
		}
		// One element completed: close every array it completes.
		for len(f.stack) > 0 {
			f.stack[len(f.stack)-1]--
			if f.stack[len(f.stack)-1] > 0 {
				break
			}
			f.stack = f.stack[:len(f.stack)-1]
		}
		if len(f.stack) == 0 {
			return true, nil
		}
	}
	return false, nil
}

// appendRESP3 appends a complete RESP2 reply translated for a RESP3
// client: null bulk strings and null arrays become the RESP3 null. No
// other type differs in the replies of the commands that are relayed.
func appendRESP3(dst, reply []byte) []byte {
	if !bytes.Contains(reply, []byte("-1\r\n")) {
		return append(dst, reply...)
	}
	_, r := redcon.ReadNextRESP(reply)
	return appendRESP3Value(dst, r)
}

func appendRESP3Value(dst []byte, r redcon.RESP) []byte {
	switch r.Type {
	case redcon.Bulk, redcon.Array:
		if bytes.HasPrefix(r.Raw, []byte("$-1\r\n")) || bytes.HasPrefix(r.Raw, []byte("*-1\r\n")) {
			return append(dst, '_', '\r', '\n')
		}
	}
	if r.Type != redcon.Array {
		return append(dst, r.Raw...)
	}
	dst = redcon.AppendArray(dst, r.Count)
	r.ForEach(func(e redcon.RESP) bool {
		dst = appendRESP3Value(dst, e)
		return true
	})
	return dst
}
