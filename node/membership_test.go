package node

import (
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftcache/raftcache/fsm"
)

// probed makes a test cluster's nodes ask each other through testProbe,
// as the real binary does through GET /v1/node: learner-first adds,
// promotions, incarnation checks and the quorum check all need it.
func probed(c *Config) {
	c.Probe = testProbe
	c.PromoteAfter = 200 * time.Millisecond
}

func leaderMember(t testing.TB, leader *Node, id string) (Member, bool) {
	t.Helper()
	ms, err := leader.Members()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// TestLearnerFirst: a member added as a voter joins as a non-voter and is
// promoted only once it answers and has caught up; one that never runs
// stays a non-voter, visibly catching up.
func TestLearnerFirst(t *testing.T) {
	nodes := newCluster(t, 3, probed) // join waits for each promotion
	leader := waitForLeader(t, nodes...)
	for _, n := range nodes {
		// The first member registered itself before the cluster reached
		// level 2; the leader's next probe round records its incarnation.
		waitFor(t, n.ID()+" a voter with its incarnation recorded", func() bool {
			m, _ := leaderMember(t, leader, n.ID())
			return m.Voter && m.State == StateVoter && m.Incarnation == n.Incarnation()
		})
		if !n.mayVote() {
			t.Errorf("%s is registered but may not vote", n.ID())
		}
	}
	ctx := ctxTimeout(t, 20*time.Second)
	ghost := Member{ID: "ghost", RaftAddr: "127.0.0.1:1", HTTPAddr: httpAddr("ghost"), Voter: true, Level: fsm.FeatureLevel, Incarnation: "abc"}
	if err := leader.AddMember(ctx, ghost); err != nil {
		t.Fatalf("AddMember(ghost): %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		m, ok := leaderMember(t, leader, "ghost")
		if !ok || m.Voter || m.State != StateCatchingUp {
			t.Fatalf("a member that never ran: %+v, %v; want a non-voter catching up", m, ok)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// An explicit promotion of a member that has not caught up only marks it.
	if err := leader.SetVoter(ctx, "ghost", true, false); err != nil {
		t.Fatalf("SetVoter(ghost): %v", err)
	}
	if m, _ := leaderMember(t, leader, "ghost"); m.Voter {
		t.Fatalf("promoted a member that never ran: %+v", m)
	}
	if err := leader.RemoveMember(ctx, "ghost", false); err != nil {
		t.Fatalf("removing a non-voter: %v", err)
	}
}

// TestQuorumCheck: with one voter stopped, removing or demoting another
// voter is refused, naming the stopped one; removing the stopped voter
// itself is allowed.
func TestQuorumCheck(t *testing.T) {
	nodes := newCluster(t, 3, probed)
	leader := waitForLeader(t, nodes...)
	dead, other := others(nodes, leader)[0], others(nodes, leader)[1]
	if err := dead.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 20*time.Second)
	for name, err := range map[string]error{
		"remove": leader.RemoveMember(ctx, other.ID(), false),
		"demote": leader.SetVoter(ctx, other.ID(), false, false),
		"self":   leader.RemoveMember(ctx, leader.ID(), false),
	} {
		var qe *QuorumError
		if !errors.Is(err, ErrQuorumAtRisk) || !errors.As(err, &qe) || !slices.Equal(qe.Unreachable, []string{dead.ID()}) {
			t.Errorf("%s with %s stopped: %v, want a QuorumError naming it", name, dead.ID(), err)
		}
	}
	if m, _ := leaderMember(t, leader, other.ID()); !m.Voter {
		t.Fatalf("%s lost its vote after a refused change: %+v", other.ID(), m)
	}
	if err := leader.RemoveMember(ctx, dead.ID(), false); err != nil {
		t.Fatalf("removing the stopped voter itself: %v", err)
	}
	mustSet(t, waitForLeader(t, leader, other), "after", "removal")
}

// TestWipedMemberComesBackAsLearner: a follower's data directory is lost;
// a fresh node starts under its id at its Raft address. It may not vote
// until registered; the leader notices the new incarnation, removes it
// and adds it back as a non-voter, and promotes it once it caught up.
// restartWiped closes old and starts a node under its id and Raft
// address on a new, empty data directory (a wiped or replaced disk).
func restartWiped(t *testing.T, old *Node, mod func(*Config)) *Node {
	t.Helper()
	oldInc, addr := old.Incarnation(), old.RaftAddr()
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, old.ID(), false)
	mod(&cfg)
	cfg.RaftAddr = addr
	var fresh *Node
	waitFor(t, "the wiped node to bind its old address", func() bool {
		n, err := New(cfg)
		if err != nil {
			return false
		}
		fresh = n
		return true
	})
	testNodes.Store(fresh.RaftAddr(), fresh)
	t.Cleanup(func() { testNodes.CompareAndDelete(fresh.RaftAddr(), fresh); fresh.Close() })
	if fresh.Incarnation() == oldInc {
		t.Fatal("a new data directory kept the old incarnation")
	}
	if fresh.mayVote() {
		t.Fatal("a wiped node may vote before the cluster registered it")
	}
	return fresh
}

// TestUnregisteredLearnerNotPromoted: a learner caught up and stable is
// promoted only once it reports its data directory registered (it would
// refuse votes as a voter), by the leader's round and by an operator's
// promotion alike. The window between its record's apply and its
// registration is one poll in a real cluster; here the node is held in it
// (holdRegistration) for several promotion periods.
func TestUnregisteredLearnerNotPromoted(t *testing.T) {
	const promoteAfter = 300 * time.Millisecond
	nodes := newCluster(t, 3, func(c *Config) { probed(c); c.PromoteAfter = promoteAfter })
	leader := waitForLeader(t, nodes...)
	old := others(nodes, leader)[0]
	var hold atomic.Bool
	hold.Store(true)
	fresh := restartWiped(t, old, func(c *Config) { probed(c); c.PromoteAfter = promoteAfter; c.holdRegistration = &hold })
	rest := others(nodes, old)
	// The member is missing for a moment while the leader replaces the
	// wiped voter with a learner: a zero Member (not a voter) then.
	member := func() (Member, *Node) {
		l := waitForLeader(t, rest[0], rest[1])
		m, _ := leaderMember(t, l, old.ID())
		return m, l
	}
	waitFor(t, "the wiped node back as a learner, its record applied", func() bool {
		m, _ := member()
		rec, ok := fresh.fsm.Member(old.ID())
		return !m.Voter && m.Incarnation == fresh.Incarnation() && ok && rec.Incarnation == fresh.Incarnation()
	})
	if fresh.mayVote() || !fresh.Info().Unregistered {
		t.Fatal("a held node registered, or does not report itself unregistered")
	}
	held := time.Now().Add(10 * promoteAfter)
	for time.Now().Before(held) {
		m, l := member()
		if m.Voter {
			t.Fatalf("a learner that would refuse votes was promoted: %+v", m)
		}
		if err := l.SetVoter(ctxTimeout(t, 10*time.Second), old.ID(), true, false); err != nil && !errors.Is(err, ErrNotLeader) {
			t.Fatalf("asking for its promotion: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m, _ := member(); m.Voter {
		t.Fatalf("an operator's promotion made a voter of a learner that would refuse votes: %+v", m)
	}
	hold.Store(false)
	waitFor(t, "the learner registered and promoted", func() bool {
		m, l := member()
		if !m.Voter {
			// A new leader knows nothing of the wish: ask again, as the
			// node's join loop does.
			_ = l.SetVoter(ctxTimeout(t, 10*time.Second), old.ID(), true, false)
		}
		return m.Voter && fresh.mayVote()
	})
}

func TestWipedMemberComesBackAsLearner(t *testing.T) {
	nodes := newCluster(t, 3, probed)
	leader := waitForLeader(t, nodes...)
	mustSet(t, leader, "k", "v")
	old := others(nodes, leader)[0]
	fresh := restartWiped(t, old, probed)
	sawLearner := false
	waitFor(t, "the wiped member back as a voter under its new incarnation", func() bool {
		m, ok := leaderMember(t, waitForLeader(t, leader, others(nodes, old)[1]), old.ID())
		if ok && m.Voter && m.Incarnation != fresh.Incarnation() && sawLearner {
			t.Fatalf("a voter again under its old incarnation after being a learner: %+v", m)
		}
		if ok && !m.Voter && m.Incarnation == fresh.Incarnation() {
			sawLearner = true
		}
		return ok && m.Voter && m.Incarnation == fresh.Incarnation()
	})
	if !sawLearner {
		t.Error("the wiped member was never seen as a learner before its promotion")
	}
	waitFor(t, "the wiped node registered and voting", fresh.mayVote)
	waitForCaughtUp(t, waitForLeader(t, nodes[0], nodes[1], nodes[2], fresh), fresh)
	if e, ok := localGet(t, fresh, "k"); !ok || string(e.Value) != "v" {
		t.Fatalf("the wiped node caught up without k: %q, %v", e.Value, ok)
	}
}

// TestRemovedNodeKnowsIt: a removed follower and a leader that removed
// itself both report it on Removed.
func TestRemovedNodeKnowsIt(t *testing.T) {
	nodes := newCluster(t, 3, probed)
	leader := waitForLeader(t, nodes...)
	f := others(nodes, leader)[0]
	ctx := ctxTimeout(t, 20*time.Second)
	if err := leader.RemoveMember(ctx, f.ID(), false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.Removed():
	case <-time.After(waitDeadline):
		t.Fatalf("%s was removed but does not know it", f.ID())
	}
	if !errors.Is(f.RemovedReason(), ErrRemoved) {
		t.Fatalf("RemovedReason: %v", f.RemovedReason())
	}
	rest := others(nodes, f)
	leader = waitForLeader(t, rest...)
	if err := leader.RemoveMember(ctx, leader.ID(), false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-leader.Removed():
	case <-time.After(waitDeadline):
		t.Fatalf("leader %s removed itself but does not know it", leader.ID())
	}
	mustSet(t, waitForLeader(t, others(rest, leader)...), "after", "removals")
}

// unregister puts n back in the state of a voter whose registration it
// has not applied yet (in a real cluster, the moment between its promotion
// and the apply of its record, up to a registration poll longer): the
// gate refuses its votes and transfers. Raft's timeouts stay as they are.
func unregister(t *testing.T, n *Node) {
	t.Helper()
	n.registered.Store(false)
	if n.mayVote() {
		t.Fatal("still voting after unregister")
	}
}

// TestUnregisteredVoterRefusesTransfer: a leadership transfer to a voter
// whose data directory the cluster has not registered is refused, as its
// votes are, and the leader keeps serving. Let through, it left a cluster
// of two without a leader for good (votegate.go).
func TestUnregisteredVoterRefusesTransfer(t *testing.T) {
	nodes := newCluster(t, 2, nil)
	leader := waitForLeader(t, nodes...)
	f := others(nodes, leader)[0]
	unregister(t, f)
	err := leader.TransferLeadership(f.ID())
	if err == nil {
		t.Fatal("the leadership moved to a voter the cluster has not registered")
	}
	if !strings.Contains(err.Error(), "not registered") {
		t.Errorf("the refusal does not say why: %v", err)
	}
	if !leader.IsLeader() {
		t.Fatal("the leader stepped down after a refused transfer")
	}
	mustSet(t, waitForLeader(t, nodes...), "after", "refused transfer")
}

// TestHandOffSkipsUnregisteredVoter: the hand-off at shutdown (any
// transfer to "the most caught-up voter") asks the other voters in turn
// when the one Raft picks refuses to lead because it has not registered
// its data directory yet. Raft picks the first voter in the configuration
// among equally caught-up ones, which is made the unregistered one; when
// an entry in flight made it pick the other, the round is run again.
func TestHandOffSkipsUnregisteredVoter(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	for round := 0; ; round++ {
		if round == 10 {
			t.Fatal("in 10 hand-offs Raft never picked the unregistered voter first")
		}
		leader := waitForLeader(t, nodes...)
		fs := others(nodes, leader)
		waitForCaughtUp(t, leader, nodes...)
		unregister(t, fs[0])
		before := fs[0].leadRefusals.Load()
		leader.HandOffLeadership(waitDeadline)
		if got := waitForLeader(t, nodes...); got != fs[1] {
			t.Fatalf("after the hand-off %s leads, want %s (%s is not registered)", got.ID(), fs[1].ID(), fs[0].ID())
		}
		fs[0].markRegistered()
		if fs[0].leadRefusals.Load() > before {
			return // the unregistered voter was asked, refused, and skipped
		}
		t.Logf("round %d: Raft picked %s first; again", round, fs[1].ID())
	}
}
