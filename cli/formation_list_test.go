package cli

import (
	"encoding/json"
	"testing"

	"github.com/raftcache/raftcache/node"
)

// TestListToForm: a founder forms its part from a member's founders list
// only from an answer that passes node.FormedList, and not at all while
// another answer of the same round holds another cluster's state (the
// usual decision then joins that cluster); members that did not answer
// (nil) are skipped.
func TestListToForm(t *testing.T) {
	fs := []node.Founder{{ID: "a", RaftAddr: "10.0.0.1:7000", Incarnation: "ia"},
		{ID: "b", RaftAddr: "10.0.0.2:7000", Incarnation: "ib"}, {ID: "c", RaftAddr: "10.0.0.3:7000", Incarnation: "ic"}}
	cid := node.FoundersClusterID(fs)
	// answer decodes an answer as GET /v1/cluster/formation sends it.
	answer := func(js string) *formationJSON {
		var a formationJSON
		if err := json.Unmarshal([]byte(js), &a); err != nil {
			t.Fatal(err)
		}
		return &a
	}
	list := `[{"id":"a","raft_addr":"10.0.0.1:7000","incarnation":"ia","feature_level":6},` +
		`{"id":"b","raft_addr":"10.0.0.2:7000","incarnation":"ib"},{"id":"c","raft_addr":"10.0.0.3:7000","incarnation":"ic"}]`
	formedA := answer(`{"id":"a","raft_addr":"10.0.0.1:7000","incarnation":"ia","has_state":true,"cluster_id":"` + cid + `","feature_level":7,"founders":` + list + `}`)
	oldA := answer(`{"id":"a","raft_addr":"10.0.0.1:7000","incarnation":"ia","has_state":true,"cluster_id":"` + cid + `","feature_level":7}`)
	freshB := answer(`{"id":"b","raft_addr":"10.0.0.2:7000","incarnation":"ib","has_state":false}`)
	foreignC := answer(`{"id":"c","raft_addr":"10.0.0.3:7000","incarnation":"ic2","has_state":true,"cluster_id":"0123"}`)
	me := fs[1]

	got, levels, from := listToForm(me, []*formationJSON{formedA, freshB, nil}, 3)
	if from != formedA || node.FoundersClusterID(got) != cid || levels["a"] != 7 || levels["b"] != 0 {
		t.Fatalf("from %v, list %v, levels %v: want A's list with A's answered level", from, got, levels)
	}
	if _, _, from := listToForm(me, []*formationJSON{formedA, freshB, foreignC}, 3); from != nil {
		t.Fatalf("a list taken while %s holds another cluster's state", foreignC.ID)
	}
	if _, _, from := listToForm(me, []*formationJSON{oldA, freshB, nil}, 3); from != nil {
		t.Fatal("a list taken from an answer that carries none (an older binary)")
	}
	stranger := node.Founder{ID: "b", RaftAddr: "10.0.0.2:7000", Incarnation: "ib-wiped"}
	if _, _, from := listToForm(stranger, []*formationJSON{formedA, freshB, nil}, 3); from != nil {
		t.Fatal("a list taken by a founder whose data directory it does not name")
	}
	if _, _, from := listToForm(me, []*formationJSON{nil, nil, nil}, 3); from != nil {
		t.Fatal("a list from no answer")
	}
}
