package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestWatermarkRefusesLostLog: a node whose log store lost entries it had
// synced and seen committed (its files damaged: here the tail of the log
// deleted and the term rolled back, as a truncated WAL leaves them)
// refuses to start, naming its store and the way back; the same node
// restarted with its stores intact starts (the mark refuses nothing a
// crash or a clean restart leaves).
func TestWatermarkRefusesLostLog(t *testing.T) {
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
			w, _, _ := readWatermark(cfg.DataDir)
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}

			logs, stable, closer, err := OpenStores(cfg.DataDir, kind)
			if err != nil {
				t.Fatal(err)
			}
			if err := logs.DeleteRange(w.index-10, w.index+1000); err != nil {
				t.Fatal(err)
			}
			closer.Close()
			_, err = New(cfg)
			if !errors.Is(err, ErrLogLost) || !strings.Contains(err.Error(), kind) || !strings.Contains(err.Error(), "--join") {
				t.Fatalf("a log missing its last 10 committed entries: New = %v; want ErrLogLost naming the %s store and the way back", err, kind)
			}
			t.Log(err)

			// The term alone rolled back.
			logs, stable, closer, err = OpenStores(cfg.DataDir, kind)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeWatermark(cfg.DataDir, watermark{term: w.term, index: w.index - 20}); err != nil {
				t.Fatal(err)
			}
			if err := stable.SetUint64(keyCurrentTerm, w.term-1); err != nil {
				t.Fatal(err)
			}
			closer.Close()
			if _, err = New(cfg); !errors.Is(err, ErrLogLost) {
				t.Fatalf("a current term below the mark's: New = %v; want ErrLogLost", err)
			}
		})
	}
}
