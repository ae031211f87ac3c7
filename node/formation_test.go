package node

import "testing"

// TestFormedList: a founder forms its part from a listed member's
// founders list only when the member holds state, the list has every
// founder, hashes to the member's cluster id, names the member as it
// answered and this node exactly as it is (id, Raft address and
// incarnation). The levels are those of the list, with the member's own
// as it answered.
func TestFormedList(t *testing.T) {
	self := Founder{ID: "b", RaftAddr: "10.0.0.2:7000", Incarnation: "ib"}
	fs := []Founder{{"a", "10.0.0.1:7000", "ia"}, {"b", "10.0.0.2:7000", "ib"}, {"c", "10.0.0.3:7000", "ic"}}
	answer := func(mut func(*FormationInfo)) FormationInfo {
		info := FormationInfo{ID: "a", RaftAddr: "10.0.0.1:7000", Incarnation: "ia", HasState: true,
			ClusterID: FoundersClusterID(fs), Level: 7}
		for i, f := range fs {
			info.Founders = append(info.Founders, FounderAt{Founder: f, Level: uint32(4 + i)})
		}
		if mut != nil {
			mut(&info)
		}
		return info
	}
	got, levels, ok := FormedList(self, answer(nil), 3)
	if !ok || FoundersClusterID(got) != FoundersClusterID(fs) {
		t.Fatalf("a good list refused: %v %v", got, ok)
	}
	if levels["a"] != 7 || levels["b"] != 5 || levels["c"] != 6 {
		t.Fatalf("levels %v: want the member's answer for a, the list's for the rest", levels)
	}
	refused := map[string]func(*FormationInfo){
		"no state":              func(i *FormationInfo) { i.HasState = false },
		"no list":               func(i *FormationInfo) { i.Founders = nil },
		"fewer founders":        func(i *FormationInfo) { i.Founders = i.Founders[:2] },
		"another cluster id":    func(i *FormationInfo) { i.ClusterID = "0123" },
		"no cluster id":         func(i *FormationInfo) { i.ClusterID = "" },
		"this node's old data":  func(i *FormationInfo) { i.Founders[1].Incarnation = "old" },
		"this node's old addr":  func(i *FormationInfo) { i.Founders[1].RaftAddr = "10.0.0.9:7000" },
		"member not as listed":  func(i *FormationInfo) { i.Incarnation = "ia2" },
		"member's addr changed": func(i *FormationInfo) { i.RaftAddr = "10.0.0.8:7000" },
	}
	for what, mut := range refused {
		info := answer(mut)
		if what == "this node's old data" || what == "this node's old addr" {
			// Keep the hash consistent with the altered list, so that only
			// the check on this node's entry can refuse it.
			var alt []Founder
			for _, f := range info.Founders {
				alt = append(alt, f.Founder)
			}
			info.ClusterID = FoundersClusterID(alt)
		}
		if _, _, ok := FormedList(self, info, 3); ok {
			t.Errorf("%s: the list was taken", what)
		}
	}
	if _, _, ok := FormedList(self, answer(nil), 4); ok {
		t.Errorf("a list of 3 taken where 4 founders are expected")
	}
}
