package node

import (
	"errors"
	"testing"
	"time"
)

// memberOf returns the member id as n sees it.
func memberOf(t testing.TB, n *Node, id string) (Member, bool) {
	t.Helper()
	ms, err := n.Members()
	if err != nil {
		t.Fatalf("Members on %s: %v", n.ID(), err)
	}
	for _, m := range ms {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// waitMember waits until every node sees id satisfy ok (a missing member
// is passed as ok=false).
func waitMember(t testing.TB, nodes []*Node, id, what string, ok func(m Member, found bool) bool) {
	t.Helper()
	waitFor(t, id+" "+what+" on every node", func() bool {
		for _, n := range nodes {
			if !ok(memberOf(t, n, id)) {
				return false
			}
		}
		return true
	})
}

func TestMembership(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitForLeader(t, nodes...)
	ctx := ctxTimeout(t, 60*time.Second)

	for _, n := range nodes {
		ms, err := n.Members()
		if err != nil || len(ms) != 3 {
			t.Fatalf("Members on %s: %+v, %v", n.ID(), ms, err)
		}
		for _, m := range ms {
			if !m.Voter || m.HTTPAddr != httpAddr(m.ID) || m.RaftAddr == "" {
				t.Fatalf("member on %s: %+v", n.ID(), m)
			}
		}
		st := n.Status()
		if !st.HasLeader || st.Leader.ID != leader.ID() || st.Leader.HTTPAddr != httpAddr(leader.ID()) || st.Term == 0 {
			t.Fatalf("Status on %s: %+v", n.ID(), st)
		}
	}

	// Joining again with the same addresses changes nothing: no entry.
	n2 := others(nodes, leader)[0]
	same := Member{ID: n2.ID(), RaftAddr: n2.RaftAddr(), HTTPAddr: httpAddr(n2.ID()), Voter: true}
	before := leader.raft.LastIndex()
	for range 2 {
		if err := leader.AddMember(ctx, same); err != nil {
			t.Fatalf("AddMember of a present member: %v", err)
		}
	}
	if after := leader.raft.LastIndex(); after != before {
		t.Fatalf("re-adding a present member grew the log from %d to %d", before, after)
	}

	// A new HTTP (and RESP) address is replicated to every member.
	moved := same
	moved.HTTPAddr, moved.RESPAddr = "http-moved.test:8080", "resp.test:6379"
	if err := leader.AddMember(ctx, moved); err != nil {
		t.Fatalf("AddMember with a new HTTP address: %v", err)
	}
	waitMember(t, nodes, n2.ID(), "with its new addresses", func(m Member, found bool) bool {
		return found && m.HTTPAddr == moved.HTTPAddr && m.RESPAddr == moved.RESPAddr && m.RaftAddr == same.RaftAddr && m.Voter
	})

	for name, err := range map[string]error{
		"RemoveMember": leader.RemoveMember(ctx, "ghost", false),
		"SetVoter":     leader.SetVoter(ctx, "ghost", true, false),
		"Transfer":     leader.TransferLeadership("ghost"),
	} {
		if !errors.Is(err, ErrUnknownMember) {
			t.Errorf("%s of an unknown member: %v, want ErrUnknownMember", name, err)
		}
	}

	n3 := others(nodes, leader)[1]
	if err := leader.SetVoter(ctx, n3.ID(), false, false); err != nil {
		t.Fatalf("demote %s: %v", n3.ID(), err)
	}
	waitMember(t, nodes, n3.ID(), "demoted", func(m Member, found bool) bool { return found && !m.Voter })
	if err := leader.SetVoter(ctx, n3.ID(), true, false); err != nil {
		t.Fatalf("promote %s: %v", n3.ID(), err)
	}
	waitMember(t, nodes, n3.ID(), "promoted", func(m Member, found bool) bool { return found && m.Voter })
}

func TestLeadershipTransfer(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitForLeader(t, nodes...)
	mustSet(t, leader, "k", "v")

	target := others(nodes, leader)[1]
	waitForCaughtUp(t, leader, target)
	if err := leader.TransferLeadership(target.ID()); err != nil {
		t.Fatalf("TransferLeadership(%s): %v", target.ID(), err)
	}
	if got := waitForLeader(t, nodes...); got != target {
		t.Fatalf("%s leads after a transfer to %s", got.ID(), target.ID())
	}
	waitFor(t, "the old leader to know the new one", func() bool {
		m, ok := leader.Leader()
		return ok && m.ID == target.ID() && m.HTTPAddr == httpAddr(target.ID())
	})

	// Graceful shutdown's first step: hand leadership to someone else.
	waitForCaughtUp(t, target, nodes...)
	target.HandOffLeadership(10 * time.Second)
	next := waitForLeader(t, nodes...)
	if next == target {
		t.Fatal("HandOffLeadership kept leadership")
	}
	if res, err := strongGet(t, nodes, "k"); err != nil || string(res.Value) != "v" {
		t.Fatalf("read after the hand-off: %q, %v", res.Value, err)
	}
}

// TestReplaceAndRemoveMember: a member that comes back under the same id
// at a new address replaces its old entry; RemoveMember drops it and its
// address everywhere.
func TestReplaceAndRemoveMember(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitForLeader(t, nodes...)
	mustSet(t, leader, "k", "v")
	old := others(nodes, leader)[1]
	oldAddr := old.RaftAddr()
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	// A fresh node (new data dir, new port) under the same id.
	fresh := startNode(t, testConfig(t, old.ID(), false))
	join(t, others(nodes, old), Member{ID: old.ID(), RaftAddr: fresh.RaftAddr(), HTTPAddr: httpAddr(old.ID()), Voter: true})
	live := append(others(nodes, old), fresh)
	leader = waitForLeader(t, live...)
	waitMember(t, live, old.ID(), "at its new address", func(m Member, found bool) bool {
		return found && m.RaftAddr == fresh.RaftAddr() && m.RaftAddr != oldAddr
	})
	if ms, _ := leader.Members(); len(ms) != 3 {
		t.Fatalf("members after the replacement: %+v, want 3", ms)
	}
	waitForCaughtUp(t, leader, fresh)
	if e, ok := localGet(t, fresh, "k"); !ok || string(e.Value) != "v" {
		t.Fatalf("replacement node has k = %q, %v", e.Value, ok)
	}

	ctx := ctxTimeout(t, 30*time.Second)
	if err := leader.RemoveMember(ctx, fresh.ID(), false); err != nil {
		t.Fatalf("RemoveMember(%s): %v", fresh.ID(), err)
	}
	rest := others(nodes, old)
	waitMember(t, rest, fresh.ID(), "removed", func(_ Member, found bool) bool { return !found })
	waitFor(t, "the removed member's address forgotten", func() bool {
		for _, n := range rest {
			if n.FSM().MemberAddr(fresh.ID()) != "" {
				return false
			}
		}
		return true
	})
	leader = waitForLeader(t, rest...)
	mustSet(t, leader, "after", "removal")
}
