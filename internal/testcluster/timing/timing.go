// Package timing is the one Raft timing of every in-process test: the
// nodes that internal/testcluster starts, node's own tests (which cannot
// import testcluster: it imports node) and internal/fuzznode. Tune it
// here, not in a package's tests.
//
// The machine these tests run on has 2 cores shared with other work, and
// the race detector slows everything several times. A node with peers
// needs a heartbeat timeout (which is also its leader lease) long enough
// to ride out a starved moment: at 100, 150 and 200 ms, a 700 KiB write
// under -race starved the followers' heartbeats past their timeout, the
// leader lost its lease and answered "unknown outcome" (resp's
// TestLargeRepliesSpill, every run at 200 ms); at 300 ms it passes.
//
// A cluster of one node has no peer: it elects itself once, no election
// can follow and its lease is always held. Its heartbeat timeout only
// delays its first election (between one and two timeouts), so it runs
// much shorter ones (Solo*), as most single-node tests did before.
package timing

import "time"

const (
	// HeartbeatTimeout is node.Config.HeartbeatTimeout of every node that
	// has or may get peers. The node sets the leader lease (raft's
	// LeaderLeaseTimeout) to the same value.
	HeartbeatTimeout = 300 * time.Millisecond
	// ElectionTimeout is node.Config.ElectionTimeout.
	ElectionTimeout = HeartbeatTimeout

	// SoloHeartbeatTimeout and SoloElectionTimeout are those of a node
	// that stays a cluster of one for its whole life. Never add a member
	// to such a node: its 50 ms lease would make it flap.
	SoloHeartbeatTimeout = 50 * time.Millisecond
	SoloElectionTimeout  = SoloHeartbeatTimeout

	// Snapshots: a test's cluster takes one only when a test writes that
	// much; tests of snapshots set their own, smaller values.
	SnapshotThreshold = 8192             // entries between snapshots
	SnapshotInterval  = 10 * time.Second // how often Raft checks the threshold
	TrailingLogs      = 10240            // entries kept after a snapshot

	// Wait bounds every poll for a Raft condition (a leader, a member,
	// an index applied): generous, so a slow machine makes a test
	// slower, not flaky.
	Wait = 30 * time.Second
	// Poll is how often a wait checks its condition.
	Poll = 5 * time.Millisecond
)
