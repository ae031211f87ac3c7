// Package gctune keeps the Go garbage collector from running too often
// while a node's live heap is small.
//
// With GOGC=100 the collector runs each time the heap grows by its live
// size. A node that serves a small cache from a heap of a few tens of MiB
// at tens of thousands of requests a second (each request allocates a few
// KiB in net/http, redcon and Raft) then collects several times a second,
// and a CPU profile of a busy node put about a tenth of its time in the
// collector and its write barriers. The memory bound is set elsewhere
// (GOMEMLIMIT, from --max-memory auto): it makes the collector work
// harder as the heap nears it, whatever GOGC says. So a small heap can
// afford a larger GOGC: this package raises it after every collection so
// the next one is due no sooner than MinGoal bytes of heap, and lowers it
// back to the base as the live heap grows.
package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Tuner adjusts GOGC after each collection; Stop ends it.
type Tuner struct {
	minGoal uint64
	base    int
	stopped atomic.Bool
	sample  []metrics.Sample
	percent atomic.Int64 // the GOGC it set last
}

// liveMetric is the heap the last collection found live.
const liveMetric = "/gc/heap/live:bytes"

// Start tunes GOGC so the heap goal is at least minGoal bytes, never
// below base (100 is Go's default). It does nothing and returns nil when
// the environment sets GOGC (the operator decides) or minGoal is 0.
func Start(minGoal uint64, base int) *Tuner {
	if os.Getenv("GOGC") != "" || minGoal == 0 || base <= 0 {
		return nil
	}
	t := &Tuner{minGoal: minGoal, base: base, sample: []metrics.Sample{{Name: liveMetric}}}
	t.tune()
	t.arm()
	return t
}

// Percent is the GOGC value it set last.
func (t *Tuner) Percent() int {
	if t == nil {
		return 0
	}
	return int(t.percent.Load())
}

// Stop stops tuning and restores the base GOGC.
func (t *Tuner) Stop() {
	if t == nil || t.stopped.Swap(true) {
		return
	}
	debug.SetGCPercent(t.base)
}

// arm hooks the next collection: the finalizer of an unreachable object
// runs after the collection that found it, and re-arms.
func (t *Tuner) arm() {
	sentinel := new([16]byte)
	runtime.SetFinalizer(sentinel, func(*[16]byte) {
		if t.stopped.Load() {
			return
		}
		t.tune()
		t.arm()
	})
}

func (t *Tuner) tune() {
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	p := percentFor(live, t.minGoal, t.base)
	if int64(p) != t.percent.Load() {
		t.percent.Store(int64(p))
		debug.SetGCPercent(p)
	}
}

// maxPercent bounds GOGC when the live heap is tiny (at start).
const maxPercent = 2000

// percentFor is the GOGC that puts the next goal, live*(1+p/100), at
// minGoal or more, and never below base.
func percentFor(live, minGoal uint64, base int) int {
	if live == 0 {
		return maxPercent
	}
	if live >= minGoal {
		return base
	}
	p := int((minGoal - live) * 100 / live)
	return min(max(p, base), maxPercent)
}
