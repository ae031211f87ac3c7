package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/raftcache/raftcache/internal/pebblestore"
)

// The log's high-water mark.
//
// A log store loses synced entries only when its files are damaged (a
// disk that lies about fsync, a truncated or corrupted file, a restore
// of one file from a backup). Pebble, like any WAL, cannot tell such a
// loss from a crash's torn tail: it replays what it can read and starts.
// A node that starts so is dangerous, not merely behind. With its term
// rolled back it may vote twice in one term; with its log cut back to
// the cluster's first entries it holds the bootstrap configuration, in
// which it was the only voter, and elects itself leader of a cluster of
// one, serving writes the real cluster never sees (TestTruncatedWAL
// found exactly that).
//
// So the node records a high-water mark of what it durably holds: its
// current term (hashicorp/raft persists a term before it uses it), within
// a quarter of a second of a change, and the highest log index that is
// both stored here and committed (Raft never removes a committed entry
// from a log, except by compacting it into a snapshot) with that entry's
// term, about once a second. At start, before Raft runs, the stores must
// reach that mark: a current term at least the mark's, and a snapshot at
// or past the mark's index, or else a log holding the mark's entry, same
// index and same term (a log that lost a synced truncation of conflicting
// entries can reach the index again with stale ones). If they do not, the
// node refuses to start and says to wipe its data directory and rejoin
// (the membership rules make that safe). A loss of only what came after
// the mark is not seen: the last second of entries, the last quarter
// second of a term, a vote cast in the current term. Such a node starts;
// what keeps its vote from electing a leader without the entries it lost
// is the hold after a start that was not clean (catchup.go).
const watermarkFile = "log-watermark"

// How often the mark is looked at, and how often it is written for its
// index alone (each write costs two fsyncs).
const (
	watermarkTick  = 250 * time.Millisecond
	watermarkEvery = time.Second
)

// ErrLogLost: the log store holds less than this node had durably stored.
var ErrLogLost = errors.New("log store lost synced entries")

type watermark struct {
	term      uint64 // the current term
	index     uint64 // a stored, committed log index
	entryTerm uint64 // the term of the entry at index (0: not recorded)
}

func (w watermark) String() string {
	return fmt.Sprintf("term %d, index %d", w.term, w.index)
}

// readWatermark returns dir's mark; ok is false when there is none (a new
// data directory, or one from before marks).
func readWatermark(dir string) (w watermark, ok bool, err error) {
	v, err := readUints(filepath.Join(dir, watermarkFile), 3) // TERM INDEX ENTRY-TERM
	if errors.Is(err, os.ErrNotExist) {
		return w, false, nil
	}
	if err != nil {
		return w, false, err
	}
	return watermark{term: v[0], index: v[1], entryTerm: v[2]}, true, nil
}

func writeWatermark(dir string, w watermark) error {
	return writeFileSynced(filepath.Join(dir, watermarkFile),
		fmt.Appendf(nil, "%d %d %d\n", w.term, w.index, w.entryTerm))
}

// checkWatermark refuses stores that hold less than the mark: a current
// term below it, or neither a snapshot at or past its index nor the
// mark's entry (that index, that term) in the log.
func checkWatermark(dir, kind string, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore) error {
	w, ok, err := readWatermark(dir)
	if err != nil || !ok {
		return err
	}
	var have watermark
	if have.term, err = stable.GetUint64(keyCurrentTerm); err != nil && !notFound(err) {
		return fmt.Errorf("read the current term: %w", err)
	}
	if have.index, err = logs.LastIndex(); err != nil {
		return fmt.Errorf("read the last log index: %w", err)
	}
	metas, err := snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	var snap uint64
	if len(metas) > 0 { // newest first
		snap = metas[0].Index
	}
	have.index = max(have.index, snap)
	lost := ""
	switch {
	case have.term < w.term || have.index < w.index:
		lost = fmt.Sprintf("holds %s (log and snapshots), but this node had stored %s", have, w)
	case snap < w.index && w.entryTerm != 0:
		if t, err := termAt(logs, w.index); err != nil {
			lost = fmt.Sprintf("has no entry at index %d (%v), which this node had stored and seen committed", w.index, err)
		} else if t != w.entryTerm {
			lost = fmt.Sprintf("holds an entry of term %d at index %d, where this node had stored and seen committed one of term %d", t, w.index, w.entryTerm)
		}
	}
	if lost == "" {
		return nil
	}
	return fmt.Errorf("%w: the %s store in %s %s (%s): "+
		"its files are damaged, and a node started from them could vote twice or lead a cluster of its own; "+
		"wipe the data directory and start the node again with --join, and the cluster gives it its data back "+
		"(docs/operations.md, \"A damaged log store\")", ErrLogLost, kind, dir, lost, watermarkFile)
}

// notFound is a stable store's "no such key" (pebble's and bolt's error;
// raft-wal answers 0 and no error).
func notFound(err error) bool {
	return errors.Is(err, pebblestore.ErrKeyNotFound) || errors.Is(err, raftboltdb.ErrKeyNotFound)
}

// keyCurrentTerm is where hashicorp/raft keeps the current term in the
// stable store (its keyCurrentTerm).
var keyCurrentTerm = []byte("CurrentTerm")

// committedEntry is the highest log index both stored here and committed,
// and its entry's term.
func (n *Node) committedEntry() (index, term uint64, err error) {
	last, err := n.store.LastIndex()
	if err != nil {
		return 0, 0, err
	}
	// commitIndex: the leader's newest entries may be stored but not yet
	// synced (durable.go).
	index = min(n.commitIndex(), last)
	if index == 0 {
		return 0, 0, nil
	}
	term, err = termAt(n.store, index)
	return index, term, err
}

// termAt is the term of the log's entry at index, 0 for index 0.
func termAt(logs raft.LogStore, index uint64) (uint64, error) {
	if index == 0 {
		return 0, nil
	}
	var l raft.Log
	if err := logs.GetLog(index, &l); err != nil {
		return 0, err
	}
	return l.Term, nil
}

// keepWatermark keeps the mark up to date while the node runs: the term
// at every tick, the index at most once a second. Each only rises: a term
// this node persisted and an index it stored and saw committed stay true
// (after a restart the commit index is low until the leader says more).
func (n *Node) keepWatermark() {
	defer n.wg.Done()
	t := time.NewTicker(watermarkTick)
	defer t.Stop()
	last, ok, err := readWatermark(n.cfg.DataDir)
	if !ok || err != nil {
		last = watermark{}
	}
	var wrote time.Time
	for {
		select {
		case <-n.closing:
			return
		case <-t.C:
		}
		w := last
		w.term = max(w.term, n.raft.CurrentTerm())
		if time.Since(wrote) >= watermarkEvery {
			if index, term, err := n.committedEntry(); err == nil && index > w.index {
				w.index, w.entryTerm = index, term
			}
		}
		if w == last {
			continue
		}
		if err := writeWatermark(n.cfg.DataDir, w); err != nil {
			n.logger.Warn("recording the log's high-water mark", "error", err)
			continue
		}
		last, wrote = w, time.Now()
	}
}
