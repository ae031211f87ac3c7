package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// A node votes only with the log it acknowledged with. A node whose data
// directory is new (a new node, or a wiped or replaced disk under an old
// member's id) starts "unregistered": until the cluster's log records its
// own incarnation under its id (the leader does that when it adds it, or
// when it replaces a wiped member as a non-voter), it
//
//   - refuses every vote and pre-vote request (gateTransport below), so a
//     leader the old disk's vote would have blocked cannot be elected with
//     this node's help, and
//   - never starts an election (its heartbeat and election timeouts are an
//     hour; they are set back once registered), so it cannot elect itself
//     on an old configuration met while catching up, and
//   - refuses a leadership transfer (TimeoutNow), which would make it
//     campaign at once and lead on the hour-long timeouts. Let through,
//     it left a cluster of two without a leader for good (found with a
//     CommitTimeout of 10 ms and a transfer right after a join): the old
//     leader campaigned before it heard from the new one and deposed it;
//     back to follower, the unregistered node refused the vote the old
//     leader needed and, on its hour-long timeouts, never campaigned
//     itself, so the commit that would register it never came.
//
// Registration is remembered in DataDir/registered (the incarnation it
// holds), so a restart before the log is replayed keeps the vote. A data
// directory from before incarnations (existing Raft state, no incarnation
// file) and a node that bootstraps a new cluster count as registered. In
// a cluster below feature level 2 records carry no incarnation: a node
// there registers once it is caught up and has a record.

// registeredFile marks a data directory whose incarnation the cluster has
// registered.
const registeredFile = "registered"

// unregisteredTimeout is an unregistered node's heartbeat and election
// timeout: in effect, never.
const unregisteredTimeout = time.Hour

func (n *Node) readRegistered() bool {
	b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, registeredFile))
	return err == nil && strings.TrimSpace(string(b)) == n.cfg.Incarnation
}

func (n *Node) writeRegistered() {
	if err := writeFileSynced(filepath.Join(n.cfg.DataDir, registeredFile), []byte(n.cfg.Incarnation+"\n")); err != nil {
		n.logger.Warn("recording registration", "error", err)
	}
}

// mayVote says whether this node may grant votes and campaign: the
// cluster registered its data directory, and it is not catching up after
// a restart that was not clean (catchup.go).
func (n *Node) mayVote() bool { return n.registered.Load() && !n.catchingUp.Load() }

// watchRegistration waits until the cluster registered this node's
// incarnation, then lets it vote.
func (n *Node) watchRegistration() {
	defer n.wg.Done()
	if n.registered.Load() {
		return
	}
	n.logger.Info("this data directory is not registered in the cluster yet: refusing to vote or to start elections until it is",
		"incarnation", n.cfg.Incarnation)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.closing:
			return
		case <-t.C:
		}
		if n.registered.Load() {
			return // Form registered it
		}
		if h := n.cfg.holdRegistration; h != nil && h.Load() {
			continue
		}
		rec, ok := n.fsm.Member(n.cfg.ID)
		reg := ok && rec.Incarnation == n.cfg.Incarnation
		if !reg && ok && n.ClusterLevel() < 2 && rec.Incarnation == "" && n.caughtUpWithLeader() {
			// A level-1 cluster records no incarnations, so a wiped
			// member is not told apart: it votes once it holds what the
			// leader has committed (not Ready(): a follower's commit
			// index is capped at its own log, so a member that just got
			// its first entries looks caught up, and its vote could elect
			// a candidate missing acknowledged writes).
			reg = true
		}
		if !reg {
			continue
		}
		n.markRegistered()
		n.logger.Info("the cluster registered this data directory: voting from now on", "incarnation", n.cfg.Incarnation)
		return
	}
}

// markRegistered lets this node vote and campaign from now on.
func (n *Node) markRegistered() {
	n.writeRegistered()
	n.registered.Store(true)
	n.voteTimeouts()
}

// bootstrappedFile marks a data directory on which this node bootstrapped
// a new cluster.
const bootstrappedFile = "bootstrapped"

// errUnregisteredTransfer answers a leadership transfer to a node the
// cluster has not registered yet; the leader's transfer fails with it.
var errUnregisteredTransfer = errors.New("this node's data directory is not registered in the cluster yet: it cannot lead; transfer to another member, or retry once it is registered")

// errForeignLeader answers a leader of another cluster (see foreign).
var errForeignLeader = errors.New("this node bootstrapped a cluster of its own on an empty data directory and does not follow a leader of another cluster")

// foreign says whether an AppendEntries or InstallSnapshot from leader id
// comes from another cluster: this node bootstrapped its data directory
// and its configuration still lists only itself, so no other member of
// its cluster can exist, let alone lead. (A wiped member started again
// with --bootstrap: its old cluster's leader still knows its address.
// Following it would mix two logs that share indexes and terms.)
func (n *Node) foreign(id []byte) bool {
	r := n.gateRaft.Load()
	if !n.bootstrapped.Load() || r == nil || len(id) == 0 || string(id) == n.cfg.ID {
		return false
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	servers := f.Configuration().Servers
	return len(servers) == 1 && string(servers[0].ID) == n.cfg.ID
}

func (n *Node) warnForeign(id []byte) {
	if n.foreignWarned.CompareAndSwap(false, true) {
		n.logger.Error("refusing to follow a leader of another cluster: this node bootstrapped a new cluster on an empty data directory, but another cluster lists this node's id and address (a wiped member started with --bootstrap?). Stop it, empty its data directory and start it with --join",
			"leader", string(id))
	}
}

// gateTransport refuses vote requests for an unregistered node, and
// entries from a leader of another cluster; the rest passes through.
type gateTransport struct {
	*raft.NetworkTransport
	n  *Node
	ch chan raft.RPC
}

func newGateTransport(n *Node, t *raft.NetworkTransport) *gateTransport {
	g := &gateTransport{NetworkTransport: t, n: n, ch: make(chan raft.RPC)}
	go g.run()
	return g
}

func (g *gateTransport) Consumer() <-chan raft.RPC { return g.ch }

// SetHeartbeatHandler gates heartbeats too: the network transport hands
// them to Raft directly, not through Consumer.
func (g *gateTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		g.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	g.NetworkTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		if req, ok := rpc.Command.(*raft.AppendEntriesRequest); ok && g.n.foreign(req.ID) {
			g.n.warnForeign(req.ID)
			rpc.Respond(nil, errForeignLeader)
			return
		}
		cb(rpc)
	})
}

func (g *gateTransport) run() {
	in := g.NetworkTransport.Consumer()
	for {
		select {
		case <-g.n.transportDone:
			return
		case rpc := <-in:
			var leader []byte
			var ae *raft.AppendEntriesRequest
			switch req := rpc.Command.(type) {
			case *raft.AppendEntriesRequest:
				leader, ae = req.ID, req
			case *raft.InstallSnapshotRequest:
				leader = req.ID
			}
			if g.n.foreign(leader) {
				g.n.warnForeign(leader)
				rpc.Respond(nil, errForeignLeader)
				continue
			}
			if ae != nil {
				g.n.leaderCommit.heard(ae.Term, ae.LeaderCommitIndex)
			}
			if !g.n.mayVote() && g.refuse(rpc) {
				continue
			}
			select {
			case g.ch <- rpc:
			case <-g.n.transportDone:
				return
			}
		}
	}
}

// refuse answers rpc itself if it is a vote, a pre-vote or a leadership
// transfer, which a node that may not vote refuses (unregistered, or
// catching up after a start that was not clean); it reports whether it
// did.
func (g *gateTransport) refuse(rpc raft.RPC) bool {
	n := g.n
	why, refusal := "this data directory is not registered yet", errUnregisteredTransfer
	catchingUp := n.registered.Load() // registered, so held for that
	if catchingUp {
		why, refusal = "this node is catching up after a restart that was not clean", errCatchingUpTransfer
	}
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(n.cfg.ID), Addr: []byte(n.cfg.RaftAddr)}
	// A refusal carries this node's term if it is higher, as Raft's own
	// does, so that a candidate behind learns it.
	term := func(asked uint64) uint64 {
		if r := n.gateRaft.Load(); r != nil {
			return max(asked, r.CurrentTerm())
		}
		return asked
	}
	switch req := rpc.Command.(type) {
	case *raft.RequestVoteRequest:
		if catchingUp {
			n.heldRefusals.Add(1)
		}
		n.logger.Debug("refusing a vote: "+why, "candidate", string(req.ID), "term", req.Term)
		rpc.Respond(&raft.RequestVoteResponse{RPCHeader: hdr, Term: term(req.Term), Granted: false}, nil)
	case *raft.RequestPreVoteRequest:
		if catchingUp {
			n.heldRefusals.Add(1)
		}
		rpc.Respond(&raft.RequestPreVoteResponse{RPCHeader: hdr, Term: term(req.Term), Granted: false}, nil)
	case *raft.TimeoutNowRequest:
		n.leadRefusals.Add(1)
		n.logger.Info("refusing a leadership transfer: "+why, "from", string(req.ID))
		rpc.Respond(nil, refusal)
	default:
		return false
	}
	return true
}

// caughtUpWithLeader says whether this follower has applied the commit
// index the leader of the current term last announced to it.
func (n *Node) caughtUpWithLeader() bool {
	c, at := n.LeaderCommit()
	return c > 0 && at == n.raft.CurrentTerm() && n.applied(c)
}
