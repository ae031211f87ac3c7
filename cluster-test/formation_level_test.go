package clustertest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/raftcache/raftcache/fsm"
)

// TestFormationLevelWithAFounderKilled is the README's quick start as a
// new user met it: three founders formed with --bootstrap-expect 3, and
// one (not the leader) killed as soon as a leader is named, before the
// leader's level round could hear from it. The two left reach this
// binary's feature level anyway (the dead founder counts at the level it
// reported in the formation exchange); before, they stayed at level 1,
// refusing hashes, sets, lists and streams, until it came back.
func TestFormationLevelWithAFounderKilled(t *testing.T) {
	c, _ := newFormationCluster(t)
	var leaderID string
	Eventually(t, "a leader named", func() error {
		for _, n := range c.Nodes {
			if v, err := n.View(); err == nil && v.Leader != nil {
				leaderID = v.Leader.ID
				return nil
			}
		}
		return errors.New("no node names a leader yet")
	})
	var victim *Node
	for _, n := range c.Nodes {
		if n.ID != leaderID {
			victim = n
			break
		}
	}
	victim.Kill()
	Eventually(t, fmt.Sprintf("cluster feature level %d on the founders left", fsm.FeatureLevel), func() error {
		for _, n := range c.Nodes {
			if n == victim {
				continue
			}
			var v struct {
				Level uint32 `json:"cluster_feature_level"`
			}
			if err := n.getJSON("/v1/cluster", &v); err != nil {
				return err
			}
			if v.Level != fsm.FeatureLevel {
				return fmt.Errorf("%s: cluster level %d", n.ID, v.Level)
			}
		}
		return nil
	})
}
