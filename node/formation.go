package node

import (
	"errors"
	"fmt"
	"sort"

	"github.com/hashicorp/raft"
)

// Safe formation (--bootstrap-expect N): every founder starts with the
// same list of N members and no --bootstrap. Each asks every listed
// member for its FormationInfo (GET /v1/cluster/formation); once all N
// answered and none holds Raft state, each calls Form with the same list,
// so all bootstrap the same configuration and derive the same cluster id.
// A member that reports state means the cluster exists: the others join
// it (learner first) instead, unless that state is the very cluster this
// node would form (same derived cluster id: a founder that was slower
// than the others), in which case it bootstraps its part too. The cli
// runs that loop (cli/formation.go); this file holds what the node knows.

// ErrHasState: Form was asked of a node whose data directory already
// holds Raft state; nothing was done.
var ErrHasState = errors.New("data directory already holds Raft state")

// FormationInfo is what a node says about itself to the founders of a
// cluster.
type FormationInfo struct {
	ID, RaftAddr, HTTPAddr string
	Incarnation            string
	HasState               bool   // it holds a Raft log or configuration
	ClusterID              string // "" if it has none
	// Level is its binary's feature level; 0 from a binary that reports
	// none (level 1). Founders pass each other's to Form (founders.go).
	Level uint32
}

// Formation returns this node's FormationInfo.
func (n *Node) Formation() FormationInfo {
	return FormationInfo{ID: n.cfg.ID, RaftAddr: n.cfg.RaftAddr, HTTPAddr: n.cfg.HTTPAddr, Incarnation: n.cfg.Incarnation,
		HasState: n.HasState(), ClusterID: n.ClusterID(), Level: n.FeatureLevel()}
}

// HasState says whether this node holds Raft state: it did at start, or
// it has bootstrapped or received entries since.
func (n *Node) HasState() bool {
	return n.existing || n.raft.LastIndex() > 0
}

// Form bootstraps the cluster whose voters are founders (this node among
// them), under the cluster id FoundersClusterID derives from them. Every
// founder calls it with the same list; the configuration is sorted by id,
// so all of them write the same one.
//
// levels maps each founder's id to the feature level it reported in the
// formation exchange (absent or 0: level 1). The node keeps them, in
// memory, so that as leader it can count a founder that dies right after
// formation at that level (founders.go); they do not enter the cluster
// id.
func (n *Node) Form(founders []Founder, levels map[string]uint32) error {
	if n.HasState() {
		return ErrHasState
	}
	sorted := append([]Founder(nil), founders...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	var servers []raft.Server
	self := false
	for i, f := range sorted {
		if i > 0 && f.ID == sorted[i-1].ID {
			return fmt.Errorf("node: formation: member id %q twice", f.ID)
		}
		self = self || (f.ID == n.cfg.ID && f.Incarnation == n.cfg.Incarnation)
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(f.ID), Address: raft.ServerAddress(f.RaftAddr)})
	}
	if !self {
		return fmt.Errorf("node: formation: this node (%s, incarnation %s) is not among the founders", n.cfg.ID, n.cfg.Incarnation)
	}
	cid := FoundersClusterID(sorted)
	if cur := n.ClusterID(); cur != "" && cur != cid {
		return fmt.Errorf("%w: this data directory belongs to cluster %s; the founders' cluster is %s", ErrOtherCluster, cur, cid)
	}
	if err := n.setClusterID(cid); err != nil {
		return err
	}
	n.logger.Info("forming a new cluster with the expected members", "members", len(servers), "cluster_id", cid)
	// Before bootstrapping: the first level round of this node as leader
	// must find them.
	n.rememberFounders(sorted, levels)
	if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		if errors.Is(err, raft.ErrCantBootstrap) && n.ClusterID() == cid {
			// A founder that formed first and leads already replicated
			// to this one between HasState above and here. Its cluster
			// id is the founders' (a peer of another cluster is refused
			// at the handshake), so this is the configuration formed
			// with this data directory: follow it, and vote.
			n.logger.Info("the founders' cluster reached this node before it bootstrapped its part: following it", "cluster_id", cid)
			n.markRegistered()
			return nil
		}
		n.founders.set(nil, nil)
		return fmt.Errorf("node: bootstrap: %w", err)
	}
	// A founder votes from the start: its data directory is the one the
	// configuration was formed with.
	n.markRegistered()
	return nil
}
