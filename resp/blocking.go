package resp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

// Blocked clients (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN, BZPOPMAX
// outside MULTI; inside MULTI and scripts they run as non-blocking
// commands in the engine).
//
// The waiter lives on the leader (node.Block). Every blocked command gets
// a request id here, on the node its client is connected to, and keeps it
// for every attempt: on the leader it calls node.Block; on a follower it
// relays RAFTCACHE.BLOCK id command... to the leader on a connection of
// its own and keeps its client's connection. When the leader changes, or
// answers TRYAGAIN or UNKNOWN, or the relay connection fails, the same id
// is sent again (to the new leader), with what is left of the timeout:
// the leader answers the element already popped for that id from its
// dedup table, or blocks the client again. Nothing is lost or popped
// twice by a retry.
//
// Relay connections: dedicated. A blocked client holds one relay
// connection (taken from the idle pool or dialed beside it) for as long as
// it is blocked, never shared, so any number of blocked clients leave the
// pool to the other commands; the connection goes back to the pool when
// the command is answered, and is closed when the client goes away, which
// cancels the waiter on the leader. Blocked commands are not bounded by
// Config.Timeout: only their own timeout (decided by the leader) ends them.
//
// A client that goes away while blocked is noticed within blockPoll
// (its socket's state). If an element was popped for it in the meantime,
// it is lost, as in Redis, and counted (raftcache_blocked_pops_lost_total);
// BLMOVE into a processing list is the at-least-once pattern.

// blockCmd relays a blocked command with its request id.
const blockCmd = "RAFTCACHE.BLOCK"

var blockName = "raftcache.block"

// blockPoll is how often a blocked command checks its client's connection
// and, when relayed, who leads.
const blockPoll = 100 * time.Millisecond

// reqIDs makes request ids unique to this server process.
type reqIDs struct {
	prefix string
	n      atomic.Uint64
}

func (r *reqIDs) next() []byte {
	return strconv.AppendUint([]byte(r.prefix), r.n.Add(1), 36)
}

// newReqIDs makes ids kind:random:n, unique across members and restarts.
func newReqIDs(kind string) *reqIDs {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return &reqIDs{prefix: kind + ":" + hex.EncodeToString(b[:]) + ":"}
}

// cmdBlock is RAFTCACHE.BLOCK id command args..., sent by a follower on a
// relay connection for one blocked client.
func cmdBlock(s *Server, cl *client, args [][]byte) {
	if !cl.forwarded {
		cl.w.error("ERR " + blockCmd + " is sent by cluster members only")
		return
	}
	it := &item{args: args[2:], name: lower(args[2])}
	it.cmd = commands[it.name]
	if it.cmd == nil || !it.cmd.blocking {
		cl.w.error("ERR " + blockCmd + " relays blocking commands only")
		return
	}
	it.kind = it.cmd.kind
	if msg := s.authorize(cl, it.name, it.cmd, it.kind); msg != "" {
		cl.w.error(msg)
		return
	}
	if err := s.check(it); err != nil {
		cl.w.fail(err)
		return
	}
	s.block(cl, it, args[1])
}

// block answers a blocked command. id is the relaying follower's request
// id, or nil for a client of this node (a new id is made).
func (s *Server) block(cl *client, it *item, id []byte) {
	relayed := id != nil
	if id == nil {
		id = s.reqIDs.next()
		s.blocked.Add(1)
		defer s.blocked.Add(-1)
	}
	_, _, timeout, _, err := fsm.BlockingInfo(it.args)
	if err != nil {
		cl.w.fail(err)
		return
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := s.watchClient(cl, cancel)
	defer stop()
	args := it.args
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !deadline.IsZero() {
			args = withTimeout(it.args, time.Until(deadline))
		}
		var retry bool
		if s.node.IsLeader() {
			retry = s.blockHere(ctx, cl, id, args)
		} else if relayed {
			cl.w.fail(node.ErrNotLeader) // the follower sends it again to the leader
			return
		} else {
			retry = s.blockRelayed(ctx, cl, id, args)
		}
		switch {
		case !retry:
			return
		case relayed:
			// The follower sends the same id again, to the leader it
			// then knows.
			cl.w.fail(node.ErrNotLeader)
			return
		case !sleepCtx(ctx, 50*time.Millisecond):
			s.clientGone(cl)
			return
		}
	}
}

// blockHere blocks the client on this node, the leader. It says whether
// to try again (leadership lost, outcome unknown), with the same id.
func (s *Server) blockHere(ctx context.Context, cl *client, id []byte, args [][]byte) (retry bool) {
	stopPush := s.pushWhileBlocked(cl, args)
	rep, err := s.node.Block(ctx, id, args)
	held := stopPush()
	defer cl.writeEvents(held) // after the reply: they may be of its own pop
	switch {
	case ctx.Err() != nil:
		if err == nil && isElement(rep) {
			s.node.CountLostPop()
		}
		s.clientGone(cl)
		return false
	case errors.Is(err, node.ErrNotLeader), errors.Is(err, node.ErrUnknownOutcome),
		errors.Is(err, node.ErrNoLeader), errors.Is(err, node.ErrUnavailable):
		return true
	case err != nil:
		cl.w.fail(err)
	default:
		cl.w.reply(rep)
	}
	return false
}

// blockRelayed relays the blocked command to the leader on a dedicated
// connection and copies the answer. It says whether to try again.
func (s *Server) blockRelayed(ctx context.Context, cl *client, id []byte, args [][]byte) (retry bool) {
	// One look at the leader: the watch below compares with the leader
	// the connection goes to (two looks, a change between them could
	// leave it waiting on a silent former leader for good).
	leader, self, err := s.leaderMember(ctx)
	if err != nil || self {
		return ctx.Err() == nil // no leader yet, or this node just became it
	}
	c, err := s.fwd.get(poolKey{leader.RESPAddr, cl.token, cl.w.proto})
	if err != nil {
		return true
	}
	frame := redcon.AppendArray(nil, len(args)+2)
	frame = redcon.AppendBulkString(frame, blockCmd)
	frame = redcon.AppendBulk(frame, id)
	for _, a := range args {
		frame = redcon.AppendBulk(frame, a)
	}
	_ = c.nc.SetDeadline(time.Time{}) // blocked: no command deadline
	if _, err := c.nc.Write(frame); err != nil {
		c.nc.Close()
		return true
	}
	// Close the relay connection (which cancels the waiter on the leader)
	// when the client goes away or another node leads.
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(blockPoll)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				c.nc.Close()
				return
			case <-t.C:
				if m, ok := s.node.Leader(); ok && m.ID != leader.ID {
					c.nc.Close()
					return
				}
			}
		}
	}()
	stopPush := s.pushWhileBlocked(cl, args)
	reply, err := c.readReply(s.fwd.maxReply)
	held := stopPush()
	defer cl.writeEvents(held) // after the reply: they may be of its own pop
	close(done)
	if err != nil {
		c.nc.Close()
		if ctx.Err() != nil {
			s.clientGone(cl)
			return false
		}
		return true
	}
	if leaderLost(reply) {
		s.fwd.put(c)
		return true
	}
	if ctx.Err() != nil {
		// The answer came, but the client has gone.
		if reply[0] != '-' && reply[0] != '_' && !bytes.HasPrefix(reply, []byte("*-1")) && !bytes.HasPrefix(reply, []byte("$-1")) {
			s.node.CountLostPop()
		}
		c.nc.Close()
		s.clientGone(cl)
		return false
	}
	// The reply lies in the connection's read buffer: take it before the
	// connection goes back to the pool, where the next blocked command's
	// reply would overwrite it (one client handed another's element).
	cl.appendRelayed(reply)
	_ = c.nc.SetDeadline(time.Now().Add(s.fwd.timeout))
	s.fwd.put(c)
	return false
}

// pushWhileBlocked writes the pushes queued for a RESP3 client (tracking
// invalidations, pub/sub messages) while it waits in a blocking command,
// as Redis does: held until the command's reply, they left a client that
// caches reads and blocks on one connection serving stale values for as
// long as it waited. The replies the client's pipeline got before the
// blocking command go first, in either protocol. Invalidations of the
// command's own keys are held, for ownHold at most, and those still held
// are returned by stop, to be written after its reply: the pop that ends
// the wait is the client's own write, whose invalidation Redis sends
// after the reply. stop ends the writing (and waits for it)
// before anything else touches the connection's writer; it runs on the
// connection's own goroutine, which writes nothing while blocked.
func (s *Server) pushWhileBlocked(cl *client, args [][]byte) (stop func() (held []node.Event)) {
	none := func() []node.Event { return nil }
	if cl.forwarded || cl.w.out == nil || cl.w.broken {
		return none
	}
	if len(cl.w.b) > 0 { // as Redis, which writes them before the command blocks
		if _, err := cl.w.out.Write(cl.w.b); err != nil {
			cl.w.broken = true
			return none
		}
		cl.w.b = cl.w.b[:0]
	}
	if cl.sub == nil || cl.w.proto != 3 {
		return none // RESP2: pushes go to subscribed connections only, which cannot block
	}
	var own [][]byte
	if spec := fsm.Lookup(args[0]); spec != nil {
		own = spec.Keys(args)
	}
	quit, exited := make(chan struct{}), make(chan struct{})
	var (
		failed bool
		held   []node.Event
	)
	go func() {
		defer close(exited)
		pw := writer{proto: cl.w.proto}
		var evs []node.Event
		// Held invalidations of the command's own keys go out after
		// ownHold all the same: the client's own pop returns within it of
		// being applied, and another client's change of those keys (a
		// DEL of BLMOVE's destination) must not wait for the whole block.
		hold := time.NewTimer(time.Hour)
		hold.Stop()
		defer hold.Stop()
		for {
			select {
			case <-quit:
				return
			case <-hold.C:
				for i := range held {
					cl.writeEventTo(&pw, &held[i])
				}
				held = held[:0]
			case <-cl.sub.Ready():
				if s.cfg.Auth != nil && cl.sub.Pending() && s.authorize(cl, "subscribe", commands["subscribe"], kindConn) != "" {
					return // its token was revoked: it hears nothing more (serveDetached ends it)
				}
				evs = cl.sub.Take(evs[:0])
				for i := range evs {
					if mine, others := splitOwn(&evs[i], own); mine != nil {
						if len(held) == 0 {
							hold.Reset(ownHold)
						}
						held = append(held, *mine)
						if others != nil {
							cl.writeEventTo(&pw, others)
						}
					} else {
						cl.writeEventTo(&pw, &evs[i])
					}
					evs[i] = node.Event{}
				}
			}
			if len(pw.b) == 0 {
				continue
			}
			if _, err := cl.w.out.Write(pw.b); err != nil {
				// The client cannot be written to: close it, so the
				// wait ends (watchClient) before an element is popped
				// for a reply that could never be delivered.
				failed = true
				_ = cl.w.out.Close()
				return
			}
			pw.b = pw.b[:0]
		}
	}()
	return func() []node.Event {
		close(quit)
		<-exited
		cl.w.broken = cl.w.broken || failed
		return held
	}
}

// ownHold bounds how long pushWhileBlocked holds an invalidation of the
// blocking command's own keys (to write it after the command's reply, if
// it is of the command's own pop).
const ownHold = blockPoll

// splitOwn splits an invalidation of some of keys: mine invalidates
// those, others (nil if none) the rest; mine is nil if e is not one.
func splitOwn(e *node.Event, keys [][]byte) (mine, others *node.Event) {
	if e.Kind != node.EventInvalidate {
		return nil, nil
	}
	var in, out []string
	for _, k := range e.Keys {
		if slices.ContainsFunc(keys, func(o []byte) bool { return string(o) == k }) {
			in = append(in, k)
		} else {
			out = append(out, k)
		}
	}
	if in == nil {
		return nil, nil
	}
	m := *e
	m.Keys = in
	if out != nil {
		o := *e
		o.Keys = out
		others = &o
	}
	return &m, others
}

// writeEvents encodes events for the connection, after what it holds.
func (cl *client) writeEvents(evs []node.Event) {
	for i := range evs {
		cl.writeEvent(&evs[i])
	}
}

// isElement says whether a blocking command's reply carries an element.
func isElement(r fsm.Reply) bool {
	return r.Kind != fsm.KindNull && r.Kind != fsm.KindNullArray && r.Kind != fsm.KindError
}

// clientGone ends a connection whose client went away while blocked.
func (s *Server) clientGone(cl *client) { cl.quit = true }

// watchClient calls cancel when the client's connection is closed by its
// peer, or the server drains; stop ends the watch.
func (s *Server) watchClient(cl *client, cancel context.CancelFunc) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(blockPoll)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if s.draining.Load() || (cl.limits != nil && peerGone(cl.limits.raw)) {
					cancel()
					return
				}
			}
		}
	}()
	return func() { close(done) }
}

// withTimeout is args with its timeout (the last argument) replaced by
// d, at least a millisecond: 0 would mean no timeout.
func withTimeout(args [][]byte, d time.Duration) [][]byte {
	out := append([][]byte(nil), args...)
	ms := max(d.Milliseconds(), 1)
	out[len(out)-1] = strconv.AppendFloat(nil, float64(ms)/1000, 'f', 3, 64)
	return out
}
