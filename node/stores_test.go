package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// restart closes n and starts it again on the same data dir and address,
// with Bootstrap still set (it must be a no-op on existing state).
func restart(t *testing.T, n *Node, cfg Config) *Node {
	t.Helper()
	if err := n.Close(); err != nil {
		t.Fatalf("close %s: %v", n.ID(), err)
	}
	cfg.RaftAddr = n.RaftAddr()
	deadline := time.Now().Add(waitDeadline)
	for {
		type opened struct {
			n   *Node
			err error
		}
		ch := make(chan opened, 1)
		go func() { m, err := New(cfg); ch <- opened{m, err} }()
		select {
		case o := <-ch:
			if o.err == nil {
				t.Cleanup(func() { o.n.Close() })
				return o.n
			}
			// The port was ours a moment ago; retry if the kernel still
			// holds it.
			if time.Now().After(deadline) {
				t.Fatalf("restarting %s: %v", n.ID(), o.err)
			}
			t.Logf("restarting %s: %v (retrying)", n.ID(), o.err)
			time.Sleep(50 * time.Millisecond)
		case <-time.After(10 * time.Second):
			t.Fatalf("restarting %s: New still blocked after 10s (a store of the closed node still holds its lock?)", n.ID())
		}
	}
}

func TestLogStoresSurviveRestart(t *testing.T) {
	for _, kind := range []string{LogStorePebble, LogStoreBolt, LogStoreWAL, ""} {
		name := kind
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, "n1", true)
			cfg.LogStore = kind
			n := startNode(t, cfg)
			waitForLeader(t, n)
			versions := map[string]uint64{}
			for i := range 20 {
				k := fmt.Sprintf("k%02d", i)
				versions[k] = mustSet(t, n, k, k).Version
			}
			want := kind
			if want == "" {
				want = LogStorePebble // the default for a new data dir
			}
			if got, err := DetectLogStore(cfg.DataDir); got != want || err != nil {
				t.Fatalf("log store %q: the data dir holds %q (%v)", kind, got, err)
			}
			if n.LogStore() != want {
				t.Fatalf("log store %q: node reports %q", kind, n.LogStore())
			}

			n = restart(t, n, cfg)
			waitForLeader(t, n)
			for k, v := range versions {
				res, err := strongGet(t, []*Node{n}, k)
				if err != nil || string(res.Value) != k || res.Version != v {
					t.Fatalf("after restart %s = %q version %d, %v; want version %d", k, res.Value, res.Version, err, v)
				}
			}
			if ms, err := n.Members(); err != nil || len(ms) != 1 {
				t.Fatalf("members after restart: %+v, %v", ms, err)
			}
			mustSet(t, n, "after", "restart")
		})
	}
}

// TestRestartFromSnapshot: with snapshots taken and the log truncated, a
// restart restores the snapshot and replays the rest.
func TestRestartFromSnapshot(t *testing.T) {
	for _, kind := range []string{LogStorePebble, LogStoreBolt} {
		t.Run(kind, func(t *testing.T) { testRestartFromSnapshot(t, kind) })
	}
}

func testRestartFromSnapshot(t *testing.T, kind string) {
	cfg := testConfig(t, "n1", true)
	cfg.LogStore = kind
	cfg.SnapshotThreshold = 16
	cfg.SnapshotInterval = 20 * time.Millisecond
	cfg.TrailingLogs = 4
	n := startNode(t, cfg)
	waitForLeader(t, n)
	for i := range 64 {
		mustSet(t, n, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	waitFor(t, "a snapshot", func() bool {
		snaps, _ := filepath.Glob(filepath.Join(cfg.DataDir, "snapshots", "*", "state.bin"))
		first, _ := n.logs.FirstIndex()
		return len(snaps) > 0 && first > 1
	})
	for i := 64; i < 70; i++ { // some entries after the snapshot
		mustSet(t, n, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	want, _ := n.FSM().Digest()

	n = restart(t, n, cfg)
	waitForLeader(t, n)
	waitForCaughtUp(t, n, n)
	if got, _ := n.FSM().Digest(); got != want {
		t.Fatalf("digest after restart %s, before %s", got, want)
	}
}

func TestLogStoreKindIsChecked(t *testing.T) {
	for _, tc := range []struct{ made, other, msg string }{
		{LogStoreBolt, LogStoreWAL, "holds a bolt log store, not wal"},
		{LogStoreBolt, LogStorePebble, "holds a bolt log store, not pebble"},
		{LogStorePebble, LogStoreBolt, "holds a pebble log store, not bolt"},
		{LogStoreWAL, LogStorePebble, "holds a wal log store, not pebble"},
	} {
		t.Run(tc.made+"-as-"+tc.other, func(t *testing.T) {
			cfg := testConfig(t, "n1", true)
			cfg.LogStore = tc.made
			n := startNode(t, cfg)
			waitForLeader(t, n)
			mustSet(t, n, "k", "v")
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			cfg.LogStore = tc.other
			if m, err := New(cfg); err == nil {
				m.Close()
				t.Fatalf("opening a %s data dir as %q succeeded", tc.made, tc.other)
			} else if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("opening a %s data dir as %q: %v, want it to say %q", tc.made, tc.other, err, tc.msg)
			}
			// The refusal left the data intact.
			cfg.LogStore = tc.made
			n = restart(t, n, cfg)
			waitForLeader(t, n)
			if res, err := strongGet(t, []*Node{n}, "k"); err != nil || string(res.Value) != "v" {
				t.Fatalf("after the refused open: %q, %v", res.Value, err)
			}
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	good := testConfig(t, "n1", true)
	for name, mod := range map[string]func(*Config){
		"no id":           func(c *Config) { c.ID = "" },
		"no data dir":     func(c *Config) { c.DataDir = "" },
		"no raft address": func(c *Config) { c.RaftAddr = "" },
		"unknown store":   func(c *Config) { c.LogStore = "rocks" },
		// A wildcard bind advertises the host name; a wildcard advertised
		// address is refused.
		"wildcard raft advertise": func(c *Config) { c.RaftAddr, c.RaftAdvertise = "0.0.0.0:0", "0.0.0.0:9000" },
		"wildcard http address":   func(c *Config) { c.HTTPAddr = "[::]:8000" },
		"wildcard resp address":   func(c *Config) { c.RESPAddr = "0.0.0.0:6379" },
	} {
		cfg := good
		cfg.DataDir = t.TempDir()
		mod(&cfg)
		if n, err := New(cfg); err == nil {
			n.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// TestExistingStoreKept: a data dir made with bolt (the default before
// pebble) opens as bolt when no store is asked for, so upgrades just work.
func TestExistingStoreKept(t *testing.T) {
	cfg := testConfig(t, "n1", true)
	cfg.LogStore = LogStoreBolt
	n := startNode(t, cfg)
	waitForLeader(t, n)
	v := mustSet(t, n, "k", "v").Version
	cfg.LogStore = ""
	n = restart(t, n, cfg)
	waitForLeader(t, n)
	if n.LogStore() != LogStoreBolt {
		t.Fatalf("an old bolt data dir opened as %q", n.LogStore())
	}
	if res, err := strongGet(t, []*Node{n}, "k"); err != nil || res.Version != v {
		t.Fatalf("after restart: %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "pebble")); err == nil {
		t.Fatal("a pebble store was created beside the bolt one")
	}
	// OpenStores, the offline tools' way in, finds it too.
	n.Close()
	logs, _, closer, err := OpenStores(cfg.DataDir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	if last, err := logs.LastIndex(); err != nil || last == 0 {
		t.Fatalf("OpenStores: last index %d, %v", last, err)
	}
}

func TestDetectLogStoreRefusesTwo(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"pebble", "raft.db"} {
		if err := os.Mkdir(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if kind, err := DetectLogStore(dir); err == nil {
		t.Fatalf("two stores detected as %q", kind)
	}
	if kind, err := DetectLogStore(t.TempDir()); kind != "" || err != nil {
		t.Fatalf("empty dir: %q, %v", kind, err)
	}
}

// NeedState (a node on a non-loopback address given no way to form or
// join a cluster) refuses an empty data directory, and starts as usual
// on its own state.
func TestNeedState(t *testing.T) {
	cfg := testConfig(t, "n1", false)
	cfg.NeedState = true
	if n, err := New(cfg); !errors.Is(err, ErrNoState) {
		if err == nil {
			n.Close()
		}
		t.Fatalf("an empty data directory with NeedState: %v, want ErrNoState", err)
	}
	cfg = testConfig(t, "n1", true)
	n := startNode(t, cfg)
	waitForLeader(t, n)
	mustSet(t, n, "k", "v")
	cfg.Bootstrap, cfg.NeedState = false, true
	n = restart(t, n, cfg)
	waitForLeader(t, n)
	if res, err := n.Get(ctxTimeout(t, 10*time.Second), []byte("k"), ReadOptions{Consistency: Strong}); err != nil || string(res.Value) != "v" {
		t.Fatalf("restarted on its state with NeedState: %q, %v", res.Value, err)
	}
}
