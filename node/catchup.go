package node

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// A node that did not stop cleanly votes only once it has caught up.
//
// The high-water mark (watermark.go) refuses a store that lost more than
// its last second. What came after the mark is not seen: a log that lost
// its newest synced entries (a disk that lied about fsync, a truncated
// WAL) starts, and its acknowledgements of those entries were counted.
// Say X was committed by the leader L and this node A, with C behind. L
// dies; A restarts without X. C campaigns; B, which holds X, refuses it,
// but A, whose log now looks no newer than C's, grants it, and C leads
// without X: an acknowledged write is gone, though only one disk failed
// (TestTruncatedWAL saw this in about 1 run in 8 when it damaged a node
// under load).
//
// So after a restart that was not clean, a node neither grants votes nor
// campaigns (the gate and the timeouts of votegate.go, which keep an
// unregistered node out of elections) until either
//
//   - it has caught up: its commit index reached the commit index a
//     leader of its current term announced to it, and the entry there is
//     of that term. The leader's commit index covers every write it
//     acknowledged, including any this node's lost acknowledgements
//     helped commit. The term matters twice over: only that leader writes
//     entries of its term, and it writes them after everything it held
//     when elected, so the node then holds the leader's log up to there
//     (not a stale tail of its own, which hashicorp/raft's follower
//     commit index, capped by the local log, would count); and a new
//     leader announces its commit index as a follower knew it, possibly
//     below a write its predecessor acknowledged, until it commits an
//     entry of its own term. Or
//   - no leader has contacted it for catchUpHold (Config.CatchUpHold,
//     five election timeouts): then the cluster needs its vote to elect
//     anyone (several members restarted at once, a power cut), and Raft's
//     own rule decides. A member that holds X can win in that time with
//     the votes of the others: the hold only stops the damaged node from
//     outvoting it. It does not help when the member holding X restarted
//     without a clean stop too and is itself held: whichever hold ends
//     first may decide. A damaged log and a second unclean restart within
//     the hold are two failures at once. Freed this way, the node votes
//     but keeps watching: it calls its log intact (for the clean-stop
//     record below) only once it has caught up, or leads and has
//     committed an entry of its own term.
//
// A clean stop (Close) of a node that has caught up (or never held)
// records the log's last entry in DataDir/clean-stop; a start that finds
// the log ending exactly there has lost nothing and skips the hold, so a
// rolling restart elects as fast as before. A node stopped while held
// records nothing: its log may still miss what it lost. The record is
// removed, synced, just before Raft starts: a crash after that start
// holds again. (A copy of a stopped node's data directory carries the
// record: delete clean-stop in a restored copy.) A node that is the only
// voter of its configuration and knows no peers does not hold: nobody
// else can bring it up to date. The peers file counts because the
// configuration alone is read from the log that may be damaged.

// cleanStopFile records the log's last index and term at a clean stop.
const cleanStopFile = "clean-stop"

// defaultCatchUpHolds is Config.CatchUpHold's default, in election
// timeouts: long enough for an intact member to win an election (its
// timeout is at most two election timeouts, then a pre-vote and a vote).
const defaultCatchUpHolds = 5

// catchUpTick is how often a holding node looks at its commit index.
const catchUpTick = 20 * time.Millisecond

// errCatchingUpTransfer answers a leadership transfer to a node that is
// catching up after a restart that was not clean.
var errCatchingUpTransfer = errors.New("this node restarted without a clean stop and is catching up with the leader: it cannot lead yet; transfer to another member, or retry once it has caught up")

// writeCleanStop records the store's last entry; called once Raft and the
// transport are down, so nothing appends after it. A node that has not
// caught up since a start that was not clean records nothing.
func (n *Node) writeCleanStop() error {
	if !n.intact.Load() {
		return nil
	}
	return recordCleanStop(n.cfg.DataDir, n.store)
}

// recordCleanStop writes dir's clean-stop record for the log's end.
func recordCleanStop(dir string, logs raft.LogStore) error {
	index, err := logs.LastIndex()
	if err != nil {
		return err
	}
	term, err := termAt(logs, index)
	if err != nil {
		return err
	}
	return writeFileSynced(filepath.Join(dir, cleanStopFile), fmt.Appendf(nil, "%d %d\n", index, term))
}

// readCleanStop reports whether the log ends exactly where the last clean
// stop left it (no record, or one it cannot read, says no). dropCleanStop
// then removes the record, so that it counts for one start only.
func readCleanStop(dir string, logs raft.LogStore) (bool, error) {
	v, err := readUints(filepath.Join(dir, cleanStopFile), 2) // INDEX TERM
	if err != nil {
		return false, nil // none, or none to trust: hold
	}
	last, err := logs.LastIndex()
	if err != nil || last != v[0] {
		return false, err
	}
	term, err := termAt(logs, last)
	return err == nil && term == v[1], nil
}

// dropCleanStop removes the clean-stop record, durably.
func dropCleanStop(dir string) error {
	return removeSynced(filepath.Join(dir, cleanStopFile))
}

// voteTimeouts applies the Raft timeouts that match mayVote: the
// configured ones once the node may vote, an hour before.
func (n *Node) voteTimeouts() {
	if !n.mayVote() {
		return // set at start; nothing to restore yet
	}
	rc := n.raft.ReloadableConfig()
	if rc.HeartbeatTimeout == n.heartbeat && rc.ElectionTimeout == n.election {
		return
	}
	rc.HeartbeatTimeout, rc.ElectionTimeout = n.heartbeat, n.election
	if err := n.raft.ReloadConfig(rc); err != nil {
		n.logger.Warn("restoring Raft timeouts", "error", err)
	}
}

// CatchingUp reports whether this node holds its vote until it catches up
// after a restart that was not clean.
func (n *Node) CatchingUp() bool { return n.catchingUp.Load() }

// watchCatchUp ends the hold (see above).
func (n *Node) watchCatchUp() {
	defer n.wg.Done()
	if !n.catchingUp.Load() {
		return
	}
	if n.soleVoter() && len(n.KnownPeers()) == 0 {
		n.intact.Store(true)
		n.endCatchUp("this node is the only voter of its configuration")
		return
	}
	n.logger.Info("this node did not stop cleanly: it votes and campaigns only once it has caught up with a leader",
		"or_after", n.cfg.CatchUpHold)
	start := time.Now()
	t := time.NewTicker(catchUpTick)
	defer t.Stop()
	var target uint64 // a leader's commit index, announced in the current term
	held := true
	for {
		select {
		case <-n.closing:
			return
		case <-t.C:
		}
		term := n.raft.CurrentTerm()
		if target == 0 {
			if c, at := n.LeaderCommit(); c > 0 && at == term {
				target = c
			}
		}
		commit := n.commitIndex()
		// Caught up: at or past the leader's announced commit index, on
		// an entry of its term. A node that leads (it was elected once
		// the hold ran out) hears no leader, and its own commit index on
		// an entry of its term says the same of its log.
		leads := n.raft.State() == raft.Leader
		if (leads || target > 0 && commit >= target) && commit > 0 && n.entryTerm(commit) == term {
			n.intact.Store(true)
			if held {
				n.endCatchUp(fmt.Sprintf("caught up with the leader of term %d: commit index %d", term, commit))
			}
			return
		}
		if !held {
			continue // voting already; still waiting to call its log intact
		}
		heard := start
		if c := n.raft.LastContact(); c.After(heard) {
			heard = c
		}
		if time.Since(heard) >= n.cfg.CatchUpHold {
			// Votes from now on, but its log is not vouched for until it
			// catches up: until then a clean stop records nothing.
			n.endCatchUp(fmt.Sprintf("no leader for %v: the cluster may need this vote", n.cfg.CatchUpHold))
			held = false
		}
	}
}

func (n *Node) endCatchUp(why string) {
	n.catchingUp.Store(false)
	n.voteTimeouts()
	n.logger.Info("voting from now on", "because", why)
}

// entryTerm is the term of the entry at index, from the newest snapshot
// if it ends there, else from the log; 0 if neither has it. The snapshot
// comes first: after installing one, a follower may keep a divergent
// entry of its own at the snapshot's index.
func (n *Node) entryTerm(index uint64) uint64 {
	st := n.raft.Stats()
	if st["last_snapshot_index"] == strconv.FormatUint(index, 10) {
		t, _ := strconv.ParseUint(st["last_snapshot_term"], 10, 64)
		return t
	}
	t, _ := termAt(n.logs, index)
	return t
}

// soleVoter says whether this node is the only voter its configuration
// lists (or lists none, as before a bootstrap).
func (n *Node) soleVoter() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	voters, self := 0, false
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters++
			self = self || string(s.ID) == n.cfg.ID
		}
	}
	return voters == 0 || voters == 1 && self
}
