package resp_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
	"github.com/raftcache/raftcache/resp"
)

// fakeNode is a cluster member without Raft: a real state machine that
// Exec applies units to at once, always the leader, and errors on demand.
// Tests of parsing, framing and the error table run against it: they
// need no election, and they can see exactly what was proposed.
type fakeNode struct {
	f   *fsm.FSM
	hub *node.Hub

	mu       sync.Mutex
	index    uint64
	proposed [][][]byte // every command Exec received
	execErr  error      // returned by Exec instead of applying
	viewErr  error      // returned by View
}

func newFakeNode() *fakeNode {
	f := fsm.New(nil)
	h := node.NewHub(f)
	go h.Run(nil) // lives as long as the test binary
	return &fakeNode{f: f, hub: h}
}

func (n *fakeNode) Hub() *node.Hub { return n.hub }

func (n *fakeNode) ID() string                  { return "fake" }
func (n *fakeNode) IsLeader() bool              { return true }
func (n *fakeNode) Leader() (node.Member, bool) { return node.Member{ID: "fake"}, true }
func (n *fakeNode) Members() ([]node.Member, error) {
	return []node.Member{{ID: "fake", Voter: true}}, nil
}
func (n *fakeNode) Status() node.Status                      { return node.Status{State: "Leader", HasLeader: true} }
func (n *fakeNode) ReadStats() node.ReadStats                { return node.ReadStats{} }
func (n *fakeNode) MaxMemory() int64                         { return 0 }
func (n *fakeNode) MaxMemoryPolicy() fsm.EvictPolicy         { return fsm.EvictNone }
func (n *fakeNode) MaxValueSize() int64                      { return 1 << 20 }
func (n *fakeNode) LocalView() *fsm.View                     { return n.f.View(time.Now().UnixNano()) }
func (n *fakeNode) AppliedIndex() uint64                     { return n.f.AppliedIndex() }
func (n *fakeNode) WaitForLeader(context.Context) error      { return nil }
func (n *fakeNode) WaitScript(context.Context, string) error { return nil }
func (n *fakeNode) BlockingStats() node.BlockingStats        { return node.BlockingStats{} }
func (n *fakeNode) CountLostPop()                            {}
func (n *fakeNode) ClusterLevel() uint32                     { return fsm.FeatureLevel }

// Block runs a blocking command once, as its non-blocking form: the fake
// has no waiters.
func (n *fakeNode) Block(ctx context.Context, reqID []byte, args [][]byte) (fsm.Reply, error) {
	res, err := n.Exec(ctx, fsm.Unit{ReqID: reqID, Cmds: [][][]byte{args}})
	if err != nil {
		return fsm.Reply{}, err
	}
	return res[0].Replies[0], nil
}

func (n *fakeNode) CheckCommand(args [][]byte) error {
	spec := fsm.Lookup(args[0])
	if spec == nil {
		return &fsm.Error{Code: fsm.ErrUnknownCommand, Msg: fsm.UnknownCommandText(args)}
	}
	if !spec.ArityOK(len(args)) {
		return &fsm.Error{Code: fsm.ErrArity, Msg: "ERR wrong number of arguments for '" + spec.Name + "' command"}
	}
	return nil
}

func (n *fakeNode) View(context.Context, node.ReadOptions) (*fsm.View, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.viewErr != nil {
		return nil, n.viewErr
	}
	return n.LocalView(), nil
}

func (n *fakeNode) Exec(_ context.Context, units ...fsm.Unit) ([]fsm.Result, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range units {
		n.proposed = append(n.proposed, u.Cmds...)
	}
	if n.execErr != nil {
		return nil, n.execErr
	}
	n.index++
	cmd := fsm.Command{Op: fsm.OpExec, Now: time.Now().UnixNano(), Units: units}
	res := n.f.Apply(&raft.Log{Index: n.index, Type: raft.LogCommand, Data: cmd.Encode(nil)}).(*fsm.Result)
	return res.Results, nil
}

func (n *fakeNode) set(execErr, viewErr error) {
	n.mu.Lock()
	n.execErr, n.viewErr, n.proposed = execErr, viewErr, nil
	n.mu.Unlock()
}

func (n *fakeNode) nproposed() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.proposed)
}

// serveFake serves the Redis front for a fake node on a loopback port.
func serveFake(t *testing.T) (*fakeNode, string) {
	t.Helper()
	fake := newFakeNode()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := resp.New(fake, resp.Config{LeaderWait: 100 * time.Millisecond})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return fake, ln.Addr().String()
}

// The front against a fake node: what reaches the node, and how each
// node error is answered on the wire (the error table, end to end).
func TestFrontAgainstFakeNode(t *testing.T) {
	fake, addr := serveFake(t)
	r := dialRaw(t, addr)

	// Refused before anything is proposed: nothing reaches the node.
	r.send(cmd("SET", "k") + cmd("NOPE", "x") + cmd("MULTI") + cmd("SET", "k") + cmd("EXEC"))
	r.expect("-ERR wrong number of arguments for 'set' command\r\n" +
		"-ERR unknown command 'NOPE', with args beginning with: 'x' \r\n" +
		"+OK\r\n-ERR wrong number of arguments for 'set' command\r\n" +
		"-EXECABORT Transaction discarded because of previous errors.\r\n")
	if n := fake.nproposed(); n != 0 {
		t.Fatalf("%d commands reached the node", n)
	}

	// A pipeline of writes is one Exec call, a unit per command, in order.
	r.send(cmd("SET", "k", "1") + cmd("INCR", "k") + cmd("GET", "k"))
	r.expect("+OK\r\n:2\r\n$1\r\n2\r\n")

	for _, tc := range []struct {
		execErr, viewErr error
		send, want       string
	}{
		{node.ErrUnknownOutcome, nil, cmd("SET", "k", "v"), "-UNKNOWN "},
		{node.ErrNoLeader, nil, cmd("INCR", "k"), "-TRYAGAIN "},
		{node.ErrUnavailable, nil, cmd("DEL", "k"), "-TRYAGAIN "},
		{node.ErrTooMany, nil, cmd("MSET", "a", "1"), "-ERR "},
		{node.ErrTooLarge, nil, cmd("SET", "k", "v"), "-OOM "},
		{node.ErrFeatureLevel, nil, cmd("GETDEL", "k"), "-ERR feature level"},
		{node.ErrPoisoned, nil, cmd("SET", "k", "v"), "-TRYAGAIN "},
		{nil, node.ErrTooStale, cmd("GET", "k"), "-TRYAGAIN "},
		{nil, node.ErrIndexTimeout, cmd("MGET", "k"), "-TRYAGAIN "},
		{nil, node.ErrClosed, cmd("EXISTS", "k"), "-TRYAGAIN "},
	} {
		fake.set(tc.execErr, tc.viewErr)
		r.send(tc.send)
		if got := r.expectPrefix(tc.want); got == "" {
			t.Errorf("%q with node error %v/%v: no reply", tc.send, tc.execErr, tc.viewErr)
		}
	}
	fake.set(nil, nil)
	r.send(cmd("PING"))
	r.expect("+PONG\r\n")
}
