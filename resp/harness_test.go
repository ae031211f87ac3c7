package resp_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftcache/raftcache/internal/testlog"
	"github.com/redis/go-redis/v9"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
	"github.com/raftcache/raftcache/resp"
)

const deadline = 20 * time.Second // generous bound for any wait on Raft

// raftTimeout is the heartbeat and election timeout of test nodes: short
// for quick tests, long enough that a busy 2-core machine (other test
// binaries, other work) does not cause spurious elections mid-test.
const raftTimeout = 300 * time.Millisecond

// testNode is a real node (Raft on loopback, bolt files in t.TempDir())
// serving the Redis protocol.
type testNode struct {
	*node.Node
	srv  *resp.Server
	addr string // RESP address
}

func testLogger(t testing.TB, name string) hclog.Logger {
	return testlog.New(t, name, hclog.Warn)
}

func startNode(t *testing.T, id string, bootstrap bool, cfg resp.Config, nodeCfg ...func(*node.Config)) *testNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger := testLogger(t, id)
	ncfg := node.Config{
		ID:               id,
		RaftAddr:         "127.0.0.1:0",
		HTTPAddr:         "127.0.0.1:1", // no HTTP front in these tests
		RESPAddr:         ln.Addr().String(),
		DataDir:          t.TempDir(),
		Bootstrap:        bootstrap,
		Logger:           logger,
		HeartbeatTimeout: raftTimeout,
		ElectionTimeout:  raftTimeout,
		// Every member runs this binary: the cluster reaches this
		// binary's feature level, where transactions run in the engine.
		FetchLevel: func(context.Context, node.Member) (uint32, error) { return fsm.FeatureLevel, nil },
	}
	for _, f := range nodeCfg {
		f(&ncfg)
	}
	n, err := node.New(ncfg)
	if err != nil {
		ln.Close()
		t.Fatalf("node.New(%s): %v", id, err)
	}
	t.Cleanup(func() { n.Close() })
	cfg.Logger = logger
	srv := resp.New(n, cfg)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() { // runs before the node closes
		srv.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve(%s): %v", id, err)
		}
	})
	return &testNode{Node: n, srv: srv, addr: ln.Addr().String()}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitForState(t, what, cond, nil)
}

// waitForState is waitFor that reports state() when it gives up.
func waitForState(t testing.TB, what string, cond func() bool, state func() string) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(deadline)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			s := ""
			if state != nil {
				s = ": " + state()
			}
			t.Fatalf("timed out after %v waiting for %s%s", deadline, what, s)
		}
	}
}

// serves reports whether n leads, has applied an entry of its term and
// registered its Redis address.
func serves(n *testNode) bool {
	if !n.IsLeader() || n.FSM().MemberRESPAddr(n.ID()) != n.addr || n.ClusterLevel() < fsm.FeatureLevel {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := n.View(ctx, node.ReadOptions{})
	return err == nil
}

// cluster is three in-process nodes; nodes[0] bootstraps and leads at start.
type cluster struct {
	nodes []*testNode
}

func startCluster(t *testing.T, cfg resp.Config) *cluster {
	t.Helper()
	return startClusterWith(t, func(string) resp.Config { return cfg })
}

// startClusterWith is startCluster with a configuration per node id.
func startClusterWith(t *testing.T, cfg func(id string) resp.Config) *cluster {
	t.Helper()
	c := &cluster{nodes: []*testNode{startNode(t, "n1", true, cfg("n1"))}}
	waitFor(t, "n1 to lead", func() bool { return serves(c.nodes[0]) })
	for _, id := range []string{"n2", "n3"} {
		n := startNode(t, id, false, cfg(id))
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		err := c.nodes[0].AddMember(ctx, node.Member{ID: id, RaftAddr: n.RaftAddr(), HTTPAddr: n.HTTPAddr(), RESPAddr: n.addr, Voter: true, Level: n.FeatureLevel()})
		cancel()
		if err != nil {
			t.Fatalf("adding %s: %v", id, err)
		}
		c.nodes = append(c.nodes, n)
	}
	c.waitAgreed(t)
	return c
}

// waitAgreed waits until every node knows the leader with its Redis
// address and has applied the leader's commit index.
func (c *cluster) waitAgreed(t testing.TB) *testNode {
	t.Helper()
	var leader *testNode
	waitForState(t, "a serving leader every node knows", func() bool {
		leader = nil
		for _, n := range c.nodes {
			if serves(n) {
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		for _, n := range c.nodes {
			m, ok := n.Leader()
			if !ok || m.ID != leader.ID() || m.RESPAddr != leader.addr || !n.Ready() {
				return false
			}
		}
		return true
	}, func() string {
		var b strings.Builder
		for _, n := range c.nodes {
			fmt.Fprintf(&b, "\n%s: %+v serves=%v", n.ID(), n.Status(), serves(n))
		}
		return b.String()
	})
	return leader
}

func (c *cluster) leader(t testing.TB) *testNode {
	t.Helper()
	return c.waitAgreed(t)
}

func (c *cluster) follower(t testing.TB) *testNode {
	t.Helper()
	l := c.leader(t)
	for _, n := range c.nodes {
		if n != l {
			return n
		}
	}
	t.Fatal("no follower")
	return nil
}

// client is a go-redis client of one node; proto 2 or 3.
func client(t testing.TB, addr string, proto int) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, Protocol: proto, DialTimeout: 5 * time.Second,
		ReadTimeout: 15 * time.Second, WriteTimeout: 15 * time.Second, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// rawConn is a plain TCP connection for byte-exact checks.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	rd *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(deadline))
	return &rawConn{t: t, nc: nc, rd: bufio.NewReader(nc)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads exactly len(want) bytes and compares them.
func (c *rawConn) expect(want string) {
	c.t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c.rd, got); err != nil {
		c.t.Fatalf("reading %q: got %q, %v", want, got, err)
	}
	if string(got) != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
}

// cmd encodes a command as a RESP array of bulk strings.
func cmd(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}
