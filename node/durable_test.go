package node

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/internal/pebblestore"
)

func testLogs(from, to uint64) []*raft.Log { return termLogs(from, to, 1) }

func termLogs(from, to, term uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte("x")})
	}
	return out
}

// A leader's append returns before its sync and raises the durable index
// when the sync is done; a follower's is durable when it returns; a cut of
// the tail voids the syncs of what it removed.
func TestDurableLogs(t *testing.T) {
	s, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var leading atomic.Bool
	hold := make(chan struct{})
	var held atomic.Bool
	d := newDurableLogs(s, leading.Load, 0, nil, nil, func() error {
		if held.Load() {
			<-hold
		}
		return nil
	})
	defer d.close()
	defer func() { // runs first: a failed check must not leave a sync parked
		held.Store(false)
		close(hold)
	}()
	wait := func(i uint64) error {
		stop := make(chan struct{})
		timer := time.AfterFunc(10*time.Second, func() { close(stop) })
		defer timer.Stop()
		return d.waitDurable(i, stop)
	}

	// Follower: synced on return.
	if err := d.StoreLogs(testLogs(1, 3)); err != nil {
		t.Fatal(err)
	}
	if got := d.Durable(); got != 3 {
		t.Fatalf("durable after a follower's append = %d, want 3", got)
	}

	// Leader: its first append of a term is synced before it returns
	// (even with the syncs that overlap replication held)...
	leading.Store(true)
	held.Store(true)
	if err := d.StoreLogs(testLogs(4, 4)); err != nil {
		t.Fatal(err)
	}
	if got := d.Durable(); got != 4 {
		t.Fatalf("durable after the leader's first append of its term = %d, want 4", got)
	}
	// ... and the next ones are readable at once, durable once synced.
	if err := d.StoreLogs(testLogs(5, 6)); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := d.GetLog(6, &l); err != nil {
		t.Fatalf("entry 6 not readable after the leader's append: %v", err)
	}
	if got := d.Durable(); got != 4 {
		t.Fatalf("durable with the leader's sync held = %d, want 4", got)
	}
	hold <- struct{}{}
	if err := wait(6); err != nil {
		t.Fatal(err)
	}

	// A leader's appends pending when the tail is cut (it stepped down and
	// its new leader's log conflicts): the cut is synced, the voided syncs
	// never raise the index past it.
	if err := d.StoreLogs(testLogs(7, 9)); err != nil {
		t.Fatal(err)
	}
	leading.Store(false)
	if err := d.DeleteRange(8, 9); err != nil {
		t.Fatal(err)
	}
	if got := d.Durable(); got != 7 {
		t.Fatalf("durable after cutting 8-9 = %d, want 7 (the cut syncs what came before)", got)
	}
	hold <- struct{}{} // the voided sync of 7-9 completes
	if err := d.StoreLogs(testLogs(8, 8)); err != nil {
		t.Fatal(err)
	}
	if got := d.Durable(); got != 8 {
		t.Fatalf("durable after the follower's append of 8 = %d, want 8", got)
	}
	// A pending leader append voided by a cut must not raise the index
	// over entries written at the same indexes after the cut.
	leading.Store(true)
	if err := d.StoreLogs(testLogs(9, 12)); err != nil {
		t.Fatal(err)
	}
	leading.Store(false)
	if err := d.DeleteRange(10, 12); err != nil {
		t.Fatal(err)
	}
	leading.Store(true)
	if err := d.StoreLogs(testLogs(10, 11)); err != nil { // held behind the voided one
		t.Fatal(err)
	}
	hold <- struct{}{} // the voided sync of 9-12
	// Give the voided completion time to (wrongly) raise the index: the
	// next sync is still held, so nothing else can raise it.
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		if got := d.Durable(); got > 9 {
			t.Fatalf("durable = %d with 10-11 not synced: a voided sync counted", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	hold <- struct{}{}
	if err := wait(11); err != nil {
		t.Fatal(err)
	}

	// A leader's configuration change is synced before it returns.
	cfg := &raft.Log{Index: 12, Term: 1, Type: raft.LogConfiguration, Data: []byte("c")}
	if err := d.StoreLogs([]*raft.Log{cfg}); err != nil {
		t.Fatal(err)
	}
	if got := d.Durable(); got != 12 {
		t.Fatalf("durable after the leader's configuration append = %d, want 12", got)
	}

	// A compaction of the head changes nothing.
	if err := d.DeleteRange(1, 4); err != nil {
		t.Fatal(err)
	}
	if got := d.Durable(); got != 12 {
		t.Fatalf("durable after compacting 1-4 = %d, want 12", got)
	}

	// Leading again in a later term: that term's first append is synced
	// too, whatever terms it led before.
	leading.Store(false)
	if err := d.StoreLogs(termLogs(13, 13, 2)); err != nil {
		t.Fatal(err)
	}
	leading.Store(true)
	if err := d.StoreLogs(termLogs(14, 14, 3)); err != nil {
		t.Fatal(err)
	}
	if got := d.Durable(); got != 14 {
		t.Fatalf("durable after the leader's first append of term 3 = %d, want 14", got)
	}
	if err := d.StoreLogs(termLogs(15, 15, 3)); err != nil {
		t.Fatal(err)
	}
	if got := d.Durable(); got != 14 {
		t.Fatalf("durable with the sync of 15 held = %d, want 14", got)
	}
	hold <- struct{}{}
	if err := wait(15); err != nil {
		t.Fatal(err)
	}

	// A restored snapshot is durable up to its index, and wakes waiters.
	woke := make(chan error, 1)
	go func() { woke <- wait(100) }()
	d.restored(100)
	if err := <-woke; err != nil {
		t.Fatal(err)
	}
}

// A failed sync stops the log: waiters get the error, later appends fail.
func TestDurableLogsSyncFailure(t *testing.T) {
	s, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	boom := errors.New("disk gone")
	failed := make(chan uint64, 1)
	d := newDurableLogs(failingSync{s, boom}, func() bool { return true }, 0, nil,
		func(index uint64, err error) { failed <- index }, nil)
	defer d.close()
	if err := d.StoreLogs(testLogs(1, 1)); err != nil { // the term's first: synced
		t.Fatal(err)
	}
	if err := d.StoreLogs(testLogs(2, 2)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	if err := d.waitDurable(2, stop); !errors.Is(err, boom) || !errors.Is(err, errLogSync) {
		t.Fatalf("waitDurable = %v, want the sync's error", err)
	}
	select {
	case i := <-failed:
		if i != 2 {
			t.Fatalf("the node was told of a failed sync at %d, want 2", i)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the node was not told of the failed sync")
	}
	if err := d.StoreLogs(testLogs(3, 3)); !errors.Is(err, boom) {
		t.Fatalf("append after a failed sync = %v, want the sync's error", err)
	}
}

// failingSync is the real store whose syncs report an error after they
// ran (a disk that failed the fdatasync).
type failingSync struct {
	*pebblestore.Store
	err error
}

func (f failingSync) StoreLogsAsync(logs []*raft.Log) (func() error, error) {
	wait, err := f.Store.StoreLogsAsync(logs)
	if err != nil {
		return nil, err
	}
	return func() error { _ = wait(); return f.err }, nil
}

// The leader's append overlaps replication, and nothing of an entry leaves
// the leader before its own copy is durable: with the leader's sync held,
// a write commits on a follower's acknowledgement (the overlap), but no
// node applies it, no follower hears a commit index that covers it, and
// the writer is not answered; released, it completes everywhere.
func TestLeaderAppendOverlapsReplication(t *testing.T) {
	var held atomic.Bool
	hold := make(chan struct{})
	nodes := newCluster(t, 3, func(c *Config) {
		c.leaderSyncHook = func() error {
			if held.Load() {
				<-hold
			}
			return nil
		}
	})
	leader := waitForLeader(t, nodes...)
	mustSet(t, leader, "before", "1")
	waitForIndex(t, leader.fsm.AppliedIndex(), nodes...)

	held.Store(true)
	released := false
	defer func() {
		held.Store(false)
		if !released {
			close(hold)
		}
	}()
	start := leader.raft.LastIndex()
	done := make(chan error, 1)
	go func() {
		_, err := leader.Set(ctxTimeout(t, 30*time.Second), []byte("k"), []byte("v"), 0)
		done <- err
	}()
	waitFor(t, "the write committed on a follower's acknowledgement", func() bool {
		return leader.raft.CommitIndex() > start
	})
	idx := leader.raft.CommitIndex()
	heard := map[*Node]uint64{}
	for _, f := range others(nodes, leader) {
		f.leaderCommit.mu.Lock()
		heard[f] = f.leaderCommit.count
		f.leaderCommit.mu.Unlock()
	}
	// Raft sends each follower an AppendEntries with its commit index at
	// least every 2×CommitTimeout: after several, none may carry idx.
	waitFor(t, "followers to hear five AppendEntries after the commit", func() bool {
		for f, c := range heard {
			f.leaderCommit.mu.Lock()
			n := f.leaderCommit.count
			f.leaderCommit.mu.Unlock()
			if n < c+5 {
				return false
			}
		}
		return true
	})
	for _, n := range nodes {
		if got := n.fsm.AppliedIndex(); got >= idx {
			t.Fatalf("%s applied index %d while the leader's copy of %d is not synced", n.cfg.ID, got, idx)
		}
		if commit, _ := n.LeaderCommit(); n != leader && commit >= idx {
			t.Fatalf("%s heard commit index %d while the leader's copy of %d is not synced", n.cfg.ID, commit, idx)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the write was answered (%v) before the leader's copy was synced", err)
	default:
	}

	released = true
	held.Store(false)
	close(hold)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("write after the sync: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the write was not answered after the leader's sync")
	}
	waitForIndex(t, idx, nodes...)
	res, err := strongGet(t, nodes, "k")
	if err != nil || string(res.Value) != "v" {
		t.Fatalf("strong get k = %q, %v", res.Value, err)
	}
}

// A leader whose log fails to sync an append stops: its pending write is
// answered as of unknown outcome (never as not applied), it applies and
// serves nothing more, and the others elect a leader and go on with every
// acknowledged write.
func TestLeaderSyncFailureStopsNode(t *testing.T) {
	var failing atomic.Value // the id of the node whose syncs fail
	failing.Store("")
	nodes := newCluster(t, 3, func(c *Config) {
		id := c.ID
		c.leaderSyncHook = func() error {
			if failing.Load() == id {
				return errors.New("injected: fdatasync failed")
			}
			return nil
		}
	})
	leader := waitForLeader(t, nodes...)
	mustSet(t, leader, "acked", "1")

	failing.Store(leader.cfg.ID)
	_, err := leader.Set(ctxTimeout(t, 30*time.Second), []byte("k"), []byte("v"), 0)
	if !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("a write whose leader sync failed = %v, want ErrUnknownOutcome", err)
	}
	if err := leader.Poisoned(); !errors.Is(err, errLogSync) {
		t.Fatalf("the leader after a failed sync: Poisoned() = %v, want the sync failure", err)
	}
	rest := others(nodes, leader)
	next := waitForLeader(t, rest...)
	if next == leader {
		t.Fatal("the node whose sync failed still leads")
	}
	mustSet(t, next, "after", "2")
	for _, key := range []string{"acked", "after"} {
		res, err := strongGet(t, rest, key)
		if err != nil || len(res.Value) == 0 {
			t.Fatalf("strong get %s after the failover = %q, %v", key, res.Value, err)
		}
	}
}
