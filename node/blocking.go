package node

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftcache/raftcache/fsm"
)

// Blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN, BZPOPMAX).
//
// Waiters live on the leader only, in memory, never in the FSM: a
// follower's waiters would pop elements for clients nobody serves after
// it crashes. A client blocked through a follower is relayed to the
// leader with a request id (resp/blocking.go) and its Block runs here.
//
// Each waiter is a unit proposed under its request id. The first attempt
// is proposed at once: it answers an element popped earlier under the same
// id (a relay repeated after a leader change finds it in the dedup
// table), pops one if there is one, or answers a WRONGTYPE; a lone
// blocking command that found nothing is not remembered under its id
// (fsm/blocking.go), so the waiter then blocks and proposes the same id
// again when a key it watches changes. Waiters of a key are served
// first-blocked, first-served: when a key changes, the leader proposes
// for its oldest waiters, as many as the key has elements; a proposal that
// finds nothing (another client won the element) leaves its waiter
// blocked in its place. An element is handed out only once its pop has
// committed. Timeouts are decided here, by the leader's clock, and never
// while a waiter's pop is in flight.
//
// A repeated id that the table has forgotten (evicted for room under a
// sustained flood of ids) is not refused, unlike a relayed write's
// (fsm.ErrResendForgotten): the element popped for the first attempt is
// out of the list whether the repeat is refused or served, so a refusal
// would only withhold the next element from a client still waiting for
// one. (A BLMOVE's first element sits in its destination either way.)

// errBlockTimeout answers a waiter whose timeout passed: its reply is nil.
var errBlockTimeout = errors.New("blocking command timed out")

// BlockingStats are this node's counts of blocked clients.
type BlockingStats struct {
	Blocked  int    // waiters registered now (on the leader)
	Served   uint64 // waiters answered with an element
	TimedOut uint64 // waiters answered nil at their timeout
	// Lost counts elements popped for a client whose connection closed
	// before the element could be written to it (counted by the front
	// that held the connection): lost, as in Redis. BLMOVE to a
	// processing list is the at-least-once pattern (docs/api.md).
	Lost uint64
}

type waiter struct {
	id       string
	args     [][]byte
	keys     []string
	kind     fsm.ValueType
	deadline time.Time // zero: none
	seq      uint64    // arrival order
	result   chan blockResult
	inflight string // the key a proposal in flight was made for; "" none
	first    bool   // the first attempt is still to be proposed
	done     bool   // answered or cancelled: out of the queues
}

type blockResult struct {
	reply fsm.Reply
	err   error
}

type blocker struct {
	n    *Node
	wake chan struct{} // capacity 1

	mu       sync.Mutex
	queues   map[string][]*waiter // per key, oldest first
	byID     map[string]*waiter
	inflight map[string]int      // per key: proposals in flight made for it
	dirty    map[string]struct{} // keys to look at again
	seq      uint64
	next     time.Time     // the earliest deadline of a waiter, zero if none
	pending  []*waiter     // chosen by step, for proposeLoop, in order
	propKick chan struct{} // capacity 1

	served, timedOut, lost atomic.Uint64
}

func newBlocker(n *Node) *blocker {
	return &blocker{n: n, wake: make(chan struct{}, 1), propKick: make(chan struct{}, 1), queues: map[string][]*waiter{}, byID: map[string]*waiter{},
		inflight: map[string]int{}, dirty: map[string]struct{}{}}
}

// BlockingStats reports the node's blocked clients.
func (n *Node) BlockingStats() BlockingStats {
	b := n.blocks
	b.mu.Lock()
	blocked := len(b.byID)
	b.mu.Unlock()
	return BlockingStats{Blocked: blocked, Served: b.served.Load(), TimedOut: b.timedOut.Load(), Lost: b.lost.Load()}
}

// CountLostPop records an element popped for a client whose connection
// closed before it could be written (BlockingStats.Lost).
func (n *Node) CountLostPop() { n.blocks.lost.Add(1) }

// Block runs a blocking command (fsm.BlockingInfo says which are) for one
// client on the leader: it returns the command's reply once an element
// was popped for it, or a nil reply when its timeout (the last argument)
// passed. reqID must be unique to the client's command and the same for
// every retry of it: a retry with the same id answers the element popped
// for an earlier attempt. Block is not bounded by a command deadline;
// ctx ends when the client goes away: the waiter is cancelled, unless a
// pop for it is in flight, whose outcome Block then waits for and
// returns (an element the caller can no longer deliver is lost; see
// CountLostPop). ErrNotLeader (also when leadership is lost while
// blocked) and ErrUnknownOutcome mean: retry with the same id.
func (n *Node) Block(ctx context.Context, reqID []byte, args [][]byte) (fsm.Reply, error) {
	if err := n.CheckCommand(args); err != nil {
		return fsm.Reply{}, err
	}
	keys, kind, timeout, ok, err := fsm.BlockingInfo(args)
	switch {
	case !ok:
		return fsm.Reply{}, &fsm.Error{Code: fsm.ErrSyntax, Msg: "ERR " + string(args[0]) + " is not a blocking command"}
	case err != nil:
		return fsm.Reply{}, err
	case !fsm.ValidRequestID(reqID):
		return fsm.Reply{}, &fsm.Error{Code: fsm.ErrSyntax, Msg: fmt.Sprintf("ERR a blocking command needs a request id of 1 to %d bytes, without NUL", fsm.MaxReqID)}
	case !n.IsLeader():
		return fsm.Reply{}, ErrNotLeader
	}
	w := &waiter{id: string(reqID), args: args, kind: kind, result: make(chan blockResult, 1), first: true}
	for _, k := range keys {
		w.keys = append(w.keys, string(k))
	}
	if timeout > 0 {
		w.deadline = time.Now().Add(timeout)
	}
	n.blocks.add(w)
	var r blockResult
	select {
	case r = <-w.result:
	case <-ctx.Done():
		if n.blocks.cancel(w) {
			return fsm.Reply{}, ctx.Err()
		}
		r = <-w.result // a pop for it is in flight: its outcome decides
	}
	if errors.Is(r.err, errBlockTimeout) {
		return timeoutReply(args), nil
	}
	return r.reply, r.err
}

// add registers w at the end of its keys' queues and asks for its first
// attempt. A waiter already registered under the same id (a relay
// repeated on a new connection) is cancelled: its pop, if one is in
// flight, was proposed first, so w's first attempt finds its element in
// the dedup table.
func (b *blocker) add(w *waiter) {
	b.mu.Lock()
	if old := b.byID[w.id]; old != nil {
		b.remove(old)
		if old.inflight == "" {
			old.result <- blockResult{err: fmt.Errorf("%w: the same request blocked again", ErrUnknownOutcome)}
		}
	}
	b.seq++
	w.seq = b.seq
	b.byID[w.id] = w
	for _, k := range w.keys {
		b.queues[k] = append(b.queues[k], w)
		b.dirty[k] = struct{}{}
	}
	if !w.deadline.IsZero() && (b.next.IsZero() || w.deadline.Before(b.next)) {
		b.next = w.deadline
	}
	b.mu.Unlock()
	b.kick()
}

// cancel removes a waiter whose client went away. It returns false when a
// pop for it is in flight (or it was answered): its result is coming.
func (b *blocker) cancel(w *waiter) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w.done || w.inflight != "" {
		return false
	}
	b.remove(w)
	return true
}

// remove takes w out of every queue; b.mu is held.
func (b *blocker) remove(w *waiter) {
	if w.done {
		return
	}
	w.done = true
	if b.byID[w.id] == w {
		delete(b.byID, w.id)
	}
	for _, k := range w.keys {
		q := b.queues[k]
		for i, o := range q {
			if o == w {
				q = append(q[:i:i], q[i+1:]...)
				break
			}
		}
		if len(q) == 0 {
			delete(b.queues, k)
		} else {
			b.queues[k] = q
		}
	}
}

func (b *blocker) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// changed is the FSM's change subscriber: it marks the watched keys an
// entry changed. It runs on the FSM goroutine and only takes b.mu.
func (b *blocker) changed(c fsm.Change) {
	b.mu.Lock()
	if len(b.queues) == 0 {
		b.mu.Unlock()
		return
	}
	n := 0
	if c.All || len(c.Prefixes) > 0 || len(c.Keys) > len(b.queues) {
		for k := range b.queues {
			if c.Covers(k) {
				b.dirty[k] = struct{}{}
				n++
			}
		}
	} else {
		for _, k := range c.Keys {
			if _, ok := b.queues[k]; ok {
				b.dirty[k] = struct{}{}
				n++
			}
		}
	}
	b.mu.Unlock()
	if n > 0 {
		b.kick()
	}
}

// run serves the waiters: on a key change, a new waiter, a pop's
// completion, a deadline, and a periodic check of leadership.
func (b *blocker) run() {
	defer b.n.wg.Done()
	b.n.wg.Add(1)
	go b.proposeLoop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-b.wake:
		case <-tick.C:
		case <-b.n.closing:
			b.failAll(ErrClosed)
			return
		}
		b.step()
	}
}

// failAll answers every waiter not in flight with err (this node no
// longer leads: the front retries with the same id on the new leader).
func (b *blocker) failAll(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, w := range b.byID {
		if w.inflight == "" {
			b.remove(w)
			w.result <- blockResult{err: err}
		}
	}
	b.dirty = map[string]struct{}{}
}

func (b *blocker) step() {
	if !b.n.IsLeader() {
		b.failAll(ErrNotLeader)
		return
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.next.IsZero() && !now.Before(b.next) {
		b.expire(now)
	}
	if len(b.dirty) == 0 {
		return
	}
	keys := make([]string, 0, len(b.dirty))
	for k := range b.dirty {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.dirty = map[string]struct{}{}
	v := b.n.fsm.View(now.UnixNano())
	var batch []*waiter
	for _, k := range keys {
		kind, avail, found := v.Collection([]byte(k))
		avail -= b.inflight[k]
		for _, w := range b.queues[k] {
			switch {
			case w.inflight != "":
				continue
			case w.first: // the first attempt: pop, dedup hit or WRONGTYPE
			case found && kind == w.kind && avail > 0:
				avail--
			default:
				continue
			}
			w.inflight, w.first = k, false
			b.inflight[k]++
			batch = append(batch, w)
		}
	}
	if len(batch) > 0 {
		b.pending = append(b.pending, batch...)
		select {
		case b.propKick <- struct{}{}:
		default:
		}
	}
}

// proposeLoop proposes the waiters step chose, in the order chosen, one
// entry at a time: a single proposer keeps first-blocked-first-served
// across steps (two goroutines could reach the log in either order), and
// every waiter ready meanwhile shares the next entry.
func (b *blocker) proposeLoop() {
	defer b.n.wg.Done()
	for {
		select {
		case <-b.propKick:
		case <-b.n.closing:
			b.mu.Lock()
			ws := b.pending
			b.pending = nil
			b.mu.Unlock()
			for _, w := range ws {
				b.finish(w, nil, ErrClosed)
			}
			return
		}
		b.mu.Lock()
		ws := b.pending
		b.pending = nil
		b.mu.Unlock()
		if len(ws) > 0 {
			b.propose(ws)
		}
	}
}

// expire answers nil to the waiters whose deadline passed, except those
// with a pop in flight (finish decides for them); b.mu is held.
func (b *blocker) expire(now time.Time) {
	b.next = time.Time{}
	for _, w := range b.byID {
		if w.deadline.IsZero() {
			continue
		}
		if w.inflight == "" && !w.first && !now.Before(w.deadline) {
			b.remove(w)
			b.timedOut.Add(1)
			w.result <- blockResult{err: errBlockTimeout}
			continue
		}
		if b.next.IsZero() || w.deadline.Before(b.next) {
			b.next = w.deadline
		}
	}
}

// propose runs the waiters' commands through the log, each under its
// request id, as units of one entry in the order given (oldest waiter
// first, so the first-blocked gets the first element).
func (b *blocker) propose(ws []*waiter) {
	for len(ws) > 0 {
		chunk := ws[:min(len(ws), maxBlockBatch)]
		ws = ws[len(chunk):]
		units := make([]fsm.Unit, len(chunk))
		for i, w := range chunk {
			units[i] = fsm.Unit{ReqID: []byte(w.id), Cmds: [][][]byte{w.args}}
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.n.cfg.ApplyTimeout)
		res, err := b.n.Exec(ctx, units...)
		cancel()
		for i, w := range chunk {
			var r []fsm.Result
			if err == nil && i < len(res) {
				r = res[i : i+1]
			}
			b.finish(w, r, err)
		}
	}
}

// maxBlockBatch bounds the waiters served by one entry.
const maxBlockBatch = 512

// finish takes a proposal's outcome: an element (or an error reply) is
// w's answer; nothing leaves w blocked, or times it out if its deadline
// passed meanwhile; a failed proposal answers the error (the front retries
// with the same id, which the dedup table makes safe).
func (b *blocker) finish(w *waiter, res []fsm.Result, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := w.inflight
	w.inflight = ""
	if b.inflight[key]--; b.inflight[key] <= 0 {
		delete(b.inflight, key)
	}
	var r blockResult
	switch {
	case err != nil:
		r.err = err
	case len(res) == 1 && res[0].RepliesDropped():
		// Popped by an earlier attempt whose reply is gone: trying again
		// would only meet the same id.
		r.err = ErrReplyLost
		b.n.CountLostPop()
	case len(res) != 1 || len(res[0].Replies) != 1:
		r.err = fmt.Errorf("%w: no reply for the blocking command", ErrUnknownOutcome)
	default:
		r.reply = res[0].Replies[0]
		if k := r.reply.Kind; k == fsm.KindNull || k == fsm.KindNullArray {
			if w.done { // cancelled meanwhile (by a repeated registration)
				r.err = fmt.Errorf("%w: the same request blocked again", ErrUnknownOutcome)
				break
			}
			if !w.deadline.IsZero() && !time.Now().Before(w.deadline) {
				b.remove(w)
				b.timedOut.Add(1)
				w.result <- blockResult{err: errBlockTimeout}
				return
			}
			// Still blocked, in its place; it may owe another look at
			// keys that changed while its pop was in flight.
			for _, k := range w.keys {
				b.dirty[k] = struct{}{}
			}
			if !w.deadline.IsZero() && (b.next.IsZero() || w.deadline.Before(b.next)) {
				b.next = w.deadline
			}
			b.kick()
			return
		}
		if !r.reply.IsError() {
			b.served.Add(1)
		}
	}
	b.remove(w)
	w.result <- r
}

// timeoutReply is a blocking command's answer at its timeout, as Redis
// 7.0 gives it: a nil array, BLMOVE and BRPOPLPUSH included (inside
// MULTI those answer a nil bulk string instead, from the engine).
func timeoutReply([][]byte) fsm.Reply { return fsm.Reply{Kind: fsm.KindNullArray} }
