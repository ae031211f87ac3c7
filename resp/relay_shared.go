package resp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Shared relay connections. A follower's clients' relayed commands go to
// the leader over a few connections per pool key (Config.RelayConns),
// pipelined: a caller queues its run's frames and waits; whichever caller
// finds no write under way writes everything queued in one write (so the
// frames of one run, a MULTI ... EXEC among them, stay contiguous on the
// wire), and one reader goroutine per connection hands the replies, which
// the leader sends in request order, to the callers in the order their
// frames were written. With one exclusive connection per relayed run,
// each client cost a connection, and a write and a read on both sides per
// command; here the leader reads many clients' commands at once, packs
// their writes into one Raft entry and their reads into one leadership
// round, and answers them in one write.
//
// Guarantees kept from the exclusive connections:
//   - a caller learns errNotSent only when none of its frames was handed
//     to the socket, so a write is never sent twice after an ambiguous
//     failure;
//   - every caller has a deadline (forwarder.timeout); the connection's
//     read deadline is that of the oldest waiting caller, and a
//     connection past it is closed and every caller on it fails, so a
//     stuck leader cannot hold callers forever;
//   - a reply past Limits.MaxRelayReply is read and dropped without being
//     held (the caller gets errReplyTooLarge), and the connection goes on;
//   - when the leader changes, the connections to the old one take no new
//     callers and close once their callers have their replies.
//
// Only commands that leave no state on the connection are relayed here:
// runs of engine commands, whole transactions (MULTI, WATCHAT, commands,
// EXEC, written together), PUBLISH and CONFIG SET. Blocked commands keep
// dedicated connections (blocking.go).

// defaultRelayConns is Config.RelayConns's default. Callers fill the
// first connection before they spill onto the next (relaySpill): the more
// callers share a write, the fewer syscalls on both sides, and spreading
// them evenly over 2 or 4 connections measured worse (relayed GETs at
// 0.5-0.8x of the leader's own GET throughput and ~85 us of cluster CPU
// each, against 0.8-0.9x and ~66 us with one connection, under load on a
// 2-core machine, bench/compare-redis.sh raftcache-follower row). The
// second connection takes the callers of a burst past relaySpill, or of
// a first connection held up behind a slow run, and keeps the relay going
// while one connection is redialed.
const defaultRelayConns = 2

// relaySpill is how many callers may wait on one shared connection
// before the next caller takes another one of the pool.
const relaySpill = 32

// errRetired: a connection to an earlier leader, closed once idle.
var errRetired = errors.New("the leader changed")

// relayPool is the shared connections of one pool key.
type relayPool struct {
	slots   []*rconn
	dialing []*dialing // non-nil: a connection for this slot is being dialed
}

// dialing is a dial under way; the callers waiting for it share its
// failure rather than dial again one after another.
type dialing struct {
	done chan struct{}
	err  error
}

// retire stops the pool's connections: at once, or (now false) once
// their callers have their replies.
func (p *relayPool) retire(err error, now bool) {
	for _, c := range p.slots {
		if c != nil {
			c.retire(err, now)
		}
	}
}

// rconn is one shared relay connection.
type rconn struct {
	*fconn // the socket, and the read buffer the reader goroutine owns
	f      *forwarder
	load   atomic.Int32 // callers queued and not yet answered
	dead   atomic.Bool

	mu       sync.Mutex
	err      error        // set when the connection failed; it takes no caller after
	queue    []*relayCall // callers waiting for replies, in write order
	unsent   []*relayCall // callers whose frames are still to be written
	writing  bool         // a caller is writing for everyone
	retiring bool         // close once the queue is empty
}

// relayCall is one caller's run on a shared connection.
type relayCall struct {
	frames   [][]byte
	deadline time.Time
	sent     bool // some of its frames may have reached the socket
	buf      []byte
	replies  []relayReply
	err      error
	done     chan struct{}
}

type relayReply struct {
	end      int // in buf
	tooLarge bool
}

// relay sends the raw commands to addr, authenticated with token when it
// is not empty, over a shared connection, and passes each reply, in
// order, to out (err is errReplyTooLarge for a reply past the bound,
// which the caller answers with an error). It returns how many replies
// were passed on; fewer than len(cmds) means the connection failed after
// the commands were (perhaps) received: their outcome is unknown.
// errNotSent means nothing was written.
func (f *forwarder) relay(key poolKey, cmds [][]byte, out func(i int, reply []byte, err error)) (int, error) {
	call := &relayCall{frames: cmds, deadline: time.Now().Add(f.timeout), done: make(chan struct{}),
		replies: make([]relayReply, 0, len(cmds))}
	for attempt := 0; ; attempt++ {
		c, err := f.shared(key)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", errNotSent, err)
		}
		if c.do(call) {
			break
		}
		if attempt == 2 { // connections that keep failing before a write
			return 0, fmt.Errorf("%w: the relay connection failed: %v", errNotSent, c.failure())
		}
	}
	start := 0
	for i, r := range call.replies {
		var err error
		if r.tooLarge {
			err = errReplyTooLarge
		}
		out(i, call.buf[start:r.end], err)
		start = r.end
	}
	return len(call.replies), call.err
}

// shared returns a connection of key's pool: the first one with fewer
// than relaySpill callers waiting (filling one connection first: the
// more callers share a write, the fewer writes and reads both sides
// make), else a new one while the pool has room, else the least loaded.
// Pools of other addresses (an earlier leader) are retired (followLocked).
func (f *forwarder) shared(key poolKey) (*rconn, error) {
	f.mu.Lock()
	for {
		if f.closed {
			f.mu.Unlock()
			return nil, errShuttingDown
		}
		f.followLocked(key.addr, false)
		p := f.pools[key]
		if p == nil {
			p = &relayPool{slots: make([]*rconn, f.conns), dialing: make([]*dialing, f.conns)}
			f.pools[key] = p
		}
		var best, first *rconn
		free := -1
		var wait *dialing
		for i, c := range p.slots {
			switch {
			case p.dialing[i] != nil:
				wait = p.dialing[i]
			case c == nil || c.dead.Load():
				if free < 0 {
					free = i
				}
			default:
				if first == nil && c.load.Load() < relaySpill {
					first = c
				}
				if best == nil || c.load.Load() < best.load.Load() {
					best = c
				}
			}
		}
		if first != nil {
			first.load.Add(1) // counted as it is chosen, so the next caller sees it
			f.mu.Unlock()
			return first, nil
		}
		if best != nil && free < 0 && wait == nil {
			best.load.Add(1)
			f.mu.Unlock()
			return best, nil
		}
		if free >= 0 && wait == nil {
			d := &dialing{done: make(chan struct{})}
			p.dialing[free], p.slots[free] = d, nil
			f.mu.Unlock()
			c, err := f.dialShared(key)
			f.mu.Lock()
			p.dialing[free] = nil
			if err == nil && (f.closed || f.pools[key] != p) {
				c.retire(errRetired, true)
				err = errRetired
			}
			d.err = err
			close(d.done)
			if err == nil {
				p.slots[free] = c
				c.load.Add(1)
			} else if best != nil {
				best.load.Add(1)
				c = best
				err = nil
			}
			f.mu.Unlock()
			return c, err
		}
		// A connection is being dialed: take it (or another) once it is up.
		f.mu.Unlock()
		<-wait.done
		if wait.err != nil {
			return nil, wait.err
		}
		f.mu.Lock()
	}
}

func (f *forwarder) dialShared(key poolKey) (*rconn, error) {
	fc, err := f.dial(key)
	if err != nil {
		return nil, err
	}
	_ = fc.nc.SetDeadline(time.Time{}) // deadlines per caller from now on
	c := &rconn{fconn: fc, f: f}
	go c.readLoop()
	return c, nil
}

// do queues the call (counted in load by shared) and waits for its
// replies or its failure; false means the connection had failed before:
// nothing was queued.
func (c *rconn) do(call *relayCall) bool {
	c.mu.Lock()
	if c.err != nil {
		c.load.Add(-1)
		c.mu.Unlock()
		return false
	}
	c.queue = append(c.queue, call)
	if len(c.queue) == 1 {
		_ = c.nc.SetReadDeadline(call.deadline)
	}
	c.unsent = append(c.unsent, call)
	if !c.writing {
		c.writing = true
		c.flushLocked()
		c.writing = false
	}
	c.mu.Unlock()
	<-call.done
	return true
}

// flushLocked writes what is queued, in one write, until nothing is: the
// callers that queue meanwhile wait for this one to write for them.
func (c *rconn) flushLocked() {
	var bufs net.Buffers
	for len(c.unsent) > 0 && c.err == nil {
		calls := c.unsent
		c.unsent = nil
		bufs = bufs[:0]
		for _, x := range calls {
			x.sent = true
			bufs = append(bufs, x.frames...)
		}
		w := bufs // WriteTo consumes its slice
		c.mu.Unlock()
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.f.timeout))
		n, err := w.WriteTo(c.nc)
		c.mu.Lock()
		if err != nil {
			// A caller whose first byte was not written was not sent.
			off := int64(0)
			for _, x := range calls {
				if off >= n {
					x.sent = false
				}
				for _, fr := range x.frames {
					off += int64(len(fr))
				}
			}
			c.failLocked(fmt.Errorf("writing to the leader: %w", err))
		}
	}
}

// readLoop hands each reply to the oldest waiting caller, and ends when
// the connection fails or is retired.
func (c *rconn) readLoop() {
	for {
		reply, skipped, err := c.next(c.f.maxReply, true)
		c.mu.Lock()
		if err == nil && len(c.queue) == 0 {
			err = errors.New("a reply to no command")
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("the leader did not answer within %v", c.f.timeout)
			}
			c.failLocked(err)
			c.mu.Unlock()
			return
		}
		call := c.queue[0]
		call.buf = append(call.buf, reply...)
		call.replies = append(call.replies, relayReply{end: len(call.buf), tooLarge: skipped})
		if len(call.replies) == len(call.frames) {
			c.queue[0] = nil
			c.queue = c.queue[1:]
			c.finishLocked(call, nil)
			if len(c.queue) > 0 {
				_ = c.nc.SetReadDeadline(c.queue[0].deadline)
			} else {
				if c.retiring {
					c.failLocked(errRetired)
					c.mu.Unlock()
					return
				}
				_ = c.nc.SetReadDeadline(time.Time{}) // idle: the leader may take its time
				if cap(c.buf) > 64<<10 && c.start == c.end {
					c.buf, c.start, c.end = make([]byte, 16<<10), 0, 0 // a large reply grew it
				}
			}
		}
		c.mu.Unlock()
	}
}

func (c *rconn) retire(err error, now bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.retiring = true
	if now || len(c.queue) == 0 {
		c.failLocked(err)
	}
}

func (c *rconn) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// failLocked closes the connection and fails every caller on it.
func (c *rconn) failLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	c.dead.Store(true)
	nc := c.nc
	if tc, ok := nc.(*tls.Conn); ok {
		// No close_notify: it could wait on a stuck peer, under c.mu.
		nc = tc.NetConn()
	}
	nc.Close()
	for _, x := range c.queue {
		c.finishLocked(x, err)
	}
	c.queue, c.unsent = nil, nil
}

func (c *rconn) finishLocked(x *relayCall, err error) {
	if err != nil && !x.sent {
		err = fmt.Errorf("%w: %v", errNotSent, err)
	}
	x.err = err
	c.load.Add(-1)
	close(x.done)
}
