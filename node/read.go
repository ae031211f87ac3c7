package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/fsm"
)

// Consistency selects how a read is served.
type Consistency uint8

const (
	// Strong reads are linearizable: served by the leader after it has
	// confirmed its leadership with a quorum and applied everything that
	// was committed when the read arrived.
	Strong Consistency = iota
	// Stale reads are served from this node's local state, however far
	// behind; MinIndex and MaxStale bound how far.
	Stale
)

// ReadOptions tune one read.
type ReadOptions struct {
	Consistency Consistency
	// MinIndex (stale reads): wait until the local state has applied this
	// index, so a caller that wrote at index I reads its own write here.
	MinIndex uint64
	// MaxStale (stale reads): fail with ErrTooStale if this follower has
	// not heard from a leader for longer; on the leader, confirm its
	// leadership first (a strong read's round) if it has not for longer.
	// It bounds the time since contact, not how far a follower catching
	// up (after a restart, a snapshot install) has yet to apply: add
	// MinIndex for that.
	MaxStale time.Duration
}

// ReadResult is an entry plus where it was read.
type ReadResult struct {
	fsm.Entry
	Index       uint64        // the applied index of the state that was read
	LastContact time.Duration // 0 on the leader
}

// Get reads one key. A miss returns fsm.ErrNotFound with Index set.
func (n *Node) Get(ctx context.Context, key []byte, opt ReadOptions) (ReadResult, error) {
	var res ReadResult
	if err := n.prepareRead(ctx, opt, &res); err != nil {
		return res, err
	}
	res.Index = n.fsm.AppliedIndex()
	e, err := n.fsm.Get(key, n.cfg.Clock().UnixNano())
	res.Entry = e
	return res, err
}

// Now is this node's clock in Unix ns, for reads of the FSM.
func (n *Node) Now() int64 { return n.cfg.Clock().UnixNano() }

// prepareRead blocks until the local state may answer a read at the
// requested consistency, and fills in LastContact.
func (n *Node) prepareRead(ctx context.Context, opt ReadOptions, res *ReadResult) error {
	if err := n.Poisoned(); err != nil {
		return err // its state is not the log's
	}
	if opt.Consistency == Strong {
		return n.reads.wait(ctx)
	}
	if !n.IsLeader() {
		res.LastContact = n.lastContact()
		if opt.MaxStale > 0 && res.LastContact > opt.MaxStale {
			return ErrTooStale
		}
	} else if opt.MaxStale > 0 && time.Since(n.lastConfirmed()) > opt.MaxStale {
		// A leader knows it still leads only as of its last confirmed
		// round: one paused (SIGSTOP, a GC, a frozen VM) and resumed
		// still believes it leads while another has taken over. Past the
		// bound, it confirms again (a strong read's round) before serving.
		if err := n.reads.wait(ctx); err != nil {
			return err
		}
	}
	if opt.MinIndex > 0 {
		return n.waitApplied(ctx, opt.MinIndex)
	}
	return nil
}

// applied reports whether the cache reflects every entry up to idx.
//
// raft.AppliedIndex runs ahead of the FSM (it moves when entries are handed
// to the FSM goroutine), and barrier and no-op entries never reach the FSM,
// so neither index alone answers. When Raft has dispatched idx but the FSM
// has not reached it, the entries in between are looked up: if none of
// them would reach the FSM, the cache is already complete up to idx.
//
// The lookup runs from idx down and stops at the first entry that reaches
// the FSM, so it costs one lookup when the FSM is simply behind, and as
// many as there are no-op and barrier entries at the tail otherwise. It
// must not give up on a long tail: every election adds two such entries,
// and a cluster whose leadership moved often without a write in between
// would otherwise refuse every strong read until the next write.
func (n *Node) applied(idx uint64) bool {
	f := n.fsm.AppliedIndex()
	if f >= idx {
		return true
	}
	if n.raft.AppliedIndex() < idx {
		return false
	}
	for i := idx; i > f; i-- {
		var l raft.Log
		if err := n.logs.GetLog(i, &l); errors.Is(err, raft.ErrLogNotFound) {
			continue // compacted into a snapshot, so already processed
		} else if err != nil {
			return false // a store closing under it: nothing is known
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return false
		}
	}
	return true
}

// waitApplied blocks until applied(idx) or ctx ends.
func (n *Node) waitApplied(ctx context.Context, idx uint64) error {
	var tick *time.Timer
	for {
		changed := n.fsm.Changed()
		if n.applied(idx) {
			return nil
		}
		if err := n.Poisoned(); err != nil {
			return err // it will never get there
		}
		// The FSM signals its own progress; the tick catches entries that
		// never reach it (barriers, no-ops).
		if tick == nil {
			tick = time.NewTimer(2 * time.Millisecond)
			defer tick.Stop()
		} else {
			tick.Reset(2 * time.Millisecond)
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("%w %d (applied %d)", ErrIndexTimeout, idx, n.fsm.AppliedIndex())
		case <-n.closing:
			return ErrClosed
		}
	}
}

// readIndex serves strong reads with shared leadership rounds, like etcd's
// ReadIndex batching: every read that arrives while a round is running
// joins the next round, and one round (one read fence: a request to each
// voter, answered by a quorum, fence.go) confirms them all.
//
// A read costs no allocation and no message of its own: it joins the
// pending round under a mutex and waits for the round's done channel to
// close; the round, once confirmed, waits for the state machine to apply
// its index once for all of its reads.
//
// A round is the dearest part of a strong read on a busy leader: a
// heartbeat to every follower, decoded and answered there, and several
// goroutine wake-ups on each side (a profile of a leader under
// redis-benchmark GET put a fifth of its CPU in them). Rounds that run
// back to back each gather only the reads that arrived during the one
// before, a few each. So, as the proposer does for writes (proposer.go),
// the next round waits for the readers the last one answered, when they
// are likely to come back at once (clients each waiting on their read),
// but never longer than maxReadGather after it, and no longer than a gap
// (readGap) without one arriving; a lone reader, or readers that do not
// come back, never wait. Waiting only
// delays when the commit index is taken, which stays after every read of
// the round arrived: linearizability is unchanged.
type readIndex struct {
	n      *Node
	wake   chan struct{} // capacity 1: a round is pending, or its readers are back
	rounds atomic.Uint64
	reads  atomic.Uint64
	legacy atomic.Uint64 // rounds confirmed by VerifyLeader (fence.go)
	// confirmed is when the last confirmed round started (Unix ns): this
	// node was the leader then (prepareRead's bound for stale reads).
	confirmed atomic.Int64
	// Confirmed rounds: how long each took and how many reads it served
	// (the loop is their only writer; a snapshot may read them a round
	// apart).
	roundTimes *histogram // ns
	roundReads *histogram

	mu      sync.Mutex
	next    *readRound // the round new reads join; nil until one arrives
	pending uint64     // reads that joined next
	expect  uint64     // wake the loop when pending reaches it (0: on the first)
	ret     returns    // whether the last round's readers come back (proposer.go)
}

// readRound is one leadership round; index and err are set before done
// is closed.
type readRound struct {
	done  chan struct{}
	index uint64
	err   error
}

func newReadIndex(n *Node) *readIndex {
	return &readIndex{n: n, wake: make(chan struct{}, 1),
		roundTimes: newHistogram(durationBounds), roundReads: newHistogram(entrySizeBounds)}
}

// wait returns once a strong read may be served from the local state.
func (r *readIndex) wait(ctx context.Context) error {
	if !r.n.IsLeader() {
		return ErrNotLeader
	}
	r.mu.Lock()
	rd := r.next
	if rd == nil {
		rd = &readRound{done: make(chan struct{})}
		r.next = rd
	}
	r.pending++
	r.ret.arrived(time.Now())
	signal := r.pending == 1 || r.pending == r.expect
	r.mu.Unlock()
	if signal {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	select {
	case <-rd.done:
		return rd.err
	case <-ctx.Done():
		return fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	case <-r.n.closing:
		return ErrClosed
	}
}

// How long a round waits for the readers the last one answered (the
// proposer's returns, with a window of its own). A reader's way back (its
// reply written, the client's next request read and parsed) takes several
// rounds' time, so the window is long; but once readers are coming back,
// the wait ends when none arrives for a gap of about one round's latency,
// so a straggler or a reader that went on to other work never holds a
// round for the whole window. Measured on the 2-core test machine under
// redis-benchmark GET (50 clients): rounds back to back served about 9
// reads each, and with this wait 20 to 30; the cluster's CPU per GET
// hardly moved (47 to 46 us), HTTP strong reads went from 2.33x to 2.67x
// etcd (docs/benchmarks.md).
const (
	maxReadGather = 2 * time.Millisecond
	minReadGap    = 100 * time.Microsecond
	maxReadGap    = 500 * time.Microsecond
)

// readGap is how long the wait lasts without a reader arriving.
func readGap(took time.Duration) time.Duration {
	return min(max(took, minReadGap), maxReadGap)
}

func (r *readIndex) run() {
	defer r.n.wg.Done()
	r.ret.likely = true
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-r.n.closing:
			return
		case <-r.wake:
		}
		if !r.gather(timer) {
			return
		}
		r.mu.Lock()
		rd, reads := r.next, r.pending
		r.next, r.pending, r.expect = nil, 0, 0
		r.mu.Unlock()
		if rd == nil {
			continue
		}
		start := time.Now()
		rd.index, rd.err = r.confirm()
		if rd.err == nil {
			r.roundTimes.observe(uint64(time.Since(start)))
			r.roundReads.observe(reads)
			r.confirmed.Store(start.UnixNano())
		}
		r.rounds.Add(1)
		r.reads.Add(reads)
		if rd.err != nil || r.n.applied(rd.index) {
			close(rd.done)
			now := time.Now()
			took := now.Sub(start)
			r.mu.Lock()
			if back := r.ret.completed(completion{answered: int(reads), at: now, took: took}, maxReadGather, readGap(took)); back > 0 {
				r.expect = r.pending + uint64(back)
			}
			r.mu.Unlock()
			continue
		}
		// The state machine is behind the commit index: wait for it
		// beside the next round rather than in front of it (its readers
		// come back later, so the next round does not wait for them).
		go func() {
			if err := r.n.waitApplied(context.Background(), rd.index); err != nil {
				rd.err = err
			}
			close(rd.done)
		}()
	}
}

// gather holds the round about to start until the readers the last one
// answered are back, or the wait for them ends (returns.deadline). It
// returns false when the node closes.
func (r *readIndex) gather(timer *time.Timer) bool {
	for {
		r.mu.Lock()
		pending, expect, until := r.pending, r.expect, r.ret.deadline()
		r.mu.Unlock()
		now := time.Now()
		if expect == 0 || pending >= expect || !now.Before(until) {
			return true
		}
		timer.Reset(until.Sub(now))
		select {
		case <-r.n.closing:
			timer.Stop()
			return false
		case <-r.wake:
		case <-timer.C:
		}
		timer.Stop() // Go 1.23+: no stale tick is received after Stop
	}
}

// confirm is one leadership round. The commit index is taken before the
// quorum check, so it covers every write acknowledged before the reads in
// this round arrived; the term check proves no other leader came between.
func (r *readIndex) confirm() (uint64, error) {
	n := r.n
	term := n.raft.CurrentTerm()
	if n.readyTerm.Load() != term || !n.IsLeader() {
		if n.IsLeader() {
			return 0, fmt.Errorf("%w: leader of term %d has not applied an entry of its term yet", ErrNoLeader, term)
		}
		return 0, ErrNotLeader
	}
	idx := n.commitIndex()
	if err := n.fence.confirm(term, n.heartbeat); err != nil {
		if !n.IsLeader() || n.raft.CurrentTerm() != term {
			// Deposed meanwhile: the fronts redirect to the new leader.
			return 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		if !errors.Is(err, errFenceLegacy) {
			return 0, err
		}
		// A member of an older binary is needed for a quorum: confirm
		// through Raft's heartbeats, as before the fence (fence.go).
		r.legacy.Add(1)
		if err := n.raft.VerifyLeader().Error(); err != nil {
			return 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
	}
	if n.raft.CurrentTerm() != term {
		return 0, fmt.Errorf("%w: term changed during read", ErrNotLeader)
	}
	return idx, nil
}

// ReadStats counts strong-read leadership rounds and the reads they served.
type ReadStats struct {
	Rounds, Reads uint64
	// LegacyRounds were confirmed through Raft's heartbeats, because a
	// quorum needed a member of a binary older than the read fence.
	LegacyRounds uint64
	// RoundTimes: each confirmed round, from its start to its quorum's
	// answers (a read also waits for the round in flight when it
	// arrived, and for the state to apply the round's index).
	RoundTimes Histogram
	// RoundReads: the strong reads each confirmed round served.
	RoundReads Histogram
}

// ReadStats returns the strong-read counters since start.
func (n *Node) ReadStats() ReadStats {
	return ReadStats{Rounds: n.reads.rounds.Load(), Reads: n.reads.reads.Load(), LegacyRounds: n.reads.legacy.Load(),
		RoundTimes: n.reads.roundTimes.snapshot(1e-9), RoundReads: n.reads.roundReads.snapshot(1)}
}
