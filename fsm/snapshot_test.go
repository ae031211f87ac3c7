package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"reflect"
	"testing"
)

// populated returns an FSM with live, expiring and already expired keys,
// binary keys and values, and members.
func populated(t testing.TB) (*FSM, *logBuilder) {
	t.Helper()
	f := New(nil)
	b := &logBuilder{}
	for i := 0; i < 50; i++ {
		applyOne(t, f, b.cmd(set(fmt.Sprintf("key-%02d", i), fmt.Sprintf("value-%d", i), t0+int64(i), 0)))
	}
	applyOne(t, f, b.cmd(Command{Op: OpSet, Now: t0 + 60, Key: []byte{0, 0xff, '/'}, Value: []byte{}, ExpireAt: t0 + 1e12}))
	applyOne(t, f, b.cmd(set("expired", "x", t0+61, t0+62)))
	applyOne(t, f, b.cmd(set("key-07", "overwritten", t0+63, 0)))
	applyOne(t, f, b.cmd(del("key-08", t0+64)))
	applyOne(t, f, b.cmd(Command{Op: OpSetMember, Now: t0 + 65, MemberID: "n1", HTTPAddr: "127.0.0.1:1"}))
	applyOne(t, f, b.cmd(Command{Op: OpSetMember, Now: t0 + 66, MemberID: "n2", HTTPAddr: "127.0.0.1:2", RESPAddr: "127.0.0.1:3"}))
	applyOne(t, f, b.cmd(set("late", "y", t0+100, 0)))
	f.Apply(b.config())
	return f, b
}

// sameContents checks every key of want is in got with the same entry,
// reading both at the same time.
func sameContents(t *testing.T, got, want *FSM, now int64) {
	t.Helper()
	if g, w := viewOf(got), viewOf(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("views differ:\n got %+v\nwant %+v", g, w)
	}
	keys, _ := want.Keys(nil, nil, 1<<20, now)
	for _, k := range keys {
		we, _ := want.Get(k, now)
		ge, err := got.Get(k, now)
		if err != nil || !reflect.DeepEqual(ge, we) {
			t.Fatalf("key %q: got %+v %v, want %+v", k, ge, err, we)
		}
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	f, _ := populated(t)
	data := snapshotBytes(t, f)

	g := New(nil)
	changed := g.Changed()
	if err := restore(g, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Restore did not signal Changed")
	}
	sameContents(t, g, f, t0)
	// The expired-but-stored key and its expiry survive: replicas that
	// restored must still agree with replicas that replayed the log.
	if st := g.Stats(); st.Keys != 52 {
		t.Fatalf("restored %d keys, want 52 (expired ones included until removed)", st.Keys)
	}
	mustMiss(t, g, "expired", t0)
	mustGet(t, g, "\x00\xff/", t0, "")

	// A second snapshot of the restored FSM is byte-identical.
	if again := snapshotBytes(t, g); !bytes.Equal(again, data) {
		t.Fatalf("snapshot of the restored FSM differs from the original (%d vs %d bytes)", len(again), len(data))
	}
}

func TestSnapshotOfEmptyFSM(t *testing.T) {
	data := snapshotBytes(t, New(nil))
	f, _ := populated(t)
	if err := restore(f, data); err != nil {
		t.Fatal(err)
	}
	sameContents(t, f, New(nil), t0)
}

func TestRestoreReplacesMembersClockAndIndex(t *testing.T) {
	src := New(nil)
	var sb logBuilder
	applyOne(t, src, sb.cmd(set("src-key", "1", t0, 0)))
	applyOne(t, src, sb.cmd(Command{Op: OpSetMember, Now: t0, MemberID: "a", HTTPAddr: "h:1"}))
	data := snapshotBytes(t, src)

	dst := New(nil)
	db := logBuilder{index: 499}
	applyOne(t, dst, db.cmd(set("dst-key", "2", t0+1e12, 0)))
	applyOne(t, dst, db.cmd(Command{Op: OpSetMember, Now: t0 + 1e12, MemberID: "b", HTTPAddr: "h:2", RESPAddr: "r:2"}))
	if dst.Clock() != t0+1e12 || dst.AppliedIndex() != 501 {
		t.Fatalf("setup: clock %d index %d", dst.Clock(), dst.AppliedIndex())
	}

	if err := restore(dst, data); err != nil {
		t.Fatal(err)
	}
	if m := dst.Members(); !reflect.DeepEqual(m, map[string]string{"a": "h:1"}) {
		t.Errorf("Members after restore = %v, want only a", m)
	}
	if dst.MemberRESPAddr("b") != "" {
		t.Errorf("the RESP address of b survived the restore")
	}
	if dst.Clock() != t0 {
		t.Errorf("Clock after restore = %d, want the snapshot's %d", dst.Clock(), t0)
	}
	if dst.AppliedIndex() != 2 {
		t.Errorf("AppliedIndex after restore = %d, want 2", dst.AppliedIndex())
	}
	mustMiss(t, dst, "dst-key", t0)
	mustGet(t, dst, "src-key", t0, "1")
	sameContents(t, dst, src, t0)
}

// badSnapshots returns streams that must not restore: every strict prefix
// of a valid one, a wrong magic, and a stream with a duplicated key.
func badSnapshots(t *testing.T) map[string][]byte {
	src := New(nil)
	var b logBuilder
	applyOne(t, src, b.cmd(set("dupkey-1", "aaaa", t0, t0+1e12)))
	applyOne(t, src, b.cmd(set("dupkey-2", "bbbb", t0, 0)))
	applyOne(t, src, b.cmd(Command{Op: OpSetMember, Now: t0, MemberID: "m", HTTPAddr: "h:1"}))
	applyOne(t, src, b.cmd(Command{Op: OpSet, Now: t0, Key: []byte("r"), Value: []byte("v"), ReqID: []byte("req-1")}))
	valid := snapshotBytes(t, src)

	bad := map[string][]byte{}
	// The stream cut exactly before the scripts/WATCH trailer is a valid
	// stream of the previous binary (snapshot_ext.go).
	// TODO(merge with level): the v2 snapshot's sections end explicitly.
	v1 := bytes.LastIndex(valid, extMagic[:])
	for n := 0; n < len(valid); n++ {
		if n != v1 {
			bad[fmt.Sprintf("prefix-%d", n)] = valid[:n:n]
		}
	}
	for i := 0; i < 4; i++ {
		m := append([]byte(nil), valid...)
		m[i] ^= 0x20
		bad[fmt.Sprintf("magic-%d", i)] = m
	}
	bad["duplicate key"] = bytes.Replace(valid, []byte("dupkey-2"), []byte("dupkey-1"), 1)
	if bytes.Equal(bad["duplicate key"], valid) {
		t.Fatal("could not build the duplicate-key stream")
	}
	rng := rand.New(rand.NewSource(3))
	for i := 0; i < 4; i++ {
		junk := make([]byte, 1+rng.Intn(4096))
		rng.Read(junk)
		bad[fmt.Sprintf("random-%d", i)] = junk
	}
	return bad
}

func TestRestoreRejectsBadStreamsAndKeepsState(t *testing.T) {
	f, _ := populated(t)
	wantView := viewOf(f)
	wantBytes := snapshotBytes(t, f)

	for name, data := range badSnapshots(t) {
		err := restore(f, data)
		if !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: Restore = %v, want ErrBadSnapshot", name, err)
		}
		if got := viewOf(f); !reflect.DeepEqual(got, wantView) {
			t.Fatalf("%s: a failed Restore changed the FSM:\n got %+v\nwant %+v", name, got, wantView)
		}
	}
	// The complete state, items and request ids included, is untouched.
	if got := snapshotBytes(t, f); !bytes.Equal(got, wantBytes) {
		t.Fatal("failed restores changed the FSM's contents")
	}
	mustGet(t, f, "key-07", t0, "overwritten")
}

func TestRestoreReportsReadErrors(t *testing.T) {
	f, _ := populated(t)
	want := viewOf(f)
	data := snapshotBytes(t, New(nil))
	r := io.MultiReader(bytes.NewReader(data[:len(data)/2]), iotestErrReader{})
	err := f.Restore(io.NopCloser(r))
	if err == nil {
		t.Fatal("Restore of a failing reader succeeded")
	}
	if got := viewOf(f); !reflect.DeepEqual(got, want) {
		t.Fatal("a failed Restore changed the FSM")
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestPersistCancelsOnWriteError(t *testing.T) {
	f, _ := populated(t)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{failAfter: 1}
	if err := snap.Persist(sink); !errors.Is(err, errSinkFull) {
		t.Fatalf("Persist into a failing sink = %v, want the sink's error", err)
	}
	if !sink.canceled || sink.closed {
		t.Fatalf("failing Persist: canceled=%v closed=%v, want Cancel and no Close", sink.canceled, sink.closed)
	}
}

// TestSnapshotIsolatedFromLaterWrites: a snapshot persists the state at the
// moment it was taken, however the FSM changes before Persist runs.
func TestSnapshotIsolatedFromLaterWrites(t *testing.T) {
	f, b := populated(t)
	want := snapshotBytes(t, f)
	wantView := viewOf(f)

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	later := t0 + 1e13
	for i := 0; i < 2000; i++ { // enough to split and rewrite B-tree nodes
		applyOne(t, f, b.cmd(set(fmt.Sprintf("key-%02d", i%60), "rewritten", later, 0)))
	}
	applyOne(t, f, b.cmd(del("late", later)))
	applyOne(t, f, b.cmd(Command{Op: OpRemoveMember, Now: later, MemberID: "n1"}))
	applyOne(t, f, b.cmd(Command{Op: OpSetMember, Now: later, MemberID: "n3", HTTPAddr: "h:3"}))
	if viewOf(f).Digest == wantView.Digest {
		t.Fatal("control: the later writes did not change the digest")
	}

	got := persist(t, snap)
	if !bytes.Equal(got, want) {
		t.Fatal("the snapshot persisted state written after it was taken")
	}
	g := New(nil)
	if err := restore(g, got); err != nil {
		t.Fatal(err)
	}
	if gv := viewOf(g); !reflect.DeepEqual(gv, wantView) {
		t.Fatalf("restored view:\n got %+v\nwant %+v", gv, wantView)
	}
	mustGet(t, g, "key-07", t0, "overwritten")
	mustGet(t, g, "late", t0, "y")
}
