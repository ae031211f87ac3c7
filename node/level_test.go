package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/internal/testlog"
)

// liveLevels is a FetchLevel that asks the running test nodes directly
// (a node missing from the table is unreachable), with overrides for a
// member that reports something else, and counts the questions per
// member, so a test can wait for whole rounds.
type liveLevels struct {
	mu       sync.Mutex
	nodes    map[string]*Node
	override map[string]uint32
	asked    map[string]int
}

var errUnreachable = errors.New("unreachable")

func newLiveLevels() *liveLevels {
	return &liveLevels{nodes: map[string]*Node{}, override: map[string]uint32{}, asked: map[string]int{}}
}

func (f *liveLevels) fetch(ctx context.Context, m Member) (uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked[m.ID]++
	if l, ok := f.override[m.ID]; ok {
		return l, nil
	}
	n := f.nodes[m.ID]
	if n == nil {
		return 0, errUnreachable
	}
	return n.FeatureLevel(), nil
}

func (f *liveLevels) set(id string, n *Node) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes[id] = n
}

func (f *liveLevels) report(id string, l uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l == 0 {
		delete(f.override, id)
	} else {
		f.override[id] = l
	}
}

func (f *liveLevels) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[id]
}

// rounds waits until every id but the leader's (it does not ask itself)
// was asked twice more than now: the round that was running has
// finished, and a whole round ran after the change.
func (f *liveLevels) rounds(t *testing.T, leader *Node, all ...string) {
	t.Helper()
	var ids []string
	start := map[string]int{}
	for _, id := range all {
		if id != leader.ID() {
			ids = append(ids, id)
			start[id] = f.count(id)
		}
	}
	waitFor(t, "two rounds of level checks", func() bool {
		for _, id := range ids {
			if f.count(id) < start[id]+2 {
				return false
			}
		}
		return true
	})
}

func levelsEverywhere(nodes []*Node, l uint32) bool {
	for _, n := range nodes {
		if n.ClusterLevel() != l {
			return false
		}
	}
	return true
}

// upgrade restarts n on its data dir as a binary of level l.
func upgrade(t *testing.T, live *liveLevels, n *Node, l uint32) *Node {
	t.Helper()
	cfg := n.cfg
	cfg.FeatureLevel = l
	live.set(n.ID(), nil)
	n = restart(t, n, cfg)
	live.set(n.ID(), n)
	return n
}

// TestRollingUpgradeRaisesLevel: a cluster of level-1 binaries (two voters
// and a non-voter) is upgraded one node at a time. The leader asks every
// server, the non-voter included, and raises the level only when every
// one answered at least 2; it never lowers it; joins below it are
// refused; and from level 2 on members are recorded with OpMember.
func TestRollingUpgradeRaisesLevel(t *testing.T) {
	live := newLiveLevels()
	mod := func(c *Config) {
		c.FetchLevel = live.fetch
		c.levelInterval = 20 * time.Millisecond
		c.FeatureLevel = 1
	}
	nodes := newCluster(t, 2, mod)
	cfg := testConfig(t, "n3", false)
	mod(&cfg)
	n3 := startNode(t, cfg)
	join(t, nodes, Member{ID: "n3", RaftAddr: n3.RaftAddr(), HTTPAddr: cfg.HTTPAddr, Level: n3.FeatureLevel()}) // a non-voter
	nodes = append(nodes, n3)
	for _, n := range nodes {
		live.set(n.ID(), n)
	}
	waitForCaughtUp(t, waitForLeader(t, nodes...), nodes...)
	if m, _ := memberOf(t, nodes[0], "n3"); m.Voter {
		t.Fatal("setup: n3 should be a non-voter")
	}
	mustSet(t, waitForLeader(t, nodes...), "k", "1")

	// Upgrade the voters: the non-voter still runs level 1, so the
	// cluster stays at 1.
	nodes[0] = upgrade(t, live, nodes[0], 2)
	waitForCaughtUp(t, waitForLeader(t, nodes...), nodes...)
	nodes[1] = upgrade(t, live, nodes[1], 2)
	leader := waitForLeader(t, nodes...)
	waitForCaughtUp(t, leader, nodes...)
	live.rounds(t, leader, "n1", "n2", "n3")
	if !levelsEverywhere(nodes, 1) {
		t.Fatal("the level rose with a level-1 non-voter")
	}
	if err := leader.RequireLevel(2); !errors.Is(err, ErrFeatureLevel) || !strings.Contains(err.Error(), "feature level 1") {
		t.Fatalf("RequireLevel(2) at level 1: %v", err)
	}
	if m, _ := memberOf(t, leader, "n3"); m.Level != 1 {
		t.Fatalf("the leader's view of n3's level: %+v", m)
	}
	// n3 down for its upgrade: unheard of, so still 1.
	if err := n3.Close(); err != nil {
		t.Fatal(err)
	}
	live.set("n3", nil)
	live.rounds(t, leader, "n1", "n2", "n3")
	if l := leader.ClusterLevel(); l != 1 {
		t.Fatalf("cluster level %d with a member unheard of", l)
	}
	// Back on level 2: every node applies level 2.
	cfg3 := n3.cfg
	cfg3.FeatureLevel = 2
	n3 = restart(t, n3, cfg3)
	live.set("n3", n3)
	nodes[2] = n3
	waitFor(t, "cluster level 2 on every node", func() bool { return levelsEverywhere(nodes, 2) })
	leader = waitForLeader(t, nodes...)
	if err := leader.RequireLevel(2); err != nil {
		t.Fatalf("RequireLevel(2) at level 2: %v", err)
	}
	// From level 2 on, the records carry each member's level, and the
	// leader's its incarnation.
	waitFor(t, "level-2 records for every member", func() bool {
		for _, n := range nodes {
			for _, id := range []string{"n1", "n2", "n3"} {
				if rec, ok := n.FSM().Member(id); !ok || rec.Level != 2 {
					return false
				}
			}
			if rec, _ := n.FSM().Member(leader.ID()); rec.Incarnation != leader.Incarnation() {
				return false
			}
		}
		return true
	})
	for _, n := range nodes {
		if m, ok := memberOf(t, n, leader.ID()); !ok || m.HTTPAddr != httpAddr(leader.ID()) || m.Addrs[fsm.AddrHTTP] != m.HTTPAddr || m.Level != 2 {
			t.Fatalf("the leader as %s sees it: %+v", n.ID(), m)
		}
	}

	// Never down: a member now reporting 1 changes nothing.
	live.report("n3", 1)
	live.rounds(t, leader, "n1", "n2", "n3")
	if !levelsEverywhere(nodes, 2) {
		t.Fatal("the cluster level went down")
	}
	live.report("n3", 0)

	// A join below the level is refused before anything changes.
	ctx := ctxTimeout(t, 20*time.Second)
	for _, l := range []uint32{0, 1} {
		err := leader.AddMember(ctx, Member{ID: "old", RaftAddr: "127.0.0.1:1", HTTPAddr: httpAddr("old"), Level: l})
		if !errors.Is(err, ErrFeatureLevel) || !strings.Contains(err.Error(), "level 2") {
			t.Fatalf("join at level %d: %v, want ErrFeatureLevel", l, err)
		}
	}
	if _, ok := memberOf(t, leader, "old"); ok {
		t.Fatal("a refused member was added")
	}
	// At the level, it joins, with its full record.
	cfg4 := testConfig(t, "n4", false)
	cfg4.FeatureLevel = 2 // the level the others were upgraded to
	n4 := startNode(t, cfg4)
	live.set("n4", n4)
	join(t, nodes, Member{ID: "n4", RaftAddr: n4.RaftAddr(), HTTPAddr: cfg4.HTTPAddr, RESPAddr: "resp-n4.test:6379",
		Addrs: map[string]string{"grpc": "grpc-n4.test:1"}, Incarnation: n4.Incarnation(), Level: 2, Voter: true})
	nodes = append(nodes, n4)
	want := fsm.Member{ID: "n4", Addrs: map[string]string{fsm.AddrHTTP: cfg4.HTTPAddr, fsm.AddrRedis: "resp-n4.test:6379", "grpc": "grpc-n4.test:1"},
		Incarnation: n4.Incarnation(), Level: 2}
	waitFor(t, "n4's record on every node", func() bool {
		for _, n := range nodes {
			if rec, ok := n.FSM().Member("n4"); !ok || fmt.Sprint(rec) != fmt.Sprint(want) {
				return false
			}
		}
		return true
	})
	if m, _ := memberOf(t, n4, "n4"); m.RESPAddr != "resp-n4.test:6379" || m.Incarnation == "" {
		t.Fatalf("n4 as it sees itself: %+v", m)
	}
	if r, err := strongGet(t, nodes, "k"); err != nil || string(r.Value) != "1" {
		t.Fatalf("the data across the upgrade: %q %v", r.Value, err)
	}
}

// TestPoisonedNodeStopsWithoutHanging: a member that meets an entry it
// cannot apply (n3 plays a level-1 binary and the cluster moves to level
// 2) stops applying, refuses reads and backups, shuts its Raft down, and
// says once which entry stopped it; the others go on serving.
func TestPoisonedNodeStopsWithoutHanging(t *testing.T) {
	logs := &testlog.Buffer{}
	nodes := newCluster(t, 3, func(c *Config) {
		if c.ID == "n3" {
			c.FeatureLevel = 1
			c.Logger = hclog.New(&hclog.LoggerOptions{Name: "n3", Output: logs, Level: hclog.Info})
		}
	})
	n3 := nodes[2]
	if n3.FeatureLevel() != 1 {
		t.Fatalf("setup: n3 is at level %d", n3.FeatureLevel())
	}
	leader := waitForLeader(t, nodes...)
	if leader == n3 {
		if err := n3.TransferLeadership("n1"); err != nil {
			t.Fatal(err)
		}
		leader = waitForLeader(t, nodes[:2]...)
	}
	mustSet(t, leader, "before", "1")
	waitForCaughtUp(t, leader, nodes...)

	// What the level loop would do if n3 had reported level 2.
	res, err := leader.propose(ctxTimeout(t, 10*time.Second), &fsm.Command{Op: fsm.OpClusterLevel, Level: 2})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n3 poisoned and its raft shut down", func() bool {
		return n3.Poisoned() != nil && n3.raft.State() == raft.Shutdown
	})
	err = n3.Poisoned()
	if !errors.Is(err, ErrPoisoned) || !errors.Is(err, fsm.ErrPoisoned) || !strings.Contains(err.Error(), fmt.Sprintf("entry %d ", res.Index)) {
		t.Fatalf("Poisoned() = %v, want ErrPoisoned naming entry %d", err, res.Index)
	}
	if n3.Ready() {
		t.Fatal("a poisoned node says it is ready")
	}
	if _, err := n3.Get(ctxTimeout(t, 5*time.Second), []byte("before"), ReadOptions{Consistency: Stale}); !errors.Is(err, ErrPoisoned) {
		t.Fatalf("stale read on the poisoned node: %v", err)
	}
	if _, err := n3.View(ctxTimeout(t, 5*time.Second), ReadOptions{Consistency: Stale, MinIndex: res.Index + 100}); !errors.Is(err, ErrPoisoned) {
		t.Fatalf("a read waiting for a later index on the poisoned node: %v", err)
	}
	if err := n3.Backup(ctxTimeout(t, 5*time.Second), &bytes.Buffer{}); !errors.Is(err, ErrPoisoned) {
		t.Fatalf("backup on the poisoned node: %v", err)
	}
	if n3.ClusterLevel() != 1 {
		t.Fatalf("the poisoned node applied the level: %d", n3.ClusterLevel())
	}

	// The others applied the level and keep serving, with n3 gone.
	survivors := nodes[:2]
	waitFor(t, "cluster level 2 on n1 and n2", func() bool { return levelsEverywhere(survivors, 2) })
	mustSet(t, waitForLeader(t, survivors...), "after", "2")
	if r, err := strongGet(t, survivors, "after"); err != nil || string(r.Value) != "2" {
		t.Fatalf("strong read after n3 stopped: %q %v", r.Value, err)
	}

	// Exactly one error line, naming the index and the op.
	var errLines []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "[ERROR]") && strings.Contains(line, "cannot apply") {
			errLines = append(errLines, line)
		}
	}
	if len(errLines) != 1 || !strings.Contains(errLines[0], fmt.Sprintf("index=%d", res.Index)) || !strings.Contains(errLines[0], "op=cluster-level") {
		t.Fatalf("error lines about the entry: %q", errLines)
	}

	// Closing it does not hang.
	closed := make(chan error, 1)
	go func() { closed <- n3.Close() }()
	select {
	case <-closed:
	case <-time.After(waitDeadline):
		t.Fatal("closing the poisoned node hangs")
	}
}

func TestIncarnationIsKeptInTheDataDir(t *testing.T) {
	dir := t.TempDir()
	a, err := loadIncarnation(dir)
	if err != nil || len(a) != 32 {
		t.Fatalf("first: %q %v", a, err)
	}
	b, err := loadIncarnation(dir)
	if err != nil || b != a {
		t.Fatalf("second: %q %v, want %q", b, err, a)
	}
	if c, _ := loadIncarnation(t.TempDir()); c == a {
		t.Fatal("two data dirs share an incarnation")
	}
}
