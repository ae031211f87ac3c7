package pebblestore

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/hashicorp/raft"
)

func memStore(t *testing.T, fs vfs.FS) *Store {
	t.Helper()
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func entry(i uint64, data string) *raft.Log {
	return &raft.Log{Index: i, Term: i/10 + 1, Type: raft.LogCommand, Data: []byte(data)}
}

func TestLogRoundTrip(t *testing.T) {
	s := memStore(t, vfs.NewMem())
	defer s.Close()
	if f, l := mustEdges(t, s); f != 0 || l != 0 {
		t.Fatalf("empty store: first %d last %d", f, l)
	}
	at := time.Unix(1700000000, 123456789)
	in := []*raft.Log{
		{Index: 5, Term: 2, Type: raft.LogCommand, Data: []byte("five"), Extensions: []byte("ext"), AppendedAt: at},
		{Index: 6, Term: 2, Type: raft.LogNoop},
		{Index: 7, Term: 3, Type: raft.LogConfiguration, Data: bytes.Repeat([]byte{0xff}, 70000)},
	}
	if err := s.StoreLogs(in); err != nil {
		t.Fatal(err)
	}
	for _, want := range in {
		var got raft.Log
		if err := s.GetLog(want.Index, &got); err != nil {
			t.Fatal(err)
		}
		if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
			!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) || !got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("entry %d: got %+v", want.Index, got)
		}
	}
	if f, l := mustEdges(t, s); f != 5 || l != 7 {
		t.Fatalf("first %d last %d, want 5 7", f, l)
	}
	var l raft.Log
	if err := s.GetLog(8, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("missing entry: %v", err)
	}
}

// hashicorp/raft's DeleteRange includes both ends; pebble's excludes the
// end. Deleting the middle, the head, the tail and up to MaxUint64.
func TestDeleteRangeInclusive(t *testing.T) {
	s := memStore(t, vfs.NewMem())
	defer s.Close()
	for i := uint64(1); i <= 10; i++ {
		if err := s.StoreLog(entry(i, "x")); err != nil {
			t.Fatal(err)
		}
	}
	check := func(present ...uint64) {
		t.Helper()
		want := map[uint64]bool{}
		for _, i := range present {
			want[i] = true
		}
		for i := uint64(0); i <= 11; i++ {
			var l raft.Log
			err := s.GetLog(i, &l)
			if want[i] != (err == nil) {
				t.Fatalf("entry %d present=%v, want %v (%v)", i, err == nil, want[i], err)
			}
		}
	}
	mustDelete(t, s, 4, 6)
	check(1, 2, 3, 7, 8, 9, 10)
	mustDelete(t, s, 1, 3)
	check(7, 8, 9, 10)
	mustDelete(t, s, 9, 9)
	check(7, 8, 10)
	mustDelete(t, s, 8, math.MaxUint64)
	check(7)
	mustDelete(t, s, 5, 4) // empty range: nothing
	check(7)
	if f, l := mustEdges(t, s); f != 7 || l != 7 {
		t.Fatalf("first %d last %d, want 7 7", f, l)
	}
}

func TestStable(t *testing.T) {
	s := memStore(t, vfs.NewMem())
	defer s.Close()
	// hashicorp/raft recognises "never set" by this message.
	if _, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("unset uint64: %v", err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err == nil || err.Error() != "not found" || v != nil {
		t.Fatalf("unset key: %q %v", v, err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("n2")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
		t.Fatalf("term %d %v", v, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "n2" {
		t.Fatalf("vote %q %v", v, err)
	}
	// Stable keys and log entries do not see each other.
	if f, l := mustEdges(t, s); f != 0 || l != 0 {
		t.Fatalf("stable keys counted as log: first %d last %d", f, l)
	}
}

func TestClosed(t *testing.T) {
	s := memStore(t, vfs.NewMem())
	s.Close()
	if err := s.StoreLog(entry(1, "x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("store after close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestBudget(t *testing.T) {
	if m := Budget(0).Memory(); m != 40<<20 {
		t.Fatalf("unbounded node: store memory %d", m)
	}
	for _, max := range []int64{64 << 20, 256 << 20, 1 << 30} {
		o := Budget(max)
		if o.MemTableSize < minMemTableSize {
			t.Fatalf("max %d: memtable %d below the minimum", max, o.MemTableSize)
		}
		if o.Memory() > max/16 && o.MemTableSize > minMemTableSize {
			t.Fatalf("max %d: store memory %d over a sixteenth", max, o.Memory())
		}
	}
}

func mustEdges(t *testing.T, s *Store) (uint64, uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return f, l
}

func mustDelete(t *testing.T, s *Store, min, max uint64) {
	t.Helper()
	if err := s.DeleteRange(min, max); err != nil {
		t.Fatal(err)
	}
}

func TestBudgetFigures(t *testing.T) {
	// The figures docs/benchmarks.md quotes.
	for max, want := range map[int64]int64{256 << 20: 10 << 20, 512 << 20: 20 << 20, 0: 40 << 20} {
		if got := Budget(max).Memory(); got != want {
			t.Errorf("Budget(%d).Memory() = %d, want %d", max, got, want)
		}
	}
}

// TestSecondOpenRefused: a store is locked while open, so an offline tool
// (raftcache recover) cannot open the store of a running node.
func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := Open(dir, Options{}); err == nil {
		s2.Close()
		t.Fatal("a second Open of a live store succeeded")
	} else {
		t.Logf("second open: %v", err)
	}
	s.Close()
	s3, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s3.Close()
}
