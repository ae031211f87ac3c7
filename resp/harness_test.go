package resp_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/resp"
)

const deadline = 20 * time.Second // bound on one connection's exchanges

// testNode is a real node serving the Redis protocol (RESPAddr()) and no
// HTTP API; RESP is its server.
type testNode = testcluster.Node

// waitFor polls cond with the harness's deadline.
var waitFor = testcluster.WaitFor

// startNode starts one node serving the Redis protocol with cfg, in a
// cluster of its own: with bootstrap, a one-node cluster (named n1) that
// serves when startNode returns; without, a node that waits for a
// cluster to add it.
func startNode(t *testing.T, id string, bootstrap bool, cfg resp.Config) *testNode {
	t.Helper()
	if bootstrap {
		return testcluster.Start(t, 1, testcluster.Options{RESP: &cfg}).Leader(t)
	}
	return testcluster.New(t, testcluster.Options{RESP: &cfg}).StartNode(id, false)
}

// serves reports whether n leads, has applied an entry of its term and
// registered its Redis address.
func serves(n *testNode) bool { return n.ServesStrongReads() }

// cluster is three in-process nodes; n1 bootstraps and leads at start.
type cluster struct {
	*testcluster.Cluster
	nodes []*testNode
}

func startCluster(t *testing.T, cfg resp.Config) *cluster {
	t.Helper()
	return startClusterWith(t, func(string) resp.Config { return cfg })
}

// startClusterWith is startCluster with a configuration per node id.
func startClusterWith(t *testing.T, cfg func(id string) resp.Config) *cluster {
	t.Helper()
	c := testcluster.Start(t, 3, testcluster.Options{RESP: &resp.Config{}, Configure: func(id string, nc *testcluster.NodeConfig) {
		rc := cfg(id)
		nc.RESP = &rc
	}})
	return &cluster{Cluster: c, nodes: c.Nodes()}
}

// leader waits until every node knows a serving leader with its Redis
// address, and returns it.
func (c *cluster) leader(t testing.TB) *testNode {
	t.Helper()
	return c.WaitAgreed(t)
}

func (c *cluster) follower(t testing.TB) *testNode {
	t.Helper()
	return c.Followers(c.leader(t))[0]
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
	// flushOK: flush-everything invalidations may arrive at any moment
	// from a follower (rawframes_test.go); expect matches frame by frame.
	flushOK bool
	flushes int // flush-everything invalidations met by expect or nextFrame
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return newRaw(t, nc)
}

// newRaw wraps a connection already dialled (a TLS one, say).
func newRaw(t testing.TB, nc net.Conn) *rawConn {
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(deadline))
	return &rawConn{t: t, nc: nc, rd: bufio.NewReader(nc)}
}

// readBulk reads one bulk string reply.
func (c *rawConn) readBulk() string {
	c.t.Helper()
	hdr := c.expectPrefix("$")
	size, err := strconv.Atoi(strings.TrimSpace(hdr[1:]))
	if err != nil || size < 0 {
		c.t.Fatalf("bulk header %q", hdr)
	}
	b := make([]byte, size+2)
	if _, err := io.ReadFull(c.rd, b); err != nil {
		c.t.Fatal(err)
	}
	return string(b[:size])
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
	if c.flushOK {
		c.expectFrames(want)
		return
	}
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

func ctxT(t testing.TB) context.Context { return testcluster.Ctx(t) }
