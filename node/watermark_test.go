package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// mustRefuse starts a node on cfg, which must be refused as a store that
// lost synced entries.
func mustRefuse(t *testing.T, cfg Config, why string) {
	t.Helper()
	n, err := New(cfg)
	if err == nil {
		n.Close()
	}
	if !errors.Is(err, ErrLogLost) || !strings.Contains(err.Error(), cfg.LogStore) || !strings.Contains(err.Error(), "--join") {
		t.Fatalf("%s: New = %v; want ErrLogLost naming the %s store and the way back", why, err, cfg.LogStore)
	}
	t.Log(err)
}

// TestWatermarkRefusesLostLog: a node whose log store lost entries it had
// synced and seen committed (its files damaged: the tail of the log gone,
// the term rolled back, stale entries back where committed ones were)
// refuses to start, naming its store and the way back; the same node
// restarted with its stores intact starts (the mark refuses nothing a
// clean restart leaves).
func TestWatermarkRefusesLostLog(t *testing.T) {
	// Not raft-wal: v0.4.0 cannot restart after the tail truncations this
	// test makes (hashicorp/raft-wal#31, "sealed segment has no index
	// block"), the bug that keeps it from being the default.
	for _, kind := range []string{LogStorePebble, LogStoreBolt} {
		t.Run(kind, func(t *testing.T) {
			cfg := testConfig(t, "n1", true)
			cfg.LogStore = kind
			n := startNode(t, cfg)
			waitForLeader(t, n)
			for i := range 30 {
				mustSet(t, n, fmt.Sprintf("k%02d", i), "v")
			}
			last := n.raft.LastIndex()
			waitFor(t, "the mark to reach the last write", func() bool {
				w, ok, err := readWatermark(cfg.DataDir)
				return err == nil && ok && w.index >= last
			})
			n = restart(t, n, cfg) // intact: starts
			waitForLeader(t, n)
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			w, ok, err := readWatermark(cfg.DataDir)
			if err != nil || !ok || w.entryTerm == 0 {
				t.Fatalf("mark %+v, %v, %v", w, ok, err)
			}
			open := func() (raft.LogStore, raft.StableStore, func()) {
				logs, stable, closer, err := OpenStores(cfg.DataDir, kind)
				if err != nil {
					t.Fatal(err)
				}
				return logs, stable, func() { closer.Close() }
			}

			// A stale entry where the mark's was: same index, older term.
			logs, _, closeStores := open()
			var l raft.Log
			if err := logs.GetLog(w.index, &l); err != nil {
				t.Fatal(err)
			}
			good := l
			if err := logs.DeleteRange(w.index, w.index+1000); err != nil {
				t.Fatal(err)
			}
			stale := good
			stale.Term = w.entryTerm - 1
			if err := logs.StoreLog(&stale); err != nil {
				t.Fatal(err)
			}
			closeStores()
			mustRefuse(t, cfg, "a stale entry at the mark's index")

			// Put the entry back: it starts again.
			logs, _, closeStores = open()
			if err := logs.DeleteRange(w.index, w.index); err != nil {
				t.Fatal(err)
			}
			if err := logs.StoreLog(&good); err != nil {
				t.Fatal(err)
			}
			closeStores()
			m, err := New(cfg)
			if err != nil {
				t.Fatalf("the mark's entry restored: %v", err)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			w, _, _ = readWatermark(cfg.DataDir)

			// The log's last ten committed entries gone.
			logs, stable, closeStores := open()
			if err := logs.DeleteRange(w.index-10, w.index+1000); err != nil {
				t.Fatal(err)
			}
			closeStores()
			mustRefuse(t, cfg, "a log missing its last 10 committed entries")

			// The term alone rolled back (the mark moved below what is
			// left of the log).
			if err := writeWatermark(cfg.DataDir, watermark{term: w.term, index: w.index - 20}); err != nil {
				t.Fatal(err)
			}
			logs, stable, closeStores = open()
			if err := stable.SetUint64(keyCurrentTerm, w.term-1); err != nil {
				t.Fatal(err)
			}
			closeStores()
			mustRefuse(t, cfg, "a current term below the mark's")
		})
	}
}
