package node

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Cluster identity. Every cluster has a random id, minted where the
// cluster is formed and kept in every member's data directory
// (DataDir/cluster-id): by the single node that bootstraps (--bootstrap,
// or the no-flag default), or, for --bootstrap-expect, derived by every
// founder from the same sorted list of (id, Raft address, incarnation),
// so all of them compute the same id without talking again. A node that
// joins takes the id of the cluster it joins (from GET /v1/cluster), and
// `raftcache recover` mints a new one. Each Raft connection starts with a
// handshake that carries the dialler's id (stream.go): a node of another
// cluster, or of a re-formed one (a wiped member restarted with
// --bootstrap), is refused there, before Raft decodes a byte, with an
// error in both logs, as etcd checks its cluster id on every peer request.
//
// Why not a replicated value proposed by the first leader: the check must
// hold from the first vote request, before any entry exists, and recovery
// must change the id offline, which a first-write-wins replicated value
// would fight. Deriving it from the incarnations gives the same guarantee
// at formation: a re-formed cluster has new incarnations, so a new id. A
// data directory from before cluster ids has none: its node neither sends
// nor checks one (its cluster gets an id through `raftcache recover`).

// clusterIDFile holds the data directory's cluster id.
const clusterIDFile = "cluster-id"

// ErrOtherCluster: a peer, or the cluster a node was asked to join, is
// another cluster than the one this node's data directory belongs to.
var ErrOtherCluster = errors.New("member of another cluster")

// NewClusterID returns a fresh random cluster id.
func NewClusterID() string {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(raw[:])
}

// Founder is one member of a cluster formed with --bootstrap-expect.
type Founder struct {
	ID          string
	RaftAddr    string
	Incarnation string
}

// FoundersClusterID is the cluster id every founder derives from the same
// list: a hash of the sorted (id, Raft address, incarnation) triples.
func FoundersClusterID(fs []Founder) string {
	sorted := append([]Founder(nil), fs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	h := sha256.New()
	for _, f := range sorted {
		fmt.Fprintf(h, "%q %q %q\n", f.ID, f.RaftAddr, f.Incarnation)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ReadClusterID returns dir's cluster id, "" if it has none.
func ReadClusterID(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, clusterIDFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// WriteClusterID replaces dir's cluster id (atomically, synced, the
// directory too).
func WriteClusterID(dir, id string) error {
	return writeFileSynced(filepath.Join(dir, clusterIDFile), []byte(id+"\n"))
}

// ClusterID is this node's cluster id, "" if it has none yet (a new node
// that has not joined, or a data directory from before cluster ids).
func (n *Node) ClusterID() string {
	if p := n.clusterID.Load(); p != nil {
		return *p
	}
	return ""
}

// claimClusterID records id in the data directory and in memory unless
// the node already holds another one, which it returns with
// ErrOtherCluster. The check and the write are one step under cidMu, so
// that an id a peer's handshake adopted meanwhile (adoptFromPeer) is
// never overwritten by a bootstrap or a formation that checked before it.
func (n *Node) claimClusterID(id string) (string, error) {
	n.cidMu.Lock()
	defer n.cidMu.Unlock()
	switch cur := n.ClusterID(); {
	case cur == id:
		return cur, nil
	case cur != "":
		return cur, ErrOtherCluster
	}
	if err := WriteClusterID(n.cfg.DataDir, id); err != nil {
		return "", fmt.Errorf("node: cluster id: %w", err)
	}
	n.clusterID.Store(&id)
	return id, nil
}

// AdoptClusterID takes the id of the cluster this node is joining: a
// node without one records it; a node of another cluster is refused
// (ErrOtherCluster). An empty id (a cluster from before cluster ids)
// changes nothing.
func (n *Node) AdoptClusterID(id string) error {
	if id == "" || id == n.ClusterID() {
		return nil
	}
	cur, err := n.claimClusterID(id)
	if errors.Is(err, ErrOtherCluster) {
		return fmt.Errorf("%w: this node's data directory belongs to cluster %s, the cluster it was asked to join is %s; empty the data directory to move the node to that cluster",
			ErrOtherCluster, cur, id)
	}
	if err == nil {
		n.logger.Info("joining a cluster: adopting its cluster id", "cluster_id", id)
	}
	return err
}

// adoptFromPeer is the stream's answer to a peer with a cluster id
// dialling this node while it has none: a node without Raft state of its
// own (new, or wiped) is being contacted by the cluster that lists it,
// and takes that cluster's id; a node with state (a data directory from
// before cluster ids) does not.
func (n *Node) adoptFromPeer(id string) string {
	n.cidMu.Lock()
	cur := n.ClusterID()
	n.cidMu.Unlock()
	if cur != "" {
		return cur
	}
	// Only a node that started without Raft state: a data directory from
	// before cluster ids keeps none. (A node that started empty has taken
	// entries only from a leader that dialled it, with this same id, or
	// from a cluster without ids, whose members never send one.)
	if n.existing {
		return ""
	}
	if err := n.AdoptClusterID(id); err != nil {
		n.logger.Warn("adopting the cluster id of the leader that contacts this node", "error", err)
		return n.ClusterID()
	}
	return id
}
