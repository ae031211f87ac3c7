package node

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Readiness (GET /readyz) says whether a load balancer should send this
// node traffic. It is not Ready() (applied == commit at one instant): that
// flaps on a busy leader, whose commit index runs ahead of its FSM between
// two applies, and it is too weak on a follower, whose commit index
// hashicorp/raft caps at its own last log index, so a restarted follower
// far behind looks caught up.
//
//   - A leader is ready once an entry of its own term is applied (the
//     barrier of establishLeadership): from then on it serves strong reads.
//     Its lag behind its own commit index is not judged: a busy leader is
//     the node that must not be taken out of service.
//   - A follower is ready while it has heard from the leader within the
//     heartbeat timeout and has applied within Config.ReadyMaxLag entries
//     of the leader's commit index. It learns that index from the
//     LeaderCommitIndex field of the AppendEntries requests the leader
//     sends it (gateTransport records it; the leader sends one at least
//     every CommitTimeout, 50 ms, even with nothing to replicate), not from
//     its own capped commit index.
//   - Hysteresis: a follower becomes ready within ReadyMaxLag entries and
//     stops being ready only beyond twice that, so a burst of writes does
//     not toggle it.
//
// Nothing here runs a leadership round or touches the log beyond the
// lookup applied() does: a probe costs a few atomic loads.

// defaultReadyMaxLag is Config.ReadyMaxLag's default, in entries. An entry
// holds up to a few hundred coalesced writes, so this is well behind.
const defaultReadyMaxLag = 1024

// leaderCommit is the highest commit index a leader announced to this
// node, and the term it announced it in.
type leaderCommit struct {
	mu     sync.Mutex
	term   uint64
	commit uint64
	ready  bool   // the follower's hysteresis state
	count  uint64 // AppendEntries requests heard (tests)
}

// heard records an AppendEntries request's term and LeaderCommitIndex.
func (c *leaderCommit) heard(term, commit uint64) {
	c.mu.Lock()
	c.count++
	switch {
	case term > c.term:
		c.term, c.commit = term, commit
	case term == c.term && commit > c.commit:
		c.commit = commit
	}
	c.mu.Unlock()
}

// LeaderCommit is the leader's commit index as this follower last heard
// it, and the term; 0, 0 if it never heard one.
func (n *Node) LeaderCommit() (commit, term uint64) {
	n.leaderCommit.mu.Lock()
	defer n.leaderCommit.mu.Unlock()
	return n.leaderCommit.commit, n.leaderCommit.term
}

// Readiness reports whether this node should receive traffic (see
// above), and if not, why.
func (n *Node) Readiness() (bool, string) {
	if err := n.fsm.Poisoned(); err != nil {
		return false, err.Error()
	}
	if err := n.removedErr(); err != nil {
		return false, err.Error()
	}
	term := n.raft.CurrentTerm()
	switch n.raft.State() {
	case raft.Leader:
		if n.readyTerm.Load() != term {
			return false, "a new leader that has not yet applied an entry of its term"
		}
		return true, ""
	case raft.Follower:
	default:
		return false, "an election is running"
	}
	if _, ok := n.Leader(); !ok {
		return false, "no known leader"
	}
	contact := n.lastContact()
	commit, heardTerm := n.LeaderCommit()
	c := &n.leaderCommit
	c.mu.Lock()
	defer c.mu.Unlock()
	bound := n.cfg.ReadyMaxLag
	if c.ready {
		bound *= 2
	}
	var why string
	switch {
	case contact > n.heartbeat:
		why = "has not heard from the leader for " + contact.Round(time.Millisecond).String()
	case heardTerm != term:
		why = "has not heard the leader's commit index in this term yet"
	case commit > bound && !n.applied(commit-bound):
		why = "applied more than the readiness bound behind the leader's commit index"
	}
	c.ready = why == ""
	return c.ready, why
}
