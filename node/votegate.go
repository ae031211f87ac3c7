package node

import (
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
//     on an old configuration met while catching up.
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
	path := filepath.Join(n.cfg.DataDir, registeredFile)
	if err := os.WriteFile(path+".tmp", []byte(n.cfg.Incarnation+"\n"), 0o644); err != nil {
		n.logger.Warn("recording registration", "error", err)
		return
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		n.logger.Warn("recording registration", "error", err)
	}
}

// mayVote says whether this node may grant votes and campaign.
func (n *Node) mayVote() bool { return n.registered.Load() }

// watchRegistration waits until the cluster registered this node's
// incarnation, then lets it vote.
func (n *Node) watchRegistration() {
	defer n.wg.Done()
	if n.mayVote() {
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
		rec, ok := n.fsm.Member(n.cfg.ID)
		reg := ok && rec.Incarnation == n.cfg.Incarnation
		if !reg && ok && n.ClusterLevel() < 2 && rec.Incarnation == "" && n.Ready() {
			reg = true // a level-1 cluster records no incarnations
		}
		if !reg {
			continue
		}
		n.writeRegistered()
		rc := n.raft.ReloadableConfig()
		rc.HeartbeatTimeout, rc.ElectionTimeout = n.heartbeat, n.election
		if err := n.raft.ReloadConfig(rc); err != nil {
			n.logger.Warn("restoring Raft timeouts", "error", err)
		}
		n.registered.Store(true)
		n.logger.Info("the cluster registered this data directory: voting from now on", "incarnation", n.cfg.Incarnation)
		return
	}
}

// gateTransport refuses vote requests for an unregistered node; the rest
// passes through.
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

func (g *gateTransport) run() {
	in := g.NetworkTransport.Consumer()
	for {
		select {
		case <-g.n.transportDone:
			return
		case rpc := <-in:
			if !g.n.mayVote() {
				hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(g.n.cfg.ID), Addr: []byte(g.n.cfg.RaftAddr)}
				switch req := rpc.Command.(type) {
				case *raft.RequestVoteRequest:
					g.n.logger.Debug("refusing a vote: this data directory is not registered yet", "candidate", string(req.ID), "term", req.Term)
					rpc.Respond(&raft.RequestVoteResponse{RPCHeader: hdr, Term: req.Term, Granted: false}, nil)
					continue
				case *raft.RequestPreVoteRequest:
					rpc.Respond(&raft.RequestPreVoteResponse{RPCHeader: hdr, Term: req.Term, Granted: false}, nil)
					continue
				}
			}
			select {
			case g.ch <- rpc:
			case <-g.n.transportDone:
				return
			}
		}
	}
}
