package resp

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/raftcache/raftcache/internal/deadline"
)

// Limits bound what one connection (and all of them) can make the node
// hold in memory. redcon, which parses the protocol, grows its read buffer
// without bound until a command is complete, so a client announcing
// `$4000000000` and trickling bytes would eventually exhaust memory.
// Every connection's byte stream is therefore framed a second time, as it
// is read (limitConn), and a command over a limit is refused before it is
// buffered: the client gets `-ERR Protocol error: ...` and the connection
// is closed, as Redis does past proto-max-bulk-len. Commands already in
// the same read are dropped with it.
type Limits struct {
	// MaxClients bounds open connections; past it a new connection gets
	// `-ERR max number of clients reached` and is closed (Redis: maxclients).
	// Default 10000.
	MaxClients int
	// MaxBulkLen bounds one argument. Default MaxValueSize + 1 MiB, so a
	// value slightly over the value limit still gets the polite error.
	MaxBulkLen int64
	// MaxArgs bounds the arguments of one command. Default 65536 (MSET of
	// the most keys one command may carry needs 8193).
	MaxArgs int64
	// MaxCommandBytes bounds one command, all arguments together. Default
	// 64 MiB.
	MaxCommandBytes int64
	// MaxInline bounds an inline (telnet-style) command line. Default 64 KiB.
	MaxInline int64
	// Before AUTH succeeds, on a node with a token file, a command may
	// carry at most PreAuthArgs arguments and PreAuthBytes bytes (as Redis
	// limits unauthenticated clients), and the connection is closed if it
	// has not authenticated within AuthTimeout. Defaults 1024, 64 KiB, 10s.
	PreAuthArgs  int64
	PreAuthBytes int64
	AuthTimeout  time.Duration
	// HandshakeTimeout bounds a TLS handshake. Default 10s.
	HandshakeTimeout time.Duration
	// MaxRelayReply bounds one reply a follower relays from the leader
	// (it holds the whole reply); past it the command answers an error
	// saying to ask the leader. Default 64 MiB.
	MaxRelayReply int64
	// MaxPushBytes bounds the pushes (pub/sub messages, invalidations)
	// waiting for one connection; past it the connection is closed, as
	// Redis's client-output-buffer-limit pubsub. Default 32 MiB.
	MaxPushBytes int64
}

func (l *Limits) setDefaults(maxValue int64) {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.MaxClients <= 0 {
		l.MaxClients = 10000
	}
	def(&l.MaxBulkLen, maxValue+1<<20)
	def(&l.MaxArgs, 1<<16)
	def(&l.MaxCommandBytes, 64<<20)
	def(&l.MaxInline, 64<<10)
	def(&l.PreAuthArgs, 1024)
	def(&l.PreAuthBytes, 64<<10)
	def(&l.MaxRelayReply, 64<<20)
	def(&l.MaxPushBytes, 32<<20)
	if l.AuthTimeout <= 0 {
		l.AuthTimeout = 10 * time.Second
	}
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = 10 * time.Second
	}
}

// errLimit is what limitConn.Read returns after refusing a command; redcon
// then closes the connection.
var errLimit = errors.New("protocol limit exceeded")

// limitConn frames the bytes a client sends and refuses commands over the
// limits; it also runs the TLS handshake, the authentication deadline and
// a deadline on every write. Only redcon's connection goroutine reads and
// writes it (the server's handler, which logs it in and out, runs there).
//
// It also works around redcon's buffer growth: when its buffer is full and
// ends inside a command, redcon doubles it and keeps everything already
// parsed, so a client streaming small commands that straddle reads would
// grow it without bound. limitConn therefore hands redcon the bytes of the
// first unfinished command freely (redcon must grow for a large command),
// and beyond it only whole commands: redcon's unparsed bytes are then at
// most one command, which the limits bound.
type limitConn struct {
	net.Conn          // the client connection: a deadline.Conn, or a *tls.Conn over one
	raw      net.Conn // the TCP connection under them
	lim      *Limits
	needAuth bool        // a token file is configured
	authed   atomic.Bool // set by the server when AUTH succeeds, cleared by RESET
	authTime *time.Timer // closes the connection if it is not authenticated in time
	started  bool        // TLS handshake done
	f        framing

	// Waking (wake.go): wakeCmd is the server's wake command; wakeable is
	// set after the connection's first command (arm) and cleared when it
	// leaves redcon's loop; poked says a wake is on its way.
	wakeCmd  []byte
	wakeable atomic.Bool
	poked    atomic.Bool

	// relay: the peer said RAFTCACHE.FORWARDED (cmdForwarded): a member
	// relaying its clients' commands, which get room for the wrapper.
	relay atomic.Bool

	buf  []byte // read from the client, not yet handed to redcon: buf[off:]
	off  int
	ends []int // offsets in buf where a scanned command ends, ascending
}

// readChunk is how much limitConn reads from the client at a time.
const readChunk = 16 << 10

func newLimitConn(c net.Conn, tlsConf *tls.Config, lim *Limits, needAuth bool) *limitConn {
	lazy := deadline.Lazy(c)
	lc := &limitConn{Conn: lazy, raw: c, lim: lim, needAuth: needAuth}
	if tlsConf != nil {
		lc.Conn = tls.Server(lazy, tlsConf)
	}
	if needAuth {
		lc.authTime = time.AfterFunc(lim.AuthTimeout, func() {
			if !lc.authed.Load() {
				lc.raw.Close()
			}
		})
	}
	return lc
}

// login and logout are called by the server on AUTH and RESET.
func (c *limitConn) login() { c.authed.Store(true) }

func (c *limitConn) logout() {
	c.authed.Store(false)
	if c.authTime != nil {
		c.authTime.Reset(c.lim.AuthTimeout)
	}
}

func (c *limitConn) Close() error {
	if c.authTime != nil {
		c.authTime.Stop()
	}
	return c.Conn.Close()
}

// Write bounds every write: a client that stops reading its replies is cut
// instead of holding its connection (and the replies) forever. The
// connection under it is a deadline.Conn, so moving the deadline later on
// every reply does not re-arm the runtime's timer each time.
func (c *limitConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(spillTimeout))
	return c.Conn.Write(p)
}

func (c *limitConn) Read(p []byte) (int, error) {
	if !c.started {
		c.started = true
		if tc, ok := c.Conn.(*tls.Conn); ok {
			ctx, cancel := context.WithTimeout(context.Background(), c.lim.HandshakeTimeout)
			err := tc.HandshakeContext(ctx)
			cancel()
			if err != nil {
				return 0, err
			}
		}
	}
	for {
		if n := c.deliver(p); n > 0 {
			return n, nil
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
}

// deliver copies into p the rest of the first unfinished command, or whole
// commands up to the last that fits, and returns how many bytes.
func (c *limitConn) deliver(p []byte) int {
	pending := len(c.buf) - c.off
	if pending == 0 {
		return 0
	}
	n := 0
	switch {
	case len(c.ends) == 0: // only the first command, unfinished
		n = min(len(p), pending)
	case c.ends[0]-c.off > len(p): // the first command does not fit: a piece of it
		n = len(p)
	default:
		k := 0
		for k+1 < len(c.ends) && c.ends[k+1]-c.off <= len(p) {
			k++
		}
		n = c.ends[k] - c.off
	}
	copy(p, c.buf[c.off:c.off+n])
	c.off += n
	for len(c.ends) > 0 && c.ends[0] <= c.off {
		c.ends = c.ends[1:]
	}
	if c.off == len(c.buf) { // all handed over: start again at the front
		c.buf, c.off = c.buf[:0], 0
		if cap(c.buf) > 4*readChunk {
			c.buf = nil
		}
	}
	return n
}

// fill reads more from the client and frames it.
func (c *limitConn) fill() error {
	if c.off > 0 && c.off == len(c.buf) {
		c.buf, c.off = c.buf[:0], 0
	}
	start := len(c.buf)
	if cap(c.buf)-start < readChunk {
		nb := make([]byte, start-c.off, start-c.off+readChunk)
		copy(nb, c.buf[c.off:])
		for i := range c.ends {
			c.ends[i] -= c.off
		}
		c.buf, c.off, start = nb, 0, start-c.off
	}
	// Read first, then wait (what Conn.Read does): waiting on the poller
	// first, to save the read that finds nothing after each reply, hangs
	// clients, because RawConn.Read clears pending readiness before its
	// first callback (docs/benchmarks.md, "what was tried").
	n, err := c.Conn.Read(c.buf[start : start+readChunk])
	if n == 0 && c.woken(err) {
		if start != c.off || c.f.state != stStart {
			return nil // inside a command: handling it will do
		}
		n, err = copy(c.buf[start:start+readChunk], c.wakeCmd), nil
	}
	c.buf = c.buf[:start+n]
	if n > 0 {
		maxArgs, maxCmd := c.lim.MaxArgs, c.lim.MaxCommandBytes
		if c.relay.Load() {
			// Room for what a follower's relay adds to a client's
			// command (RAFTCACHE.ONCE, its id and attempt): a command
			// within the bounds on the follower must pass the leader's,
			// or the leader's protocol error would cut the relay
			// connection it shares with other clients and answer one of
			// them. Only relays get it: a client given it on a follower
			// could send a command that, wrapped, passes the leader's.
			maxArgs, maxCmd = maxArgs+relayArgRoom, maxCmd+relayByteRoom
		}
		if c.needAuth && !c.authed.Load() {
			maxArgs, maxCmd = c.lim.PreAuthArgs, c.lim.PreAuthBytes
		}
		msg := c.f.scan(c.buf[start:], maxArgs, min(c.lim.MaxBulkLen, maxCmd), maxCmd, c.lim.MaxInline, func(end int) {
			c.ends = append(c.ends, start+end)
		})
		if msg != "" {
			_, _ = c.Write([]byte("-ERR Protocol error: " + msg + "\r\n"))
			return errLimit
		}
		return nil
	}
	return err
}

// relayArgRoom and relayByteRoom: what a follower's relay may add to a
// command (onceFrame: 3 arguments, an id and an attempt field of a few
// dozen bytes; relayPublishFrame: 3 arguments more than PUBLISH).
const (
	relayArgRoom  = 8
	relayByteRoom = 1 << 10
)

// framing follows the RESP request framing across reads: arrays of bulk
// strings (what clients send), or inline lines. It checks sizes only;
// redcon still parses and validates everything.
type framing struct {
	words    int64 // arguments of the inline line so far
	inWord   bool
	state    uint8
	hdr      []byte // header line so far (digits after '*' or '$')
	argsLeft int64
	bulkLeft int64 // bytes of the current argument still to come, CRLF included
	cmdBytes int64
}

const (
	stStart  uint8 = iota // between commands
	stArray               // in "*<n>\r\n"
	stBulkHd              // expecting or in "$<n>\r\n"
	stBulk                // in an argument's bytes
	stInline              // in an inline command line
)

const maxHeaderLen = 22 // "-9223372036854775808\r" plus slack

// scan advances over b and returns why the stream must be refused, or "".
// It calls onEnd (if not nil) with the offset in b just past each command
// that ends in b.
func (f *framing) scan(b []byte, maxArgs, maxBulk, maxCmd, maxInline int64, onEnd func(end int)) string {
	for i := 0; i < len(b); {
		switch f.state {
		case stStart:
			f.cmdBytes, f.words, f.inWord = 0, 0, false
			if b[i] == '*' {
				f.state, f.hdr = stArray, f.hdr[:0]
				f.cmdBytes = 1
				i++
			} else {
				f.state = stInline
			}
		case stInline:
			j := i
			for j < len(b) && b[j] != '\n' {
				space := b[j] == ' ' || b[j] == '\t' || b[j] == '\r'
				if !space && !f.inWord {
					f.words++
				}
				f.inWord = !space
				j++
			}
			if f.words > maxArgs {
				return "too many arguments in an inline request"
			}
			f.cmdBytes += int64(j - i)
			if f.cmdBytes > maxInline {
				return "too big inline request"
			}
			if j < len(b) { // end of line
				j++
				f.state = stStart
				if onEnd != nil {
					onEnd(j)
				}
			}
			i = j
		case stArray, stBulkHd:
			if f.state == stBulkHd && len(f.hdr) == 0 && b[i] != '$' {
				return "expected '$', got '" + printable(b[i:i+1]) + "'"
			}
			j := i
			for j < len(b) && b[j] != '\n' {
				j++
			}
			f.hdr = append(f.hdr, b[i:j]...)
			f.cmdBytes += int64(j - i)
			if len(f.hdr) > maxHeaderLen {
				return "invalid length header"
			}
			if j == len(b) {
				i = j
				continue
			}
			i = j + 1 // past '\n'
			f.cmdBytes++
			h := f.hdr
			if f.state == stBulkHd {
				h = h[1:] // '$'
			}
			if len(h) == 0 || h[len(h)-1] != '\r' {
				return "invalid length header"
			}
			n, err := strconv.ParseInt(string(h[:len(h)-1]), 10, 64)
			f.hdr = f.hdr[:0]
			if f.state == stArray {
				if err != nil || n <= 0 || n > maxArgs {
					return "invalid multibulk length"
				}
				f.argsLeft, f.state = n, stBulkHd
			} else {
				if err != nil || n < 0 || n > maxBulk {
					return "invalid bulk length"
				}
				f.bulkLeft, f.state = n+2, stBulk
			}
		case stBulk:
			take := min(int64(len(b)-i), f.bulkLeft)
			f.bulkLeft -= take
			f.cmdBytes += take
			i += int(take)
			if f.bulkLeft == 0 {
				f.argsLeft--
				if f.argsLeft == 0 {
					f.state = stStart
					if onEnd != nil {
						onEnd(i)
					}
				} else {
					f.state = stBulkHd
				}
			}
		}
		if f.cmdBytes > maxCmd {
			return "command too big"
		}
	}
	return ""
}
