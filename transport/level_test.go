package transport_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

type levelBody struct {
	FeatureLevel        *uint32 `json:"feature_level"`
	ClusterFeatureLevel *uint32 `json:"cluster_feature_level"`
	Members             []struct {
		ID           string            `json:"id"`
		FeatureLevel *uint32           `json:"feature_level"`
		Incarnation  string            `json:"incarnation"`
		Addrs        map[string]string `json:"addrs"`
		Voter        bool              `json:"voter"`
	} `json:"members"`
}

func levels(t *testing.T, n *testNode) levelBody {
	t.Helper()
	r := do(t, http.MethodGet, n.URL+"/v1/cluster", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/cluster = %s", r)
	}
	var b levelBody
	decodeJSON(t, r, &b)
	if b.FeatureLevel == nil || b.ClusterFeatureLevel == nil {
		t.Fatalf("GET /v1/cluster without levels: %s", r)
	}
	return b
}

func TestNodeEndpoint(t *testing.T) {
	n := startNodeWith(t, "n1", true, func(c *node.Config) { c.FetchLevel, c.Probe = nil, nil })
	waitFor(t, "n1 to serve", n.ServesStrongReads)
	r := do(t, http.MethodGet, n.URL+"/v1/node", nil)
	var b struct {
		ID           string  `json:"id"`
		FeatureLevel *uint32 `json:"feature_level"`
		Incarnation  string  `json:"incarnation"`
		State        string  `json:"state"`
		AppliedIndex *uint64 `json:"applied_index"`
		Removed      *string `json:"removed"`
		Registered   *bool   `json:"registered"`
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/node = %s", r)
	}
	decodeJSON(t, r, &b)
	if b.ID != "n1" || b.FeatureLevel == nil || *b.FeatureLevel != fsm.FeatureLevel || b.Incarnation != n.Incarnation() || b.Incarnation == "" ||
		b.State != "Leader" || b.AppliedIndex == nil || *b.AppliedIndex == 0 || b.Removed != nil || b.Registered == nil || !*b.Registered {
		t.Fatalf("GET /v1/node = %s", r)
	}
	// Without FetchLevel the leader never raises the level: the cluster
	// stays at 1, and the member list shows each member's level.
	c := levels(t, n)
	if *c.FeatureLevel != fsm.FeatureLevel || *c.ClusterFeatureLevel != 1 || len(c.Members) != 1 ||
		c.Members[0].FeatureLevel == nil || *c.Members[0].FeatureLevel != fsm.FeatureLevel {
		t.Fatalf("levels in /v1/cluster: %+v", c)
	}
}

// TestJoinBelowLevelRefused: once the cluster is at the newest level (a
// one-node cluster raises it at once), a join that
// reports a lower level, or none, is refused with 409 feature_level.
func TestJoinBelowLevelRefused(t *testing.T) {
	n := startNodeWith(t, "n1", true, func(c *node.Config) {
		c.FetchLevel = func(context.Context, node.Member) (uint32, error) { return 0, errors.New("no other member to ask") }
	})
	waitFor(t, "n1 to serve at the newest cluster level", func() bool { return n.ServesStrongReads() && n.ClusterLevel() == fsm.FeatureLevel })
	for _, body := range []string{
		`{"id":"old","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2","voter":false}`,
		`{"id":"old","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2","voter":false,"feature_level":1}`,
	} {
		r := do(t, http.MethodPost, n.URL+"/v1/cluster/members", strings.NewReader(body), "Content-Type", "application/json")
		wantError(t, "join below the level", r, http.StatusConflict, "feature_level")
		if !strings.Contains(string(r.body), fmt.Sprintf("level %d", fsm.FeatureLevel)) {
			t.Errorf("the refusal does not name the level: %s", r)
		}
	}
	if c := levels(t, n); len(c.Members) != 1 {
		t.Fatalf("a refused member was added: %+v", c.Members)
	}
	// At the level it joins (a non-voter: the address is not real), with
	// its named addresses and incarnation recorded.
	body := `{"id":"new","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2","resp_addr":"127.0.0.1:3","voter":false,` +
		fmt.Sprintf(`"feature_level":%d,"incarnation":"abc123","addrs":{"grpc":"127.0.0.1:4"}}`, fsm.FeatureLevel)
	if r := do(t, http.MethodPost, n.URL+"/v1/cluster/members", strings.NewReader(body), "Content-Type", "application/json"); r.status != http.StatusOK {
		t.Fatalf("join at the level = %s", r)
	}
	c := levels(t, n)
	if *c.ClusterFeatureLevel != fsm.FeatureLevel {
		t.Fatalf("cluster level %d", *c.ClusterFeatureLevel)
	}
	found := false
	for _, m := range c.Members {
		if m.ID != "new" {
			continue
		}
		found = true
		want := map[string]string{"http": "127.0.0.1:2", "redis": "127.0.0.1:3", "grpc": "127.0.0.1:4"}
		if *m.FeatureLevel != fsm.FeatureLevel || m.Incarnation != "abc123" || len(m.Addrs) != 3 || m.Addrs["grpc"] != want["grpc"] || m.Addrs["redis"] != want["redis"] {
			t.Fatalf("the new member: %+v", m)
		}
	}
	if !found {
		t.Fatalf("the new member is missing: %+v", c.Members)
	}
	bad := fmt.Sprintf(`{"id":"x","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2","voter":false,"feature_level":%d,"addrs":{"grpc":"nope"}}`, fsm.FeatureLevel)
	r := do(t, http.MethodPost, n.URL+"/v1/cluster/members", strings.NewReader(bad), "Content-Type", "application/json")
	wantError(t, "a named address that is not host:port", r, http.StatusBadRequest, "bad_member")
}

// TestPoisonedNodeProbes: a member whose binary cannot apply an entry (n2
// runs as level 1; n1 was told, wrongly, that n2 runs level 2, and raised
// the cluster's level) stays alive but not ready, says why, and refuses
// reads.
func TestPoisonedNodeProbes(t *testing.T) {
	liar := func(c *node.Config) {
		c.FetchLevel = func(context.Context, node.Member) (uint32, error) { return 2, nil }
	}
	n1 := startNodeWith(t, "n1", true, func(c *node.Config) {
		liar(c)
		c.FeatureLevel = 2
	})
	waitFor(t, "n1 to serve", func() bool { return n1.ServesStrongReads() })
	put(t, n1, "k", "v", "")
	n2 := startNodeWith(t, "n2", false, func(c *node.Config) { c.FeatureLevel = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	// A non-voter, so n1 keeps its quorum when n2 stops.
	if err := n1.AddMember(ctx, node.Member{ID: "n2", RaftAddr: n2.RaftAddr(), HTTPAddr: n2.HTTPAddr(), Level: 2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n2 poisoned", func() bool { return n2.Poisoned() != nil })

	if r := do(t, http.MethodGet, n2.URL+"/livez", nil); r.status != http.StatusOK {
		t.Errorf("/livez on the poisoned node = %s", r)
	}
	r := do(t, http.MethodGet, n2.URL+"/readyz", nil)
	wantError(t, "/readyz on the poisoned node", r, http.StatusServiceUnavailable, "poisoned")
	if !strings.Contains(string(r.body), "op cluster-level") || !strings.Contains(string(r.body), "entry ") {
		t.Errorf("/readyz does not name the entry: %s", r)
	}
	r = do(t, http.MethodGet, n2.URL+"/v1/kv/k?consistency=stale", nil)
	wantError(t, "a stale read on the poisoned node", r, http.StatusServiceUnavailable, "poisoned")
	if n1.ClusterLevel() != 2 {
		t.Errorf("n1 at cluster level %d", n1.ClusterLevel())
	}
	if r := do(t, http.MethodGet, n1.URL+"/v1/kv/k", nil); r.status != http.StatusOK || string(r.body) != "v" {
		t.Errorf("a strong read on n1 = %s", r)
	}
}
