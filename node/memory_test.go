package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/raftcache/raftcache/fsm"
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
// still takes reads and deletes. The bounded member is a non-voter (it
// never leads) and the voters are unbounded and cannot learn its bound
// (no Probe), so nothing evicts and its check is seen alone.
func TestWritesRefusedPastBoundAndSlack(t *testing.T) {
	voters := newCluster(t, 2, nil)
	cfg := testConfig(t, "n3", false)
	cfg.MaxMemory, cfg.MaxMemoryPolicy = 64<<10, fsm.EvictAllLRU // the slack of an evicting policy
	small := startNode(t, cfg)
	join(t, voters, Member{ID: "n3", RaftAddr: small.RaftAddr(), HTTPAddr: cfg.HTTPAddr, Level: small.FeatureLevel(), Incarnation: small.Incarnation()})
	set := [][]byte{[]byte("SET"), []byte("k"), []byte("v")}
	if err := small.CheckCommand(set); err != nil {
		t.Fatalf("under the bound: %v", err)
	}
	big := []byte(strings.Repeat("x", 64<<10))
	for i := 0; i < 20; i++ {
		key := []byte(fmt.Sprint("big", i))
		// SET is idempotent: retry through leader changes on a busy machine.
		var err error
		for end := time.Now().Add(time.Minute); time.Now().Before(end); {
			if _, err = waitForLeader(t, voters...).Set(ctxTimeout(t, 10*time.Second), key, big, 0); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
	}
	waitForCaughtUp(t, waitForLeader(t, voters...), small)
	if got, limit := small.FSM().Bytes(), int64(64<<10+memorySlack(64<<10)); got <= limit {
		t.Fatalf("the cache holds %d bytes, want past %d (the bound, 64 KiB, and its slack)", got, limit)
	}
	if err := small.CheckCommand(set); !errors.Is(err, ErrOutOfMemory) {
		t.Fatalf("SET past the bound and slack: %v, want ErrOutOfMemory", err)
	}
	for _, cmd := range [][][]byte{{[]byte("DEL"), []byte("big0")}, {[]byte("GET"), []byte("big0")}} {
		if err := small.CheckCommand(cmd); err != nil {
			t.Errorf("%s past the bound: %v, want accepted", cmd[0], err)
		}
	}
	for _, v := range voters {
		if err := v.CheckCommand(set); err != nil {
			t.Errorf("the unbounded %s refused a SET: %v", v.ID(), err)
		}
	}
}
