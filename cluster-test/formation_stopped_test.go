package clustertest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/raftcache/raftcache/node"
)

// TestFormationFounderLostAfterAnotherFormed: with --bootstrap-expect 3,
// A hears every founder and forms; C dies at once, before B has heard it.
// Before, B waited for C's answer and, never having formed, refused its
// vote, so A had no quorum until C came back: the loss of one founder of
// three stopped the cluster. Now A's formation answer carries the founders
// list it formed with, B forms its part from it, and A and B elect a
// leader and take writes. C, restarted on its data directory, reads them
// and votes; and A, restarted, still
// sends the list (kept in its data directory).
//
// Gates in front of HTTP addresses decide who hears whom: B never
// reaches C, and C reaches A only after its restart. Raft traffic is
// direct.
func TestFormationFounderLostAfterAnotherFormed(t *testing.T) {
	c := &Cluster{t: t, dir: t.TempDir()}
	t.Cleanup(c.cleanup)
	for i := 0; i < 3; i++ {
		c.AddNode(Options{Args: []string{"--bootstrap-expect", "3"}}, i)
	}
	a, b, cc := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	bToC := newGate(t, cc.HTTPAddr, false)
	cToA := newGate(t, a.HTTPAddr, false)
	direct := []string{a.URL(), b.URL(), cc.URL()}

	cc.Start(cToA.URL(), b.URL(), cc.URL())
	b.Start(a.URL(), b.URL(), bToC.URL())
	a.Start(direct...)
	Eventually(t, "A formed", func() error {
		if !a.logHas("formed the cluster with the expected members") {
			return errors.New("not yet")
		}
		return nil
	})
	cc.Kill()
	if cc.logHas("forming a new cluster") {
		t.Fatal("C formed with its gate to A closed: the test did not build its case")
	}
	leader := c.WaitForLeader()
	if !b.logHas("forming this node's part from its list") {
		t.Errorf("B did not form from A's founders list")
	}
	cid, err := node.ReadClusterID(a.DataDir)
	if err != nil || cid == "" {
		t.Fatalf("A's cluster id: %q, %v", cid, err)
	}
	if v, err := b.deployView(); err != nil || v.ClusterID != cid {
		t.Fatalf("B: %+v, %v; A formed %s", v, err, cid)
	}
	c.Put(leader, "formed-without-c", "yes")

	cc.Start(direct...)
	Eventually(t, "C, restarted, reads the write made without it", func() error {
		v, err := staleGet(cc, "formed-without-c")
		if err != nil || v != "yes" {
			return fmt.Errorf("%q, %v", v, err)
		}
		return nil
	})
	// C formed its part from a list, or the leader reached it first
	// (followed, or in its log before its first formation round); either
	// way it must vote again.
	Eventually(t, "C, restarted, votes", func() error {
		var v struct {
			Registered bool `json:"registered"`
		}
		if err := cc.getJSON("/v1/node", &v); err != nil || !v.Registered {
			return fmt.Errorf("registered %v, %v", v.Registered, err)
		}
		return nil
	})
	if v, err := cc.deployView(); err != nil || v.ClusterID != cid {
		t.Fatalf("C: %+v, %v; A formed %s", v, err, cid)
	}
	c.WaitMembers(3)

	a.Stop()
	a.Start(direct...)
	Eventually(t, "A, restarted, still sends the founders list", func() error {
		var f struct {
			Founders []struct {
				ID           string `json:"id"`
				FeatureLevel uint32 `json:"feature_level"`
			} `json:"founders"`
		}
		if err := a.getJSON("/v1/cluster/formation", &f); err != nil {
			return err
		}
		if len(f.Founders) != 3 {
			return fmt.Errorf("founders %+v", f.Founders)
		}
		for _, m := range f.Founders {
			if m.FeatureLevel != 0 {
				return fmt.Errorf("a restarted node sends the levels of its formation: %+v", f.Founders)
			}
		}
		return nil
	})
	c.WaitForLeader()
}

// gate forwards TCP connections to one address while open; closed, it
// refuses new ones (accepts and closes them) and has cut those it
// carried.
type gate struct {
	t      *testing.T
	ln     net.Listener
	target string
	mu     sync.Mutex
	open   bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newGate(t *testing.T, target string, open bool) *gate {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{t: t, ln: ln, target: target, open: open, conns: map[net.Conn]struct{}{}}
	g.wg.Add(1)
	go g.serve()
	t.Cleanup(func() {
		ln.Close()
		g.set(false)
		g.wg.Wait()
	})
	return g
}

// URL is the gate's address as an http:// URL.
func (g *gate) URL() string { return "http://" + g.ln.Addr().String() }

// set opens or closes the gate; closing cuts every carried connection.
func (g *gate) set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = open
	if !open {
		for c := range g.conns {
			c.Close()
		}
	}
}

func (g *gate) serve() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.wg.Add(1)
		go g.carry(c)
	}
}

// carry forwards one connection both ways while the gate is open.
func (g *gate) carry(c net.Conn) {
	defer g.wg.Done()
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if !open {
		c.Close()
		return
	}
	up, err := net.Dial("tcp", g.target)
	if err != nil {
		c.Close()
		return
	}
	g.mu.Lock()
	if !g.open { // closed while dialing
		g.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	g.conns[c], g.conns[up] = struct{}{}, struct{}{}
	g.mu.Unlock()
	done := make(chan struct{})
	go func() {
		io.Copy(up, c)
		up.Close()
		close(done)
	}()
	io.Copy(c, up)
	c.Close()
	<-done
	g.mu.Lock()
	delete(g.conns, c)
	delete(g.conns, up)
	g.mu.Unlock()
}
