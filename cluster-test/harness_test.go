// Package clustertest runs real raftcache clusters: the binary is built
// once, and every node is a separate OS process with its own bolt files,
// so kill -9, SIGSTOP and restarts are the real thing.
package clustertest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the raftcache executable built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "raftcache-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "raftcache")
	build := exec.Command("go", "build", "-o", binary, "..")
	// Static (no cgo), so the container test can put this very binary
	// in its FROM-scratch image instead of building another.
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building raftcache:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Timings shared by cluster tests: short enough for quick failover, long
// enough that a busy 2-core machine does not cause spurious elections.
const (
	heartbeat = 500 * time.Millisecond
	deadline  = 30 * time.Second // generous bound for any wait on the cluster
	// promoteAfter is how long a caught-up learner waits for its vote.
	promoteAfter = 250 * time.Millisecond
)

// Node is one raftcache process.
type Node struct {
	ID            string
	HTTPAddr      string // 127.0.0.1:port
	RaftAddr      string // bind address
	RaftAdvertise string // what others dial; RaftAddr unless a proxy stands in front
	DataDir       string
	Args          []string // extra flags, e.g. --snapshot-threshold
	// TLS, if set, says the node serves HTTPS (its Args carry --tls-cert
	// and --tls-key): URL is https, and the harness's own requests (views,
	// stats, readiness, Put, Request) use TLS as their client side.
	TLS *tls.Config
	// Token, if set, is the bearer token of the harness's own requests;
	// Put needs the write role, the rest read.
	Token string
	// Binary, if set, is the raftcache executable to run instead of the
	// one TestMain built (an earlier release, for upgrade tests).
	Binary string

	t       testing.TB
	logPath string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	clients [2]*http.Client // TLS clients: not following, following redirects
}

// URL is the node's base HTTP URL (https when n.TLS is set).
func (n *Node) URL() string {
	if n.TLS != nil {
		return "https://" + n.HTTPAddr
	}
	return "http://" + n.HTTPAddr
}

// client is plainClient, or followClient if follow, with n.TLS.
func (n *Node) client(follow bool) *http.Client {
	if n.TLS == nil {
		if follow {
			return followClient
		}
		return plainClient
	}
	i := 0
	if follow {
		i = 1
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.clients[i] == nil {
		base := plainClient
		if follow {
			base = followClient
		}
		hc := *base
		hc.Transport = &http.Transport{TLSClientConfig: n.TLS.Clone(), MaxIdleConnsPerHost: 4}
		n.clients[i] = &hc
	}
	return n.clients[i]
}

// Request sends one request to n (path and query, e.g. /v1/kv/k) with
// token as the bearer token ("" for none), without following redirects.
func (n *Node) Request(ctx context.Context, method, path, token string, body []byte) (*Response, error) {
	return doAuth(ctx, n.client(false), method, n.URL()+path, token, body)
}

// getJSON is GET path on n with n's client and token.
func (n *Node) getJSON(path string, out any) error {
	r, err := n.Request(context.Background(), http.MethodGet, path, n.Token, nil)
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", n.URL()+path, r.Status, r.Body)
	}
	return json.Unmarshal(r.Body, out)
}

// Start launches the process; join lists members to join through (empty
// means bootstrap).
func (n *Node) Start(join ...string) {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	args := []string{"node", "--id", n.ID, "--http-addr", n.HTTPAddr, "--raft-addr", n.RaftAddr,
		"--data-dir", n.DataDir, "--log-level", "debug",
		"--raft-heartbeat-timeout", heartbeat.String(), "--raft-election-timeout", heartbeat.String()}
	if n.RaftAdvertise != "" && n.RaftAdvertise != n.RaftAddr {
		args = append(args, "--raft-advertise", n.RaftAdvertise)
	}
	if n.Binary == "" {
		// Promote learners quickly: tests wait for every member to vote.
		args = append(args, "--promote-after", promoteAfter.String())
	}
	if len(join) == 0 {
		args = append(args, "--bootstrap")
	} else {
		args = append(args, "--join", strings.Join(join, ","))
	}
	args = append(args, n.Args...)
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	bin := binary
	if n.Binary != "" {
		bin = n.Binary
	}
	fmt.Fprintf(logf, "=== start %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.t.Fatalf("start %s: %v", n.ID, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
	n.cmd, n.exited = cmd, exited
}

// Running reports whether the process is alive (paused counts as alive).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// signal sends sig and, for terminating signals, waits for the exit.
func (n *Node) signal(sig syscall.Signal, wait bool) {
	n.t.Helper()
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if !wait {
		return
	}
	select {
	case <-exited:
	case <-time.After(deadline):
		_ = cmd.Process.Kill()
		<-exited
		n.t.Errorf("%s did not exit within %v after %v", n.ID, deadline, sig)
	}
}

// Kill is kill -9: no clean shutdown, the bolt files are left as they are.
func (n *Node) Kill() { n.signal(syscall.SIGCONT, false); n.signal(syscall.SIGKILL, true) }

// Stop is SIGTERM and a wait for a clean exit.
func (n *Node) Stop() { n.signal(syscall.SIGTERM, true) }

// Pause freezes the process (SIGSTOP); Resume thaws it.
func (n *Node) Pause()  { n.signal(syscall.SIGSTOP, false) }
func (n *Node) Resume() { n.signal(syscall.SIGCONT, false) }

// Cluster is a set of nodes started by NewCluster.
type Cluster struct {
	t     testing.TB
	dir   string
	Nodes []*Node
}

// Options tune NewCluster.
type Options struct {
	Nodes int      // default 3
	Args  []string // extra flags for every node
	// RaftIP gives node i its Raft bind IP (default 127.0.0.1). Distinct
	// loopback IPs (127.0.0.2, ...) let a proxy tell senders apart.
	RaftIP func(i int) string
	// Advertise, if set, returns the Raft address node i advertises given
	// its bind address, e.g. a fault-injecting proxy in front of it.
	Advertise func(i int, bind string) string
	// NodeArgs, if set, returns extra flags for node i alone (after Args),
	// e.g. its own peer certificate.
	NodeArgs func(i int) []string
	// TLS and Token become every node's Node.TLS and Node.Token (HTTPS
	// nodes; the harness's token).
	TLS   *tls.Config
	Token string
}

// NewCluster starts a cluster and waits until every node is a member and
// ready. Processes are killed, and logs shown if the test failed, at cleanup.
func NewCluster(t testing.TB, opt Options) *Cluster {
	t.Helper()
	if opt.Nodes == 0 {
		opt.Nodes = 3
	}
	c := &Cluster{t: t, dir: t.TempDir()}
	t.Cleanup(c.cleanup)
	for i := 0; i < opt.Nodes; i++ {
		c.AddNode(opt, i)
	}
	c.Nodes[0].Start()
	c.WaitReady(c.Nodes[0])
	for _, n := range c.Nodes[1:] {
		n.Start(c.Nodes[0].URL())
	}
	c.WaitMembers(opt.Nodes)
	for _, n := range c.Nodes {
		c.WaitReady(n)
	}
	return c
}

// AddNode creates (but does not start) node i with fresh ports.
func (c *Cluster) AddNode(opt Options, i int) *Node {
	ip := "127.0.0.1"
	if opt.RaftIP != nil {
		ip = opt.RaftIP(i)
	}
	n := &Node{
		ID:       fmt.Sprintf("n%d", i+1),
		HTTPAddr: freeAddr(c.t, "127.0.0.1"),
		RaftAddr: freeAddr(c.t, ip),
		DataDir:  filepath.Join(c.dir, fmt.Sprintf("n%d", i+1)),
		Args:     append([]string(nil), opt.Args...),
		TLS:      opt.TLS,
		Token:    opt.Token,
		t:        c.t,
		logPath:  filepath.Join(c.dir, fmt.Sprintf("n%d.log", i+1)),
	}
	if opt.NodeArgs != nil {
		n.Args = append(n.Args, opt.NodeArgs(i)...)
	}
	n.RaftAdvertise = n.RaftAddr
	if opt.Advertise != nil {
		n.RaftAdvertise = opt.Advertise(i, n.RaftAddr)
	}
	c.Nodes = append(c.Nodes, n)
	return n
}

func (c *Cluster) cleanup() {
	for _, n := range c.Nodes {
		n.Kill()
	}
	if !c.t.Failed() {
		return
	}
	for _, n := range c.Nodes {
		b, _ := os.ReadFile(n.logPath)
		if len(b) > 12000 {
			b = b[len(b)-12000:]
		}
		c.t.Logf("---- last log lines of %s ----\n%s", n.ID, b)
	}
}

// handedOut holds every port freeAddr has returned in this test binary.
// A port is free until its node binds it, so without this two draws (a
// node's HTTP and Raft ports, say) could return the same port, and the
// node then fails with "address already in use". Ports are never given
// back: a stopped node keeps its ports for its restart.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// freeAddr returns ip:port with a port that was free a moment ago and that
// no earlier call returned. Ports come from below the kernel's ephemeral
// range (32768 and up here), so an outgoing connection cannot take a
// stopped node's port before it restarts.
func freeAddr(t testing.TB, ip string) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	for i := 0; i < 1000; i++ {
		port := 20000 + rand.IntN(12000)
		if handedOut.ports[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, port))
		if err != nil {
			continue
		}
		ln.Close()
		handedOut.ports[port] = true
		return ln.Addr().String()
	}
	t.Fatalf("no free port on %s", ip)
	return ""
}

// Eventually polls f every 50ms until it returns nil or the deadline
// passes, then fails the test with the last error.
func Eventually(t testing.TB, what string, f func() error) {
	t.Helper()
	var err error
	for end := time.Now().Add(deadline); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatalf("%s: not within %v: %v", what, deadline, err)
}

// ClusterView is GET /v1/cluster.
type ClusterView struct {
	NodeID string `json:"node_id"`
	State  string `json:"state"`
	Leader *struct {
		ID       string `json:"id"`
		HTTPAddr string `json:"http_addr"`
	} `json:"leader"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	Members      []struct {
		ID          string `json:"id"`
		HTTPAddr    string `json:"http_addr"`
		RaftAddr    string `json:"raft_addr"`
		Voter       bool   `json:"voter"`
		State       string `json:"state"` // voter, catching_up, learner
		Incarnation string `json:"incarnation"`
	} `json:"members"`
}

// View asks one node for its view of the cluster.
func (n *Node) View() (*ClusterView, error) {
	var v ClusterView
	if err := n.getJSON("/v1/cluster", &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// StatsView is GET /v1/stats.
type StatsView struct {
	Keys         int    `json:"keys"`
	AppliedIndex uint64 `json:"applied_index"`
	Digest       string `json:"digest"`
}

// Stats asks one node for its cache statistics.
func (n *Node) Stats() (*StatsView, error) {
	var s StatsView
	if err := n.getJSON("/v1/stats", &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// WaitReady waits until n's /readyz answers 200.
func (c *Cluster) WaitReady(n *Node) {
	c.t.Helper()
	Eventually(c.t, n.ID+" ready", func() error {
		resp, err := n.client(false).Get(n.URL() + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
}

// WaitMembers waits until the leader lists want members, each a voter
// with an HTTP address.
func (c *Cluster) WaitMembers(want int) {
	c.t.Helper()
	Eventually(c.t, fmt.Sprintf("%d members", want), func() error {
		l, err := c.leader()
		if err != nil {
			return err
		}
		v, err := l.View()
		if err != nil {
			return err
		}
		if len(v.Members) != want {
			return fmt.Errorf("%d members", len(v.Members))
		}
		for _, m := range v.Members {
			if m.HTTPAddr == "" {
				return fmt.Errorf("member %s has no HTTP address yet", m.ID)
			}
			if !m.Voter {
				// A joining node is a non-voter until it has caught up.
				return fmt.Errorf("member %s is not a voter yet", m.ID)
			}
		}
		return nil
	})
}

// WaitForLeader waits until every running node agrees on one leader, which
// is itself running, and returns it.
func (c *Cluster) WaitForLeader() *Node {
	c.t.Helper()
	var leader *Node
	Eventually(c.t, "a leader all running nodes agree on", func() error {
		var err error
		leader, err = c.leader()
		return err
	})
	return leader
}

func (c *Cluster) leader() (*Node, error) {
	var id string
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		v, err := n.View()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.ID, err)
		}
		if v.Leader == nil {
			return nil, fmt.Errorf("%s knows no leader", n.ID)
		}
		if id != "" && v.Leader.ID != id {
			return nil, fmt.Errorf("%s says %s leads, another says %s", n.ID, v.Leader.ID, id)
		}
		id = v.Leader.ID
	}
	for _, n := range c.Nodes {
		if n.ID == id && n.Running() {
			if v, err := n.View(); err != nil || v.State != "Leader" {
				return nil, fmt.Errorf("%s is named leader but is not leading", id)
			}
			return n, nil
		}
	}
	return nil, fmt.Errorf("the named leader %q is not a running node", id)
}

// Node returns the node with the given id.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	c.t.Fatalf("no node %s", id)
	return nil
}

// Followers returns the running nodes other than leader.
func (c *Cluster) Followers(leader *Node) []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n != leader && n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// WaitForIndex waits until n has applied idx.
func (c *Cluster) WaitForIndex(n *Node, idx uint64) {
	c.t.Helper()
	Eventually(c.t, fmt.Sprintf("%s applies index %d", n.ID, idx), func() error {
		v, err := n.View()
		if err != nil {
			return err
		}
		if v.AppliedIndex < idx {
			return fmt.Errorf("applied %d", v.AppliedIndex)
		}
		return nil
	})
}

// WaitConverged waits until every running node reports the same digest
// at the same applied index, and returns that digest.
func (c *Cluster) WaitConverged() string {
	c.t.Helper()
	var digest string
	Eventually(c.t, "all nodes converge", func() error {
		digest = ""
		var idx uint64
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			s, err := n.Stats()
			if err != nil {
				return err
			}
			if digest != "" && (s.Digest != digest || s.AppliedIndex != idx) {
				return fmt.Errorf("%s at %d has %s, another at %d has %s", n.ID, s.AppliedIndex, s.Digest, idx, digest)
			}
			digest, idx = s.Digest, s.AppliedIndex
		}
		return nil
	})
	return digest
}

// plainClient does not follow redirects, so tests can see them.
var plainClient = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// followClient follows redirects as curl -L would (Go re-sends the body on 307).
var followClient = &http.Client{Timeout: 10 * time.Second}

func getJSON(url string, out any) error {
	resp, err := plainClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

// Response is a finished HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends one request with hc and reads the whole answer.
func Do(ctx context.Context, hc *http.Client, method, url string, body []byte) (*Response, error) {
	return doAuth(ctx, hc, method, url, "", body)
}

// doAuth is Do with a bearer token ("" for none).
func doAuth(ctx context.Context, hc *http.Client, method, url, token string, body []byte) (*Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Put writes key=value through node n, following a redirect to the
// leader, and fails the test unless the write is acknowledged. Writing a
// fixed value is idempotent, so it retries on 503, 504 and connection
// errors (a leader change on a busy machine) until the deadline.
func (c *Cluster) Put(n *Node, key, value string) uint64 {
	c.t.Helper()
	var index uint64
	Eventually(c.t, "PUT "+key+" via "+n.ID, func() error {
		r, err := doAuth(context.Background(), n.client(true), http.MethodPut, n.URL()+"/v1/kv/"+key, n.Token, []byte(value))
		if err != nil {
			return err
		}
		if r.Status == http.StatusServiceUnavailable || r.Status == http.StatusGatewayTimeout {
			return fmt.Errorf("%d %s", r.Status, r.Body)
		}
		if r.Status != http.StatusOK {
			c.t.Fatalf("PUT %s via %s: %d %s", key, n.ID, r.Status, r.Body)
		}
		var w struct{ Index uint64 }
		if err := json.Unmarshal(r.Body, &w); err != nil {
			c.t.Fatalf("PUT %s: %v in %s", key, err, r.Body)
		}
		index = w.Index
		return nil
	})
	return index
}
