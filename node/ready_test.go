package node

import (
	"fmt"
	"testing"
)

// TestReadinessFollowerJudgedByLeaderCommit: a follower learns the
// leader's commit index from its AppendEntries, is ready within
// ReadyMaxLag of it, stays ready up to twice that (hysteresis), and is not
// ready beyond, even though its own commit index (capped by hashicorp/raft
// at its last log index) says nothing of it. The leader is ready once its
// term's entry is applied.
func TestReadinessFollowerJudgedByLeaderCommit(t *testing.T) {
	const lag = 8
	nodes := newCluster(t, 3, func(c *Config) { c.ReadyMaxLag = lag })
	leader := waitForLeader(t, nodes...)
	for i := 0; i < 5; i++ {
		mustSet(t, leader, fmt.Sprint("k", i), "v")
	}
	f := others(nodes, leader)[0]
	commit := leader.raft.CommitIndex()
	waitFor(t, "the follower to hear the leader's commit index", func() bool {
		c, term := f.LeaderCommit()
		return c >= commit && term == leader.raft.CurrentTerm()
	})
	waitFor(t, "leader and follower ready", func() bool {
		lok, _ := leader.Readiness()
		fok, _ := f.Readiness()
		return lok && fok
	})

	// The leader announces a commit index ahead of what the follower
	// applied (as it does to a follower far behind): within 2×lag the
	// ready follower stays ready; beyond, it is not.
	applied := f.raft.AppliedIndex()
	term := f.raft.CurrentTerm()
	f.leaderCommit.heard(term, applied+lag+lag/2)
	if ok, why := f.Readiness(); !ok {
		t.Fatalf("a ready follower %d entries behind (bound %d, hysteresis to %d) became unready: %s", lag+lag/2, lag, 2*lag, why)
	}
	f.leaderCommit.heard(term, applied+2*lag+1)
	if ok, _ := f.Readiness(); ok {
		t.Fatalf("a follower %d entries behind the leader's commit index (bound %d) is ready", 2*lag+1, lag)
	}
	// Writes let it catch up past the announced index: ready again, and
	// the leader never stopped being ready.
	for i := 0; i < 3*lag; i++ {
		mustSet(t, leader, fmt.Sprint("more", i), "v")
	}
	waitFor(t, "the follower ready again once caught up", func() bool { ok, _ := f.Readiness(); return ok })
	if ok, why := leader.Readiness(); !ok {
		t.Fatalf("leader not ready: %s", why)
	}
}
