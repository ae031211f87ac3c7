package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestMemoryBoundIsClusterMinimum: the leader enforces the smallest bound
// any member reports through its probe, its own included; members that
// report none do not lift it.
func TestMemoryBoundIsClusterMinimum(t *testing.T) {
	bounds := map[string]int64{"n1": 8 << 20, "n2": 0, "n3": 2 << 20}
	nodes := newCluster(t, 3, func(c *Config) {
		c.Probe = testProbe
		c.MaxMemory = bounds[c.ID]
	})
	leader := waitForLeader(t, nodes...)
	leader.kickLevels()
	waitFor(t, "the leader to enforce the smallest bound, 2 MiB", func() bool { return leader.MaxMemory() == 2<<20 })
	for _, n := range others(nodes, leader) {
		if got := n.MaxMemory(); got != bounds[n.ID()] {
			t.Errorf("follower %s enforces %d, want its own %d", n.ID(), got, bounds[n.ID()])
		}
	}
}

// TestWritesRefusedPastBoundAndSlack: a member past its bound plus slack
// refuses writes that may grow memory (SET) with ErrOutOfMemory, and
// still takes reads and deletes. Here the leader is unbounded and cannot
// learn the follower's bound (no Probe), so nothing evicts and the
// follower's check is seen alone.
func TestWritesRefusedPastBoundAndSlack(t *testing.T) {
	nodes := newCluster(t, 3, func(c *Config) {
		if c.ID == "n2" {
			c.MaxMemory = 1 << 20
		}
	})
	leader := waitForLeader(t, nodes...)
	var small *Node
	for _, n := range nodes {
		if n.ID() == "n2" {
			small = n
		}
	}
	if small == leader {
		t.Skip("n2 leads; the test needs it to follow")
	}
	set := [][]byte{[]byte("SET"), []byte("k"), []byte("v")}
	if err := small.CheckCommand(set); err != nil {
		t.Fatalf("under the bound: %v", err)
	}
	big := strings.Repeat("x", 1<<20)
	var last *Node
	for i := 0; i < 3; i++ {
		mustSet(t, leader, fmt.Sprint("big", i), big)
		last = leader
	}
	waitForCaughtUp(t, last, small)
	if got := small.FSM().Bytes(); got <= 2<<20 {
		t.Fatalf("the cache holds %d bytes, want past 2 MiB (bound 1 MiB + 1 MiB slack)", got)
	}
	if err := small.CheckCommand(set); !errors.Is(err, ErrOutOfMemory) {
		t.Fatalf("SET past the bound and slack: %v, want ErrOutOfMemory", err)
	}
	for _, cmd := range [][][]byte{{[]byte("DEL"), []byte("big0")}, {[]byte("GET"), []byte("big0")}} {
		if err := small.CheckCommand(cmd); err != nil {
			t.Errorf("%s past the bound: %v, want accepted", cmd[0], err)
		}
	}
	if err := leader.CheckCommand(set); err != nil {
		t.Errorf("the unbounded leader refused a SET: %v", err)
	}
}
