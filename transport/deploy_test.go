package transport_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestFormationVersionsAndAdvertised covers issue 15's HTTP side: the
// formation endpoint a --bootstrap-expect founder asks, the build in
// /v1/node, /v1/cluster and /metrics, and the refusal of a wildcard
// address in a member record.
func TestFormationVersionsAndAdvertised(t *testing.T) {
	n := startLeader(t)

	r := do(t, http.MethodGet, n.URL+"/v1/cluster/formation", nil)
	var f struct {
		ID          string `json:"id"`
		RaftAddr    string `json:"raft_addr"`
		Incarnation string `json:"incarnation"`
		HasState    *bool  `json:"has_state"`
		ClusterID   string `json:"cluster_id"`
		// The founders count each other at this level right after
		// formation (node/founders.go).
		FeatureLevel uint32 `json:"feature_level"`
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/cluster/formation = %s", r)
	}
	decodeJSON(t, r, &f)
	if f.ID != n.ID() || f.RaftAddr != n.RaftAddr() || f.Incarnation != n.Incarnation() || f.HasState == nil || !*f.HasState ||
		f.ClusterID == "" || f.ClusterID != n.ClusterID() || f.FeatureLevel != n.FeatureLevel() {
		t.Fatalf("GET /v1/cluster/formation = %s", r)
	}

	var v struct {
		ClusterID string `json:"cluster_id"`
		Version   string `json:"version"`
		Members   []struct {
			Version string `json:"version"`
		} `json:"members"`
	}
	r = do(t, http.MethodGet, n.URL+"/v1/cluster", nil)
	decodeJSON(t, r, &v)
	if v.ClusterID != f.ClusterID || v.Version == "" || len(v.Members) != 1 || v.Members[0].Version == "" {
		t.Fatalf("GET /v1/cluster = %s", r)
	}
	var nj struct {
		Version   string `json:"version"`
		ClusterID string `json:"cluster_id"`
	}
	r = do(t, http.MethodGet, n.URL+"/v1/node", nil)
	decodeJSON(t, r, &nj)
	if nj.Version == "" || nj.ClusterID != f.ClusterID {
		t.Fatalf("GET /v1/node = %s", r)
	}
	r = do(t, http.MethodGet, n.URL+"/metrics", nil)
	if !strings.Contains(string(r.body), "raftcache_build_info{") {
		t.Fatalf("/metrics has no raftcache_build_info")
	}

	for _, body := range []string{
		`{"id":"x","raft_addr":"0.0.0.0:9000","http_addr":"10.0.0.9:8000","feature_level":2}`,
		`{"id":"x","raft_addr":"10.0.0.9:9000","http_addr":"[::]:8000","feature_level":2}`,
	} {
		r = do(t, http.MethodPost, n.URL+"/v1/cluster/members", strings.NewReader(body))
		wantError(t, "a wildcard address in "+body, r, http.StatusBadRequest, "bad_member")
	}
}
