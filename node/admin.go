package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/fsm"
)

// Backup writes a consistent copy of the cache to w: taken on the leader
// after a strong-read barrier, so it holds every write acknowledged before
// the call.
func (n *Node) Backup(ctx context.Context, w io.Writer) error {
	if err := n.Poisoned(); err != nil {
		return err
	}
	if err := n.reads.wait(ctx); err != nil {
		return err
	}
	return n.fsm.WriteBackup(w)
}

// restoreChunk bounds one restore entry.
const restoreChunk = 1 << 20

// RestoreBackup replaces the cache's contents with a backup, through the
// Raft log: one entry deletes every key, then batches of sets recreate the
// backup's keys with their absolute expiry (keys already expired are
// skipped). Every replica applies the same entries, so it is safe in a
// running cluster, unlike raft.Restore, which lets the leader run ahead of
// its followers. It is not atomic: readers may see the cache partly
// restored while it runs. Versions are new.
func (n *Node) RestoreBackup(ctx context.Context, r io.Reader) (keys int, index uint64, err error) {
	if !n.IsLeader() {
		return 0, 0, ErrNotLeader
	}
	var items []fsm.BackupItem
	now := n.now()
	err = fsm.ReadBackup(r, func(it fsm.BackupItem) error {
		if it.ExpireAt == 0 || it.ExpireAt > now {
			items = append(items, it)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	var colls []fsm.BackupItem // collections: rc.restore (level 3)
	strs := items[:0]
	for _, it := range items {
		if it.Type == fsm.TypeString {
			strs = append(strs, it)
		} else {
			colls = append(colls, it)
		}
	}
	items = strs
	// Refused before anything is deleted: the refusal says nothing was
	// done (it once came after the flush, which wiped every key).
	if len(colls) > 0 && n.ClusterLevel() < fsm.LevelTypes {
		return 0, 0, fmt.Errorf("%w: the backup holds %d hashes, sets or other collections; the cluster runs at level %d and needs level %d to restore them",
			ErrFeatureLevel, len(colls), n.ClusterLevel(), fsm.LevelTypes)
	}
	res, err := n.propose(ctx, &fsm.Command{Op: fsm.OpDeletePrefix})
	if err != nil {
		return 0, 0, err
	}
	index = res.Index
	for len(items) > 0 {
		cmd := &fsm.Command{Op: fsm.OpBatch}
		size := 0
		for len(items) > 0 && len(cmd.Cmds) < fsm.MaxBatch && (size == 0 || size+len(items[0].Value) < restoreChunk) {
			it := items[0]
			items = items[1:]
			cmd.Cmds = append(cmd.Cmds, &fsm.Command{Op: fsm.OpSet, Key: it.Key, Value: it.Value, ExpireAt: it.ExpireAt})
			size += len(it.Key) + len(it.Value)
		}
		if res, err = n.propose(ctx, cmd); err != nil {
			return keys, index, err
		}
		keys += len(cmd.Cmds)
		index = res.Index
	}
	// Collections go through the engine, a chunk of them per entry (a
	// collection bigger than a chunk takes an entry of its own).
	for len(colls) > 0 {
		u := fsm.Unit{Mode: fsm.UnitAtomic}
		size := 0
		for len(colls) > 0 && len(u.Cmds) < fsm.MaxBatch && (size == 0 || size+len(colls[0].Value) < restoreChunk) {
			u.Cmds = append(u.Cmds, fsm.RCRestore(colls[0]))
			size += len(colls[0].Key) + len(colls[0].Value)
			colls = colls[1:]
		}
		res, err := n.propose(ctx, &fsm.Command{Op: fsm.OpExec, Now: n.now(), Units: []fsm.Unit{u},
			Limits: fsm.Limits{MaxValueSize: n.cfg.MaxValueSize}})
		if err != nil {
			return keys, index, err
		}
		if len(res.Results) != 1 || res.Results[0].Err != nil {
			return keys, index, fmt.Errorf("%w: restoring collections at index %d: %v", ErrInvalid, res.Index, res.Results[0].Err)
		}
		keys += len(u.Cmds)
		index = res.Index
	}
	return keys, index, nil
}

// TransferLeadership hands leadership to the member id, or to the most
// up-to-date follower when id is empty, and waits for the transfer.
//
// With id empty, Raft picks the most caught-up voter. When that one
// refuses (a voter whose data directory is not registered yet cannot
// lead, votegate.go) or cannot be reached, every other voter is asked in
// turn, within ApplyTimeout; a transfer still marked in progress (Raft
// answers a transfer just before it clears its mark) is waited out.
func (n *Node) TransferLeadership(id string) error {
	if id != "" {
		return n.transferTo(id)
	}
	if !n.IsLeader() {
		return ErrNotLeader
	}
	err := n.transfer(n.raft.LeadershipTransfer())
	if err == nil || !n.IsLeader() {
		return err
	}
	members, merr := n.Members()
	if merr != nil {
		return err
	}
	end := time.Now().Add(n.cfg.ApplyTimeout)
	for _, m := range members {
		if m.ID == n.cfg.ID || !m.Voter {
			continue
		}
		n.logger.Info("leadership transfer failed; asking another voter", "error", err, "member", m.ID)
		for {
			err = n.transferTo(m.ID)
			if !errors.Is(err, raft.ErrLeadershipTransferInProgress) || !time.Now().Before(end) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err == nil || !n.IsLeader() || !time.Now().Before(end) {
			return err
		}
	}
	return err
}

// transferTo hands leadership to the voter id and waits for the transfer.
func (n *Node) transferTo(id string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	m, err := n.member(id)
	switch {
	case err != nil:
		return err
	case id == n.cfg.ID:
		return fmt.Errorf("%w: %q is already the leader", ErrInvalid, id)
	case !m.Voter:
		return fmt.Errorf("%w: %q is not a voter and cannot lead; promote it first", ErrInvalid, id)
	}
	return n.transfer(n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(m.RaftAddr)))
}

// transfer waits for a transfer Raft started.
func (n *Node) transfer(f raft.Future) error {
	n.transfers.begin() // transferguard.go: its mark is not a wedge
	defer n.transfers.end()
	if err := f.Error(); err != nil {
		return fmt.Errorf("%w: leadership transfer: %w", ErrUnavailable, err)
	}
	return nil
}

// SetVoter promotes a non-voting member to voter, or demotes a voter to
// non-voter (it keeps replicating and serving stale reads). A promotion
// is made at once only if the member answers and has caught up (within
// Config.PromoteMaxLag of the commit index); otherwise the member is
// marked as wanting a vote and the leader promotes it once it has (see
// MemberState). Unless force, a demotion is refused with a *QuorumError
// as RemoveMember's removal of a voter is.
func (n *Node) SetVoter(ctx context.Context, id string, voter, force bool) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	m, err := n.member(id)
	if err != nil {
		return err
	}
	var f raft.IndexFuture
	switch {
	case voter && m.Voter:
		return nil
	case voter && !n.canPromote():
		f = n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(m.RaftAddr), 0, n.timeout(ctx))
	case voter:
		pctx, cancel := context.WithTimeout(ctx, quorumProbeTimeout)
		info, err := n.probe(pctx, m)
		cancel()
		if !n.promotable(probeResult{m: m, info: info, err: err}, n.commitIndex()) {
			n.logger.Info("a promotion was asked for a member not ready for it (caught up, answering, following, registered): it will be promoted once it is", "member", id)
			n.track.setWant(id, true, n.fsm.AppliedIndex())
			n.kickLevels()
			return nil
		}
		f = n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(m.RaftAddr), 0, n.timeout(ctx))
	default:
		n.track.setWant(id, false, 0)
		if !m.Voter {
			return nil
		}
		if !force {
			if err := n.checkQuorum(id); err != nil {
				return err
			}
		}
		f = n.raft.DemoteVoter(raft.ServerID(id), 0, n.timeout(ctx))
	}
	if err := f.Error(); err != nil {
		return n.classify(err, true)
	}
	n.track.setWant(id, false, 0)
	n.kickLevels()
	return nil
}

// HandOffLeadership is the first step of a graceful shutdown: a leader
// hands leadership to a caught-up follower (bounded by timeout), so the
// cluster does not wait an election timeout to notice it is gone. Requests
// still arriving are redirected to the new leader. While this node still
// runs its vote can elect the voter that accepts (TransferLeadership asks
// them in turn), which a voter that refuses to lead could not do for the
// others once it has gone.
func (n *Node) HandOffLeadership(timeout time.Duration) {
	if n.IsLeader() {
		members, _ := n.Members()
		if len(members) > 1 {
			done := make(chan error, 1)
			go func() { done <- n.TransferLeadership("") }()
			select {
			case err := <-done:
				if err != nil {
					n.logger.Warn("leadership transfer before shutdown failed", "error", err)
				} else {
					n.logger.Info("handed leadership over before shutdown")
				}
			case <-time.After(timeout):
				n.logger.Warn("leadership transfer before shutdown timed out")
			}
		}
	}
}
