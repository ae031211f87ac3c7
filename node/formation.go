package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

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
// than the others), in which case it bootstraps its part too. A node
// that formed answers with the founders list it formed with (kept in the
// data directory), and a founder named there exactly as it is forms its
// part from that list alone (FormedList), so that a founder lost right
// after another formed does not leave the others without a quorum. The
// cli runs that loop (cli/formation.go); this file holds what the node
// knows.

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
	// Founders is the list this process bootstrapped with (Form), each
	// with the level it reported; nil if it did not form. A founder that
	// never had every answer forms its part from it (FormedList).
	Founders []FounderAt
}

// FounderAt is a founder with the feature level it reported at
// formation (0: none reported, level 1).
type FounderAt struct {
	Founder
	Level uint32
}

// foundersFile holds, in a data directory that formed a cluster with
// --bootstrap-expect, the founders list it formed with (JSON), so that
// the node's formation answers carry it after a restart too.
const foundersFile = "founders"

// formedList is what Form bootstrapped with, as this process formed it
// (with the founders' levels, for formedLevelsFor) or as read back from
// foundersFile (without: levels reported long ago prove nothing about
// the binaries running now, founders.go).
type formedList struct {
	mu   sync.Mutex
	list []FounderAt
	at   time.Time // when this process formed; zero: read from the file
}

// formedLevelsFor is how long after forming a node still sends the
// founders' levels with its list: the credit they give rests on their
// having been reported moments earlier (founders.go).
const formedLevelsFor = time.Minute

func (f *formedList) set(list []FounderAt) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list, f.at = list, time.Now()
}

// clear forgets a list this process set (a bootstrap that failed).
func (f *formedList) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list, f.at = nil, time.Time{}
}

// get returns the list, reading foundersFile from dir the first time
// this process has none; nil if there is none (a node that joined, or
// formed before the file existed).
func (f *formedList) get(dir string) []FounderAt {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.list == nil {
		b, err := os.ReadFile(filepath.Join(dir, foundersFile))
		var fs []Founder
		if err != nil || json.Unmarshal(b, &fs) != nil {
			return nil
		}
		f.list = withLevels(fs, nil)
	}
	out := append([]FounderAt(nil), f.list...)
	if f.at.IsZero() || time.Since(f.at) > formedLevelsFor {
		for i := range out {
			out[i].Level = 0
		}
	}
	return out
}

// Formation returns this node's FormationInfo.
func (n *Node) Formation() FormationInfo {
	return FormationInfo{ID: n.cfg.ID, RaftAddr: n.cfg.RaftAddr, HTTPAddr: n.cfg.HTTPAddr, Incarnation: n.cfg.Incarnation,
		HasState: n.HasState(), ClusterID: n.ClusterID(), Level: n.FeatureLevel(), Founders: n.formedFounders()}
}

// formedFounders is the founders list this data directory formed with, if
// it is the list of the cluster it is in.
func (n *Node) formedFounders() []FounderAt {
	list := n.formed.get(n.cfg.DataDir)
	if len(list) == 0 || FoundersClusterID(foundersOf(list)) != n.ClusterID() {
		return nil // `raftcache recover` minted another id since
	}
	return list
}

// FormedList returns the founders list in a listed member's fresh
// formation answer (info) if founder self may form its part of that
// member's cluster from it alone: the member holds state and formed with
// a list of want founders that hashes to its cluster id, names the
// member as it answered, and names self exactly (id, incarnation and Raft
// address). That is the configuration self would have bootstrapped had
// it heard every founder at once (the member formed from their answers),
// so a founder need not wait for a founder that died after another
// formed. The levels are the member's own, as it answered, and those its
// list carries (only within formedLevelsFor of its forming,
// founders.go); 0, no credit, for the rest.
func FormedList(self Founder, info FormationInfo, want int) ([]Founder, map[string]uint32, bool) {
	if !info.HasState || len(info.Founders) != want || info.ClusterID == "" {
		return nil, nil, false
	}
	fs := foundersOf(info.Founders)
	levels := make(map[string]uint32, want)
	named, member := false, false
	for _, f := range info.Founders {
		levels[f.ID] = f.Level
		named = named || f.Founder == self
		member = member || f.Founder == Founder{ID: info.ID, RaftAddr: info.RaftAddr, Incarnation: info.Incarnation}
	}
	if !named || !member || FoundersClusterID(fs) != info.ClusterID {
		return nil, nil, false
	}
	levels[info.ID] = info.Level
	return fs, levels, true
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
	if cur, err := n.claimClusterID(cid); errors.Is(err, ErrOtherCluster) {
		return fmt.Errorf("%w: this data directory belongs to cluster %s; the founders' cluster is %s", ErrOtherCluster, cur, cid)
	} else if err != nil {
		return err
	}
	list, err := json.Marshal(sorted)
	if err != nil {
		return err
	}
	if err := writeFileSynced(filepath.Join(n.cfg.DataDir, foundersFile), list); err != nil {
		return fmt.Errorf("node: formation: %w", err)
	}
	// The list with its levels before bootstrapping: once the node holds
	// state, its formation answers are read as a formed list, and one
	// built from the file alone would carry no levels (the other founders
	// then credit everyone but this node at level 1, and the credit is
	// spent at once: founders.go).
	n.formed.set(withLevels(sorted, levels))
	n.logger.Info("forming a new cluster with the expected members", "members", len(servers), "cluster_id", cid)
	// Before bootstrapping: the first level round of this node as leader
	// must find them.
	n.rememberFounders(sorted, levels)
	if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		if errors.Is(err, raft.ErrCantBootstrap) {
			// A founder that formed first and leads already replicated
			// to this one between HasState above and here. Its cluster
			// id is the founders': this node claimed cid before any
			// peer of another cluster could have it adopted
			// (claimClusterID), and such a peer is refused at the
			// handshake since. So this is the configuration formed with
			// this data directory: follow it, and vote.
			n.logger.Info("the founders' cluster reached this node before it bootstrapped its part: following it", "cluster_id", cid)
			n.markRegistered()
			return nil
		}
		n.founders.set(nil, nil)
		n.formed.clear()
		return fmt.Errorf("node: bootstrap: %w", err)
	}
	// A founder votes from the start: its data directory is the one the
	// configuration was formed with.
	n.markRegistered()
	return nil
}

// foundersOf is the founders of list, without their levels.
func foundersOf(list []FounderAt) []Founder {
	out := make([]Founder, len(list))
	for i, f := range list {
		out[i] = f.Founder
	}
	return out
}

// withLevels pairs each founder with its level from levels.
func withLevels(fs []Founder, levels map[string]uint32) []FounderAt {
	out := make([]FounderAt, len(fs))
	for i, f := range fs {
		out[i] = FounderAt{Founder: f, Level: levels[f.ID]}
	}
	return out
}
