package node

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/fsm"
)

// The leader's append overlaps replication.
//
// hashicorp/raft stores a leader's new entries (StoreLogs, one fdatasync)
// before it hands them to replication, so a commit waits for two syncs in
// a row: the leader's, then a follower's. The Raft thesis (10.2.1) lets
// the leader write its log in parallel with replicating, provided its own
// copy counts toward a commit only once it is durable. Raft v1.7.2 counts
// the leader's copy as soon as StoreLogs returns and has no option for
// this, so the same guarantee is kept here from outside it:
//
//   - On the leader, StoreLogs writes the entries to the store's WAL and
//     returns before their fdatasync (asyncStore); one goroutine waits for
//     the syncs in order and raises the durable index.
//   - Nothing derived from an entry leaves this node before the leader's
//     copy is durable: the state machine applies an entry only once it is
//     durable here (durableFSM), so no reply, read, snapshot or change
//     stream sees it earlier; and every AppendEntries this node sends as
//     leader carries a commit index no higher than its durable index
//     (gateTransport), so no follower applies it earlier either.
//
// Earlier terms. An entry of an earlier term is committed only once an
// entry of the current term after it is durable on a majority (the Raft
// paper's Figure 8). A new leader's commit index jumps to its first entry
// of the term (its no-op) as soon as a majority holds that, its own copy
// included; were that copy unsynced, min(commit, durable) could name an
// entry of an earlier term that is not yet committed, and a crash of the
// leader could then let a candidate without it win and overwrite it after
// it was applied. So the first append a leader makes in a term is synced
// before it returns, like a follower's: from then on the durable index is
// at or past the term's first entry whenever the commit index is, and
// min(commit, durable) (commitIndex) is always committed.
//
// Configuration changes. Raft acts on a configuration entry's commit
// itself, without the state machine: it answers the change's future and
// lets the next change start. So a leader's append holding one is synced
// before it returns too: its commit then needs the leader's synced copy,
// and a membership change is never reported, nor followed by another,
// while it could still be lost. Membership changes are rare; the sync
// costs nothing that shows.
//
// So every applied entry is committed and durable on a majority: a follower
// acknowledges only what it has synced, and the leader's copy is synced
// before anyone applies. If the leader crashes before its sync, the entry
// may be lost with it, but then no one has applied it and no client was
// answered: its writer sees an unknown outcome, as on any crash before the
// reply. A follower's StoreLogs is synced before it returns, as before:
// its acknowledgement counts toward a commit at once. Whether StoreLogs
// runs for a leader is read from Raft's state at the call: Raft calls it
// from its main goroutine, the one that changes that state.

// asyncStore is a log store that can return from an append before its
// sync (pebblestore.Store).
type asyncStore interface {
	raft.LogStore
	StoreLogsAsync(logs []*raft.Log) (wait func() error, err error)
	Sync() error
}

// durableLogs wraps the log store Raft writes through and keeps the
// durable index: every entry of the log at or below it is synced.
type durableLogs struct {
	asyncStore
	leading func() bool // whether Raft is the leader

	// leaderTerm is the term of the first append this node synced as
	// leader in its latest term as leader. Raft's main goroutine only.
	leaderTerm uint64

	mu      sync.Mutex
	stored  uint64        // the log's last index as last written
	durable uint64        // synced through here
	gen     uint64        // bumped when the tail is cut: pending syncs no longer count
	moved   chan struct{} // closed and replaced when durable rises
	err     error         // a failed sync: every later append fails with it
	pending chan pendingSync
	closed  chan struct{}
	done    chan struct{}

	stats      *writeStats                   // appends, timed to their sync as timedLogs times them
	failed     func(index uint64, err error) // a sync failed: stop the node
	beforeWait func() error                  // for tests: runs before each wait for a leader's sync; an error fails the sync
}

type pendingSync struct {
	wait  func() error
	index uint64
	gen   uint64
	start time.Time
}

// newDurableLogs wraps logs; last is the log's last index, synced (the
// caller syncs the store before). Appends are timed into stats (nil: not
// timed). beforeWait is for tests (nil).
func newDurableLogs(logs asyncStore, leading func() bool, last uint64, stats *writeStats, failed func(uint64, error), beforeWait func() error) *durableLogs {
	d := &durableLogs{asyncStore: logs, leading: leading, stored: last, durable: last, stats: stats, failed: failed, beforeWait: beforeWait,
		moved: make(chan struct{}), pending: make(chan pendingSync, 64),
		closed: make(chan struct{}), done: make(chan struct{})}
	go d.run()
	return d
}

func (d *durableLogs) StoreLog(l *raft.Log) error { return d.StoreLogs([]*raft.Log{l}) }

func (d *durableLogs) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	last := logs[len(logs)-1].Index
	d.mu.Lock()
	err := d.err
	d.mu.Unlock()
	if err != nil {
		return err
	}
	start := time.Now()
	leading := d.leading()
	first := leading && logs[0].Term > d.leaderTerm
	if !leading || first || hasConfiguration(logs) {
		// A follower's append, the first of a term as leader (Raft's
		// no-op), or a configuration change: synced before it returns
		// (see "Earlier terms" and "Configuration changes" above).
		if err := d.asyncStore.StoreLogs(logs); err != nil {
			d.observe(start, err)
			return err
		}
		d.observe(start, nil)
		if first {
			d.leaderTerm = logs[0].Term
		}
		// A synced append syncs everything written before it.
		d.mu.Lock()
		d.stored = last
		d.raise(last)
		d.mu.Unlock()
		return nil
	}
	wait, err := d.StoreLogsAsync(logs)
	if err != nil {
		d.observe(start, err)
		return err
	}
	d.mu.Lock()
	d.stored = last
	gen := d.gen
	d.mu.Unlock()
	d.pending <- pendingSync{wait: wait, index: last, gen: gen, start: start}
	return nil
}

// DeleteRange cuts the log. A cut of the tail (a follower dropping
// entries that conflict with its leader's) voids the pending syncs of the
// entries it removed; the cut itself is synced, and with it everything
// written before.
func (d *durableLogs) DeleteRange(lo, hi uint64) error {
	if err := d.asyncStore.DeleteRange(lo, hi); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if hi >= d.stored && lo <= d.stored {
		d.gen++
		d.stored = lo - 1
		d.set(lo - 1)
	}
	return nil
}

func hasConfiguration(logs []*raft.Log) bool {
	for _, l := range logs {
		if l.Type == raft.LogConfiguration {
			return true
		}
	}
	return false
}

func (d *durableLogs) IsMonotonic() bool {
	m, ok := d.asyncStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// raise moves the durable index up to i. d.mu is held.
func (d *durableLogs) raise(i uint64) {
	if i > d.durable {
		d.set(i)
	}
}

// set makes i the durable index, waking the waiters if it rose. d.mu is
// held.
func (d *durableLogs) set(i uint64) {
	rose := i > d.durable
	d.durable = i
	if rose {
		d.wake()
	}
}

// wake wakes the waiters (waitDurable) to look again. d.mu is held.
func (d *durableLogs) wake() {
	close(d.moved)
	d.moved = make(chan struct{})
}

// run waits for the leader's appends to sync, in order.
func (d *durableLogs) run() {
	defer close(d.done)
	for {
		select {
		case p := <-d.pending:
			d.complete(p)
		case <-d.closed:
			for {
				select {
				case p := <-d.pending:
					d.complete(p)
				default:
					return
				}
			}
		}
	}
}

func (d *durableLogs) complete(p pendingSync) {
	var injected error
	if d.beforeWait != nil {
		injected = d.beforeWait()
	}
	err := p.wait()
	if err == nil {
		err = injected
	}
	d.observe(p.start, err)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if d.err == nil {
			d.err = fmt.Errorf("%w: %w", errLogSync, err)
			d.wake()
			if d.failed != nil {
				d.failed(p.index, d.err)
			}
		}
		return
	}
	if p.gen == d.gen && d.err == nil {
		d.raise(p.index)
	}
}

// restored records a snapshot this node restored (at start, or installed
// from its leader): the state up to index is durable here (the snapshot
// store synced it), though the log may hold nothing up to there.
func (d *durableLogs) restored(index uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err == nil {
		d.raise(index)
	}
}

var errLogSync = errors.New("log sync failed")

// observe records an append from start to its sync (or its error).
func (d *durableLogs) observe(start time.Time, err error) {
	switch {
	case d.stats == nil:
	case err != nil:
		d.stats.appendErrors.Add(1)
	default:
		d.stats.appends.observe(uint64(time.Since(start)))
	}
}

// Durable is the durable index.
func (d *durableLogs) Durable() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.durable
}

// waitDurable waits until index is durable, the log failed to sync, or
// stop closes.
func (d *durableLogs) waitDurable(index uint64, stop <-chan struct{}) error {
	for {
		d.mu.Lock()
		durable, moved, err := d.durable, d.moved, d.err
		d.mu.Unlock()
		switch {
		case durable >= index:
			return nil
		case err != nil:
			return err
		}
		select {
		case <-moved:
		case <-stop:
			return ErrClosed
		}
	}
}

// close waits for the pending syncs; call it after Raft stopped and before
// the store closes.
func (d *durableLogs) close() {
	select {
	case <-d.closed:
	default:
		close(d.closed)
	}
	<-d.done
}

// AppendEntries sends req with its commit index no higher than this
// node's durable index (see the top of durable.go).
func (g *gateTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return g.NetworkTransport.AppendEntries(id, target, g.n.clampCommit(req), resp)
}

// AppendEntriesPipeline is Raft's pipelined replication: each request's
// commit index is held to the durable index as AppendEntries does.
func (g *gateTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := g.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return clampedPipeline{AppendPipeline: p, n: g.n}, nil
}

type clampedPipeline struct {
	raft.AppendPipeline
	n *Node
}

func (p clampedPipeline) AppendEntries(req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	return p.AppendPipeline.AppendEntries(p.n.clampCommit(req), resp)
}

// clampCommit returns req, or a copy whose commit index is this node's
// durable index when that is lower. Raft keeps the request it sent for
// the response (its entries and term), so it is not changed in place.
func (n *Node) clampCommit(req *raft.AppendEntriesRequest) *raft.AppendEntriesRequest {
	if n.dlogs == nil {
		return req
	}
	if d := n.dlogs.Durable(); req.LeaderCommitIndex > d {
		c := *req
		c.LeaderCommitIndex = d
		return &c
	}
	return req
}

// durableFSM applies an entry only once this node's copy of it is durable
// (see the top of durable.go).
type durableFSM struct {
	*fsm.FSM
	n *Node
}

// Restore restores a snapshot, which makes its index durable here: a
// follower brought up to date by a snapshot has no log entry at its index,
// and without this its commitIndex would stay at its old log's end until
// the next append.
func (f durableFSM) Restore(rc io.ReadCloser) error {
	if err := f.FSM.Restore(rc); err != nil {
		return err
	}
	f.n.dlogs.restored(f.FSM.AppliedIndex())
	return nil
}

func (f durableFSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

func (f durableFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	if len(logs) > 0 {
		last := logs[len(logs)-1]
		if err := f.n.dlogs.waitDurable(last.Index, f.n.closing); err != nil {
			// Closing, or the log failed to sync (the node is stopping:
			// syncFailed): this node cannot vouch for these entries.
			f.FSM.Stop(logs[0].Index, err)
		}
	}
	return f.FSM.ApplyBatch(logs)
}

// syncFailed stops the node after its log store failed to sync an append
// it made as leader. hashicorp/raft only steps down after a failed synced
// append; here the log may hold entries it never synced, so the node
// stops applying and serving (the FSM stops; watchPoison stops Raft), and
// its pending entries are answered as of unknown outcome.
func (n *Node) syncFailed(index uint64, err error) {
	n.logger.Error("the log store failed to sync: this node stops applying and serving; check the disk, then restart it", "index", index, "error", err)
	n.fsm.Stop(index, err)
}

// commitIndex is the highest index known committed here, for everything
// that compares progress or serves reads: Raft's commit index, held to the
// durable index, which on a leader whose appends overlap replication can
// trail it by one sync (see the top of this file). Nothing beyond it is
// applied yet, and no client was answered about it.
func (n *Node) commitIndex() uint64 {
	c := n.raft.CommitIndex()
	if n.dlogs != nil {
		c = min(c, n.dlogs.Durable())
	}
	return c
}

// leading says whether Raft is the leader (durableLogs asks, from Raft's
// main goroutine).
func (n *Node) leading() bool {
	r := n.gateRaft.Load()
	return r != nil && r.State() == raft.Leader
}
