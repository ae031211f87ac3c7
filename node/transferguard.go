package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// A leader wedged by a leadership transfer that never ended.
//
// hashicorp/raft v1.7.2 marks a leadership transfer as in progress and,
// while the mark is set, refuses applies, configuration changes and
// restores. The transfer's goroutine clears it when it ends. If the leader
// steps down while that goroutine is blocked handing a request to a
// replication worker that has already stopped, the goroutine never ends
// and the mark is never cleared (hashicorp/raft#696; the fix, #708, is not
// in the release pinned here). The mark is not reset when the node leads
// again, so from then on that leader keeps its followers with heartbeats
// and refuses every write: the cluster accepts no writes until the node
// restarts. A transfer that ends, well or not, holds the mark for at most
// about max(two election timeouts, one election timeout and a TimeoutNow
// call), and that call may take a dial, a handshake and the RPC, each
// bounded by the transport's timeout. Transfers this node starts
// (TransferLeadership) are not counted while they run, nor for that long
// after the last one returned, so that a run of retried transfers is not
// taken for a wedge.
//
// No read-only call reaches raft's leader loop and sees the mark
// (GetConfiguration and VerifyLeader do not check it), so the node learns
// of it from its own writes: every Apply or Barrier refused with
// ErrLeadershipTransferInProgress is noted (classify, and the barrier a
// new leader commits first, cluster.go). watchTransfer,
// once such a refusal was noted on the leader, probes with a Barrier,
// which the leader loop refuses exactly while the mark is set and which
// otherwise costs one log entry; an idle leader is never probed. When the
// probes have found the mark for longer than any transfer can hold it
// (Config.StuckTransferAfter), the node reports itself wedged (Wedged,
// WedgedReason) and `raftcache node` exits with ExitWedged: the other
// members elect a leader, and the supervisor restarts this node without
// the mark (it lives only in memory).

const (
	// transportTimeout bounds each step of a Raft RPC (node.go): the
	// dial, the connection's handshake and the call.
	transportTimeout = 10 * time.Second
	// transferMargin is added to the longest a transfer holds the mark.
	transferMargin = 20 * time.Second
)

// transferHold is the longest a transfer that ends holds the mark, with
// a margin: two election timeouts and a TimeoutNow call of three
// transport steps.
func transferHold(election time.Duration) time.Duration {
	return 2*election + 3*transportTimeout + transferMargin
}

// stuckTransferAfter is how long the mark may be seen before the node
// counts as wedged.
func (c Config) stuckTransferAfter(election time.Duration) time.Duration {
	if c.StuckTransferAfter > 0 {
		return c.StuckTransferAfter
	}
	return transferHold(election)
}

// transfers counts the leadership transfers this node has started, so
// that the mark they set is not taken for a wedge.
type transfers struct {
	running atomic.Int32
	ended   atomic.Int64 // Unix ns when the last one returned
}

func (t *transfers) begin() { t.running.Add(1) }

func (t *transfers) end() {
	t.ended.Store(time.Now().UnixNano())
	t.running.Add(-1)
}

// recent says whether a transfer of this node's runs, or returned less
// than hold ago.
func (t *transfers) recent(now time.Time, hold time.Duration) bool {
	return t.running.Load() > 0 || now.Sub(time.Unix(0, t.ended.Load())) < hold
}

// transferStreak tracks how long the probes have found the mark without
// a break.
type transferStreak struct {
	since time.Time // the first probe of the current run that found it; zero: none
}

// observe records a probe at now and says whether the mark has been found
// for longer than limit. A probe that did not find it (or was not made on
// the leader) ends the run.
func (s *transferStreak) observe(now time.Time, marked bool, limit time.Duration) bool {
	if !marked {
		s.since = time.Time{}
		return false
	}
	if s.since.IsZero() {
		s.since = now
	}
	return now.Sub(s.since) > limit
}

// Wedged is closed once this node was found wedged (WedgedReason says
// how); the process should then exit so that its supervisor restarts it.
func (n *Node) Wedged() <-chan struct{} { return n.wedge.done() }

// WedgedReason is nil, or why this node must restart (wrapping ErrWedged).
func (n *Node) WedgedReason() error { return n.wedge.err() }

func (n *Node) markWedged(held time.Duration) {
	why := fmt.Errorf("%w: raft has refused writes as \"leadership transfer in progress\" for %v while this node leads (hashicorp/raft#696)",
		ErrWedged, held.Truncate(time.Millisecond))
	if n.wedge.set(why) {
		n.logger.Error("this leader refuses every write and cannot hand over; it must restart", "error", why)
	}
}

// noteTransferRefusal records that Raft refused an Apply because of the
// mark (classify calls it).
func (n *Node) noteTransferRefusal() { n.transferRefused.Store(time.Now().UnixNano()) }

// watchTransfer probes for the mark once a refusal was noted on the leader.
func (n *Node) watchTransfer() {
	defer n.wg.Done()
	limit := n.cfg.stuckTransferAfter(n.election)
	every := min(time.Second, max(limit/4, 10*time.Millisecond))
	tick := time.NewTicker(every)
	defer tick.Stop()
	var streak transferStreak
	var seen int64 // the last refusal acted on
	for {
		select {
		case <-n.closing:
			return
		case <-n.wedge.done():
			return
		case <-tick.C:
		}
		refused := n.transferRefused.Load()
		idle := streak.since.IsZero() && refused == seen
		seen = refused
		if !n.IsLeader() || idle || n.transfers.recent(time.Now(), transferHold(n.election)) {
			streak.observe(time.Now(), false, limit)
			continue
		}
		answered, err := n.await(context.Background(), n.raft.Barrier(time.Second), nil)
		if !answered {
			return // closing
		}
		if errors.Is(err, raft.ErrEnqueueTimeout) {
			continue // the leader loop is busy: no answer either way
		}
		marked := errors.Is(err, raft.ErrLeadershipTransferInProgress)
		if streak.observe(time.Now(), marked, limit) {
			n.markWedged(time.Since(streak.since))
			return
		}
	}
}
