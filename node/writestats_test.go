package node

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/fsm"
)

// TestHistogram: bounds are inclusive, counts cumulative, and the last
// bucket (above every bound) counts toward Count only.
func TestHistogram(t *testing.T) {
	h := newHistogram([]uint64{10, 20, 40})
	for _, v := range []uint64{0, 10, 11, 20, 21, 40, 41, 1000} {
		h.observe(v)
	}
	s := h.snapshot(0.5)
	want := []uint64{2, 4, 6}
	for i, c := range s.Cumulative {
		if c != want[i] {
			t.Fatalf("cumulative %v, want %v", s.Cumulative, want)
		}
	}
	if s.Count != 8 {
		t.Fatalf("count %d, want 8", s.Count)
	}
	if s.Sum != 1143*0.5 || s.Bounds[2] != 20 {
		t.Fatalf("sum %v bounds %v, want 571.5 and the bounds scaled by 0.5", s.Sum, s.Bounds)
	}
}

// TestWriteStats: the leader counts every write it proposes into its entry
// histograms, group-committed or in an entry of its own (an atomic
// batch), and every node times its log appends; a follower proposes
// nothing.
func TestWriteStats(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitForLeader(t, nodes...)
	ctx := ctxTimeout(t, 60*time.Second)
	var follower *Node
	for _, n := range nodes {
		if n != leader {
			follower = n
		}
	}
	before, fbefore := leader.WriteStats(), follower.WriteStats()

	// The atomic batch is bigger than any entry the writers can share
	// (20, with a few writes of the node's own), so its own entry shows
	// in the (64, 128] bucket whatever else lands meanwhile.
	const writers, rounds, batch = 20, 5, 100
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if _, err := leader.Write(ctx, Op{Kind: fsm.OpSet, Key: []byte(fmt.Sprintf("ws/%d", w)), Value: []byte{byte(r)}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	ops := make([]Op, batch)
	for i := range ops {
		ops[i] = Op{Kind: fsm.OpSet, Key: []byte(fmt.Sprintf("ws/batch/%d", i)), Value: []byte("v")}
	}
	if _, err := leader.WriteBatch(ctx, ops, true, nil); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	after := leader.WriteStats()
	total := uint64(writers*rounds + batch)
	writes := uint64(after.EntryWrites.Sum - before.EntryWrites.Sum)
	entries := after.Entries.Count - before.Entries.Count
	// Housekeeping may propose a few writes of its own meanwhile.
	if writes < total || writes > total+16 {
		t.Fatalf("the leader counted %d writes in its entries, want %d (+ at most a few of its own)", writes, total)
	}
	in64to128 := func(h Histogram) uint64 { return h.Cumulative[7] - h.Cumulative[6] }
	if h := after.EntryWrites; h.Bounds[6] != 64 || h.Bounds[7] != 128 || in64to128(h)-in64to128(before.EntryWrites) != 1 {
		t.Fatalf("entries of 65 to 128 commands: %d before, %d after; want the atomic batch of %d alone", in64to128(before.EntryWrites), in64to128(h), batch)
	}
	if entries == 0 || entries > total || after.EntryWrites.Count-before.EntryWrites.Count != entries {
		t.Fatalf("%d entries for %d writes (%d sizes recorded)", entries, total, after.EntryWrites.Count-before.EntryWrites.Count)
	}
	// Raft's leader loop may store several entries in one append.
	if appends := after.LogAppends.Count - before.LogAppends.Count; appends == 0 {
		t.Fatalf("the leader timed no log append for %d entries", entries)
	}
	if after.LogAppends.Sum <= before.LogAppends.Sum || after.Entries.Sum <= before.Entries.Sum {
		t.Fatalf("no time recorded: appends %v -> %v s, entries %v -> %v s", before.LogAppends.Sum, after.LogAppends.Sum, before.Entries.Sum, after.Entries.Sum)
	}

	// The follower stores what the leader sends (polled: it may answer
	// the leader before this reads its figures, but it stores first).
	deadline := time.Now().Add(30 * time.Second)
	for follower.WriteStats().LogAppends.Count == fbefore.LogAppends.Count {
		if time.Now().After(deadline) {
			t.Fatal("the follower timed no log append")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if f := follower.WriteStats(); f.Entries.Count != fbefore.Entries.Count {
		t.Fatalf("the follower recorded %d entries of its own", f.Entries.Count-fbefore.Entries.Count)
	}
}

// TestTimedLogsMonotonic: the wrapper passes on what Raft asks of the log
// store behind it (raft-wal is monotonic: after installing a snapshot Raft
// then removes all its old entries instead of compacting a range, which
// raft-wal cannot do; pebble and bolt are not).
func TestTimedLogsMonotonic(t *testing.T) {
	for kind, want := range map[string]bool{LogStoreWAL: true, LogStorePebble: false, LogStoreBolt: false} {
		s, err := openStore(kind, t.TempDir(), storeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cache, err := raft.NewLogCache(16, timedLogs{s, newWriteStats()})
		if err != nil {
			t.Fatal(err)
		}
		if got := cache.IsMonotonic(); got != want {
			t.Errorf("%s behind timedLogs: monotonic %v, want %v", kind, got, want)
		}
		s.Close()
	}
}
