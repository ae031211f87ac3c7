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
	"encoding/binary"
	"errors"
	"io"
	"net"
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
// leader, it would start a needless election. clusterID is the node's
// cluster id ("" for none): a node with one accepts Raft connections
// only after the cluster handshake (node/stream.go), which this sends.
func ElectNow(raftAddr, clusterID string) error {
	stream := &helloStream{cluster: clusterID}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	stream.Listener = ln
	trans := raft.NewNetworkTransport(stream, 1, 5*time.Second, io.Discard)
	defer trans.Close()
	return trans.TimeoutNow("", raft.ServerAddress(raftAddr), &raft.TimeoutNowRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, Addr: []byte(trans.LocalAddr())},
	}, &raft.TimeoutNowResponse{})
}

// helloStream dials with the cluster handshake of node/stream.go: "RCHI\x01",
// then the cluster id and a member id as uvarint-length-prefixed strings;
// the answer is a status byte (0: accepted) and the acceptor's two
// strings. (node's tests import this package, so it cannot import node.)
type helloStream struct {
	net.Listener
	cluster string
}

func (s *helloStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil || s.cluster == "" {
		return c, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	msg := []byte("RCHI\x01")
	for _, str := range []string{s.cluster, "timing.ElectNow"} {
		msg = binary.AppendUvarint(msg, uint64(len(str)))
		msg = append(msg, str...)
	}
	var status [1]byte
	if _, err := c.Write(msg); err == nil {
		_, err = io.ReadFull(c, status[:])
	}
	if err == nil && status[0] == 0 {
		// The acceptor's cluster id and member id follow.
		err = skipStr(c)
		if err == nil {
			err = skipStr(c)
		}
	} else if err == nil {
		err = errors.New("the raft handshake was refused")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func skipStr(c net.Conn) error {
	var b [1]byte
	var n uint64
	for shift := 0; ; shift += 7 {
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return err
		}
		n |= uint64(b[0]&0x7f) << shift
		if b[0] < 0x80 {
			break
		}
	}
	_, err := io.CopyN(io.Discard, c, int64(n))
	return err
}
