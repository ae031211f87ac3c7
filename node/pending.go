package node

import "github.com/raftcache/raftcache/fsm"

// PENDING MERGE: replaced by the feature-level branch.
func (n *Node) ClusterLevel() uint32 { return fsm.FeatureLevel }
func (n *Node) poisoned() error      { return nil }
