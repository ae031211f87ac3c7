package resp

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/tidwall/redcon"
)

// Forwarding. A plain Redis client talks to one address and does not
// follow MOVED, so a follower relays writes (and strong reads) to the
// leader itself, over connections to the leader's Redis-protocol address
// (replicated through the log), and copies the leader's replies back.
// Each relay connection first sends RAFTCACHE.FORWARDED, which tells the
// leader never to forward its commands again: a node that is no longer
// the leader answers TRYAGAIN instead, so two nodes that disagree about
// who leads cannot bounce a command between them.
//
// Relayed runs of commands share a few pipelined connections per leader
// (relay_shared.go): many clients' commands go out in one write and
// their replies come back in order on one read. A blocked command
// (blocking.go) holds its connection for as long as it waits, so it takes
// a dedicated one from the idle pool kept here (get, put).
//
// With a token file, a relay connection first authenticates with the
// token of the client it relays for (connections are kept per token), so
// the leader applies the caller's role, never the follower's: a follower
// holds no credentials of its own. With TLS on the Redis port, relay
// connections use TLS too (Config.ForwardTLS).

// forwardedCmd marks a connection as a relay from another member.
const forwardedCmd = "RAFTCACHE.FORWARDED"

// errNotSent: the relay failed before any command was written; nothing
// was applied.
var errNotSent = errors.New("not sent")

// errReplyTooLarge: a reply from the leader passed Limits.MaxRelayReply.
// A relayed reply is held whole on the follower, so its size is bounded:
// a shared relay connection skips the reply, a dedicated one is dropped.
var errReplyTooLarge = errors.New("reply too large to relay through a follower; send the command to the leader, or use READONLY")

// errShuttingDown: the node is stopping; nothing more is relayed.
var errShuttingDown = errors.New("shutting down")

type forwarder struct {
	self        string // this node's id, sent with RAFTCACHE.FORWARDED
	timeout     time.Duration
	maxIdle     int
	dialTimeout time.Duration
	tls         *tls.Config // nil: plaintext
	maxReply    int         // bytes of one reply

	conns int // shared connections per pool key (relay_shared.go)

	mu     sync.Mutex
	leader string               // the address relayed to last (followLocked)
	idle   map[poolKey][]*fconn // dedicated connections, idle
	pools  map[poolKey]*relayPool
	closed bool
}

// poolKey identifies interchangeable relay connections: same leader, same
// caller identity, same protocol. A relay connection speaks its callers'
// protocol (HELLO 3 for RESP3 clients) and their replies are copied
// through as the leader wrote them: translating RESP2 replies for a RESP3
// client cannot restore the types RESP3 adds (a map for HGETALL, doubles
// for scores, sets), and redis-py with protocol=3 would hand out a list
// where it hands out a dict on the leader.
type poolKey struct {
	addr  string
	token string // "" without a token file
	proto int    // 2 or 3
}

type fconn struct {
	nc         net.Conn
	key        poolKey
	buf        []byte // read buffer: buf[start:end] holds unread bytes
	start, end int
}

func newForwarder(self string, timeout time.Duration, maxIdle, conns int, tlsConf *tls.Config, maxReply int) *forwarder {
	return &forwarder{self: self, timeout: timeout, maxIdle: maxIdle, conns: conns, dialTimeout: 2 * time.Second,
		tls: tlsConf, maxReply: maxReply, idle: map[poolKey][]*fconn{}, pools: map[poolKey]*relayPool{}}
}

// get returns a dedicated connection for key: an idle one that the peer
// has not closed, or a new one. Connections to other addresses (an
// earlier leader) are closed (followLocked).
func (f *forwarder) get(key poolKey) (*fconn, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, errShuttingDown
	}
	f.followLocked(key.addr, false)
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

// follow is followLocked for the server's leader watch (followLeader).
func (f *forwarder) follow(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.followLocked(addr, true)
	}
}

// followLocked notes that addr is where commands are relayed now ("" when
// this node leads). When it is a new address (the leader changed), it
// closes the idle dedicated connections and retires the shared pools of
// every other address. The leader watch (now) fails the calls still
// waiting on them: a deposed leader commits nothing more, and one that
// died without closing its connections (a partition, a power cut) would
// hold them until their deadline, past the window in which a write under
// a request id is sent again to the new leader (once.go). Failed, they
// are sent again at once (or answered UNKNOWN if they may have run and
// cannot be). A relay to a new address retires the others once their
// callers are answered: its caller may hold a leader address read a
// moment before a change, and must not cut the current leader's calls.
func (f *forwarder) followLocked(addr string, now bool) {
	if addr == f.leader {
		return
	}
	f.leader = addr
	for k, conns := range f.idle {
		if k.addr != addr {
			for _, c := range conns {
				c.nc.Close()
			}
			delete(f.idle, k)
		}
	}
	for k, p := range f.pools {
		if k.addr != addr {
			p.retire(errRetired, now)
			delete(f.pools, k)
		}
	}
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
	if key.proto == 3 {
		hello = redcon.AppendBulkString(redcon.AppendArray(hello, 2), "HELLO")
		hello = redcon.AppendBulkString(hello, "3")
	}
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
	if key.proto == 3 {
		reply, err := c.readReply(4 << 10)
		if err != nil || !bytes.HasPrefix(reply, []byte("%")) {
			nc.Close()
			return nil, fmt.Errorf("%s did not accept HELLO 3 on a relay connection: %q %v", key.addr, reply, err)
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
	if f.closed || c.key.addr != f.leader || len(f.idle[c.key]) >= f.maxIdle {
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
	for key, p := range f.pools {
		p.retire(errShuttingDown, true)
		delete(f.pools, key)
	}
}
