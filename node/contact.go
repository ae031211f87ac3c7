package node

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Contact with a leader, as stale reads (ReadOptions.MaxStale), watch
// progress and tracking (vouches) judge it.
//
// hashicorp/raft resets a node's last-contact time to "now" when it
// stops leading (runLeader's cleanup), so that a former leader does not
// look stale. But a former leader has heard nothing: one paused (SIGSTOP,
// a frozen VM) while another was elected and took writes steps down when
// it resumes, and would then pass any max_stale bound with the state it
// had when paused. So from the moment it stops leading until a leader
// really contacts it, its contact is the start of its last confirmed
// leadership round (readIndex.confirmed; none: never), not Raft's.

// contactState is what lastContact needs besides Raft's last-contact
// time. Its fields are set by the Raft observer (noteRaftState, on Raft's
// goroutine) and read by any.
type contactState struct {
	leading atomic.Bool
	// down is when this node was seen to stop leading (Unix ns); 0 while
	// it leads or once a leader contacted it since.
	down atomic.Int64
	// reset is Raft's last-contact time as its step-down reset it (Unix
	// ns), latched by the first look after down; 0 until then.
	reset atomic.Int64
}

// noteRaftState is called with every Raft state change, on Raft's own
// goroutine before it goes on: the step-down is noted before Raft resets
// its last-contact time.
func (n *Node) noteRaftState(s raft.RaftState) {
	c := &n.contact
	if s == raft.Leader {
		c.leading.Store(true)
		c.down.Store(0)
		c.reset.Store(0)
		return
	}
	if c.leading.Swap(false) {
		c.reset.Store(0)
		c.down.Store(time.Now().UnixNano())
	}
}

// lastContact is the time since this node last heard from a leader (as a
// former leader: since its last confirmed round); very large if never.
func (n *Node) lastContact() time.Duration {
	t := n.raft.LastContact()
	c := &n.contact
	if down := c.down.Load(); down != 0 {
		ns := t.UnixNano()
		switch reset := c.reset.Load(); {
		case reset == 0 && ns <= down:
			// Raft has not reset it yet: it is from before this node led.
			t = n.lastConfirmed()
		case reset == 0:
			// The first value since the step-down: Raft's reset (or a
			// leader's contact just after it, taken for the reset: the
			// cautious side).
			c.reset.CompareAndSwap(0, ns)
			t = n.lastConfirmed()
		case ns == reset:
			t = n.lastConfirmed()
		default:
			c.down.CompareAndSwap(down, 0) // a leader's contact since
		}
	}
	if t.IsZero() {
		return time.Duration(1<<63 - 1)
	}
	return time.Since(t)
}

// lastConfirmed is when this node's last confirmed leadership round
// started: what it knew, as leader, to be current; zero if none.
func (n *Node) lastConfirmed() time.Time {
	if ns := n.reads.confirmed.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}
