package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftcache/raftcache/internal/testcluster/timing"
	"github.com/raftcache/raftcache/internal/testlog"

	"github.com/raftcache/raftcache/fsm"
)

// These tests are in package node, so they cannot use
// internal/testcluster (which imports node) and keep this small starter;
// their timing is the one every in-process test uses.
const (
	// waitDeadline bounds every poll for a Raft condition; generous, so a
	// slow machine makes a test slower, not flaky.
	waitDeadline = timing.Wait
)

func testLogger(t testing.TB, name string) hclog.Logger {
	return testlog.New(t, name, hclog.Info)
}

// httpAddr is the HTTP address a test node advertises. It is only ever
// replicated, never dialled. AddMember registers the same one, so a new
// leader finds its address registered and appends no command of its own.
func httpAddr(id string) string { return "http-" + id + ".test:80" }

// testConfig is a node config on loopback with its data in a fresh temp dir.
func testConfig(t testing.TB, id string, bootstrap bool) Config {
	return Config{
		ID:                id,
		RaftAddr:          "127.0.0.1:0",
		HTTPAddr:          httpAddr(id),
		DataDir:           t.TempDir(),
		Bootstrap:         bootstrap,
		Logger:            testLogger(t, id),
		HeartbeatTimeout:  timing.HeartbeatTimeout,
		ElectionTimeout:   timing.ElectionTimeout,
		SnapshotThreshold: timing.SnapshotThreshold,
		SnapshotInterval:  timing.SnapshotInterval,
		TrailingLogs:      timing.TrailingLogs,
	}
}

// testNodes are the running test nodes by Raft address, for testProbe.
var testNodes sync.Map

// testProbe is Config.Probe for in-process nodes: the node at m's Raft
// address answers for itself. It reports no level (taken as 1), so a
// test cluster stays at level 1 unless the test gives FetchLevel.
func testProbe(ctx context.Context, m Member) (NodeInfo, error) {
	v, ok := testNodes.Load(m.RaftAddr)
	if !ok {
		return NodeInfo{}, fmt.Errorf("no test node at %s", m.RaftAddr)
	}
	info := v.(*Node).Info()
	info.Level = 0
	return info, nil
}

// startNode starts a node with cfg and closes it when the test ends.
func startNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.ID, err)
	}
	testNodes.Store(n.RaftAddr(), n)
	t.Cleanup(func() {
		testNodes.CompareAndDelete(n.RaftAddr(), n)
		if err := n.Close(); err != nil {
			t.Logf("closing %s: %v", cfg.ID, err)
		}
	})
	return n
}

// waitFor polls cond every few milliseconds until it holds, failing the
// test after waitDeadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitDeadline, what)
		}
		time.Sleep(timing.Poll)
	}
}

// waitForLeader waits until one of nodes leads and may serve strong reads
// (it has applied an entry of its own term), and returns it.
func waitForLeader(t testing.TB, nodes ...*Node) *Node {
	t.Helper()
	var leader *Node
	waitFor(t, "a ready leader", func() bool {
		for _, n := range nodes {
			if n.leaderReady() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// waitForIndex waits until every node's cache reflects all entries up to idx.
func waitForIndex(t testing.TB, idx uint64, nodes ...*Node) {
	t.Helper()
	waitFor(t, fmt.Sprintf("index %d applied on every node", idx), func() bool {
		for _, n := range nodes {
			if !n.applied(idx) {
				return false
			}
		}
		return true
	})
}

// waitForCaughtUp waits until every node has applied everything in the
// leader's log.
func waitForCaughtUp(t testing.TB, leader *Node, nodes ...*Node) {
	t.Helper()
	waitForIndex(t, leader.raft.LastIndex(), nodes...)
}

// newCluster starts size nodes: n1 bootstraps, the others join through
// the leader as voters. It returns once every node has caught up.
func newCluster(t testing.TB, size int, mod func(*Config)) []*Node {
	t.Helper()
	nodes := make([]*Node, size)
	for i := range nodes {
		cfg := testConfig(t, fmt.Sprintf("n%d", i+1), i == 0)
		if mod != nil {
			mod(&cfg)
		}
		nodes[i] = startNode(t, cfg)
		if i == 0 {
			if err := timing.ElectNow(nodes[0].RaftAddr(), nodes[0].ClusterID()); err != nil {
				t.Logf("n1 elects itself after its heartbeat timeout: %v", err)
			}
			waitForLeader(t, nodes[0])
			continue
		}
		join(t, nodes[:i+1], Member{ID: cfg.ID, RaftAddr: nodes[i].RaftAddr(), HTTPAddr: cfg.HTTPAddr, Voter: true, Level: nodes[i].FeatureLevel(),
			Incarnation: nodes[i].Incarnation()})
	}
	waitForCaughtUp(t, waitForLeader(t, nodes...), nodes...)
	// A member votes and may lead only once it has applied the record
	// that registers its data directory (votegate.go): a test that moves
	// leadership before then finds its transfers refused.
	waitFor(t, "every member registered", func() bool {
		for _, n := range nodes {
			if !n.mayVote() {
				return false
			}
		}
		return true
	})
	return nodes
}

// join adds m through whichever of members leads, retrying while
// leadership moves.
func join(t testing.TB, members []*Node, m Member) {
	t.Helper()
	var last error
	waitFor(t, "adding "+m.ID, func() bool {
		leader := waitForLeader(t, members...)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		last = leader.AddMember(ctx, m)
		if last != nil {
			t.Logf("adding %s: %v (retrying)", m.ID, last)
		}
		return last == nil
	})
	if !m.Voter {
		return
	}
	// Learner first: the leader promotes it once it has caught up.
	waitFor(t, m.ID+" promoted to voter", func() bool {
		for _, n := range members {
			if n.IsLeader() {
				st, err := n.MemberState(m.ID)
				return err == nil && st == StateVoter
			}
		}
		return false
	})
}

// others returns nodes without n.
func others(nodes []*Node, n *Node) []*Node {
	var out []*Node
	for _, o := range nodes {
		if o != n {
			out = append(out, o)
		}
	}
	return out
}

// follower returns a node of nodes that is not leader.
func follower(t testing.TB, nodes []*Node) *Node {
	t.Helper()
	for _, n := range nodes {
		if !n.IsLeader() {
			return n
		}
	}
	t.Fatal("no follower")
	return nil
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// mustSet writes key = value on n and fails the test on error.
func mustSet(t testing.TB, n *Node, key, value string) *fsm.Result {
	t.Helper()
	res, err := n.Set(ctxTimeout(t, 10*time.Second), []byte(key), []byte(value), 0)
	if err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
	return res
}

// strongGet reads key linearizably from whichever node serves it, retrying
// while no leader is ready. A miss returns "" and fsm.ErrNotFound.
func strongGet(t testing.TB, nodes []*Node, key string) (ReadResult, error) {
	t.Helper()
	var (
		res ReadResult
		err error
	)
	waitFor(t, "a strong read of "+key, func() bool {
		for _, n := range nodes {
			if !n.IsLeader() {
				continue
			}
			res, err = n.Get(ctxTimeout(t, 5*time.Second), []byte(key), ReadOptions{Consistency: Strong})
			if err == nil || errors.Is(err, fsm.ErrNotFound) {
				return true
			}
		}
		return false
	})
	return res, err
}

// sameState reports whether all nodes hold the same cache at the same index.
func sameState(nodes ...*Node) bool {
	d0, i0 := nodes[0].FSM().Digest()
	for _, n := range nodes[1:] {
		d, i := n.FSM().Digest()
		if d != d0 || i != i0 {
			return false
		}
	}
	return true
}
