// Package timing is the one Raft timing of every in-process test: the
// nodes that internal/testcluster starts, node's own tests (which cannot
// import testcluster: it imports node) and internal/fuzznode. Tune it
// here, not in a package's tests.
//
// The machine these tests run on has 2 cores shared with other work, and
// the race detector slows everything several times. Shorter timeouts made
// leaders flap (elections every few hundred milliseconds, a 3-node cluster
// once spent 20 s electing); longer ones make every cluster start and
// every failover test slower: a bootstrapped node waits between one and
// two heartbeat timeouts before its first election.
package timing

import "time"

const (
	// HeartbeatTimeout is node.Config.HeartbeatTimeout. The node sets the
	// leader lease (raft's LeaderLeaseTimeout) to the same value.
	HeartbeatTimeout = 150 * time.Millisecond
	// ElectionTimeout is node.Config.ElectionTimeout.
	ElectionTimeout = HeartbeatTimeout

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
