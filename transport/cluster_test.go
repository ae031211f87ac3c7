package transport_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

type clusterBody struct {
	NodeID string `json:"node_id"`
	State  string `json:"state"`
	Leader *struct {
		ID       string `json:"id"`
		HTTPAddr string `json:"http_addr"`
		RaftAddr string `json:"raft_addr"`
	} `json:"leader"`
	Term         *uint64 `json:"term"`
	CommitIndex  *uint64 `json:"commit_index"`
	AppliedIndex *uint64 `json:"applied_index"`
	Members      []struct {
		ID       string `json:"id"`
		HTTPAddr string `json:"http_addr"`
		RaftAddr string `json:"raft_addr"`
		Voter    *bool  `json:"voter"`
	} `json:"members"`
}

func cluster(t *testing.T, n *testNode) clusterBody {
	t.Helper()
	r := do(t, http.MethodGet, n.URL+"/v1/cluster", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/cluster = %s", r)
	}
	var c clusterBody
	decodeJSON(t, r, &c)
	return c
}

func TestHealthEndpoints(t *testing.T) {
	n := startLeader(t)
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		if r := do(t, m, n.URL+"/livez", nil); r.status != http.StatusOK {
			t.Errorf("%s /livez = %s", m, r)
		}
		if r := do(t, m, n.URL+"/readyz", nil); r.status != http.StatusOK {
			t.Errorf("%s /readyz on the ready leader = %s", m, r)
		}
	}
}

func TestClusterShape(t *testing.T) {
	n := startLeader(t)
	w := put(t, n, "k", "v", "")
	c := cluster(t, n)
	if c.NodeID != "n1" || c.State != "Leader" {
		t.Errorf("node_id %q state %q", c.NodeID, c.State)
	}
	if c.Leader == nil || c.Leader.ID != "n1" || c.Leader.HTTPAddr != n.HTTPAddr() || c.Leader.RaftAddr != n.RaftAddr() {
		t.Errorf("leader = %+v, want n1 at %s / %s", c.Leader, n.HTTPAddr(), n.RaftAddr())
	}
	if c.Term == nil || *c.Term == 0 || c.CommitIndex == nil || *c.CommitIndex < w.Index ||
		c.AppliedIndex == nil || *c.AppliedIndex < w.Index {
		t.Errorf("term/commit/applied = %v/%v/%v, want non-zero and past the write at %d", c.Term, c.CommitIndex, c.AppliedIndex, w.Index)
	}
	if len(c.Members) != 1 {
		t.Fatalf("members = %+v, want exactly n1", c.Members)
	}
	m := c.Members[0]
	if m.ID != "n1" || m.HTTPAddr != n.HTTPAddr() || m.RaftAddr != n.RaftAddr() || m.Voter == nil || !*m.Voter {
		t.Errorf("member = %+v", m)
	}
}

func TestStats(t *testing.T) {
	n := startLeader(t)
	s0 := stats(t, n)
	put(t, n, "a", "1", "")
	put(t, n, "b", "2", "")
	s1 := stats(t, n)
	if *s1.Keys != *s0.Keys+2 || s1.Digest == s0.Digest || s1.NodeID != "n1" || s1.AppliedIndex <= s0.AppliedIndex {
		t.Errorf("stats before %+v, after two writes %+v", s0, s1)
	}
	// The digest describes contents, not history: an overwrite with the
	// same value still changes it (the version is part of an item).
	put(t, n, "a", "1", "")
	if s2 := stats(t, n); s2.Digest == s1.Digest || *s2.Keys != *s1.Keys {
		t.Errorf("overwrite: stats %+v, before %+v", s2, s1)
	}
	dg, _ := n.FSM().Digest()
	if s := stats(t, n); s.Digest != dg {
		t.Errorf("/v1/stats digest %s, FSM digest %s", s.Digest, dg)
	}
}

// TestStaleReadIndexTimeout: a stale read waiting for an index the leader
// has not reached gives up with 504 index_timeout instead of hanging (and
// the leader does not redirect to itself).
func TestStaleReadIndexTimeout(t *testing.T) {
	n := startLeader(t)
	w := put(t, n, "k", "v", "")
	start := time.Now()
	r := do(t, http.MethodGet, n.URL+"/v1/kv/k?consistency=stale&min_index=1000000000", nil)
	elapsed := time.Since(start)
	wantError(t, "min_index in the future", r, http.StatusGatewayTimeout, "index_timeout")
	if r.header.Get("Location") != "" {
		t.Errorf("the leader redirected to %q", r.header.Get("Location"))
	}
	t.Logf("index_timeout after %v", elapsed)
	if elapsed > deadline {
		t.Errorf("index_timeout took %v", elapsed)
	}

	// The write's own index is reachable: served, with the read's index
	// at or past it and the leader's contact time (0).
	idx := strconv.FormatUint(w.Index, 10)
	ok := do(t, http.MethodGet, n.URL+"/v1/kv/k?consistency=stale&min_index="+idx, nil)
	if ok.status != 200 || string(ok.body) != "v" || ok.header.Get("X-Last-Contact") != "0" {
		t.Errorf("stale read at index %s = %s, headers %v", idx, ok, ok.header)
	}
	if got, _ := strconv.ParseUint(ok.header.Get("X-Raft-Index"), 10, 64); got < w.Index {
		t.Errorf("stale read X-Raft-Index %q, before the write's %d", ok.header.Get("X-Raft-Index"), w.Index)
	}
}
