package node

import (
	"context"
	"testing"
	"time"
)

// TestAppliedAcrossNoFSMTail: after a leadership change the log ends with
// entries the FSM never sees (the new leader's no-op and barrier). Waiting
// for the commit index must still return at once, on every node, rather
// than wait for an FSM index that will not come until the next write.
func TestAppliedAcrossNoFSMTail(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	old := waitForLeader(t, nodes...)
	mustSet(t, old, "k", "v")
	target := others(nodes, old)[0]
	waitForCaughtUp(t, old, target)
	if err := old.TransferLeadership(target.ID()); err != nil {
		t.Fatalf("transfer to %s: %v", target.ID(), err)
	}
	leader := waitForLeader(t, nodes...)
	waitForCaughtUp(t, leader, nodes...)

	commit, fsmIndex := leader.raft.CommitIndex(), leader.FSM().AppliedIndex()
	if fsmIndex >= commit {
		t.Fatalf("FSM index %d, commit index %d: the new leader's tail reached the FSM, so this test checks nothing", fsmIndex, commit)
	}
	t.Logf("commit index %d, FSM index %d", commit, fsmIndex)
	for _, n := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		began := time.Now()
		err := n.waitApplied(ctx, n.raft.CommitIndex())
		cancel()
		if err != nil {
			t.Fatalf("%s: waitApplied(commit index) over a no-op/barrier tail: %v after %v", n.ID(), err, time.Since(began))
		}
	}
	waitFor(t, "Ready() on every node", func() bool {
		for _, n := range nodes {
			if !n.Ready() {
				return false
			}
		}
		return true
	})
	if res, err := strongGet(t, nodes, "k"); err != nil || string(res.Value) != "v" {
		t.Fatalf("strong read after the transfer: %q, %v", res.Value, err)
	}
}

// TestAppliedAcrossLongNoFSMTail: the same with a long tail. Every election
// appends a no-op and a barrier, so a cluster whose leadership moves 33
// times with no write in between ends with more than 64 such entries.
// applied() gave up beyond 64 (idx-f > 64 returned false), so until the
// next write every strong read timed out and Ready() was false everywhere.
func TestAppliedAcrossLongNoFSMTail(t *testing.T) {
	nodes := newCluster(t, 2, nil)
	leader := waitForLeader(t, nodes...)
	mustSet(t, leader, "k", "v")
	// Barriers stand in for elections: the same kind of entry, faster.
	for range 80 {
		if err := leader.raft.Barrier(10 * time.Second).Error(); err != nil {
			t.Fatalf("barrier: %v", err)
		}
	}
	waitForRaftApplied(t, leader.raft.LastIndex(), nodes...)
	if gap := leader.raft.CommitIndex() - leader.FSM().AppliedIndex(); gap <= 64 {
		t.Fatalf("tail of %d entries: too short to check anything", gap)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := leader.Get(ctx, []byte("k"), ReadOptions{Consistency: Strong})
	if err != nil || string(res.Value) != "v" {
		t.Fatalf("strong read over a tail of 80 barriers: %q, %v", res.Value, err)
	}
	for _, n := range nodes {
		if !n.Ready() {
			t.Errorf("%s not Ready() over a tail of 80 barriers", n.ID())
		}
	}
}

// TestAppliedAfterElections is the realistic form of the test above: real
// leadership changes and no writes.
func TestAppliedAfterElections(t *testing.T) {
	if testing.Short() {
		t.Skip("33 leadership transfers")
	}
	nodes := newCluster(t, 2, nil)
	leader := waitForLeader(t, nodes...)
	mustSet(t, leader, "k", "v")
	for tries := 0; leader.raft.CommitIndex()-leader.FSM().AppliedIndex() <= 66; tries++ {
		if tries == 200 {
			t.Fatal("200 transfers did not build a tail of 66 entries")
		}
		if err := leader.TransferLeadership(""); err != nil {
			t.Logf("transfer: %v", err)
		}
		leader = waitForLeader(t, nodes...)
		waitForRaftApplied(t, leader.raft.LastIndex(), nodes...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if res, err := leader.Get(ctx, []byte("k"), ReadOptions{Consistency: Strong}); err != nil || string(res.Value) != "v" {
		t.Fatalf("strong read after many elections: %q, %v", res.Value, err)
	}
	waitFor(t, "Ready() on every node", func() bool { return nodes[0].Ready() && nodes[1].Ready() })
}

// waitForRaftApplied waits until Raft has handed every entry up to idx to
// each node's FSM goroutine (not applied(): that is what is under test).
func waitForRaftApplied(t *testing.T, idx uint64, nodes ...*Node) {
	t.Helper()
	waitFor(t, "raft applied index", func() bool {
		for _, n := range nodes {
			if n.raft.AppliedIndex() < idx {
				return false
			}
		}
		return true
	})
}
