package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/fsm"
)

// Member is one cluster member as every node sees it: Raft's configuration
// joined with the record the member registered through the log.
//
// HTTPAddr and RESPAddr are views of Addrs (its fsm.AddrHTTP and
// fsm.AddrRedis addresses); a front that is not HTTP or Redis registers
// under a name of its own in Addrs. In a request (AddMember), a non-empty
// HTTPAddr or RESPAddr takes precedence over Addrs.
type Member struct {
	ID       string
	RaftAddr string
	HTTPAddr string // "" until the member's registration has been applied
	RESPAddr string // Redis-protocol address, "" if none
	Voter    bool
	// Addrs is every named address the member registered.
	Addrs map[string]string
	// Incarnation is the random id of the member's data directory, ""
	// if not recorded (registered before feature level 2).
	Incarnation string
	// Level is the member's feature level: the one its record carries,
	// this node's own, or, on the leader, the one the member last
	// reported; 0 = unknown. In a join request, the joiner's level (0 =
	// 1, a binary from before levels).
	Level uint32
	// State is StateVoter, StateCatchingUp or StateLearner (in Members).
	State string
	// LastHeard is, on the leader, how long ago the member last answered
	// its probe (0 for the leader itself); -1 when unknown (never heard
	// since this node leads, or asked on a follower).
	LastHeard time.Duration
	// Version is the member's build (Build.String) as it last told this
	// node's probe (GET /v1/node), its own for this node; "" unknown. Not
	// replicated: the probe is where the leader learns it.
	Version string
}

// fill completes m from its record, if any.
func (n *Node) fill(m *Member, rec fsm.Member, ok bool) {
	if ok {
		m.Addrs, m.Incarnation, m.Level = rec.Addrs, rec.Incarnation, rec.Level
		m.HTTPAddr, m.RESPAddr = rec.Addrs[fsm.AddrHTTP], rec.Addrs[fsm.AddrRedis]
	}
	switch {
	case m.Level != 0:
	case m.ID == n.cfg.ID:
		m.Level = n.FeatureLevel()
	default:
		m.Level = n.levels.get(m.ID)
	}
}

// Status is this node's view of the cluster.
type Status struct {
	State        string // Leader, Follower, Candidate, Shutdown
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64        // applied to this node's cache
	LastContact  time.Duration // since the leader was last heard from; 0 on the leader
	Leader       Member        // zero if no leader is known
	HasLeader    bool
}

// watchLeadership tracks leadership changes. On becoming leader it waits
// for a barrier (an entry of the new term) to be applied before marking
// the node ready to serve strong reads: until then its state may miss
// entries the previous leader committed (RedisRaft's stale reads after an
// election). It also (re)registers this node's HTTP address so that every
// member can name the leader's API.
func (n *Node) watchLeadership() {
	defer n.wg.Done()
	for {
		select {
		case <-n.closing:
			return
		case isLeader := <-n.notify:
			if isLeader {
				n.logger.Info("became leader", "term", n.raft.CurrentTerm())
				n.track.resetRaftDown()
				n.wg.Add(1)
				go n.establishLeadership()
			} else {
				n.logger.Info("lost leadership")
			}
		}
	}
}

func (n *Node) establishLeadership() {
	defer n.wg.Done()
	for n.IsLeader() {
		term := n.raft.CurrentTerm()
		err := n.raft.Barrier(n.cfg.ApplyTimeout).Error()
		if err == nil && n.raft.CurrentTerm() == term {
			// One leader per term: the barrier committed in term by us.
			n.readyTerm.Store(term)
			break
		}
		if errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			n.noteTransferRefusal() // transferguard.go
		}
		n.logger.Warn("leader barrier failed", "error", err)
		select {
		case <-n.closing:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	if !n.IsLeader() {
		return
	}
	n.kickLevels()
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
	defer cancel()
	if err := n.register(ctx, n.self()); err != nil {
		n.logger.Warn("registering own addresses failed", "error", err)
	}
}

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the current leader as this node knows it.
func (n *Node) Leader() (Member, bool) {
	addr, id := n.raft.LeaderWithID()
	if id == "" {
		return Member{}, false
	}
	m := Member{ID: string(id), RaftAddr: string(addr), Voter: true}
	rec, ok := n.fsm.Member(m.ID)
	n.fill(&m, rec, ok)
	return m, true
}

// Members lists the members in Raft's latest configuration.
func (n *Node) Members() ([]Member, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	recs := map[string]fsm.Member{}
	for _, r := range n.fsm.MemberRecords() {
		recs[r.ID] = r
	}
	var out []Member
	for _, s := range f.Configuration().Servers {
		m := Member{ID: string(s.ID), RaftAddr: string(s.Address), Voter: s.Suffrage == raft.Voter}
		rec, ok := recs[m.ID]
		n.fill(&m, rec, ok)
		m.State = n.memberState(m)
		m.Version = n.versionOf(m.ID)
		if at, ok := n.track.heardAt(m.ID); ok && n.IsLeader() {
			m.LastHeard = time.Since(at)
		} else if m.ID == n.cfg.ID {
			m.LastHeard = 0
		} else {
			m.LastHeard = -1
		}
		out = append(out, m)
	}
	return out, nil
}

// Status reports this node's Raft state and indices.
func (n *Node) Status() Status {
	s := Status{
		State:        n.raft.State().String(),
		Term:         n.raft.CurrentTerm(),
		CommitIndex:  n.commitIndex(),
		AppliedIndex: n.fsm.AppliedIndex(),
	}
	s.Leader, s.HasLeader = n.Leader()
	if n.raft.State() != raft.Leader {
		s.LastContact = n.lastContact()
	}
	return s
}

// Ready reports whether the node can serve: a leader is known and the
// local cache has applied everything this node knows to be committed
// (never, once poisoned).
func (n *Node) Ready() bool {
	if n.fsm.Poisoned() != nil {
		return false
	}
	if _, ok := n.Leader(); !ok {
		return false
	}
	return n.applied(n.commitIndex())
}

// AddMember adds (or re-adds) a member and replicates its record. Every
// add is learner first: a member not yet present joins as a non-voter;
// with m.Voter it is promoted by the leader once it has caught up and
// stayed healthy for Config.PromoteAfter (MemberState says where it
// stands). Adding a member that is already present with the same Raft
// address and data directory only refreshes its record and, with
// m.Voter, renews its wish for a vote, so a restarted node may ask to join
// again harmlessly. A member present under another incarnation (a wiped
// or replaced disk) is removed and added back as a non-voter: it lost the
// log it voted with.
//
// A member whose level (m.Level; 0 = 1) is below the cluster's feature
// level is refused with ErrFeatureLevel: it could not apply the log.
func (n *Node) AddMember(ctx context.Context, m Member) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	n.heardFrom(m.ID, m.Incarnation, "join request")
	if cl := n.ClusterLevel(); m.level() < cl {
		return fmt.Errorf("%w: %q runs a binary of feature level %d and the cluster is at level %d; upgrade it before it joins",
			ErrFeatureLevel, m.ID, m.level(), cl)
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return n.classify(err, false)
	}
	present, wasVoter := false, false
	for _, s := range f.Configuration().Servers {
		sameID, sameAddr := string(s.ID) == m.ID, string(s.Address) == m.RaftAddr
		if sameID {
			wasVoter = s.Suffrage == raft.Voter
		}
		if sameID && sameAddr {
			if rec := n.recordedIncarnation(m.ID); rec != "" && m.Incarnation != "" && rec != m.Incarnation {
				n.logger.Warn("a member asks to join with another data directory than the one registered (wiped or replaced disk): removing it and adding it back as a non-voter",
					"member", m.ID, "recorded_incarnation", rec, "incarnation", m.Incarnation, "was_voter", wasVoter)
				if err := n.raft.RemoveServer(s.ID, 0, n.timeout(ctx)).Error(); err != nil {
					return n.classify(err, true)
				}
				continue
			}
			present = true
			continue
		}
		if sameID || sameAddr {
			// The id moved to a new address, or the address is reused by a
			// new id: drop the stale entry first (as hraftd does).
			if err := n.raft.RemoveServer(s.ID, 0, n.timeout(ctx)).Error(); err != nil {
				return n.classify(err, true)
			}
		}
	}
	if !present && !n.canPromote() {
		// Without a way to ask members how far they got (Config.Probe),
		// nothing could judge a promotion: add as asked.
		add := n.raft.AddVoter
		if !m.Voter {
			add = n.raft.AddNonvoter
		}
		if err := add(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, n.timeout(ctx)).Error(); err != nil {
			return n.classify(err, true)
		}
		return n.register(ctx, m)
	}
	if !present {
		n.logger.Info("adding member as a non-voter", "id", m.ID, "raft_addr", m.RaftAddr, "http_addr", m.HTTPAddr, "wants_vote", m.Voter || wasVoter)
		err := n.raft.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, n.timeout(ctx)).Error()
		if err != nil {
			return n.classify(err, true)
		}
		n.track.setWant(m.ID, false, 0)
		n.track.setWant(m.ID, m.Voter || wasVoter, n.fsm.AppliedIndex())
		defer n.kickLevels()
	} else if m.Voter && !wasVoter && !n.track.wants(m.ID) {
		n.track.setWant(m.ID, true, n.fsm.AppliedIndex())
		defer n.kickLevels()
	}
	return n.register(ctx, m)
}

// MemberState is id's state as this node sees it: StateVoter,
// StateCatchingUp (a learner the leader will promote once it is caught
// up) or StateLearner; ErrUnknownMember if it is not a member.
func (n *Node) MemberState(id string) (string, error) {
	m, err := n.member(id)
	return m.State, err
}

// member is id's entry in Members, or ErrUnknownMember.
func (n *Node) member(id string) (Member, error) {
	members, err := n.Members()
	if err != nil {
		return Member{}, err
	}
	for _, m := range members {
		if m.ID == id {
			return m, nil
		}
	}
	return Member{}, fmt.Errorf("%w: %q", ErrUnknownMember, id)
}

// RemoveMember removes a member from the cluster and forgets its record.
// Unless force, removing a voter is refused with a *QuorumError when
// another voter does not answer, or when the voters left that answer
// would not be a majority.
func (n *Node) RemoveMember(ctx context.Context, id string, force bool) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	if _, err := n.member(id); err != nil {
		return err
	}
	if !force {
		if err := n.checkQuorum(id); err != nil {
			return err
		}
	}
	n.logger.Info("removing member", "id", id, "forced", force)
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, n.timeout(ctx)).Error(); err != nil {
		return n.classify(err, true)
	}
	n.track.setWant(id, false, 0)
	n.founders.revoke(id) // back later, it is not the member as formed
	n.kickLevels()        // the member that held the level back may be gone
	if id == n.cfg.ID {
		return nil // a leader that removed itself steps down; the next leader keeps the stale address harmlessly
	}
	_, err := n.propose(ctx, &fsm.Command{Op: fsm.OpRemoveMember, MemberID: id})
	return err
}
