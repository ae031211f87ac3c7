package node

import (
	"context"
	"fmt"
	"time"

	"github.com/raftcache/raftcache/fsm"
)

// Group commit. Writes from concurrent clients (single-key writes, and
// non-atomic batches without a request id, such as a Redis pipeline's run
// of writes) are packed into one non-atomic OpBatch entry, so they share
// one log append, one fdatasync on each node and one trip through Raft.
//
// Every entry costs a log append with its fdatasync on each node (with
// pebble the leader's overlaps replication, durable.go; with bolt it
// comes first and costs two), and on a small machine the nodes' syncs
// compete for one disk; so what a write costs is mostly how many entries
// it shares them with. The proposer therefore keeps one entry in flight and
// gathers everything that arrives meanwhile into the next one. A second
// entry (up to maxInflight) starts only when the one being gathered is
// full: pipelining then adds throughput instead of fsyncs.
//
// When an entry completes, the writers it answered often write again at
// once (a worker's next request). The next entry then waits for them, but
// no longer than gatherWait (twice the entry's latency or the writers' way
// back, whichever is longer), and only while they keep
// arriving: once they are arriving, a gap of gatherGap without a new one
// ends the wait. Without that wait, half of them miss the departure and
// the clients split into groups that alternate, each paying a whole
// entry. Whether they come back is learnt (returns): writers that do not
// (an open stream of independent requests) are not waited for. A lone
// writer never waits: it is all it expects.
const (
	maxInflight  = 4
	maxEntryOps  = 1024    // writes per entry
	coalesceSize = 1 << 20 // bytes of keys and values per entry, beyond the first proposal
	maxGather    = 5 * time.Millisecond
)

// gatherWait is how long the next entry may wait for the writers the last
// one answered: twice the longer of that entry's latency and the writers'
// last way back (returns.wayBack: from an entry's answer to the last of its
// writers back), at most maxGather. The way back is mostly the clients'
// own: a closed-loop load tool answers its connections one after another
// (redis-benchmark, 50 connections: about 1 to 1.5 ms on the 2-core test
// machine), and since the leader's append overlaps replication
// (durable.go) an entry takes less than that; a window of twice the
// entry alone let about 40 of the 50 share an entry, where the way back
// keeps it at about 47.
func gatherWait(took, back time.Duration) time.Duration {
	return min(2*max(took, back), maxGather)
}

// gatherGap ends the wait early: once writers are coming back, this long
// without another means the rest are not coming soon.
func gatherGap(took, back time.Duration) time.Duration {
	return min(max(max(took, back)/4, 200*time.Microsecond), time.Millisecond)
}

type proposal struct {
	cmd  *fsm.Command // a single-key write, or a non-atomic OpBatch without ReqID
	ops  int          // writes it adds to an entry
	size int          // bytes of keys and values
	done chan proposalResult
}

type proposalResult struct {
	res *fsm.Result
	err error
}

// completion reports an entry that was answered.
type completion struct {
	answered int           // proposals it answered
	at       time.Time     // when
	took     time.Duration // from proposing to the answer
}

type proposer struct {
	n         *Node
	queue     chan *proposal
	completed chan completion // one per entry; never blocks: at most maxInflight
}

func newProposer(n *Node) *proposer {
	return &proposer{n: n, queue: make(chan *proposal, 4096), completed: make(chan completion, maxInflight)}
}

// coalescable says whether cmd may share an entry with other clients'
// writes: single-key writes, and non-atomic batches without a request id
// (their writes stay together and in order inside the shared entry).
func coalescable(cmd *fsm.Command) bool {
	switch cmd.Op {
	case fsm.OpSet, fsm.OpDelete, fsm.OpIncr, fsm.OpTouch:
		return true
	case fsm.OpBatch:
		return !cmd.Atomic && len(cmd.ReqID) == 0 && len(cmd.Cmds) > 0 && len(cmd.Cmds) <= maxEntryOps
	case fsm.OpExec:
		// Units keep their own request ids and rollback scopes inside a
		// shared entry.
		ops, _ := measure(cmd)
		return len(cmd.Units) > 0 && ops <= maxEntryOps
	}
	return false
}

func newProposal(cmd *fsm.Command) *proposal {
	ops, size := measure(cmd)
	return &proposal{cmd: cmd, ops: ops, size: size, done: make(chan proposalResult, 1)}
}

// measure returns the writes cmd carries and the bytes of their keys and
// values.
func measure(cmd *fsm.Command) (ops, size int) {
	switch cmd.Op {
	case fsm.OpExec:
		for i := range cmd.Units {
			ops += len(cmd.Units[i].Cmds)
			size += cmd.Units[i].Size()
		}
	case fsm.OpBatch:
		ops = len(cmd.Cmds)
		for _, c := range cmd.Cmds {
			size += len(c.Key) + len(c.Value)
		}
	default:
		ops, size = 1, len(cmd.Key)+len(cmd.Value)
	}
	return ops, size
}

// submit queues cmd and waits for its result. After the queue accepted it,
// the outcome of a cancelled wait is unknown: it may still be applied.
//
// Closing the node ends the wait too: once run has stopped nothing answers
// a proposal queued after it drained the queue, and Raft never answers an
// entry still in its apply buffer (BatchApplyCh) when it shuts down, so a
// caller without a deadline would wait forever.
func (p *proposer) submit(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	pr := newProposal(cmd)
	select {
	case <-p.n.closing:
		return nil, ErrClosed
	default:
	}
	select {
	case p.queue <- pr:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	case <-p.n.closing:
		return nil, ErrClosed
	}
	select {
	case r := <-pr.done:
		return r.res, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrUnknownOutcome, ctx.Err())
	case <-p.n.closing:
		select {
		case r := <-pr.done:
			return r.res, r.err
		default:
		}
		// It may have been proposed: not ErrClosed, which says "not applied".
		return nil, fmt.Errorf("%w: node closed while the write was in flight", ErrUnknownOutcome)
	}
}

// group is the entry being gathered.
type group struct {
	items []*proposal
	ops   int
	size  int
	full  bool // the next proposal did not fit
}

// add takes pr unless it would overflow the entry (a first proposal always
// fits: coalescable bounds a batch to maxEntryOps).
func (g *group) add(pr *proposal) bool {
	if len(g.items) > 0 && (g.ops+pr.ops > maxEntryOps || g.size+pr.size > coalesceSize ||
		(g.items[0].cmd.Op == fsm.OpExec) != (pr.cmd.Op == fsm.OpExec)) {
		g.full = true
		return false
	}
	g.items = append(g.items, pr)
	g.ops += pr.ops
	g.size += pr.size
	g.full = g.ops >= maxEntryOps || g.size >= coalesceSize
	return true
}

// returns learns whether the writers an entry answers (or the readers a
// strong-read round answers, read.go) come back at once (closed-loop
// clients, such as workers each waiting on their request): only then is
// the next entry (round) worth holding for them.
type returns struct {
	answered int           // writers the last entry answered
	until    time.Time     // the end of the window after that answer
	gap      time.Duration // gatherGap of that entry
	lastBack time.Time     // the last write that arrived within the window
	back     int           // writes that arrived within it
	likely   bool          // in the window before, at least half came back
	from     time.Time     // the answer that opened the window
	wayBack  time.Duration // from that answer to the last arrival, in the last window where most came back
}

// completed starts a new window after c, of the given length and gap (the
// proposer's gatherWait and gatherGap, or the read rounds' own in
// read.go); it says how many to expect back.
func (r *returns) completed(c completion, window, gap time.Duration) int {
	if r.answered > 0 {
		r.likely = 2*r.back >= r.answered
		if r.likely && !r.lastBack.IsZero() {
			r.wayBack = r.lastBack.Sub(r.from)
		}
	}
	r.from = c.at
	r.answered, r.until, r.back = c.answered, c.at.Add(window), 0
	r.gap, r.lastBack = gap, time.Time{}
	if r.likely {
		return c.answered
	}
	return 0
}

func (r *returns) arrived(now time.Time) {
	if now.Before(r.until) {
		r.back++
		r.lastBack = now
	}
}

// deadline is when the next entry stops waiting: the window's end, or a
// gap after the last writer that came back.
func (r *returns) deadline() time.Time {
	if r.lastBack.IsZero() {
		return r.until
	}
	return minTime(r.until, r.lastBack.Add(r.gap))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (p *proposer) run() {
	defer p.n.wg.Done()
	var (
		g        group
		carry    *proposal // did not fit in g: first of the next entry
		inflight int
		expect   int // writers the next entry waits for, until ret.until
		ret      = returns{likely: true}
		timer    = time.NewTimer(time.Hour)
		timerSet bool
	)
	timer.Stop()
	defer timer.Stop()
	for {
		if carry != nil && !g.full && g.add(carry) {
			carry = nil
		}
		if len(g.items) > 0 && (g.full && inflight < maxInflight ||
			inflight == 0 && (len(g.items) >= expect || !time.Now().Before(ret.deadline()))) {
			p.propose(g.items)
			inflight++
			g, expect = group{}, 0
			timer.Stop() // Go 1.23+: no stale tick is received after Stop
			timerSet = false
			continue
		}
		queue := p.queue
		if g.full || carry != nil {
			queue = nil // gather no more until this entry leaves
		}
		var wake <-chan time.Time
		if inflight == 0 && len(g.items) > 0 {
			if !timerSet {
				timer.Reset(time.Until(ret.deadline()))
				timerSet = true
			}
			wake = timer.C
		}
		select {
		case pr := <-queue:
			ret.arrived(time.Now())
			if !g.add(pr) {
				carry = pr
			}
		case c := <-p.completed:
			inflight--
			expect = len(g.items) + ret.completed(c, gatherWait(c.took, ret.wayBack), gatherGap(c.took, ret.wayBack))
			timer.Stop()
			timerSet = false
		case <-wake:
			timerSet = false
			if !time.Now().Before(ret.deadline()) {
				expect = 0
			} // else writers came back since the timer was set: wait on
		case <-p.n.closing:
			for _, pr := range g.items {
				pr.done <- proposalResult{err: ErrClosed}
			}
			if carry != nil {
				carry.done <- proposalResult{err: ErrClosed}
			}
			p.failQueued()
			return
		}
	}
}

// propose sends one entry for batch and answers each proposal when the
// entry is applied, without holding up the next entry.
func (p *proposer) propose(batch []*proposal) {
	n := p.n
	cmd := batch[0].cmd
	exec := cmd.Op == fsm.OpExec
	if len(batch) > 1 && exec {
		// One entry, every unit in arrival order; the latest stamp, so
		// time in the entry never runs behind a unit's own.
		cmd = &fsm.Command{Op: fsm.OpExec, Now: n.now(), Limits: cmd.Limits}
		for _, pr := range batch {
			cmd.Units = append(cmd.Units, pr.cmd.Units...)
		}
	} else if len(batch) > 1 {
		cmd = &fsm.Command{Op: fsm.OpBatch, Now: n.now()}
		for _, pr := range batch {
			if pr.cmd.Op == fsm.OpBatch {
				cmd.Cmds = append(cmd.Cmds, pr.cmd.Cmds...)
			} else {
				cmd.Cmds = append(cmd.Cmds, pr.cmd)
			}
		}
	}
	start := time.Now()
	f := n.raft.Apply(cmd.Encode(nil), n.cfg.ApplyTimeout)
	writes := 0
	for _, pr := range batch {
		writes += pr.ops
	}
	go func() {
		err := f.Error()
		if err == nil {
			n.wstats.entry(start, writes)
		}
		var res *fsm.Result
		if err == nil {
			res, err = resultOf(f)
		} else {
			err = n.classify(err, true)
		}
		at := 0
		for _, pr := range batch {
			switch {
			case err != nil:
				pr.done <- proposalResult{err: err}
			case exec:
				k := len(pr.cmd.Units)
				if at+k > len(res.Results) {
					pr.done <- proposalResult{err: fmt.Errorf("%w: short result at index %d", ErrUnknownOutcome, res.Index)}
					continue
				}
				pr.done <- proposalResult{res: &fsm.Result{Index: res.Index, Results: res.Results[at : at+k : at+k]}}
				at += k
				continue
			case len(batch) == 1:
				pr.done <- proposalResult{res: res}
			case pr.cmd.Op == fsm.OpBatch:
				sub := res.Results[at : at+pr.ops : at+pr.ops]
				pr.done <- proposalResult{res: &fsm.Result{Index: res.Index, Results: sub}}
			default:
				pr.done <- proposalResult{res: &res.Results[at]}
			}
			at += pr.ops
		}
		now := time.Now()
		p.completed <- completion{answered: len(batch), at: now, took: now.Sub(start)}
	}()
}

// failQueued answers everything still queued at shutdown: none of it was
// proposed.
func (p *proposer) failQueued() {
	for {
		select {
		case pr := <-p.queue:
			pr.done <- proposalResult{err: ErrClosed}
		default:
			return
		}
	}
}
