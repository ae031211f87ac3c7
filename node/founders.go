package node

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Founders' credit. A cluster formed with --bootstrap-expect starts at
// feature level 1, and the leader raises it only once every member
// answered its level round (level.go). A founder that dies a moment after
// formation, before any round heard from it, would hold the whole cluster
// at level 1 until it returns. But the founders told each other their
// binaries' levels seconds earlier, in the formation exchange (GET
// /v1/cluster/formation, FormationInfo.Level): for a founder that does not
// answer, the leader counts the level it reported there, as long as
// nothing shows the member is another one: same id, same Raft address,
// and no sign of another incarnation (a probe answer, a join request or a
// record naming another one, or a removal, all seen by this node; below
// level 2 a join request names none, so there a replaced founder shows
// itself through the leader's probe). A member that joined later has no
// such credit, and holds the level as the documented rule says.
//
// Why this is safe: the founder reported that binary seconds earlier. If
// an operator swapped in an older binary on the same data directory
// meanwhile, that node stops at the first entry it cannot apply (it is
// poisoned: it shuts its Raft down and serves nothing, losing nothing,
// until it runs a binary of the level again), as any node that goes back
// to a binary older than the cluster's level does.
//
// The credit lives in memory only, on each node that called Form (at
// least a majority of the founders do, so a leader elected among them
// usually has it; a founder that only followed has none). A restarted
// node falls back to the documented rule. Persisting it would stretch
// "seconds earlier" to any time later, and the signs of a new incarnation
// this node saw are in memory too. It serves one purpose, reaching the
// founders' common level after formation: once the cluster is at that
// level it is dropped.

// founderCredit holds the founders' formation-reported levels.
type founderCredit struct {
	mu     sync.Mutex
	byID   map[string]FounderAt // nil: none, or spent
	common uint32               // the lowest founder level
}

// set records the founders Form bootstrapped with; levels maps an id to
// the level it reported (absent or 0: a binary that reports none, 1).
func (c *founderCredit) set(founders []Founder, levels map[string]uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byID, c.common = nil, 0
	if len(founders) == 0 {
		return
	}
	c.byID = make(map[string]FounderAt, len(founders))
	for _, f := range founders {
		l := max(levels[f.ID], 1)
		c.byID[f.ID] = FounderAt{Founder: f, Level: l}
		if c.common == 0 || l < c.common {
			c.common = l
		}
	}
}

// revoke takes id's credit away: it may not be the founder any more.
func (c *founderCredit) revoke(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byID[id]; !ok {
		return false
	}
	delete(c.byID, id)
	return true
}

// incarnation is the founder id's incarnation as formed, "" if id has no
// credit.
func (c *founderCredit) incarnation(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byID[id].Incarnation
}

// level returns the level m may be credited with while the cluster is
// at level cur: m is a founder with credit, at its formation Raft
// address, whose recorded incarnation (if any) is the formation one, and
// the cluster is below the founders' common level (at or past it, the
// credit is spent and dropped). A level m reported since (m.Level, from
// its record or the leader's last round) is newer news, so the lower one
// counts.
func (c *founderCredit) level(m Member, cur uint32) (uint32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID == nil {
		return 0, false
	}
	if cur >= c.common {
		c.byID = nil
		return 0, false
	}
	f, ok := c.byID[m.ID]
	if !ok || m.RaftAddr != f.RaftAddr || (m.Incarnation != "" && m.Incarnation != f.Incarnation) {
		return 0, false
	}
	if m.Level != 0 {
		return min(f.Level, m.Level), true
	}
	return f.Level, true
}

// rememberFounders keeps the founders' levels on a node that formed.
func (n *Node) rememberFounders(founders []Founder, levels map[string]uint32) {
	n.founders.set(founders, levels)
	var ls []string
	for _, f := range founders {
		ls = append(ls, fmt.Sprintf("%s=%d", f.ID, max(levels[f.ID], 1)))
	}
	sort.Strings(ls)
	n.logger.Debug("founders' feature levels as reported at formation", "levels", strings.Join(ls, ","))
}

// heardFrom notes that member id showed itself as incarnation inc, in
// a probe answer or a join request (how): another incarnation than the
// formation one ends id's credit. "" tells nothing: a probe through
// FetchLevel alone names none, and neither does a join request sent to a
// cluster below level 2 (cli's joinRequest), which is what every founder
// sends right after formation; a replaced founder there shows itself
// through the leader's next probe (GET /v1/node names the incarnation).
func (n *Node) heardFrom(id, inc, how string) {
	if inc == "" {
		return
	}
	if f := n.founders.incarnation(id); f != "" && f != inc && n.founders.revoke(id) {
		n.logger.Info("a founder's id shows another data directory than the one it formed with: no formation credit for its level",
			"member", id, "formed_incarnation", f, "incarnation", inc, "seen_in", how)
	}
}
