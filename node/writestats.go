package node

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Where a write's time goes, as an operator can see it without a profile:
// the log store's appends (the fsync every write waits for, on a follower
// before it answers and on the leader before the write is applied, its
// sync overlapping replication with pebble: durable.go; etcd's
// wal_fsync_duration for the same reason), and on the leader each group
// commit entry's latency and size. Finding these took a throwaway build
// with an in-memory metrics sink in docs/benchmarks.md; a disk that got
// slow shows here first.

// histogram counts observations into fixed buckets. Observing is a few
// atomic adds, so the hot paths (every log append, every entry) pay
// nothing else; a snapshot reads the buckets one by one, which is
// consistent enough for metrics (Count is the sum of what it read).
type histogram struct {
	bounds []uint64        // inclusive upper bounds, ascending
	counts []atomic.Uint64 // one per bound, then one for the rest
	sum    atomic.Uint64
}

func newHistogram(bounds []uint64) *histogram {
	return &histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *histogram) observe(v uint64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(v)
}

// Histogram is a snapshot: Cumulative[i] observations were at most
// Bounds[i]; Count and Sum cover all of them. Bounds and Sum are in the
// histogram's unit (seconds for durations).
type Histogram struct {
	Bounds     []float64
	Cumulative []uint64
	Count      uint64
	Sum        float64
}

func (h *histogram) snapshot(scale float64) Histogram {
	s := Histogram{Bounds: make([]float64, len(h.bounds)), Cumulative: make([]uint64, len(h.bounds))}
	for i, b := range h.bounds {
		s.Count += h.counts[i].Load()
		s.Bounds[i] = float64(b) * scale
		s.Cumulative[i] = s.Count
	}
	s.Count += h.counts[len(h.bounds)].Load()
	s.Sum = float64(h.sum.Load()) * scale
	return s
}

// durationBounds are the buckets of the latency histograms, in ns: an
// fsync on a fast local disk is a few hundred µs, on a network volume or
// a busy shared disk tens of ms.
var durationBounds = []uint64{
	uint64(100 * time.Microsecond), uint64(250 * time.Microsecond), uint64(500 * time.Microsecond),
	uint64(time.Millisecond), uint64(2500 * time.Microsecond), uint64(5 * time.Millisecond),
	uint64(10 * time.Millisecond), uint64(25 * time.Millisecond), uint64(50 * time.Millisecond),
	uint64(100 * time.Millisecond), uint64(250 * time.Millisecond), uint64(500 * time.Millisecond),
	uint64(time.Second), uint64(2500 * time.Millisecond),
}

// entrySizeBounds: writes per entry, up to maxEntryOps (and reads per
// strong-read round).
var entrySizeBounds = []uint64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// writeStats are one node's histograms.
type writeStats struct {
	appends      *histogram // log store StoreLogs, ns
	appendErrors atomic.Uint64

	// mu keeps the two entry histograms in step, so a snapshot has as
	// many sizes as latencies (an entry is answered a few hundred times
	// a second at most; appends, on every member, stay lock-free).
	mu          sync.Mutex
	entries     *histogram // a write entry proposed to answered, ns (leader)
	entryWrites *histogram // commands per entry (leader)
}

func newWriteStats() *writeStats {
	return &writeStats{
		appends:     newHistogram(durationBounds),
		entries:     newHistogram(durationBounds),
		entryWrites: newHistogram(entrySizeBounds),
	}
}

// entry records a write entry answered on the leader.
func (w *writeStats) entry(start time.Time, writes int) {
	took := time.Since(start)
	w.mu.Lock()
	w.entries.observe(uint64(took))
	w.entryWrites.observe(uint64(writes))
	w.mu.Unlock()
}

// WriteStats is what WriteStats reports.
type WriteStats struct {
	// LogAppends: each append of entries to the log store, until it is
	// synced (on a follower before it answers; on the leader before the
	// entries are applied, overlapping replication with pebble).
	LogAppends Histogram
	// LogAppendErrors: appends the store failed (Raft then stops or
	// steps down).
	LogAppendErrors uint64
	// Entries: on the leader, each entry of writes (a group-commit
	// entry, or a write that has one of its own: an atomic batch, a
	// script...) from its proposal to its answer (the leader's append, a
	// quorum's, commit and apply). A former leader keeps what it counted.
	Entries Histogram
	// EntryWrites: on the leader, the commands each of those carried
	// (writes, and the reads of transactions that write).
	EntryWrites Histogram
}

// WriteStats returns the write path's histograms since start.
func (n *Node) WriteStats() WriteStats {
	const ns = 1e-9
	w := n.wstats
	s := WriteStats{LogAppends: w.appends.snapshot(ns), LogAppendErrors: w.appendErrors.Load()}
	w.mu.Lock()
	s.Entries, s.EntryWrites = w.entries.snapshot(ns), w.entryWrites.snapshot(1)
	w.mu.Unlock()
	return s
}

// timedLogs times the appends of the log store Raft writes through. It
// forwards IsMonotonic, which Raft asks of its log store (raft-wal says
// yes), so wrapping changes nothing else.
type timedLogs struct {
	raft.LogStore
	stats *writeStats
}

func (t timedLogs) StoreLog(l *raft.Log) error { return t.StoreLogs([]*raft.Log{l}) }

func (t timedLogs) StoreLogs(logs []*raft.Log) error {
	start := time.Now()
	err := t.LogStore.StoreLogs(logs)
	if err != nil {
		t.stats.appendErrors.Add(1)
		return err
	}
	t.stats.appends.observe(uint64(time.Since(start)))
	return nil
}

func (t timedLogs) IsMonotonic() bool {
	m, ok := t.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}
