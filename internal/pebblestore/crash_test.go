package pebblestore

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/hashicorp/raft"
)

// The crash tests run the store on pebble's strict in-memory filesystem,
// which keeps unsynced writes apart: ResetToSyncedState drops exactly
// them, as a power cut would. After every operation the store is
// "crashed" (closed with its syncs ignored, then reset) and reopened, and
// everything the operation acknowledged must be there.

// model is what the store must hold: a contiguous log and stable keys.
type model struct {
	first, last uint64 // 0, 0: empty
	logs        map[uint64][]byte
	stable      map[string][]byte
}

// crashTestStore is small, so memtables flush and tables compact during
// the test and every path (WAL, flushed tables, range tombstones in both)
// is crossed.
func crashOpen(t *testing.T, fs vfs.FS) *Store {
	t.Helper()
	s, err := Open("db", Options{FS: fs, MemTableSize: 256 << 10, CacheSize: 1 << 20})
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	return s
}

// crash simulates a power cut: nothing the store did not sync survives.
func crash(t *testing.T, fs *vfs.MemFS, s *Store) *Store {
	t.Helper()
	fs.SetIgnoreSyncs(true)
	s.Close()
	fs.ResetToSyncedState()
	fs.SetIgnoreSyncs(false)
	return crashOpen(t, fs)
}

func (m *model) verify(s *Store) error {
	f, err := s.FirstIndex()
	if err != nil {
		return err
	}
	l, err := s.LastIndex()
	if err != nil {
		return err
	}
	if f != m.first || l != m.last {
		return fmt.Errorf("log is [%d, %d], want [%d, %d]", f, l, m.first, m.last)
	}
	for i := m.first; m.last != 0 && i <= m.last; i++ {
		var e raft.Log
		if err := s.GetLog(i, &e); err != nil {
			return fmt.Errorf("entry %d: %v", i, err)
		}
		if e.Index != i || !bytes.Equal(e.Data, m.logs[i]) || e.Term != i {
			return fmt.Errorf("entry %d: got index %d term %d %d bytes, want %d bytes", i, e.Index, e.Term, len(e.Data), len(m.logs[i]))
		}
	}
	for k, want := range m.stable {
		got, err := s.Get([]byte(k))
		if err != nil || !bytes.Equal(got, want) {
			return fmt.Errorf("stable %q = %x %v, want %x", k, got, err, want)
		}
	}
	return nil
}

func TestCrashAfterEveryOperation(t *testing.T) {
	seed := int64(19)
	rng := rand.New(rand.NewSource(seed))
	fs := vfs.NewStrictMem()
	s := crashOpen(t, fs)
	defer func() { s.Close() }()
	m := &model{logs: map[uint64][]byte{}, stable: map[string][]byte{}}
	value := func() []byte {
		n := rng.Intn(200)
		if rng.Intn(8) == 0 {
			n = 20000 + rng.Intn(40000) // big entries fill memtables fast
		}
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	appendLogs := func(from uint64, n int) error {
		var batch []*raft.Log
		for i := from; i < from+uint64(n); i++ {
			e := &raft.Log{Index: i, Term: i, Type: raft.LogCommand, Data: value()}
			batch = append(batch, e)
		}
		if err := s.StoreLogs(batch); err != nil {
			return err
		}
		for _, e := range batch {
			m.logs[e.Index] = e.Data
		}
		if m.first == 0 {
			m.first = from
		}
		m.last = from + uint64(n) - 1
		return nil
	}
	counts := map[string]int{}
	for step := 0; step < 400; step++ {
		var op string
		var err error
		switch r := rng.Intn(10); {
		case r < 4 || m.last == 0:
			op, err = "StoreLogs", appendLogs(m.last+1, 1+rng.Intn(16))
		case r == 4 && m.last-m.first > 4:
			// Log compaction after a snapshot: drop a head.
			to := m.first + uint64(rng.Intn(int(m.last-m.first)))
			op, err = "DeleteRange head", s.DeleteRange(m.first, to)
			for i := m.first; i <= to; i++ {
				delete(m.logs, i)
			}
			m.first = to + 1
		case r == 5 && m.last-m.first > 4:
			// A follower dropping a conflicting suffix, then the leader's
			// entries written over it.
			from := m.last - uint64(rng.Intn(4))
			if err = s.DeleteRange(from, m.last); err == nil {
				for i := from; i <= m.last; i++ {
					delete(m.logs, i)
				}
				m.last = from - 1
				s = crash(t, fs, s)
				if err = m.verify(s); err != nil {
					t.Fatalf("step %d, crash after DeleteRange tail: %v", step, err)
				}
				counts["DeleteRange tail"]++
				err = appendLogs(from, 1+rng.Intn(4))
			}
			op = "StoreLogs over a truncated tail"
		case r == 6:
			k, v := []string{"CurrentTerm", "LastVoteTerm"}[rng.Intn(2)], uint64(step)
			op, err = "SetUint64", s.SetUint64([]byte(k), v)
			m.stable[k] = []byte{0, 0, 0, 0, 0, 0, byte(v >> 8), byte(v)}
		case r == 7:
			v := []byte(fmt.Sprintf("n%d", rng.Intn(5)))
			op, err = "Set", s.Set([]byte("LastVoteCand"), v)
			m.stable["LastVoteCand"] = v
		case r == 8:
			// Not an operation of the store: a memtable flush at a chosen
			// moment, so crashes also follow WAL rotations.
			op, err = "Flush", s.db.Flush()
		default:
			op, err = "StoreLogs", appendLogs(m.last+1, 1)
		}
		if err != nil {
			t.Fatalf("step %d %s: %v", step, op, err)
		}
		counts[op]++
		s = crash(t, fs, s)
		if err := m.verify(s); err != nil {
			t.Fatalf("seed %d step %d, crash after %s: %v", seed, step, op, err)
		}
	}
	for _, op := range []string{"StoreLogs", "DeleteRange head", "DeleteRange tail", "StoreLogs over a truncated tail", "SetUint64", "Set", "Flush"} {
		if counts[op] == 0 {
			t.Errorf("no crash after %s", op)
		}
	}
	t.Logf("crashes after: %v", counts)
}

// TestCrashDropsUnsynced is the negative control: the harness really drops
// what was not synced, and verify notices a missing entry. Without it the
// test above could pass against a filesystem that keeps everything.
func TestCrashDropsUnsynced(t *testing.T) {
	fs := vfs.NewStrictMem()
	s := crashOpen(t, fs)
	defer func() { s.Close() }()
	m := &model{logs: map[uint64][]byte{}, stable: map[string][]byte{}}
	if err := s.StoreLog(&raft.Log{Index: 1, Term: 1, Data: []byte("synced")}); err != nil {
		t.Fatal(err)
	}
	m.first, m.last, m.logs[1] = 1, 1, []byte("synced")
	// An entry written without Sync, as a store that skipped the fsync
	// would.
	b := s.db.NewBatch()
	op := b.SetDeferred(9, encodedLen(&raft.Log{Index: 2, Term: 2, Data: []byte("unsynced")}))
	copy(op.Key, logKey(2))
	encodeLog(op.Value[:0], &raft.Log{Index: 2, Term: 2, Data: []byte("unsynced")})
	op.Finish()
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	withUnsynced := &model{first: 1, last: 2, logs: map[uint64][]byte{1: []byte("synced"), 2: []byte("unsynced")}}
	if err := withUnsynced.verify(s); err != nil {
		t.Fatalf("before the crash: %v", err)
	}
	s = crash(t, fs, s)
	if err := m.verify(s); err != nil {
		t.Fatalf("synced entry lost: %v", err)
	}
	if err := withUnsynced.verify(s); err == nil {
		t.Fatal("an unsynced entry survived the crash: the harness would not catch a missing fsync")
	}
}
