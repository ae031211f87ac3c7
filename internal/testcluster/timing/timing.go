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
// TestLargeRepliesSpill, every run at 200 ms). 300 ms is what resp's
// tests had settled on; it passes almost always. No timeout is immune:
// under -race on a busy machine, stalls of 800 ms were seen, and a
// longer timeout slows every failover test; a test that cannot tolerate
// a leader change must retry, not lean on the timing.
//
// That timing alone would make every cluster start slow: a bootstrapped
// node waits between one and two heartbeat timeouts before its first
// election. ElectNow skips that wait, so a cluster starts faster than
// with the 50 ms some packages used before.
package timing

import (
	"io"
	"time"

	"github.com/hashicorp/raft"
)

const (
	// HeartbeatTimeout is node.Config.HeartbeatTimeout. The node sets the
	// leader lease (raft's LeaderLeaseTimeout) to the same value.
	HeartbeatTimeout = 300 * time.Millisecond
	// ElectionTimeout is node.Config.ElectionTimeout.
	ElectionTimeout = HeartbeatTimeout

	// Snapshots: a test's cluster takes one only when a test writes that
	// much; tests of snapshots set their own, smaller values.
	SnapshotThreshold = 8192             // entries between snapshots
	SnapshotInterval  = 10 * time.Second // how often Raft checks the threshold
	TrailingLogs      = 10240            // entries kept after a snapshot

	// PromoteAfter is how long a caught-up learner must stay caught up
	// before the leader promotes it (node.Config.PromoteAfter): short, so
	// that a test's members are voters soon after they join.
	PromoteAfter = 250 * time.Millisecond

	// Wait bounds every poll for a Raft condition (a leader, a member,
	// an index applied): generous, so a slow machine makes a test
	// slower, not flaky.
	Wait = 30 * time.Second
	// Poll is how often a wait checks its condition.
	Poll = 5 * time.Millisecond
)

// ElectNow asks the Raft member at raftAddr, which must not have a leader
// (a node that has just bootstrapped a new cluster), to stand for
// election at once instead of after its heartbeat timeout: it sends the
// TimeoutNow RPC of Raft's leadership transfer. A node that is alone in
// its configuration then leads within milliseconds. Sent to a node with a
// leader, it would start a needless election.
func ElectNow(raftAddr string) error {
	trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 5*time.Second, io.Discard)
	if err != nil {
		return err
	}
	defer trans.Close()
	return trans.TimeoutNow("", raft.ServerAddress(raftAddr), &raft.TimeoutNowRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, Addr: []byte(trans.LocalAddr())},
	}, &raft.TimeoutNowResponse{})
}
