package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Membership safety (issue 14), on top of Raft's configuration:
//
//   - Learner first: every add makes the member a non-voter. A member that
//     asked for a vote (Member.Voter) is promoted by the leader once it has
//     applied within PromoteMaxLag entries of the leader's commit index and
//     stayed so, answering the leader's probes, for PromoteAfter. The wish
//     lives on the leader; a member started with --join repeats it until
//     it is a voter, so a leader change does not lose it for long.
//   - Incarnations: a member whose data directory's incarnation differs
//     from its record (a wiped or replaced disk) has lost its log and its
//     vote. The leader removes it and adds it back as a non-voter, whether
//     it notices through the member's join request or through its probe
//     (GET /v1/node); the member itself refuses to vote, and never starts
//     an election, until the cluster has registered its incarnation (see
//     votegate.go).
//   - Quorum check: removing or demoting a voter while another voter does
//     not answer, or any change after which the voters that answer would
//     not be a majority, is refused with a *QuorumError unless forced.
//   - Removal: a node whose Raft shut down because it was removed, or that
//     finds itself out of the configuration and no longer hears from a
//     leader, reports it on Removed(); the process exits (cli).

// Member states, as GET /v1/cluster shows them.
const (
	StateVoter      = "voter"
	StateCatchingUp = "catching_up" // a non-voter that asked for a vote: promoted once caught up and stable
	StateLearner    = "learner"     // a non-voter that stays one
)

// Defaults of the promotion policy.
const (
	defaultPromoteAfter  = 10 * time.Second // Consul autopilot's ServerStabilizationTime
	defaultPromoteMaxLag = 256
	// fastProbeInterval is how often the leader probes while a member
	// waits for promotion.
	fastProbeInterval = 250 * time.Millisecond
	// healthBound is how long a learner may go without answering a probe
	// and still count as stable.
	healthBound = 2 * time.Second
	// quorumProbeTimeout bounds the fresh probe of the voters before a
	// removal or demotion.
	quorumProbeTimeout = 2 * time.Second
)

// ErrQuorumAtRisk: a membership change that would leave the cluster
// without a working majority of voters (or remove one while another does
// not answer) was refused; nothing was done. errors.As gives a
// *QuorumError naming the members that did not answer. Force overrides.
var ErrQuorumAtRisk = errors.New("membership change would put the quorum at risk")

// QuorumError is a refused change and why.
type QuorumError struct {
	Unreachable []string // voters that did not answer the leader's probe
	Reason      string
}

func (e *QuorumError) Error() string {
	return fmt.Sprintf("%v: %s (unreachable: %s); pass force to do it anyway", ErrQuorumAtRisk, e.Reason, strings.Join(e.Unreachable, ", "))
}

func (e *QuorumError) Unwrap() error { return ErrQuorumAtRisk }

// NodeInfo is what a member says about itself (GET /v1/node).
type NodeInfo struct {
	ID           string
	Level        uint32
	Incarnation  string
	State        string // Raft state: Leader, Follower, Candidate, Shutdown; "" unknown
	AppliedIndex uint64
	HasIndex     bool   // AppliedIndex is known
	Removed      bool   // it knows it was removed from the cluster
	Version      string // its build (Build.String); "" from a binary before versions
	MaxMemory    int64  // its own memory bound; 0 = none (or not reported)
	// Unregistered: its data directory is not registered in the cluster
	// yet, so it refuses votes (votegate.go); it is not promoted until it
	// is. A binary from before this report says false.
	Unregistered bool
}

// Info is this node's own NodeInfo.
func (n *Node) Info() NodeInfo {
	return NodeInfo{ID: n.cfg.ID, Level: n.FeatureLevel(), Incarnation: n.cfg.Incarnation, State: n.raft.State().String(),
		AppliedIndex: n.fsm.AppliedIndex(), HasIndex: true, Removed: n.removedErr() != nil, Version: BuildInfo().String(),
		MaxMemory: n.cfg.MaxMemory, Unregistered: !n.registered.Load()}
}

// probe asks m about itself through Config.Probe (or, without one,
// Config.FetchLevel for the level alone).
//
// With both, FetchLevel has the last word on the level (tests of mixed
// versions).
func (n *Node) probe(ctx context.Context, m Member) (NodeInfo, error) {
	var info NodeInfo
	if n.cfg.Probe != nil {
		var err error
		if info, err = n.cfg.Probe(ctx, m); err != nil {
			return info, err
		}
	}
	if n.cfg.FetchLevel != nil {
		l, err := n.cfg.FetchLevel(ctx, m)
		if err != nil {
			return NodeInfo{}, err
		}
		info.Level = l
		if info.ID == "" {
			info.ID = m.ID
		}
	}
	if !n.canProbe() {
		return NodeInfo{}, errors.New("no way to ask members (Config.Probe)")
	}
	return info, nil
}

// canProbe says whether the leader can ask members about themselves.
func (n *Node) canProbe() bool { return n.cfg.Probe != nil || n.cfg.FetchLevel != nil }

// canPromote says whether the leader can judge whether a learner caught
// up: only Probe tells a member's applied index.
func (n *Node) canPromote() bool { return n.cfg.Probe != nil }

// tracker is the leader's memory of the members: who asked for a vote,
// since when each has been caught up, and when each last answered.
type tracker struct {
	mu sync.Mutex
	// want: the members that asked for a vote, each with the leader's
	// applied index when it asked: it must reach that index (which only
	// replication brings) before it counts as caught up.
	want      map[string]uint64
	stable    map[string]time.Time // caught up and answering since
	lastHeard map[string]time.Time
	// raftDown: the leader's Raft heartbeats to the member fail (from
	// Raft's observations; cleared when they resume or leadership moves).
	raftDown map[string]bool
}

func newTracker() *tracker {
	return &tracker{want: map[string]uint64{}, stable: map[string]time.Time{}, lastHeard: map[string]time.Time{}, raftDown: map[string]bool{}}
}

// setWant records whether id wants a vote; applied is the leader's
// applied index now. Asking again changes nothing (the stabilization
// period is not restarted).
func (t *tracker) setWant(id string, w bool, applied uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// A membership change of id restarts Raft's replication to it: its
	// heartbeat failures so far no longer say anything (a resumption is
	// observed only within one replication run).
	delete(t.raftDown, id)
	if _, ok := t.want[id]; ok && w {
		return
	}
	if w {
		t.want[id] = max(applied, 1)
	} else {
		delete(t.want, id)
	}
	delete(t.stable, id)
}

func (t *tracker) wants(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.want[id]
	return ok
}

func (t *tracker) minApplied(id string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.want[id]
}

func (t *tracker) pending() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.want) > 0
}

func (t *tracker) heard(id string, at time.Time) {
	t.mu.Lock()
	t.lastHeard[id] = at
	t.mu.Unlock()
}

func (t *tracker) heardAt(id string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.lastHeard[id]
	return at, ok
}

func (t *tracker) setRaftDown(id string, down bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if down {
		t.raftDown[id] = true
	} else {
		delete(t.raftDown, id)
	}
}

func (t *tracker) isRaftDown(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.raftDown[id]
}

// resetRaftDown forgets the heartbeat failures of an earlier leadership.
func (t *tracker) resetRaftDown() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.raftDown = map[string]bool{}
}

// watchHeartbeats follows Raft's observations of failed and resumed
// heartbeats to the members, so that the quorum check counts a member
// whose HTTP answers but whose Raft port does not as unreachable.
func (n *Node) watchHeartbeats(ch chan raft.Observation) {
	defer n.wg.Done()
	for {
		select {
		case <-n.closing:
			return
		case o := <-ch:
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				n.track.setRaftDown(string(d.PeerID), true)
			case raft.ResumedHeartbeatObservation:
				n.track.setRaftDown(string(d.PeerID), false)
			}
		}
	}
}

// state is m's state as the leader sees it.
func (n *Node) memberState(m Member) string {
	switch {
	case m.Voter:
		return StateVoter
	case n.track.wants(m.ID):
		return StateCatchingUp
	}
	return StateLearner
}

// probeResult is one member's answer in a probe round.
type probeResult struct {
	m    Member
	info NodeInfo
	err  error
}

// probeAll asks every member but this one, in parallel, within timeout.
func (n *Node) probeAll(members []Member, timeout time.Duration) []probeResult {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := make([]probeResult, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		out[i].m = m
		if m.ID == n.cfg.ID {
			out[i].info = n.Info()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].info, out[i].err = n.probe(ctx, m)
			if out[i].err == nil && out[i].info.ID != "" && out[i].info.ID != m.ID {
				out[i].err = fmt.Errorf("the member at %s says it is %q", m.HTTPAddr, out[i].info.ID)
			}
		}()
	}
	wg.Wait()
	now := time.Now()
	for _, r := range out {
		if r.err == nil && r.info.State != raft.Shutdown.String() && !r.info.Removed {
			n.track.heard(r.m.ID, now)
		}
		if r.err == nil && r.m.ID != n.cfg.ID {
			n.versions.Store(r.m.ID, r.info.Version)
		}
	}
	return out
}

// working says whether a probed voter can vote: it answered, its Raft
// runs, it was not removed, and its data directory is the registered one
// and knows it (an unregistered node refuses votes: votegate.go).
func (n *Node) working(r probeResult) bool {
	if r.err != nil || r.info.State == raft.Shutdown.String() || r.info.Removed || r.info.Unregistered || n.track.isRaftDown(r.m.ID) {
		return false
	}
	return !n.wiped(r.m, r.info)
}

// promotable says whether a probed learner may become a voter now: it
// has caught up (caughtUp) and would be a working voter, follows this
// leader (one that leads or campaigns formed a cluster of its own), and
// runs on the data directory its record names. The leader's promotion
// round and an operator's promotion (SetVoter) both ask it.
func (n *Node) promotable(r probeResult, commit uint64) bool {
	return n.caughtUp(r.m.ID, r.info, commit) && n.working(r) && r.info.State == raft.Follower.String() &&
		(r.m.Incarnation == "" || r.info.Incarnation == r.m.Incarnation)
}

// wiped says whether the member answered with another incarnation than
// its record's: its data directory is not the one the cluster knew.
func (n *Node) wiped(m Member, info NodeInfo) bool {
	return m.Incarnation != "" && info.Incarnation != "" && m.Incarnation != info.Incarnation
}

// checkMembers is the leader's membership round after a probe: replace
// wiped members, promote the members that asked for a vote once they are
// caught up and stable. It holds joinMu (the caller does).
func (n *Node) checkMembers(results []probeResult) {
	commit := n.commitIndex()
	now := time.Now()
	inConfig := map[string]bool{}
	for _, r := range results {
		inConfig[r.m.ID] = true
		if r.m.ID == n.cfg.ID || r.err != nil {
			continue
		}
		if n.wiped(r.m, r.info) {
			n.replaceWiped(r.m, r.info)
			continue
		}
		if r.m.Voter || !n.track.wants(r.m.ID) {
			continue
		}
		ok := n.promotable(r, commit)
		if !ok {
			n.logger.Debug("a learner that asked for a vote is not ready for it yet", "member", r.m.ID, "applied", r.info.AppliedIndex,
				"needs", max(n.track.minApplied(r.m.ID), 1), "commit", commit, "state", r.info.State, "raft_down", n.track.isRaftDown(r.m.ID),
				"incarnation", r.info.Incarnation, "recorded", r.m.Incarnation, "unregistered", r.info.Unregistered)
		}
		n.track.mu.Lock()
		since, was := n.track.stable[r.m.ID]
		switch {
		case !ok:
			delete(n.track.stable, r.m.ID)
		case !was:
			n.track.stable[r.m.ID] = now
		}
		n.track.mu.Unlock()
		if ok && was && now.Sub(since) >= n.cfg.PromoteAfter {
			n.promote(r.m, r.info, commit)
		}
	}
	// A learner that missed one probe on a loaded machine stays stable;
	// one not heard from for a while starts its period again.
	for _, r := range results {
		if r.err != nil && !r.m.Voter {
			at, ok := n.track.heardAt(r.m.ID)
			if !ok || now.Sub(at) > healthBound {
				n.track.mu.Lock()
				delete(n.track.stable, r.m.ID)
				n.track.mu.Unlock()
			}
		}
	}
	n.track.mu.Lock()
	for id := range n.track.want {
		if !inConfig[id] {
			delete(n.track.want, id)
			delete(n.track.stable, id)
		}
	}
	n.track.mu.Unlock()
}

// caughtUp says whether member id, which reported info, has caught up
// with the leader: it applied within PromoteMaxLag of the commit index,
// and at least what the leader had applied when the member asked for a
// vote, which only replication can have brought it: an empty node next to
// a short log is not caught up.
func (n *Node) caughtUp(id string, info NodeInfo, commit uint64) bool {
	return info.HasIndex && info.AppliedIndex+n.cfg.PromoteMaxLag >= commit && info.AppliedIndex >= max(n.track.minApplied(id), 1)
}

func (n *Node) promote(m Member, info NodeInfo, commit uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
	defer cancel()
	err := n.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, n.timeout(ctx)).Error()
	if err != nil {
		n.logger.Warn("promoting a caught-up member failed", "member", m.ID, "error", err)
		return
	}
	n.track.setWant(m.ID, false, 0)
	n.logger.Info("promoted a member to voter: caught up and stable", "member", m.ID, "applied", info.AppliedIndex,
		"commit", commit, "stable_for", n.cfg.PromoteAfter)
}

// replaceWiped removes a member whose data directory changed and adds it
// back as a non-voter under its new incarnation (wanting a vote if it had
// one). A member that leads a cluster of its own (a wiped node started
// with --bootstrap) is only removed: its log is another cluster's.
func (n *Node) replaceWiped(m Member, info NodeInfo) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
	defer cancel()
	if err := n.raft.RemoveServer(raft.ServerID(m.ID), 0, n.timeout(ctx)).Error(); err != nil {
		n.logger.Warn("removing a member whose data directory changed failed", "member", m.ID, "error", err)
		return
	}
	if info.State == raft.Leader.String() {
		n.logger.Error("a member's data directory changed and it leads a cluster of its own (started with --bootstrap on an empty data directory?): removed it; empty its data directory and start it with --join",
			"member", m.ID, "recorded_incarnation", m.Incarnation, "incarnation", info.Incarnation)
		n.track.setWant(m.ID, false, 0)
		return
	}
	n.logger.Warn("a member's data directory changed (wiped or replaced disk): removed it and adding it back as a non-voter; it votes again only once caught up",
		"member", m.ID, "recorded_incarnation", m.Incarnation, "incarnation", info.Incarnation, "was_voter", m.Voter)
	if err := n.raft.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, n.timeout(ctx)).Error(); err != nil {
		n.logger.Warn("adding back a member whose data directory changed failed", "member", m.ID, "error", err)
		return
	}
	want := m.Voter || n.track.wants(m.ID)
	n.track.setWant(m.ID, false, 0) // a new data directory: its own threshold and period
	n.track.setWant(m.ID, want, n.fsm.AppliedIndex())
	m.Incarnation, m.Level = info.Incarnation, info.Level
	if err := n.register(ctx, m); err != nil {
		n.logger.Warn("registering a member's new incarnation failed", "member", m.ID, "error", err)
	}
}

// checkQuorum refuses a change that takes the voters in drop out of the
// voting configuration when it puts the quorum at risk: another voter
// does not answer, or the voters that answer would not be a majority of
// the voters left.
func (n *Node) checkQuorum(drop string) error {
	if !n.canProbe() {
		return nil // nothing to judge by
	}
	members, err := n.Members()
	if err != nil {
		return err
	}
	var voters []Member
	dropping := false
	for _, m := range members {
		if m.Voter {
			voters = append(voters, m)
			dropping = dropping || m.ID == drop
		}
	}
	if !dropping {
		return nil // a non-voter leaving changes no quorum
	}
	var unreachable []string
	left, working := 0, 0
	for _, r := range n.probeAll(voters, quorumProbeTimeout) {
		ok := n.working(r)
		if r.m.ID == drop {
			continue
		}
		left++
		if ok {
			working++
		} else {
			unreachable = append(unreachable, r.m.ID)
		}
	}
	sort.Strings(unreachable)
	switch {
	case len(unreachable) > 0:
		return &QuorumError{Unreachable: unreachable,
			Reason: fmt.Sprintf("removing the vote of %q while %d other voter(s) cannot vote (no answer, Raft down, or a data directory the cluster has not registered yet); replace or wait for those first (add a learner, let it be promoted, then remove the dead voter)", drop, len(unreachable))}
	case left > 0 && working < left/2+1:
		return &QuorumError{Unreachable: unreachable,
			Reason: fmt.Sprintf("after the change %d of %d voters would answer, not a majority", working, left)}
	}
	return nil
}

// ErrRemoved: this node was removed from the cluster; its Raft is shut
// down. Restart it (with its usual flags) to rejoin as a learner.
var ErrRemoved = errors.New("this node was removed from the cluster")

func (n *Node) markRemoved(why string) {
	if n.removal.set(fmt.Errorf("%w: %s", ErrRemoved, why)) {
		n.logger.Error("this node was removed from the cluster; it serves nothing more. Start it again with its usual flags to rejoin as a learner", "why", why)
	}
}

// Removed is closed once this node knows it was removed from the cluster.
func (n *Node) Removed() <-chan struct{} { return n.removal.done() }

func (n *Node) removedErr() error { return n.removal.err() }

// RemovedReason is nil, or why this node is out of the cluster (wrapping
// ErrRemoved).
func (n *Node) RemovedReason() error { return n.removedErr() }

// PeerView is a member's answer to AskView.
type PeerView struct {
	Leader  bool     // the member answering leads
	Members []string // the ids in its configuration
}

// askRemoved asks the members this node knows whether the leader still
// lists it; true only if a leader answered without it.
func (n *Node) askRemoved() bool {
	if n.cfg.AskView == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for id, addr := range n.fsm.Members() {
		if id == n.cfg.ID || addr == "" {
			continue
		}
		v, err := n.cfg.AskView(ctx, addr)
		if err != nil || !v.Leader {
			continue
		}
		if !slices.Contains(v.Members, n.cfg.ID) {
			n.logger.Warn("the leader does not list this node", "leader", id, "members", strings.Join(v.Members, ","))
			return true
		}
		return false
	}
	return false
}

// removedAfter is how long a node that was in the configuration must be
// out of it, and without word from a leader, before it counts as removed
// (a node catching up passes through old configurations quickly).
func (n *Node) removedAfter() time.Duration {
	return max(3*time.Second, 4*n.raft.ReloadableConfig().ElectionTimeout)
}

// watchRemoval notices a removal: Raft shut down on its own (a leader
// that removed itself), or a configuration without this node that has
// lasted, while no leader talks to it (a removed follower: the leader
// replicates the change to it and stops).
func (n *Node) watchRemoval() {
	defer n.wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	sawSelf := false
	var outSince, lastAsk time.Time
	for {
		select {
		case <-n.closing:
			return
		case <-n.removal.done():
			return
		case <-t.C:
		}
		if n.raft.State() == raft.Shutdown {
			select {
			case <-n.closing:
				return
			default:
			}
			if n.fsm.Poisoned() == nil {
				n.markRemoved("Raft shut down after a configuration without this node was committed")
			}
			return
		}
		f := n.raft.GetConfiguration()
		if f.Error() != nil {
			continue
		}
		servers := f.Configuration().Servers
		in := slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == n.cfg.ID })
		// A registered node has met its own entry in the configuration
		// (the leader registers a member after adding it), even if a
		// removal came before this loop looked.
		sawSelf = sawSelf || n.registered.Load()
		switch {
		case in && n.raft.State() != raft.Leader && n.lastContact() > 2*n.removedAfter() && time.Since(lastAsk) > n.removedAfter():
			// In its own configuration, but no leader talks to it: it may
			// have been removed before the change reached it (the leader
			// stops replicating to a removed member).
			lastAsk = time.Now()
			if n.askRemoved() {
				n.markRemoved("the leader's configuration no longer lists this node (removed while it could not hear of it)")
				if err := n.raft.Shutdown().Error(); err != nil {
					n.logger.Warn("stopping raft after removal", "error", err)
				}
				return
			}
			sawSelf, outSince = true, time.Time{}
		case in:
			sawSelf, outSince = true, time.Time{}
		case !sawSelf || len(servers) == 0:
		case outSince.IsZero():
			outSince = time.Now()
			n.logger.Debug("the configuration no longer lists this node; removed unless a leader contacts it", "wait", n.removedAfter())
		case n.raft.State() == raft.Leader:
			// A leader removing itself leads until the change commits,
			// then shuts down (above), or steps down.
		case time.Since(outSince) > n.removedAfter() && n.lastContact() > n.removedAfter():
			n.markRemoved("the configuration no longer lists this node and no leader has contacted it since")
			if err := n.raft.Shutdown().Error(); err != nil {
				n.logger.Warn("stopping raft after removal", "error", err)
			}
			return
		}
	}
}

// NeedsJoin says whether this node, started on existing state, is not in
// its own latest configuration (it was removed while it ran or was down):
// nobody will contact it, it must ask to join.
func (n *Node) NeedsJoin() bool {
	if !n.existing {
		return false
	}
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	servers := f.Configuration().Servers
	return len(servers) > 0 && !slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == n.cfg.ID })
}

// peersFile lists the HTTP addresses of the other members as this node
// last knew them, one a line: a node removed from the cluster (whose log
// no longer names anyone who will contact it) asks them to take it back.
const peersFile = "peers"

// KnownPeers returns the HTTP addresses in the peers file.
func (n *Node) KnownPeers() []string {
	b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, peersFile))
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// writePeers keeps the peers file up to date with the member records.
func (n *Node) writePeers() {
	defer n.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := strings.Join(n.KnownPeers(), "\n")
	for {
		select {
		case <-n.closing:
			return
		case <-t.C:
		}
		var addrs []string
		for id, a := range n.fsm.Members() {
			if id != n.cfg.ID && a != "" {
				addrs = append(addrs, a)
			}
		}
		sort.Strings(addrs)
		cur := strings.Join(addrs, "\n")
		if cur == last || len(addrs) == 0 {
			continue
		}
		path := filepath.Join(n.cfg.DataDir, peersFile)
		if err := os.WriteFile(path+".tmp", []byte(cur+"\n"), 0o644); err == nil && os.Rename(path+".tmp", path) == nil {
			last = cur
		}
	}
}

// recordedIncarnation is id's incarnation as the log registered it.
func (n *Node) recordedIncarnation(id string) string {
	rec, ok := n.fsm.Member(id)
	if !ok {
		return ""
	}
	return rec.Incarnation
}

// versionOf is member id's build as last probed ("" unknown); this
// node's own for itself.
func (n *Node) versionOf(id string) string {
	if id == n.cfg.ID {
		return BuildInfo().String()
	}
	if v, ok := n.versions.Load(id); ok {
		return v.(string)
	}
	return ""
}
