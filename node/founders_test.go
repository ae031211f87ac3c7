package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/raftcache/raftcache/fsm"
)

// formFounders starts three nodes without state and has each call Form
// with the same founders and the levels each reported in its
// FormationInfo, as `raftcache node --bootstrap-expect 3` does after the
// formation exchange. Every node asks levels through live.fetch, every
// 20 ms.
func formFounders(t *testing.T, live *liveLevels) []*Node {
	t.Helper()
	nodes := make([]*Node, 3)
	var founders []Founder
	levels := map[string]uint32{}
	for i := range nodes {
		cfg := testConfig(t, fmt.Sprintf("n%d", i+1), false)
		cfg.FetchLevel = live.fetch
		cfg.levelInterval = 20 * time.Millisecond
		nodes[i] = startNode(t, cfg)
		info := nodes[i].Formation()
		founders = append(founders, Founder{ID: info.ID, RaftAddr: info.RaftAddr, Incarnation: info.Incarnation})
		levels[info.ID] = info.Level
	}
	for _, n := range nodes {
		if err := n.Form(founders, levels); err != nil {
			t.Fatalf("Form on %s: %v", n.ID(), err)
		}
	}
	return nodes
}

// holdAtOne makes the founders answer level 1 (the leader does not ask
// itself; the others hold the level); release lets them answer their own.
func holdAtOne(live *liveLevels) {
	for _, id := range []string{"n1", "n2", "n3"} {
		live.report(id, 1)
	}
}

// formHeldFounders forms three founders that answer the leader's level
// question, with level 1 (holdAtOne), and returns them with their leader.
func formHeldFounders(t *testing.T) (*liveLevels, []*Node, *Node) {
	t.Helper()
	live := newLiveLevels()
	holdAtOne(live)
	nodes := formFounders(t, live)
	for _, n := range nodes {
		live.set(n.ID(), n)
	}
	return live, nodes, waitForLeader(t, nodes...)
}

func release(live *liveLevels) {
	for _, id := range []string{"n1", "n2", "n3"} {
		live.report(id, 0)
	}
}

// aFollower returns a node of nodes that does not lead now.
func aFollower(t *testing.T, nodes []*Node) *Node {
	t.Helper()
	leader := waitForLeader(t, nodes...)
	for _, n := range nodes {
		if n != leader {
			return n
		}
	}
	t.Fatal("no follower")
	return nil
}

// TestFoundersReachTheirLevelWithAFounderDown: three founders form; one
// is stopped at once, before any level round could hear from it (no
// member answers the level question until then). The others raise the
// cluster to the founders' common level anyway: the stopped founder
// counts at the level it reported in the formation exchange. Without that
// credit the cluster stays at level 1 until it returns.
func TestFoundersReachTheirLevelWithAFounderDown(t *testing.T) {
	live := newLiveLevels() // nobody answers yet
	nodes := formFounders(t, live)
	gone := aFollower(t, nodes)
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	survivors := others(nodes, gone)
	for _, n := range survivors {
		live.set(n.ID(), n)
	}
	waitFor(t, fmt.Sprintf("cluster level %d on the founders left", fsm.FeatureLevel), func() bool {
		return levelsEverywhere(survivors, fsm.FeatureLevel)
	})
	leader := waitForLeader(t, survivors...)
	if err := leader.RequireLevel(fsm.LevelTypes); err != nil {
		t.Fatalf("typed values after formation with a founder down: %v", err)
	}
	if live.count(gone.ID()) == 0 {
		t.Fatal("the stopped founder was never asked: the test proves nothing")
	}
}

// TestLaterMemberDownHoldsTheLevel: a member that joined after formation
// has no formation credit. The founders hold the level at 1 (they answer
// 1, whichever leads) while n4 joins; then n4 stops answering and the
// founders answer their real level: the level stays at 1, though every
// founder answers. With a founder down instead (credited) and n4 back, it
// rises.
func TestLaterMemberDownHoldsTheLevel(t *testing.T) {
	live, nodes, leader := formHeldFounders(t)
	cfg4 := testConfig(t, "n4", false)
	cfg4.FetchLevel = live.fetch
	n4 := startNode(t, cfg4)
	join(t, nodes, Member{ID: "n4", RaftAddr: n4.RaftAddr(), HTTPAddr: cfg4.HTTPAddr, Incarnation: n4.Incarnation(), Level: n4.FeatureLevel()})
	all := append(nodes[:3:3], n4)
	waitForCaughtUp(t, waitForLeader(t, nodes...), all...)
	if l := leader.ClusterLevel(); l != 1 {
		t.Fatalf("setup: cluster level %d while the founders answer 1", l)
	}

	live.set("n4", nil) // unreachable from now on
	release(live)
	leader = waitForLeader(t, nodes...)
	live.rounds(t, leader, "n1", "n2", "n3", "n4")
	if !levelsEverywhere(all, 1) {
		t.Fatal("the level rose while a member that joined after formation was unreachable")
	}

	// The control: a founder down (credited) and n4 back: it rises.
	gone := aFollower(t, nodes)
	live.set(gone.ID(), nil)
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	live.set("n4", n4)
	up := others(all, gone)
	waitFor(t, "the level raised with n4 back and a founder down", func() bool {
		return levelsEverywhere(up, fsm.FeatureLevel)
	})
}

// TestReplacedFounderHoldsTheLevel: a join request under a founder's id
// with another incarnation (a wiped disk) ends that founder's credit, so
// once it stops answering it holds the level like any member.
func TestReplacedFounderHoldsTheLevel(t *testing.T) {
	live, nodes, leader := formHeldFounders(t)
	var victim *Node
	for _, n := range nodes {
		if n != leader {
			victim = n
		}
	}
	if victim.founders.incarnation(victim.ID()) == "" || leader.founders.incarnation(victim.ID()) == "" {
		t.Fatal("setup: the founders hold no credit")
	}
	wiped := Member{ID: victim.ID(), RaftAddr: victim.RaftAddr(), HTTPAddr: httpAddr(victim.ID()), Incarnation: "a-wiped-disk", Level: fsm.FeatureLevel}
	if err := leader.AddMember(ctxTimeout(t, 20*time.Second), wiped); err != nil {
		t.Fatal(err)
	}
	if leader.founders.incarnation(victim.ID()) != "" {
		t.Fatal("a join under a founder's id with another incarnation left it its credit")
	}
	// The other founders did not see the request; so that a leader change
	// in the window below changes nothing, they learn it as the leader did.
	for _, n := range others(nodes, leader) {
		n.heardFrom(wiped.ID, wiped.Incarnation, "join request")
	}

	live.set(victim.ID(), nil)
	release(live)
	leader = waitForLeader(t, nodes...)
	live.rounds(t, leader, "n1", "n2", "n3")
	if !levelsEverywhere(nodes, 1) {
		t.Fatal("the level rose crediting a founder whose id rejoined with another data directory")
	}
	live.set(victim.ID(), victim)
	waitFor(t, "the level raised once the member answers", func() bool { return levelsEverywhere(nodes, fsm.FeatureLevel) })
}

// TestFounderCreditRules: the credit's conditions, without a cluster.
func TestFounderCreditRules(t *testing.T) {
	var c founderCredit
	fs := []Founder{{ID: "a", RaftAddr: "a:1", Incarnation: "ia"}, {ID: "b", RaftAddr: "b:1", Incarnation: "ib"}, {ID: "c", RaftAddr: "c:1", Incarnation: "ic"}}
	if _, ok := c.level(Member{ID: "a", RaftAddr: "a:1"}, 1); ok {
		t.Fatal("credit before any formation")
	}
	c.set(fs, map[string]uint32{"a": 3, "b": 3}) // c reported none: 1
	if c.common != 1 {
		t.Fatalf("common level %d, want 1 (a founder that reports none is level 1)", c.common)
	}
	c.set(fs, map[string]uint32{"a": 3, "b": 2, "c": 3})
	for _, tc := range []struct {
		m    Member
		want uint32
	}{
		{Member{ID: "a", RaftAddr: "a:1"}, 3},
		{Member{ID: "b", RaftAddr: "b:1", Incarnation: "ib"}, 2},
		{Member{ID: "c", RaftAddr: "c:1", Level: 2}, 2},         // reported 2 since
		{Member{ID: "c", RaftAddr: "c:1", Level: 5}, 3},         // never above its formation level
		{Member{ID: "a", RaftAddr: "a:2"}, 0},                   // moved
		{Member{ID: "a", RaftAddr: "a:1", Incarnation: "x"}, 0}, // recorded under another incarnation
		{Member{ID: "d", RaftAddr: "d:1"}, 0},                   // joined later
	} {
		if l, ok := c.level(tc.m, 1); l != tc.want || ok != (tc.want != 0) {
			t.Errorf("level(%+v) = %d, %v; want %d", tc.m, l, ok, tc.want)
		}
	}
	c.revoke("a")
	if _, ok := c.level(Member{ID: "a", RaftAddr: "a:1"}, 1); ok {
		t.Fatal("credit after revoke")
	}
	// At the common level (2) the credit is spent, for good.
	if _, ok := c.level(Member{ID: "c", RaftAddr: "c:1"}, 2); ok {
		t.Fatal("credit at the founders' common level")
	}
	if _, ok := c.level(Member{ID: "c", RaftAddr: "c:1"}, 1); ok {
		t.Fatal("credit after it was spent")
	}
}
