package resp

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

// followerNode is a follower without Raft whose leader is a fake
// (startFakeLeader): what the Redis front relays, and what it answers
// when the leader's answer never comes, can be seen exactly.
type followerNode struct {
	f      *fsm.FSM
	hub    *node.Hub
	leader atomic.Pointer[node.Member]
}

func newFollowerNode(leaderAddr string) *followerNode {
	f := fsm.New(nil)
	h := node.NewHub(f)
	go h.Run(nil) // lives as long as the test binary
	n := &followerNode{f: f, hub: h}
	n.leader.Store(&node.Member{ID: "n1", RESPAddr: leaderAddr})
	return n
}

func (n *followerNode) ID() string                       { return "n2" }
func (n *followerNode) IsLeader() bool                   { return false }
func (n *followerNode) Leader() (node.Member, bool)      { return *n.leader.Load(), true }
func (n *followerNode) Members() ([]node.Member, error)  { return nil, nil }
func (n *followerNode) Status() node.Status              { return node.Status{State: "Follower", HasLeader: true} }
func (n *followerNode) ReadStats() node.ReadStats        { return node.ReadStats{} }
func (n *followerNode) MaxMemory() int64                 { return 0 }
func (n *followerNode) MaxMemoryPolicy() fsm.EvictPolicy { return fsm.EvictNone }
func (n *followerNode) MaxValueSize() int64              { return 1 << 20 }
func (n *followerNode) CheckCommand([][]byte) error      { return nil }
func (n *followerNode) View(context.Context, node.ReadOptions) (*fsm.View, error) {
	return nil, node.ErrNotLeader
}
func (n *followerNode) LocalView() *fsm.View { return n.f.View(time.Now().UnixNano()) }
func (n *followerNode) Exec(context.Context, ...fsm.Unit) ([]fsm.Result, error) {
	return nil, node.ErrNotLeader
}
func (n *followerNode) WaitForLeader(context.Context) error      { return nil }
func (n *followerNode) WaitScript(context.Context, string) error { return nil }
func (n *followerNode) Hub() *node.Hub                           { return n.hub }
func (n *followerNode) Block(context.Context, []byte, [][]byte) (fsm.Reply, error) {
	return fsm.Reply{}, node.ErrNotLeader
}
func (n *followerNode) BlockingStats() node.BlockingStats { return node.BlockingStats{} }
func (n *followerNode) CountLostPop()                     {}
func (n *followerNode) ClusterLevel() uint32              { return fsm.FeatureLevel }
func (n *followerNode) AppliedIndex() uint64              { return 1 }

// A PUBLISH or CONFIG SET that reached the leader, whose answer was lost
// (the leader dropped the connection after reading it, each time), may
// have been carried out: the follower answers UNKNOWN, not TRYAGAIN ("not
// applied", which go-redis retries by itself: a message delivered twice).
// A CONFIG SET, which carries no request id, is not sent again either:
// resent later, it could undo another client's acknowledged one.
func TestRelayedEffectWithoutAnswerIsUnknown(t *testing.T) {
	var publishes, configs atomic.Int32
	leader := startFakeLeader(t, func(fc *fakeConn, args [][]byte) []byte {
		switch name := strings.ToLower(string(args[0])); {
		case name == "config":
			configs.Add(1)
		case name == "publish" || strings.HasPrefix(name, "raftcache.publish"):
			publishes.Add(1)
		default:
			return []byte("+OK\r\n") // the relay's own handshake
		}
		fc.nc.Close() // read, maybe carried out, never answered
		return nil
	})
	ask := serveFollower(t, newFollowerNode(leader.addr()), Config{Timeout: time.Second, LeaderWait: time.Second})
	if got := ask("*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$1\r\nm\r\n"); !strings.HasPrefix(got, "-UNKNOWN") || publishes.Load() == 0 {
		t.Fatalf("PUBLISH read by the leader, never answered: %q after %d sends; want -UNKNOWN", got, publishes.Load())
	}
	if got := ask("*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$22\r\nnotify-keyspace-events\r\n$2\r\nKA\r\n"); !strings.HasPrefix(got, "-UNKNOWN") || configs.Load() != 1 {
		t.Fatalf("CONFIG SET read by the leader, never answered: %q after %d sends; want -UNKNOWN after 1", got, configs.Load())
	}
}

// serveFollower serves the Redis front of n and returns a function that
// sends one frame on a client connection and reads a line of the answer.
func serveFollower(t *testing.T, n Node, cfg Config) (ask func(frame string) string) {
	s := New(n, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	rd := bufio.NewReader(nc)
	return func(frame string) string {
		t.Helper()
		if _, err := nc.Write([]byte(frame)); err != nil {
			t.Fatal(err)
		}
		_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return line
	}
}

// A leader that goes silent without closing its connections (a
// partition, a power cut) with a write in flight; another leads a moment
// later. The follower sends the write again, under its request id, to the
// new leader at once, and the client gets its reply, as if nothing
// happened (it waited for the old leader's connection until the call's
// deadline, past the window for sending it again, and got UNKNOWN).
func TestRelayResendsToNewLeaderWhenOldGoesSilent(t *testing.T) {
	release := make(chan struct{})
	silent := startFakeLeader(t, func(fc *fakeConn, args [][]byte) []byte {
		if strings.EqualFold(string(args[0]), onceCmd) {
			<-release // never answers while the test runs
			return nil
		}
		return []byte("+OK\r\n")
	})
	t.Cleanup(func() { close(release) })
	var resent atomic.Int32
	good := startFakeLeader(t, func(fc *fakeConn, args [][]byte) []byte {
		if strings.EqualFold(string(args[0]), onceCmd) {
			resent.Add(1)
		}
		return []byte("+OK\r\n")
	})
	n := newFollowerNode(silent.addr())
	// Timeout 5 s: the shared call's deadline is 10 s, past the 5 s window
	// in which a write under a request id is sent again.
	ask := serveFollower(t, n, Config{Timeout: 5 * time.Second, LeaderWait: time.Second})
	go func() {
		time.Sleep(300 * time.Millisecond)
		n.leader.Store(&node.Member{ID: "n3", RESPAddr: good.addr()})
	}()
	if got := ask("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"); got != "+OK\r\n" || resent.Load() == 0 {
		t.Fatalf("SET with its leader gone silent and a new one known: %q, %d sends to the new leader; want +OK after one", got, resent.Load())
	}
}
