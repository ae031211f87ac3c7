package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash"

	"github.com/google/btree"
)

// WATCH: optimistic transactions. EXEC must apply nothing if a watched
// key changed after the WATCH: written, deleted, expired, evicted or
// flushed, even if it was created and deleted again in between (its
// version alone would miss that). The state therefore keeps, per key,
// the last change:
//
//   - a live key's change is its version: a key written in an entry at or
//     before the watched state has a version at most that state's
//     lastVersion, one written after has a larger one;
//   - a removed key leaves a tombstone with the index of the entry that
//     removed it; tombstones are bounded (maxTombs, oldest dropped first)
//     and tombFloor remembers the newest one dropped: a watch older than
//     that is aborted, since the state can no longer tell;
//   - a flush (FLUSHDB, a whole-cache delete) records its index instead
//     of a tombstone per key;
//   - a key that expired in place (no entry removed it yet) is judged by
//     its expiry against the watch's time and the EXEC entry's time.
//
// Tombstones are recorded only from the first OpExec entry on (execSeen,
// replicated): before it no member could watch, and a member restored from
// a snapshot of an older binary (which kept none) keeps the same table as
// one that replayed the log. That entry sets tombFloor to the index before
// it, so a watch taken earlier is aborted conservatively.

// ErrWatch (result): a watched key changed; the unit applied nothing and
// EXEC answers a nil array.
var ErrWatch = errors.New("a watched key changed")

// maxTombs bounds the tombstones kept for WATCH.
const maxTombs = 100_000

// Watch is what WATCH saw: the state's index and last version, the
// reader's time, and the keys. It travels in the EXEC unit.
type Watch struct {
	Index   uint64
	Version uint64
	Now     int64
	Keys    [][]byte
}

type tomb struct {
	key   string
	index uint64
}

func tombLess(a, b tomb) bool       { return a.key < b.key }
func tombIdxLess(a, b tomb) bool    { return a.index < b.index || a.index == b.index && a.key < b.key }
func newTombs() *btree.BTreeG[tomb] { return btree.NewG(32, tombLess) }

// changeLog is the state's record of changes for WATCH.
type changeLog struct {
	execSeen   bool
	applying   uint64 // the index of the entry being applied (writer only)
	flushIndex uint64
	tombFloor  uint64
	tombs      *btree.BTreeG[tomb] // by key
	tombsByIdx *btree.BTreeG[tomb] // by index
}

func newChangeLog() changeLog {
	return changeLog{tombs: newTombs(), tombsByIdx: btree.NewG(32, tombIdxLess)}
}

func (c changeLog) clone() changeLog {
	c.tombs, c.tombsByIdx = c.tombs.Clone(), c.tombsByIdx.Clone()
	return c
}

// startExec marks the first OpExec entry.
func (c *changeLog) startExec(index uint64) {
	if !c.execSeen {
		c.execSeen = true
		c.tombFloor = index - 1
	}
}

// removed records that key was removed by the entry being applied.
func (c *changeLog) removed(key string) {
	if !c.execSeen {
		return
	}
	t := tomb{key: key, index: c.applying}
	if old, ok := c.tombs.ReplaceOrInsert(t); ok {
		c.tombsByIdx.Delete(old)
	}
	c.tombsByIdx.ReplaceOrInsert(t)
	for c.tombs.Len() > maxTombs {
		o, _ := c.tombsByIdx.DeleteMin()
		c.tombs.Delete(o)
		c.tombFloor = max(c.tombFloor, o.index)
	}
}

// written forgets key's tombstone: its version now says more.
func (c *changeLog) written(key string) {
	if c.tombs.Len() == 0 {
		return
	}
	if old, ok := c.tombs.Delete(tomb{key: key}); ok {
		c.tombsByIdx.Delete(old)
	}
}

// flushed records a whole-cache removal.
func (c *changeLog) flushed() {
	if !c.execSeen {
		return
	}
	c.flushIndex = c.applying
	c.tombs, c.tombsByIdx = newTombs(), btree.NewG(32, tombIdxLess)
}

// watch records what a reader of s at now sees of keys.
func (s *state) watch(now int64, keys [][]byte) *Watch {
	w := &Watch{Index: s.index, Version: s.lastVersion, Now: now, Keys: make([][]byte, len(keys))}
	for i, k := range keys {
		w.Keys[i] = append([]byte(nil), k...)
	}
	return w
}

// watchBroken says whether any watched key may have changed between w and
// s at now.
func (s *state) watchBroken(w *Watch, now int64) bool {
	c := &s.changes
	if c.flushIndex > w.Index || c.tombFloor > w.Index || !c.execSeen {
		return true
	}
	for _, k := range w.Keys {
		if it, ok := s.get(k); ok {
			if it.version > w.Version {
				return true
			}
			if (it.expireAt == 0 || it.expireAt > w.Now) != (it.expireAt == 0 || it.expireAt > now) {
				return true // expired (or, on a clock behind the watcher's, revived) in between
			}
		}
		if t, ok := c.tombs.Get(tomb{key: string(k)}); ok && t.index > w.Index {
			return true
		}
	}
	return false
}

// Watch records what this view sees of keys, for an EXEC unit.
func (v *View) Watch(keys [][]byte) *Watch { return v.t.s.watch(v.t.now, keys) }

// WatchBroken says whether a watched key changed between w and this view
// (a transaction that only reads is answered from a view, not an entry).
func (v *View) WatchBroken(w *Watch) bool { return v.t.s.watchBroken(w, v.t.now) }

// --- snapshot section and digest -------------------------------------------

// appendChangeLog encodes the WATCH change log:
//
//	flags(1: execSeen) flushIndex tombFloor(uvarint) ntombs(uvarint) {key index}
//
// TODO(merge with level): a section of the v2 snapshot; until then it is
// written in the v1 stream's trailer (snapshot_ext.go).
func appendChangeLog(dst []byte, c *changeLog) []byte {
	var flags byte
	if c.execSeen {
		flags = 1
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, c.flushIndex)
	dst = binary.AppendUvarint(dst, c.tombFloor)
	dst = binary.AppendUvarint(dst, uint64(c.tombs.Len()))
	c.tombs.Ascend(func(t tomb) bool {
		dst = appendBytes(dst, []byte(t.key))
		dst = binary.AppendUvarint(dst, t.index)
		return true
	})
	return dst
}

func readChangeLog(r *bufio.Reader, c *changeLog) error {
	flags, err := r.ReadByte()
	if err != nil {
		return err
	}
	c.execSeen = flags&1 != 0
	if c.flushIndex, err = binary.ReadUvarint(r); err != nil {
		return err
	}
	if c.tombFloor, err = binary.ReadUvarint(r); err != nil {
		return err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return err
	}
	if n > maxTombs {
		return errors.New("too many tombstones")
	}
	for i := uint64(0); i < n; i++ {
		k, err := readBytes(r)
		if err != nil {
			return err
		}
		idx, err := binary.ReadUvarint(r)
		if err != nil {
			return err
		}
		t := tomb{key: string(k), index: idx}
		c.tombs.ReplaceOrInsert(t)
		c.tombsByIdx.ReplaceOrInsert(t)
	}
	return nil
}

func (c *changeLog) digest(h hash.Hash) {
	h.Write(appendChangeLog(nil, c))
}
