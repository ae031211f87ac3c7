package fsm

import (
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/hashicorp/raft"
)

// benchKeys pre-encodes n sets of distinct keys with valueSize-byte values.
func benchSets(n, valueSize int) [][]byte {
	value := make([]byte, valueSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	data := make([][]byte, n)
	for i := range data {
		c := Command{Op: OpSet, Now: t0, Key: []byte(fmt.Sprintf("key-%08d", i)), Value: value}
		data[i] = c.Encode(nil)
	}
	return data
}

// filled returns an FSM holding n keys (key-%08d) with 100-byte values.
func filled(b testing.TB, n int) *FSM {
	f := New(nil)
	data := benchSets(n, 100)
	logs := make([]*raft.Log, 0, 64)
	for i, d := range data {
		logs = append(logs, &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: d})
		if len(logs) == cap(logs) || i == len(data)-1 {
			f.ApplyBatch(logs)
			logs = logs[:0]
		}
	}
	if f.Stats().Keys != n {
		b.Fatalf("filled %d keys, want %d", f.Stats().Keys, n)
	}
	return f
}

// BenchmarkApplySet applies one 100-byte set per Apply call (one Raft
// entry per batch, the worst case) over 100k keys.
func BenchmarkApplySet(b *testing.B) {
	data := benchSets(100_000, 100)
	f := New(nil)
	l := &raft.Log{Type: raft.LogCommand}
	b.ReportAllocs()
	b.SetBytes(100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.Index, l.Data = uint64(i+1), data[i%len(data)]
		f.Apply(l)
	}
}

// BenchmarkApplyBatch64 applies 100-byte sets in batches of 64, the most
// Raft hands over at once with default settings; ns/op is per entry.
func BenchmarkApplyBatch64(b *testing.B) {
	data := benchSets(100_000, 100)
	f := New(nil)
	logs := make([]*raft.Log, 64)
	for i := range logs {
		logs[i] = &raft.Log{Type: raft.LogCommand}
	}
	b.ReportAllocs()
	b.SetBytes(100)
	b.ResetTimer()
	for i := 0; i < b.N; i += len(logs) {
		for j, l := range logs {
			l.Index, l.Data = uint64(i+j+1), data[(i+j)%len(data)]
		}
		f.ApplyBatch(logs)
	}
}

// BenchmarkGet reads random keys of 100k from parallel goroutines.
func BenchmarkGet(b *testing.B) {
	const n = 100_000
	f := filled(b, n)
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("key-%08d", i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i = (i + 7919) % n // a stride that visits every key in a scattered order
			if _, err := f.Get(keys[i], t0); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSnapshotPersist streams a snapshot of 100k keys (100-byte
// values) to a discarding sink; MB/s is the stream rate.
func BenchmarkSnapshotPersist(b *testing.B) {
	f := filled(b, 100_000)
	size := int64(len(snapshotBytes(b, f)))
	b.ReportAllocs()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		snap, err := f.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		if err := snap.Persist(discardSink{}); err != nil {
			b.Fatal(err)
		}
		snap.Release()
	}
}

// BenchmarkSnapshotRestore restores that stream.
func BenchmarkSnapshotRestore(b *testing.B) {
	data := snapshotBytes(b, filled(b, 100_000))
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := restore(New(nil), data); err != nil {
			b.Fatal(err)
		}
	}
}

type discardSink struct{}

func (discardSink) Write(p []byte) (int, error) { return len(p), nil }
func (discardSink) ID() string                  { return "discard" }
func (discardSink) Cancel() error               { return nil }
func (discardSink) Close() error                { return nil }

var _ io.Writer = discardSink{}

// heapAfterGC returns the live heap after a full collection.
func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// How the entries reach the FSM in memoryPerKey. The cached value aliases
// the entry's Data, so what backs Data decides the memory a key holds.
const (
	leaderData = iota // Data straight from Command.Encode(nil), as on the leader
	exactData         // Data in an exactly sized buffer, as decoded on a follower
	restored          // the same keys restored from a snapshot
)

// memoryPerKey inserts n keys (16-byte keys, 32-byte values) in batches of
// 64 entries (Raft's default maximum) and returns the live heap they cost
// per key, and per key beyond the key and value bytes.
func memoryPerKey(tb testing.TB, n, mode int) (perKey, overhead float64) {
	value := make([]byte, 32)
	build := func() *FSM {
		f := New(nil)
		logs := make([]*raft.Log, 0, 64)
		for i := 0; i < n; i++ {
			c := Command{Op: OpSet, Now: t0, Key: []byte(fmt.Sprintf("k%015d", i)), Value: value}
			data := c.Encode(nil)
			if mode == exactData {
				data = append(make([]byte, 0, len(data)), data...)
			}
			logs = append(logs, &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: data})
			if len(logs) == cap(logs) || i == n-1 {
				f.ApplyBatch(logs)
				logs = logs[:0]
			}
		}
		return f
	}
	var snap []byte
	if mode == restored {
		snap = snapshotBytes(tb, build())
	}
	before := heapAfterGC()
	var f *FSM
	if mode == restored {
		f = New(nil)
		if err := restore(f, snap); err != nil {
			tb.Fatal(err)
		}
	} else {
		f = build()
	}
	after := heapAfterGC()
	if f.Stats().Keys != n {
		tb.Fatalf("stored %d keys, want %d", f.Stats().Keys, n)
	}
	runtime.KeepAlive(f)
	runtime.KeepAlive(snap)
	perKey = (float64(after) - float64(before)) / float64(n)
	return perKey, perKey - 16 - 32
}

// BenchmarkMemoryPerKey reports the live heap per cached key (200k keys);
// ns/op is meaningless here. EntryOverhead is what the FSM accounts per key.
func BenchmarkMemoryPerKey(b *testing.B) {
	for _, m := range []struct {
		name string
		mode int
	}{{"leader", leaderData}, {"follower", exactData}, {"restored", restored}} {
		b.Run(m.name, func(b *testing.B) {
			var perKey, overhead float64
			for i := 0; i < b.N; i++ {
				perKey, overhead = memoryPerKey(b, 200_000, m.mode)
			}
			b.ReportMetric(perKey, "heap-B/key")
			b.ReportMetric(overhead, "overhead-B/key")
			b.ReportMetric(EntryOverhead, "accounted-B/key")
		})
	}
}

// TestMemoryPerKey logs the same figures in ordinary runs (not under -short
// or -race, which distorts both the time and the heap). It asserts only
// that they are sane: more than the key and value bytes (or the
// measurement is broken) and under 1 KiB.
func TestMemoryPerKey(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocates 200k keys; skipped under -short and -race")
	}
	for _, m := range []struct {
		name string
		mode int
	}{{"leader", leaderData}, {"follower", exactData}, {"restored", restored}} {
		perKey, overhead := memoryPerKey(t, 200_000, m.mode)
		t.Logf("%-8s %4.0f heap bytes per key, %4.0f beyond its 16-byte key and 32-byte value (EntryOverhead accounts %d)",
			m.name, perKey, overhead, EntryOverhead)
		if overhead <= 0 || perKey > 1024 {
			t.Errorf("%s: implausible measurement: %.0f bytes per key", m.name, perKey)
		}
	}
}

// BenchmarkApplyRelayedSets applies entries of 47 units, each a SET under
// a request id of its own (writes relayed through followers), over a
// full request-id table: ns/op is per unit. At level 6 an unknown id also
// looks for its key's other requests (dedupTable.find).
func BenchmarkApplyRelayedSets(b *testing.B) {
	for _, level := range []uint32{LevelStoredBudget, LevelRequestDigest} {
		b.Run(fmt.Sprint("level", level), func(b *testing.B) {
			f := New(nil)
			var lb logBuilder
			f.Apply(lb.cmd(Command{Op: OpClusterLevel, Now: t0, Level: level}))
			const per = 47
			n := 0
			entry := func() *raft.Log {
				units := make([]Unit, per)
				for i := range units {
					n++
					units[i] = Unit{ReqID: []byte(fmt.Sprintf("rly:0123456789abcdef01:%x", n)),
						Cmds: [][][]byte{{[]byte("SET"), []byte(fmt.Sprint("k", n%100_000)), []byte("value")}}}
				}
				return lb.cmd(Command{Op: OpExec, Now: t0, Units: units})
			}
			for n < DedupMax {
				f.Apply(entry())
			}
			logs := make([]*raft.Log, (b.N+per-1)/per)
			for i := range logs {
				logs[i] = entry() // every id new
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, l := range logs {
				f.Apply(l)
			}
		})
	}
}
