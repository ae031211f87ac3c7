package cli

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/internal/testlog"
	"github.com/raftcache/raftcache/node"
	"github.com/raftcache/raftcache/transport"
)

// TestLevelFetcher: what the leader learns of a member through GET
// /v1/node: a member's own level, 1 from a binary that answers 404 (from
// before levels), and an error (unknown) for anything else.
func TestLevelFetcher(t *testing.T) {
	fetch := levelFetcher(false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	tn := newTestCluster(t, 1).leader()
	if l, err := fetch(ctx, node.Member{ID: "n1", HTTPAddr: tn.HTTPAddr()}); err != nil || l != fsm.FeatureLevel {
		t.Fatalf("a current node: level %d, %v; want %d", l, err, fsm.FeatureLevel)
	}

	old := httptest.NewServer(http.NotFoundHandler())
	defer old.Close()
	if l, err := fetch(ctx, node.Member{ID: "old", HTTPAddr: old.Listener.Addr().String()}); err != nil || l != 1 {
		t.Fatalf("a node from before levels (404): level %d, %v; want 1", l, err)
	}

	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer broken.Close()
	if _, err := fetch(ctx, node.Member{ID: "broken", HTTPAddr: broken.Listener.Addr().String()}); !errors.Is(err, errLevelUnknown) {
		t.Fatalf("a 503: %v, want errLevelUnknown", err)
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	addr := gone.Listener.Addr().String()
	gone.Close()
	if _, err := fetch(ctx, node.Member{ID: "gone", HTTPAddr: addr}); err == nil {
		t.Fatal("an unreachable member has a level")
	}
	if _, err := fetch(ctx, node.Member{ID: "new"}); !errors.Is(err, errNoHTTPAddr) {
		t.Fatalf("a member without an HTTP address: %v", err)
	}
}

// TestJoinBelowLevelGivesUp: a node whose binary is older than the
// cluster's level is refused (409 feature_level); joinCluster stops
// retrying at once and says why in one error line.
func TestJoinBelowLevelGivesUp(t *testing.T) {
	// n1 asks members for their level over HTTP, as `raftcache node` does.
	tn := testcluster.Start(t, 1, testcluster.Options{HTTP: &transport.Config{}, Configure: func(_ string, c *testcluster.NodeConfig) {
		c.Node.FetchLevel = levelFetcher(false, nil)
	}}).Leader(t)
	// Alone, n1 is every member: it raises the cluster to its own level.
	waitFor(t, "n1 at cluster level 2", func() bool { return tn.IsLeader() && tn.ClusterLevel() == fsm.FeatureLevel })

	var logs testlog.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	self := client.Member{ID: "old", RaftAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2", FeatureLevel: 1}
	done := make(chan struct{})
	go func() {
		joinCluster(ctx, logger, []string{tn.URL}, client.Config{}, self, false, func() bool { return true }, func(string) error { return nil })
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("joinCluster kept retrying a join refused for its level")
	}
	out := logs.String()
	if !strings.Contains(out, "[ERROR]") || !strings.Contains(out, "feature level") || !strings.Contains(out, "feature_level=1") {
		t.Fatalf("log: %s", out)
	}
	if ms, _ := tn.Members(); len(ms) != 1 {
		t.Fatalf("members after a refused join: %+v", ms)
	}
}

// TestJoinRequestOmitsLevelBelowTwo: a leader from before levels refuses
// JSON fields it does not know, so the level and incarnation are sent only
// to a cluster at level 2 or above (which refuses nothing it sent before).
func TestJoinRequestOmitsLevelBelowTwo(t *testing.T) {
	self := client.Member{ID: "n4", RaftAddr: "h:1", HTTPAddr: "h:2", FeatureLevel: 2, Incarnation: "abc"}
	for _, tc := range []struct {
		cluster uint32
		want    client.Member
	}{
		{0, client.Member{ID: "n4", RaftAddr: "h:1", HTTPAddr: "h:2"}}, // an old node answered
		{1, client.Member{ID: "n4", RaftAddr: "h:1", HTTPAddr: "h:2"}},
		{2, self},
	} {
		if got := joinRequest(self, &client.Cluster{ClusterFeatureLevel: tc.cluster}); got != tc.want {
			t.Errorf("cluster level %d: %+v, want %+v", tc.cluster, got, tc.want)
		}
	}
}
