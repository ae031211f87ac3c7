package node

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/internal/testcluster/timing"
)

// TestCatchUpHoldKeepsAcknowledgedWrite: X is committed by the leader A
// and B while C is down. A stops without a clean stop and its log loses
// X (and the mark, written once a second, does not cover it), then A and
// C start, while B does not campaign. C, behind, campaigns; B refuses
// it. Were A to grant C its vote, C would lead without X and B would
// drop it. A holds its vote until it catches up: once A has refused C,
// B may campaign, only B can win, and X survives.
//
// The control turns the hold off: X is lost. It proves the scenario
// reaches the window the hold closes. (B never campaigns in either run
// until A has refused a vote, so neither outcome hangs on a race.)
func TestCatchUpHoldKeepsAcknowledgedWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hold  time.Duration // A's CatchUpHold
		wantX bool
	}{
		{"hold", time.Minute, true},
		{"control without the hold", time.Nanosecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgs := map[string]Config{}
			nodes := newCluster(t, 3, func(c *Config) {
				c.CatchUpHold = tc.hold
				cfgs[c.ID] = *c
			})
			a := waitForLeader(t, nodes...)
			rest := others(nodes, a)
			b, c := rest[0], rest[1]

			// C stops cleanly, behind from now on.
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			x := mustSet(t, a, "x", "acknowledged")
			waitForIndex(t, x.Index, b)

			// B does not campaign until told.
			bTimeouts := func(d time.Duration) {
				rc := b.raft.ReloadableConfig()
				rc.HeartbeatTimeout, rc.ElectionTimeout = d, d
				if err := b.raft.ReloadConfig(rc); err != nil {
					t.Fatal(err)
				}
			}
			bTimeouts(time.Hour)

			// A stops as if killed, and its log loses X: the entries from
			// X on are gone, and the mark lags behind X, as it may for up
			// to a second.
			acfg := cfgs[a.ID()]
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(acfg.DataDir, cleanStopFile)); err != nil {
				t.Fatalf("a clean stop leaves %s: %v", cleanStopFile, err)
			}
			logs, _, closer, err := OpenStores(acfg.DataDir, "")
			if err != nil {
				t.Fatal(err)
			}
			last, _ := logs.LastIndex()
			if err := logs.DeleteRange(x.Index, last); err != nil {
				t.Fatal(err)
			}
			var before raft.Log
			if err := logs.GetLog(x.Index-1, &before); err != nil {
				t.Fatal(err)
			}
			closer.Close()
			w, ok, err := readWatermark(acfg.DataDir)
			if err != nil {
				t.Fatal(err)
			}
			if !ok || w.index >= x.Index {
				w.index, w.entryTerm = x.Index-1, before.Term
			}
			if err := writeWatermark(acfg.DataDir, w); err != nil {
				t.Fatal(err)
			}

			c = restart(t, c, cfgs[c.ID()])
			if c.CatchingUp() {
				t.Fatal("C stopped cleanly, yet holds its vote")
			}
			a = restart(t, a, acfg)
			if tc.wantX && !a.CatchingUp() {
				t.Fatal("A was not stopped cleanly, yet votes at once")
			}

			all := []*Node{a, b, c}
			if tc.wantX {
				waitFor(t, "A refusing C's vote", func() bool { return a.heldRefusals.Load() > 0 })
				bTimeouts(timing.HeartbeatTimeout)
			}
			leader := waitForLeader(t, all...)
			res, err := strongGet(t, all, "x")
			switch {
			case tc.wantX && err != nil:
				t.Fatalf("%s leads and reads x: %v; the acknowledged write is lost", leader.ID(), err)
			case tc.wantX && string(res.Value) != "acknowledged":
				t.Fatalf("x = %q", res.Value)
			case !tc.wantX && !errors.Is(err, fsm.ErrNotFound):
				t.Fatalf("control: %s leads and reads x: %q, %v; want it lost (the scenario missed the window)", leader.ID(), res.Value, err)
			}
			if tc.wantX {
				if leader != b {
					t.Fatalf("%s leads; only B holds X", leader.ID())
				}
				waitFor(t, "A caught up and voting", func() bool { return !a.CatchingUp() && a.mayVote() })
			}
		})
	}
}

// TestCleanStopSkipsHold: a node stopped cleanly votes at once after a
// restart; one whose log grew after its clean-stop record (a crash later)
// holds.
func TestCleanStopSkipsHold(t *testing.T) {
	cfg := testConfig(t, "n1", true)
	n := startNode(t, cfg)
	waitForLeader(t, n)
	mustSet(t, n, "k", "v")
	n = restart(t, n, cfg)
	if n.CatchingUp() {
		t.Fatal("a clean stop, yet the node holds its vote")
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, cleanStopFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the clean-stop record outlives the start it served: %v", err)
	}
	waitForLeader(t, n)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	// A record older than the log's end: the node did not stop cleanly
	// after it. (A lone voter ends its hold at once, so look at the
	// record alone.)
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, cleanStopFile))
	if err != nil {
		t.Fatal(err)
	}
	logs, _, closer, err := OpenStores(cfg.DataDir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	last, _ := logs.LastIndex()
	if err := logs.DeleteRange(last, last); err != nil {
		t.Fatal(err)
	}
	if clean, err := readCleanStop(cfg.DataDir, logs); err != nil || clean {
		t.Fatalf("record %q, log ending at %d: clean = %v, %v; want false", b, last-1, clean, err)
	}
}

// TestHeldStopRecordsNothing: a node stopped while it still holds its
// vote leaves no clean-stop record (its log may miss what it lost), so
// the next start holds again.
func TestHeldStopRecordsNothing(t *testing.T) {
	cfgs := map[string]Config{}
	nodes := newCluster(t, 3, func(c *Config) {
		c.CatchUpHold = time.Minute
		cfgs[c.ID] = *c
	})
	v := nodes[2]
	for _, n := range nodes {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(cfgs[v.ID()].DataDir, cleanStopFile)
	if err := os.Remove(path); err != nil {
		t.Fatalf("a clean stop leaves %s: %v", cleanStopFile, err)
	}
	v = restart(t, v, cfgs[v.ID()]) // alone: no leader to catch up with
	if !v.CatchingUp() {
		t.Fatal("started after an unclean stop, yet votes at once")
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stopped while holding, it left %s: %v", cleanStopFile, err)
	}
}

// TestWholeClusterHardRestart: every member restarted after a kill holds
// its vote, nobody leads until the holds run out, then they elect a
// leader; once caught up (the leader on its own term's entry) each calls
// its log intact again, so the next clean stop records it and the start
// after it does not hold.
func TestWholeClusterHardRestart(t *testing.T) {
	cfgs := map[string]Config{}
	nodes := newCluster(t, 3, func(c *Config) {
		c.CatchUpHold = time.Second
		cfgs[c.ID] = *c
	})
	mustSet(t, waitForLeader(t, nodes...), "k", "v")
	for _, n := range nodes {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(cfgs[n.ID()].DataDir, cleanStopFile)); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range nodes {
		nodes[i] = restart(t, n, cfgs[n.ID()])
		if !nodes[i].CatchingUp() {
			t.Fatalf("%s votes at once after a kill", n.ID())
		}
	}
	leader := waitForLeader(t, nodes...)
	if res, err := strongGet(t, nodes, "k"); err != nil || string(res.Value) != "v" {
		t.Fatalf("k = %q, %v", res.Value, err)
	}
	waitFor(t, "every member's log vouched for again", func() bool {
		for _, n := range nodes {
			if !n.intact.Load() {
				return false
			}
		}
		return true
	})
	t.Logf("%s leads after the holds ran out", leader.ID())
	for i, n := range nodes {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(cfgs[n.ID()].DataDir, cleanStopFile)); err != nil {
			t.Fatalf("%s stopped cleanly after catching up, yet left no record: %v", n.ID(), err)
		}
		nodes[i] = restart(t, n, cfgs[n.ID()])
		if nodes[i].CatchingUp() {
			t.Fatalf("%s holds its vote after a clean stop", n.ID())
		}
	}
	waitForLeader(t, nodes...)
}
