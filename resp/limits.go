package resp

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"time"
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
// limits; it also runs the TLS handshake and the authentication deadline.
// Only redcon's connection goroutine reads it (and the server's handler,
// which runs on that goroutine, logs it in and out).
type limitConn struct {
	net.Conn          // the client connection (a *tls.Conn with TLS)
	raw      net.Conn // the TCP connection under it
	lim      *Limits
	needAuth bool        // a token file is configured
	authed   atomic.Bool // set by the server when AUTH succeeds, cleared by RESET
	since    time.Time   // when the connection was accepted, or logged out
	started  bool        // TLS handshake done
	deadline bool        // the authentication deadline is set
	f        framing
}

func newLimitConn(c net.Conn, tlsConf *tls.Config, lim *Limits, needAuth bool) *limitConn {
	lc := &limitConn{Conn: c, raw: c, lim: lim, needAuth: needAuth, since: time.Now()}
	if tlsConf != nil {
		lc.Conn = tls.Server(c, tlsConf)
	}
	return lc
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
	authed := !c.needAuth || c.authed.Load()
	if c.needAuth && authed == c.deadline { // authenticated, or logged out, since the last read
		c.deadline = !authed
		until := time.Time{}
		if !authed {
			until = c.since.Add(c.lim.AuthTimeout)
		}
		_ = c.raw.SetReadDeadline(until)
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		maxArgs, maxCmd := c.lim.MaxArgs, c.lim.MaxCommandBytes
		if !authed {
			maxArgs, maxCmd = c.lim.PreAuthArgs, c.lim.PreAuthBytes
		}
		if msg := c.f.scan(p[:n], maxArgs, min(c.lim.MaxBulkLen, maxCmd), maxCmd, c.lim.MaxInline); msg != "" {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Conn.Write([]byte("-ERR Protocol error: " + msg + "\r\n"))
			return 0, errLimit
		}
	}
	return n, err
}

// framing follows the RESP request framing across reads: arrays of bulk
// strings (what clients send), or inline lines. It checks sizes only;
// redcon still parses and validates everything.
type framing struct {
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
func (f *framing) scan(b []byte, maxArgs, maxBulk, maxCmd, maxInline int64) string {
	for i := 0; i < len(b); {
		switch f.state {
		case stStart:
			f.cmdBytes = 0
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
				j++
			}
			f.cmdBytes += int64(j - i)
			if f.cmdBytes > maxInline {
				return "too big inline request"
			}
			if j < len(b) { // end of line
				j++
				f.state = stStart
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
