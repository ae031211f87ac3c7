package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/internal/testlog"
	"github.com/raftcache/raftcache/node"
	"github.com/raftcache/raftcache/transport"
)

// TestFormationCarriesLevels: three nodes behind real HTTP servers run
// formCluster (--bootstrap-expect 3) with each other's URLs. No member
// answers the leader's level question until one follower founder is
// stopped; the cluster still reaches this binary's level, because the
// founders passed each other's levels from GET /v1/cluster/formation to
// Form. Without them every founder would count as level 1. And the
// founders' own registrations, which race that early raise, are not
// logged as refused for their level.
func TestFormationCarriesLevels(t *testing.T) {
	var answer atomic.Bool
	c := testcluster.New(t, testcluster.Options{HTTP: &transport.Config{}, Configure: func(_ string, nc *testcluster.NodeConfig) {
		nc.Node.FetchLevel = func(context.Context, node.Member) (uint32, error) {
			if !answer.Load() {
				return 0, errors.New("not answering yet")
			}
			return fsm.FeatureLevel, nil
		}
	}})
	var nodes []*tnode
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, c.StartNode(fmt.Sprintf("n%d", i), false))
	}
	urls := c.URLs()
	var logs testlog.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the founders' formation logs:\n%s", logs.String())
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, n := range nodes {
		self := client.Member{ID: n.ID(), RaftAddr: n.RaftAddr(), HTTPAddr: n.HTTPAddr(), FeatureLevel: n.FeatureLevel(), Incarnation: n.Incarnation()}
		logger := hclog.New(&hclog.LoggerOptions{Name: n.ID() + ".form", Output: &logs, Level: hclog.Info})
		wg.Add(1)
		go func() {
			defer wg.Done()
			formCluster(ctx, logger, n.Node, urls, client.Config{}, self, false)
		}()
	}
	leader := c.Leader(t)
	gone := c.Followers(leader)[0]
	gone.Stop()
	answer.Store(true)
	waitFor(t, fmt.Sprintf("cluster level %d with a founder stopped right after formation", fsm.FeatureLevel), func() bool {
		for _, n := range c.Running() {
			if n.ClusterLevel() != fsm.FeatureLevel {
				return false
			}
		}
		return true
	})
	if ms, err := leader.Members(); err != nil || len(ms) != 3 {
		t.Fatalf("members: %+v %v", ms, err)
	}
	waitFor(t, "the founders left registered", func() bool {
		return strings.Count(logs.String(), "joined the cluster") >= 2
	})
	if out := logs.String(); strings.Contains(out, "feature level too low") {
		t.Fatalf("a founder's registration was refused for its level:\n%s", out)
	}
}

// TestFounderLevelsFromOldPeers: a member whose formation answer has no
// feature_level (a binary from before it was reported) counts as 0, which
// Form takes as level 1.
func TestFounderLevelsFromOldPeers(t *testing.T) {
	var old, cur formationJSON
	if err := json.Unmarshal([]byte(`{"id":"a","raft_addr":"a:1","incarnation":"ia","has_state":false,"cluster_id":""}`), &old); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(`{"id":"b","raft_addr":"b:1","incarnation":"ib","has_state":false,"cluster_id":"","feature_level":3}`), &cur); err != nil {
		t.Fatal(err)
	}
	got := founderLevels([]formationJSON{old, cur})
	if len(got) != 2 || got["a"] != 0 || got["b"] != 3 {
		t.Fatalf("founderLevels = %v, want a:0 (level 1) b:3", got)
	}
}
