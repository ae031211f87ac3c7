package fsm

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

// t0 is an arbitrary leader wall clock (Unix ns) the tests count from.
const t0 = int64(1_700_000_000) * 1e9

// logBuilder hands out raft.Log values with consecutive indexes, the way
// Raft would deliver them to the FSM.
type logBuilder struct {
	index uint64
}

func (b *logBuilder) cmd(c Command) *raft.Log {
	b.index++
	return &raft.Log{Index: b.index, Term: 1, Type: raft.LogCommand, Data: c.Encode(nil)}
}

func (b *logBuilder) config() *raft.Log {
	b.index++
	// The payload is Raft's encoded configuration; the FSM must not look at it.
	return &raft.Log{Index: b.index, Term: 1, Type: raft.LogConfiguration, Data: []byte("not a command")}
}

// applyOne applies l with Apply and returns its *Result.
func applyOne(t testing.TB, f *FSM, l *raft.Log) *Result {
	t.Helper()
	res, ok := f.Apply(l).(*Result)
	if !ok || res == nil {
		t.Fatalf("Apply(index %d) returned %T, want *Result", l.Index, res)
	}
	if res.Index != l.Index {
		t.Fatalf("Result.Index = %d, want %d", res.Index, l.Index)
	}
	return res
}

// set, del are shorthands for the commands most tests write.
func set(key, value string, now, expireAt int64) Command {
	return Command{Op: OpSet, Now: now, Key: []byte(key), Value: []byte(value), ExpireAt: expireAt}
}

func del(key string, now int64) Command {
	return Command{Op: OpDelete, Now: now, Key: []byte(key)}
}

// mustGet reads key at now and fails the test unless it holds want.
func mustGet(t testing.TB, f *FSM, key string, now int64, want string) Entry {
	t.Helper()
	e, err := f.Get([]byte(key), now)
	if err != nil {
		t.Fatalf("Get(%q): %v, want %q", key, err, want)
	}
	if string(e.Value) != want {
		t.Fatalf("Get(%q) = %q, want %q", key, e.Value, want)
	}
	return e
}

// mustMiss fails the test unless key is absent at now.
func mustMiss(t testing.TB, f *FSM, key string, now int64) {
	t.Helper()
	if e, err := f.Get([]byte(key), now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, e.Value, err)
	}
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	bytes.Buffer
	failAfter int // if > 0, Write fails once this many bytes were written
	closed    bool
	canceled  bool
}

var errSinkFull = errors.New("sink full")

func (s *memSink) Write(p []byte) (int, error) {
	if s.failAfter > 0 && s.Len()+len(p) > s.failAfter {
		return 0, errSinkFull
	}
	return s.Buffer.Write(p)
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.canceled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

// snapshotBytes takes a snapshot of f and persists it into memory.
func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	return persist(t, snap)
}

func persist(t testing.TB, snap raft.FSMSnapshot) []byte {
	t.Helper()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.canceled {
		t.Fatalf("Persist left the sink closed=%v canceled=%v, want closed only", sink.closed, sink.canceled)
	}
	return sink.Bytes()
}

// restore restores b into f.
func restore(f *FSM, b []byte) error {
	return f.Restore(io.NopCloser(bytes.NewReader(b)))
}

// view is everything that must be equal on two FSMs at the same index.
type view struct {
	Digest       string
	DigestIndex  uint64
	Keys         int
	Bytes        int64
	AppliedIndex uint64
	Counters     Counters
	Clock        int64
	Members      map[string]string
	RESPMembers  map[string]string
	Records      []Member
	ClusterLevel uint32
}

func viewOf(f *FSM) view {
	st := f.Stats()
	d, di := f.Digest()
	return view{
		Digest: d, DigestIndex: di, Keys: st.Keys, Bytes: st.Bytes, AppliedIndex: st.AppliedIndex,
		Counters: st.Counters, Clock: f.Clock(), Members: f.Members(), RESPMembers: respAddrs(f),
		Records: f.MemberRecords(), ClusterLevel: f.ClusterLevel(),
	}
}

// respAddrs lists the members' Redis-protocol addresses, "" ones left out.
func respAddrs(f *FSM) map[string]string {
	m := map[string]string{}
	for id := range f.Members() {
		if a := f.MemberRESPAddr(id); a != "" {
			m[id] = a
		}
	}
	return m
}
