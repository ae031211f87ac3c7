package fsm

import (
	"errors"
	"fmt"
	"math/rand"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"
)

func TestSetGetOverwriteDelete(t *testing.T) {
	f := New(nil)
	var b logBuilder

	mustMiss(t, f, "k", t0)
	r := applyOne(t, f, b.cmd(set("k", "v1", t0, 0)))
	if r.Version != 1 {
		t.Fatalf("first set: Version %d, want the log index 1", r.Version)
	}
	e := mustGet(t, f, "k", t0, "v1")
	if e.Version != 1 || e.ExpireAt != 0 {
		t.Fatalf("Get = %+v, want version 1, no expiry", e)
	}

	applyOne(t, f, b.cmd(set("other", "x", t0, 0))) // index 2
	r = applyOne(t, f, b.cmd(set("k", "v2", t0, 0)))
	if r.Version != 3 || r.Index != 3 {
		t.Fatalf("overwrite: %+v, want Version and Index 3", r)
	}
	if e := mustGet(t, f, "k", t0, "v2"); e.Version != 3 {
		t.Fatalf("after overwrite Version = %d, want 3", e.Version)
	}
	if st := f.Stats(); st.Keys != 2 || st.Bytes != int64(len("k")+len("v2")+len("other")+len("x")+2*EntryOverhead) {
		t.Fatalf("Stats = %+v, want 2 keys and their sizes", st)
	}

	if r := applyOne(t, f, b.cmd(del("k", t0))); !r.Deleted {
		t.Fatalf("delete of a live key: Deleted false")
	}
	mustMiss(t, f, "k", t0)
	if r := applyOne(t, f, b.cmd(del("k", t0))); r.Deleted {
		t.Fatalf("delete of an absent key: Deleted true")
	}
	mustGet(t, f, "other", t0, "x")
	if st := f.Stats(); st.Keys != 1 || st.Bytes != int64(len("other")+len("x")+EntryOverhead) {
		t.Fatalf("Stats after delete = %+v", st)
	}
	if f.AppliedIndex() != b.index {
		t.Fatalf("AppliedIndex = %d, want %d", f.AppliedIndex(), b.index)
	}
}

func TestValueIsNotAliasedToCallerKey(t *testing.T) {
	// A Get key built from a buffer the caller then reuses must not matter.
	f := New(nil)
	var b logBuilder
	applyOne(t, f, b.cmd(set("abc", "1", t0, 0)))
	key := []byte("abc")
	if _, err := f.Get(key, t0); err != nil {
		t.Fatal(err)
	}
	copy(key, "zzz")
	mustGet(t, f, "abc", t0, "1")
	mustMiss(t, f, "zzz", t0)
}

func TestExpiryUsesReadTime(t *testing.T) {
	f := New(nil)
	var b logBuilder
	exp := t0 + 100
	applyOne(t, f, b.cmd(set("k", "v", t0, exp)))

	if e := mustGet(t, f, "k", exp-1, "v"); e.ExpireAt != exp {
		t.Fatalf("ExpireAt = %d, want %d", e.ExpireAt, exp)
	}
	mustMiss(t, f, "k", exp) // ExpireAt <= now: gone
	mustMiss(t, f, "k", exp+1)
	// The key is still stored (nothing removed it) and still readable by
	// a reader whose clock is earlier: reads are pure.
	mustGet(t, f, "k", exp-1, "v")

	// Deleting it once expired is not a deletion of a live key.
	if r := applyOne(t, f, b.cmd(del("k", exp))); r.Deleted {
		t.Fatalf("delete of an expired key reported Deleted")
	}
	if st := f.Stats(); st.Keys != 0 || st.Bytes != 0 {
		t.Fatalf("Stats after deleting the expired key = %+v", st)
	}

	// A set without TTL over an expired key makes it live again.
	applyOne(t, f, b.cmd(set("k2", "old", t0, t0+1)))
	applyOne(t, f, b.cmd(set("k2", "new", t0+5, 0)))
	mustGet(t, f, "k2", t0+1000, "new")
}

func TestLeaderClockExpiresKeys(t *testing.T) {
	f := New(nil)
	var b logBuilder
	exp := t0 + 100
	applyOne(t, f, b.cmd(set("k", "v", t0, exp)))
	if f.Clock() != t0 {
		t.Fatalf("Clock = %d, want %d", f.Clock(), t0)
	}
	mustGet(t, f, "k", t0, "v") // control: live for a reader at t0

	// The leader's clock passes the expiry through an unrelated command.
	applyOne(t, f, b.cmd(set("other", "x", exp, 0)))
	if f.Clock() != exp {
		t.Fatalf("Clock = %d, want %d", f.Clock(), exp)
	}
	// A reader whose own clock is behind must not see the key any more.
	mustMiss(t, f, "k", t0)
	mustMiss(t, f, "k", 0)

	// A later command stamped by a leader with a slower clock does not move
	// replicated time backwards.
	applyOne(t, f, b.cmd(set("slow", "y", t0-1e9, 0)))
	if f.Clock() != exp {
		t.Fatalf("Clock went back to %d, want %d", f.Clock(), exp)
	}
	mustMiss(t, f, "k", t0)
}

func TestConfigurationEntriesOnlyAdvanceIndex(t *testing.T) {
	f := New(nil)
	var b logBuilder
	applyOne(t, f, b.cmd(set("k", "v", t0, 0)))
	before := viewOf(f)

	if got := f.Apply(b.config()); got != nil {
		t.Fatalf("Apply(configuration) = %#v, want nil", got)
	}
	out := f.ApplyBatch([]*raft.Log{b.config(), b.config()})
	if len(out) != 2 || out[0] != nil || out[1] != nil {
		t.Fatalf("ApplyBatch(configurations) = %#v, want two nils", out)
	}
	after := viewOf(f)
	if after.AppliedIndex != 4 {
		t.Fatalf("AppliedIndex = %d, want 4", after.AppliedIndex)
	}
	before.AppliedIndex, before.DigestIndex = after.AppliedIndex, after.DigestIndex
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("configuration entries changed the state:\nbefore %+v\nafter  %+v", before, after)
	}
}

func TestApplyBatchOneResponsePerLog(t *testing.T) {
	f := New(nil)
	var b logBuilder
	logs := []*raft.Log{
		b.cmd(set("a", "1", t0, 0)),
		b.config(),
		b.cmd(set("b", "2", t0, 0)),
		b.cmd(set("a", "3", t0, 0)),
		b.cmd(del("b", t0)),
		b.cmd(del("zzz", t0)),
		b.cmd(Command{Op: OpSetMember, Now: t0, MemberID: "n1", HTTPAddr: "h:1"}),
	}
	out := f.ApplyBatch(logs)
	if len(out) != len(logs) {
		t.Fatalf("ApplyBatch returned %d responses for %d logs", len(out), len(logs))
	}
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			if out[i] != nil {
				t.Errorf("response %d for a configuration entry = %#v", i, out[i])
			}
			continue
		}
		r, ok := out[i].(*Result)
		if !ok || r.Index != l.Index {
			t.Errorf("response %d = %#v, want *Result with Index %d", i, out[i], l.Index)
		}
	}
	if r := out[3].(*Result); r.Version != 4 {
		t.Errorf("overwrite in batch: Version %d, want 4", r.Version)
	}
	if !out[4].(*Result).Deleted || out[5].(*Result).Deleted {
		t.Errorf("Deleted flags = %v, %v; want true, false", out[4].(*Result).Deleted, out[5].(*Result).Deleted)
	}
	mustGet(t, f, "a", t0, "3")
	mustMiss(t, f, "b", t0)
	if f.AppliedIndex() != 7 || f.MemberAddr("n1") != "h:1" {
		t.Fatalf("AppliedIndex %d, member %q", f.AppliedIndex(), f.MemberAddr("n1"))
	}
}

func TestMembers(t *testing.T) {
	f := New(nil)
	var b logBuilder
	for _, c := range []Command{
		{Op: OpSetMember, Now: t0, MemberID: "a", HTTPAddr: "10.0.0.1:80", RESPAddr: "10.0.0.1:6379"},
		{Op: OpSetMember, Now: t0, MemberID: "b", HTTPAddr: "10.0.0.2:80", RESPAddr: "10.0.0.2:6379"},
		{Op: OpSetMember, Now: t0, MemberID: "a", HTTPAddr: "10.0.0.3:80"}, // moved, no RESP any more
		{Op: OpRemoveMember, Now: t0, MemberID: "b"},
		{Op: OpRemoveMember, Now: t0, MemberID: "nosuch"},
		{Op: OpSetMember, Now: t0, MemberID: "c", HTTPAddr: "10.0.0.4:80"},
	} {
		applyOne(t, f, b.cmd(c))
	}
	m := f.Members()
	if len(m) != 2 || m["a"] != "10.0.0.3:80" || m["c"] != "10.0.0.4:80" {
		t.Fatalf("Members = %v", m)
	}
	if f.MemberAddr("a") != "10.0.0.3:80" || f.MemberAddr("b") != "" || f.MemberAddr("zzz") != "" {
		t.Fatalf("MemberAddr a=%q b=%q", f.MemberAddr("a"), f.MemberAddr("b"))
	}
	if f.MemberRESPAddr("a") != "" || f.MemberRESPAddr("b") != "" {
		t.Fatalf("MemberRESPAddr a=%q b=%q, want both cleared", f.MemberRESPAddr("a"), f.MemberRESPAddr("b"))
	}
	applyOne(t, f, b.cmd(Command{Op: OpSetMember, Now: t0, MemberID: "c", HTTPAddr: "10.0.0.4:80", RESPAddr: "10.0.0.4:6379"}))
	if f.MemberRESPAddr("c") != "10.0.0.4:6379" {
		t.Fatalf("MemberRESPAddr c=%q", f.MemberRESPAddr("c"))
	}
	// Members returns a copy.
	m["a"] = "evil"
	delete(m, "c")
	if f.MemberAddr("a") != "10.0.0.3:80" || f.MemberAddr("c") == "" {
		t.Fatalf("changing the map Members returned changed the FSM")
	}
	// Member ops are not cache keys.
	if st := f.Stats(); st.Keys != 0 || st.Bytes != 0 {
		t.Fatalf("member ops changed the cache: %+v", st)
	}
}

func TestChangedIsClosedAfterApply(t *testing.T) {
	f := New(nil)
	var b logBuilder
	ch := f.Changed()
	select {
	case <-ch:
		t.Fatal("Changed closed before anything was applied")
	default:
	}
	applyOne(t, f, b.cmd(set("k", "v", t0, 0)))
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed after Apply")
	}
	if next := f.Changed(); next == ch {
		t.Fatal("Changed returned the closed channel again")
	}
}

// TestConcurrentReadsDuringApply runs readers against a writer; run it
// with -race. Every value is the decimal index of the write that stored
// it, so a reader can check that what it sees is a whole, consistent item
// and that a key's version never goes backwards.
func TestConcurrentReadsDuringApply(t *testing.T) {
	const (
		nkeys   = 64
		batches = 300
		readers = 4
	)
	f := New(nil)
	key := func(i int) string { return "key-" + strconv.Itoa(i) }

	var done atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, readers+1)
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			last := make([]uint64, nkeys)
			for !done.Load() {
				i := rng.Intn(nkeys)
				e, err := f.Get([]byte(key(i)), t0)
				reads.Add(1)
				if errors.Is(err, ErrNotFound) {
					if last[i] != 0 {
						errc <- fmt.Errorf("%s vanished after version %d", key(i), last[i])
						return
					}
					continue
				}
				if err != nil || string(e.Value) != strconv.FormatUint(e.Version, 10) || e.Version < last[i] {
					errc <- fmt.Errorf("%s: %+v %v after version %d", key(i), e, err, last[i])
					return
				}
				last[i] = e.Version
				_ = f.Stats()
				_ = f.Members()
			}
		}(int64(r))
	}

	// The writer, like Raft's FSM goroutine, also takes snapshots that a
	// third goroutine persists while writes go on.
	snaps := make(chan raft.FSMSnapshot, 4)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for snap := range snaps {
			sink := &memSink{}
			if err := snap.Persist(sink); err != nil {
				errc <- err
				return
			}
			g := New(nil)
			if err := restore(g, sink.Bytes()); err != nil {
				errc <- err
				return
			}
			for i := 0; i < nkeys; i++ {
				if e, err := g.Get([]byte(key(i)), t0); err == nil && string(e.Value) != strconv.FormatUint(e.Version, 10) {
					errc <- fmt.Errorf("snapshot holds %s = %+v", key(i), e)
					return
				}
			}
		}
	}()

	rng := rand.New(rand.NewSource(99))
	var b logBuilder
	for n := 0; n < batches; n++ {
		logs := make([]*raft.Log, 1+rng.Intn(32))
		for j := range logs {
			idx := b.index + 1
			logs[j] = b.cmd(set(key(rng.Intn(nkeys)), strconv.FormatUint(idx, 10), t0, 0))
		}
		f.ApplyBatch(logs)
		if n%50 == 0 {
			snap, _ := f.Snapshot()
			snaps <- snap
		}
	}
	close(snaps)
	done.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if reads.Load() == 0 {
		t.Fatal("the readers never ran")
	}
	t.Logf("%d reads during %d batches", reads.Load(), batches)
}
