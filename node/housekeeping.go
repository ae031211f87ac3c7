package node

import (
	"context"
	"time"

	"github.com/raftcache/raftcache/fsm"
)

// Housekeeping runs on the leader only: it decides, with its own clock and
// its own view of read recency, which keys to remove, and proposes the
// removals, so every replica removes exactly the same keys. Followers never
// remove anything on their own; their reads hide expired keys by time.
const (
	reapInterval  = 250 * time.Millisecond
	reapBatch     = 1024 // keys per OpExpire entry
	evictInterval = 50 * time.Millisecond
	evictScan     = 64 // keys sampled per eviction decision
	evictPick     = 16 // least recently used of the sample to evict
	evictRounds   = 64 // decisions per proposed OpEvict entry at most
)

func (n *Node) housekeeping() {
	defer n.wg.Done()
	reap := time.NewTicker(reapInterval)
	defer reap.Stop()
	evict := time.NewTicker(evictInterval)
	defer evict.Stop()
	var cursor string
	for {
		select {
		case <-n.closing:
			return
		case <-reap.C:
			if n.leaderReady() {
				n.reapExpired()
			}
		case <-evict.C:
			if n.MaxMemory() > 0 && n.cfg.MaxMemoryPolicy != fsm.EvictNone && n.leaderReady() {
				cursor = n.evict(cursor)
			}
		}
	}
}

func (n *Node) leaderReady() bool {
	return n.IsLeader() && n.readyTerm.Load() == n.raft.CurrentTerm()
}

// reapExpired proposes the removal of keys whose expiry has passed. The
// state machine removes a listed key only if its expiry is still at or
// before the command's time, so a key rewritten meanwhile survives.
func (n *Node) reapExpired() {
	for i := 0; i < 16; i++ {
		now := n.now()
		keys := n.fsm.Expired(now, reapBatch)
		if len(keys) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
		_, err := n.propose(ctx, &fsm.Command{Op: fsm.OpExpire, Now: now, Keys: keys})
		cancel()
		if err != nil {
			n.logger.Debug("expiring keys", "error", err)
			return
		}
		if len(keys) < reapBatch {
			return
		}
	}
}

// evict proposes victims until the cache is under MaxMemory. Victims are
// chosen by the policy, by sampling: the least recently read or written
// keys of a moving window, the soonest to expire, or random ones (see
// fsm.EvictionCandidatesFor).
func (n *Node) evict(cursor string) string {
	bound := n.MaxMemory()
	for n.fsm.Bytes() > bound {
		over := n.fsm.Bytes() - bound
		cmd := &fsm.Command{Op: fsm.OpEvict}
		var freed int64
		seen := map[string]bool{}
		for r := 0; r < evictRounds && freed < over; r++ {
			var victims []fsm.Victim
			victims, cursor = n.fsm.EvictionCandidatesFor(n.cfg.MaxMemoryPolicy, cursor, evictScan, evictPick)
			for _, v := range victims { // least recently used first
				if freed >= over {
					break // enough: evicting the rest of the pick would flush keys for nothing
				}
				if seen[string(v.Key)] {
					continue
				}
				seen[string(v.Key)] = true
				cmd.Keys = append(cmd.Keys, v.Key)
				cmd.Versions = append(cmd.Versions, v.Version)
				freed += v.Size
			}
		}
		if len(cmd.Keys) == 0 {
			return cursor
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
		_, err := n.propose(ctx, cmd)
		cancel()
		if err != nil {
			n.logger.Debug("evicting keys", "error", err)
			return cursor
		}
	}
	return cursor
}
