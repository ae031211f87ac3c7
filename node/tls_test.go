package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/internal/testcerts"
)

// peerTLS writes a leaf of ca for name, its key and ca's certificate to
// files and loads them with PeerTLSConfig, as the CLI does.
func peerTLS(t testing.TB, ca *testcerts.CA, name string) *tls.Config {
	t.Helper()
	cert, key, caFile := ca.WriteFiles(t, t.TempDir(), name)
	cfg, err := PeerTLSConfig(cert, key, caFile)
	if err != nil {
		t.Fatalf("PeerTLSConfig: %v", err)
	}
	return cfg
}

func TestPeerTLSConfigErrors(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	dir := t.TempDir()
	certPEM, keyPEM := ca.Leaf(t, "n1")
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	crt, key, caFile := write("n1.crt", certPEM), write("n1.key", keyPEM), write("ca.crt", ca.PEM)
	notPEM := write("junk", []byte("not a certificate"))
	for name, args := range map[string][3]string{
		"missing cert":  {filepath.Join(dir, "nope"), key, caFile},
		"key mismatch":  {crt, write("other.key", func() []byte { _, k := ca.Leaf(t, "x"); return k }()), caFile},
		"missing CA":    {crt, key, filepath.Join(dir, "nope")},
		"CA not a cert": {crt, key, notPEM},
	} {
		if _, err := PeerTLSConfig(args[0], args[1], args[2]); err == nil {
			t.Errorf("%s: PeerTLSConfig succeeded", name)
		}
	}
	if _, err := PeerTLSConfig(crt, key, caFile); err != nil {
		t.Fatalf("valid files: %v", err)
	}
}

// TestPeerTLSCluster: members with certificates from the peer CA form a
// cluster and replicate; a node whose certificate comes from another CA is
// let into the configuration but never receives an entry.
func TestPeerTLSCluster(t *testing.T) {
	good, rogue := testcerts.NewCA(t, "peer CA"), testcerts.NewCA(t, "rogue CA")
	nodes := newCluster(t, 3, func(c *Config) { c.PeerTLS = peerTLS(t, good, c.ID) })
	leader := waitForLeader(t, nodes...)
	mustSet(t, leader, "secret", "s3cr3t")
	waitForCaughtUp(t, leader, nodes...)
	for _, n := range nodes {
		if e, ok := localGet(t, n, "secret"); !ok || string(e.Value) != "s3cr3t" {
			t.Fatalf("%s did not get the write over TLS", n.ID())
		}
	}

	// A voter it cannot reach would cost the cluster its quorum margin:
	// add the rogue as a non-voter, and a good non-voter beside it as a
	// control that this way of joining works.
	rogueCfg := testConfig(t, "rogue", false)
	rogueCfg.PeerTLS = peerTLS(t, rogue, "rogue")
	rogueNode := startNode(t, rogueCfg)
	ctrlCfg := testConfig(t, "control", false)
	ctrlCfg.PeerTLS = peerTLS(t, good, "control")
	ctrl := startNode(t, ctrlCfg)
	for _, n := range []*Node{rogueNode, ctrl} {
		join(t, nodes, Member{ID: n.ID(), RaftAddr: n.RaftAddr(), HTTPAddr: httpAddr(n.ID()), Voter: false})
	}
	leader = waitForLeader(t, nodes...)
	waitForCaughtUp(t, leader, ctrl)

	// Keep writing for a few seconds: the cluster serves, the rogue gets
	// nothing at all.
	began, writes := time.Now(), 0
	for time.Since(began) < 3*time.Second {
		leader = waitForLeader(t, nodes...)
		mustSet(t, leader, fmt.Sprintf("w%d", writes), "v")
		writes++
		if idx := rogueNode.FSM().AppliedIndex(); idx != 0 {
			t.Fatalf("the rogue node applied index %d", idx)
		}
		if _, ok := localGet(t, rogueNode, "secret"); ok {
			t.Fatal("the rogue node got the data")
		}
	}
	waitForCaughtUp(t, leader, ctrl)
	if rogueNode.raft.LastIndex() != 0 {
		t.Fatalf("the rogue node stored log entries up to %d", rogueNode.raft.LastIndex())
	}
	if _, ok := rogueNode.Leader(); ok {
		t.Fatal("the rogue node knows a leader")
	}
	t.Logf("%d writes while the rogue node stood by", writes)
	if res, err := strongGet(t, nodes, "secret"); err != nil || string(res.Value) != "s3cr3t" {
		t.Fatalf("strong read with the rogue in the configuration: %q, %v", res.Value, err)
	}
}

// TestStreamAuthenticatesBothWays checks the stream layer directly: only a
// peer with a certificate from the CA gets a byte through, in either
// direction.
func TestStreamAuthenticatesBothWays(t *testing.T) {
	good, rogue := testcerts.NewCA(t, "peer CA"), testcerts.NewCA(t, "rogue CA")
	srv, err := newTCPStream("127.0.0.1:0", "", peerTLS(t, good, "server"), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	addr := srv.Addr().String()

	// accepted reads what the next accepted connection delivers.
	accepted := func() (string, error) {
		c, err := srv.Accept()
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 5)
		_, err = io.ReadFull(c, b)
		return string(b), err
	}
	type got struct {
		s   string
		err error
	}
	serve := func() chan got {
		ch := make(chan got, 1)
		go func() { s, err := accepted(); ch <- got{s, err} }()
		return ch
	}

	// A member: both sides verify, the bytes arrive.
	ch := serve()
	client, err := newTCPStream("127.0.0.1:0", "", peerTLS(t, good, "client"), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conn, err := client.Dial(raft.ServerAddress(addr), 5*time.Second)
	if err != nil {
		t.Fatalf("member dial: %v", err)
	}
	_, _ = conn.Write([]byte("hello"))
	if g := <-ch; g.err != nil || g.s != "hello" {
		t.Fatalf("member connection delivered %q, %v", g.s, g.err)
	}
	conn.Close()

	// A rogue peer: its dial fails on the server's certificate, and the
	// server refuses its certificate.
	ch = serve()
	rogueStream, err := newTCPStream("127.0.0.1:0", "", peerTLS(t, rogue, "rogue"), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rogueStream.Close()
	if c, err := rogueStream.Dial(raft.ServerAddress(addr), 5*time.Second); err == nil {
		_, _ = c.Write([]byte("hello"))
		c.Close()
		t.Error("a rogue peer's dial to a member succeeded")
	} else if !strings.Contains(err.Error(), "not signed by the peer CA") {
		t.Errorf("rogue dial: %v, want a CA verification failure", err)
	}
	if g := <-ch; g.err == nil {
		t.Fatalf("the server read %q from a rogue peer", g.s)
	}

	// Plaintext, and TLS without a client certificate: nothing gets in.
	for name, dial := range map[string]func() (net.Conn, error){
		"plaintext": func() (net.Conn, error) { return net.Dial("tcp", addr) },
		"no client certificate": func() (net.Conn, error) {
			return tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		},
	} {
		ch := serve()
		if c, err := dial(); err == nil {
			_, _ = c.Write([]byte("hello"))
			defer c.Close()
		}
		if g := <-ch; g.err == nil {
			t.Errorf("%s: the server read %q", name, g.s)
		}
	}
}

func TestStreamAdvertise(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no host name:", err)
	}
	s, err := newTCPStream("0.0.0.0:0", "", nil, nil, nil, nil)
	if err != nil {
		t.Fatalf("wildcard bind without an advertise address: %v", err)
	}
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	if got, want := s.Addr().String(), net.JoinHostPort(host, port); got != want {
		t.Errorf("wildcard bind advertises %s, want the host name %s", got, want)
	}
	s.Close()
	for _, bad := range []string{"0.0.0.0:7000", "[::]:7000", ":7000", "rc1:0", "rc1"} {
		if _, err := newTCPStream("127.0.0.1:0", bad, nil, nil, nil, nil); !errors.Is(err, ErrUnadvertisable) {
			t.Errorf("advertise %q: %v, want ErrUnadvertisable", bad, err)
		}
	}
	// A name stays a name: it is resolved when dialled, not at start.
	s, err = newTCPStream("0.0.0.0:0", "rc1.invalid:7000", nil, nil, nil, nil)
	if err != nil {
		t.Fatalf("wildcard bind with an advertised name: %v", err)
	}
	defer s.Close()
	if got := s.Addr().String(); got != "rc1.invalid:7000" {
		t.Errorf("Addr() = %s, want the advertised rc1.invalid:7000", got)
	}
}
