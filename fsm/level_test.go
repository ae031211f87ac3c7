package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// goldenCommands built testdata/snapshot-v1-level1.golden with the level-1
// binary (commit 2038a1b): keys with and without expiry, request ids,
// members with and without a Redis address, a removed member, a batch.
func goldenCommands() []Command {
	return []Command{
		set("a", "1", t0, 0),
		set("b", "2", t0+1, t0+1e12),
		{Op: OpSet, Now: t0 + 2, Key: []byte{0, 0xff}, Value: []byte{}, ReqID: []byte("req-1")},
		{Op: OpIncr, Now: t0 + 3, Key: []byte("ctr"), By: 5, ReqID: []byte("req-2")},
		del("a", t0+4),
		{Op: OpSetMember, Now: t0 + 5, MemberID: "n1", HTTPAddr: "10.0.0.1:8001", RESPAddr: "10.0.0.1:6381"},
		{Op: OpSetMember, Now: t0 + 6, MemberID: "n2", HTTPAddr: "10.0.0.2:8001"},
		{Op: OpSetMember, Now: t0 + 7, MemberID: "n3", HTTPAddr: "10.0.0.3:8001"},
		{Op: OpRemoveMember, Now: t0 + 8, MemberID: "n3"},
		{Op: OpBatch, Now: t0 + 9, Atomic: true, Cmds: []*Command{{Op: OpSet, Key: []byte("c"), Value: []byte("3")}, {Op: OpDelete, Key: []byte("b")}}},
	}
}

func goldenFSM(t *testing.T, f *FSM) (*FSM, *logBuilder) {
	t.Helper()
	b := &logBuilder{}
	for _, c := range goldenCommands() {
		applyOne(t, f, b.cmd(c))
	}
	f.Apply(b.config())
	return f, b
}

func TestClusterLevelEntry(t *testing.T) {
	f := New(nil)
	var b logBuilder
	if f.ClusterLevel() != 1 || f.Level() != FeatureLevel {
		t.Fatalf("new FSM: cluster level %d, level %d; want 1 and %d", f.ClusterLevel(), f.Level(), FeatureLevel)
	}
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: 2}))
	if f.ClusterLevel() != 2 {
		t.Fatalf("cluster level after raising to 2: %d", f.ClusterLevel())
	}
	// The level never goes down, whatever the log says.
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: 1}))
	if f.ClusterLevel() != 2 || f.Poisoned() != nil {
		t.Fatalf("after a lower level: cluster level %d, poisoned %v", f.ClusterLevel(), f.Poisoned())
	}
	if st := f.Stats(); st.Keys != 0 || st.Sets != 0 || st.AppliedIndex != 2 {
		t.Fatalf("level entries changed the cache: %+v", st)
	}
}

func TestMemberRecords(t *testing.T) {
	f := New(nil)
	var b logBuilder
	applyOne(t, f, b.cmd(Command{Op: OpSetMember, Now: t0, MemberID: "a", HTTPAddr: "h:1", RESPAddr: "r:1"}))
	want := []Member{{ID: "a", Addrs: map[string]string{AddrHTTP: "h:1", AddrRedis: "r:1"}}}
	if got := f.MemberRecords(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after set-member: %+v, want %+v", got, want)
	}
	rec := Member{ID: "a", Addrs: map[string]string{AddrHTTP: "h:2", "grpc": "g:2"}, Incarnation: "inc-a", Level: 2}
	applyOne(t, f, b.cmd(Command{Op: OpMember, Now: t0, MemberID: rec.ID, Addrs: rec.Addrs, Incarnation: rec.Incarnation, Level: rec.Level}))
	if got, ok := f.Member("a"); !ok || !reflect.DeepEqual(got, rec) {
		t.Fatalf("after member: %+v, want %+v (a record is replaced whole)", got, rec)
	}
	if f.MemberAddr("a") != "h:2" || f.MemberRESPAddr("a") != "" || !reflect.DeepEqual(f.Members(), map[string]string{"a": "h:2"}) {
		t.Fatalf("views: http %q redis %q members %v", f.MemberAddr("a"), f.MemberRESPAddr("a"), f.Members())
	}
	// The legacy entry replaces the two addresses it knows and keeps the rest.
	applyOne(t, f, b.cmd(Command{Op: OpSetMember, Now: t0, MemberID: "a", HTTPAddr: "h:3", RESPAddr: "r:3"}))
	want = []Member{{ID: "a", Addrs: map[string]string{AddrHTTP: "h:3", AddrRedis: "r:3", "grpc": "g:2"}, Incarnation: "inc-a", Level: 2}}
	if got := f.MemberRecords(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a legacy set-member: %+v, want %+v", got, want)
	}
	// Records handed out are copies.
	got, _ := f.Member("a")
	got.Addrs[AddrHTTP] = "evil"
	f.MemberRecords()[0].Addrs[AddrHTTP] = "evil"
	if f.MemberAddr("a") != "h:3" {
		t.Fatal("changing a returned record changed the FSM")
	}
	applyOne(t, f, b.cmd(Command{Op: OpMember, Now: t0, MemberID: "b"}))
	if got, ok := f.Member("b"); !ok || got.Addrs == nil || len(got.Addrs) != 0 {
		t.Fatalf("a member without addresses: %+v %v", got, ok)
	}
	applyOne(t, f, b.cmd(Command{Op: OpRemoveMember, Now: t0, MemberID: "a"}))
	if _, ok := f.Member("a"); ok || len(f.MemberRecords()) != 1 {
		t.Fatalf("after remove: %+v", f.MemberRecords())
	}
}

// TestMemberRecordsLiveInTheRoot: a snapshot taken before a member change
// does not see it (the records are part of the copy-on-write state).
func TestMemberRecordsLiveInTheRoot(t *testing.T) {
	f := New(nil)
	var b logBuilder
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: 2}))
	applyOne(t, f, b.cmd(Command{Op: OpMember, Now: t0, MemberID: "a", Addrs: map[string]string{AddrHTTP: "h:1"}, Level: 2}))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	applyOne(t, f, b.cmd(Command{Op: OpMember, Now: t0, MemberID: "a", Addrs: map[string]string{AddrHTTP: "h:9"}, Level: 2}))
	applyOne(t, f, b.cmd(Command{Op: OpMember, Now: t0, MemberID: "z", Level: 2}))
	g := New(nil)
	if err := restore(g, persist(t, snap)); err != nil {
		t.Fatal(err)
	}
	if want := []Member{{ID: "a", Addrs: map[string]string{AddrHTTP: "h:1"}, Level: 2}}; !reflect.DeepEqual(g.MemberRecords(), want) {
		t.Fatalf("snapshot taken before the changes restored %+v, want %+v", g.MemberRecords(), want)
	}
}

// TestSnapshotV1MatchesLevel1Binary: below level 2 the FSM writes format 1
// byte for byte as the level-1 binary did for the same log, and restores
// what that binary wrote; an FSM playing the level-1 binary (which reads
// format 1 only) restores it too.
func TestSnapshotV1MatchesLevel1Binary(t *testing.T) {
	golden, err := os.ReadFile("testdata/snapshot-v1-level1.golden")
	if err != nil {
		t.Fatal(err)
	}
	f, _ := goldenFSM(t, New(nil))
	got := snapshotBytes(t, f)
	if !bytes.HasPrefix(got, []byte("RCS\x01")) {
		t.Fatalf("snapshot at cluster level 1 starts %q, want format 1", got[:4])
	}
	if !bytes.Equal(got, golden) {
		t.Fatalf("format 1 differs from the level-1 binary's (%d vs %d bytes)", len(got), len(golden))
	}
	for _, g := range []*FSM{New(nil), NewAtLevel(nil, 1)} {
		if err := restore(g, golden); err != nil {
			t.Fatalf("level %d: restoring the level-1 binary's snapshot: %v", g.Level(), err)
		}
		sameContents(t, g, f, t0)
	}
	old, _ := goldenFSM(t, NewAtLevel(nil, 1))
	if !bytes.Equal(snapshotBytes(t, old), golden) {
		t.Fatal("an FSM at level 1 writes something else than the level-1 binary")
	}
	// A backup follows the level too.
	var buf bytes.Buffer
	if err := f.WriteBackup(&buf); err != nil || !bytes.HasPrefix(buf.Bytes(), []byte("RCS\x01")) {
		t.Fatalf("backup at level 1: %v, starts %q", err, buf.Bytes()[:4])
	}
}

// levelTwo is the golden log, raised to level 2, with full member records.
func levelTwo(t *testing.T) *FSM {
	f, b := goldenFSM(t, New(nil))
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0 + 20, Level: 2}))
	applyOne(t, f, b.cmd(Command{Op: OpMember, Now: t0 + 21, MemberID: "n2", Incarnation: "0123abcd",
		Level: 2, Addrs: map[string]string{AddrHTTP: "10.0.0.2:8001", AddrRedis: "10.0.0.2:6381", "grpc": "10.0.0.2:7000"}}))
	applyOne(t, f, b.cmd(Command{Op: OpMember, Now: t0 + 22, MemberID: "n4", Level: 2}))
	applyOne(t, f, b.cmd(set("after", "2", t0+23, 0)))
	return f
}

func TestSnapshotV2RoundTrip(t *testing.T) {
	f := levelTwo(t)
	data := snapshotBytes(t, f)
	if !bytes.HasPrefix(data, []byte("RCS\x02")) {
		t.Fatalf("snapshot at cluster level 2 starts %q, want format 2", data[:4])
	}
	g := New(nil)
	if err := restore(g, data); err != nil {
		t.Fatal(err)
	}
	sameContents(t, g, f, t0)
	want := []Member{
		{ID: "n1", Addrs: map[string]string{AddrHTTP: "10.0.0.1:8001", AddrRedis: "10.0.0.1:6381"}},
		{ID: "n2", Addrs: map[string]string{AddrHTTP: "10.0.0.2:8001", AddrRedis: "10.0.0.2:6381", "grpc": "10.0.0.2:7000"}, Incarnation: "0123abcd", Level: 2},
		{ID: "n4", Addrs: map[string]string{}, Level: 2},
	}
	if got := g.MemberRecords(); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored records %+v, want %+v", got, want)
	}
	if g.ClusterLevel() != 2 {
		t.Fatalf("restored cluster level %d", g.ClusterLevel())
	}
	if again := snapshotBytes(t, g); !bytes.Equal(again, data) {
		t.Fatal("a snapshot of the restored FSM differs")
	}
	// Format 2 is what a level-1 binary cannot read: that is why it is
	// written only once every member runs level 2.
	if err := restore(NewAtLevel(nil, 1), data); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("a level-1 FSM restoring format 2: %v, want ErrBadSnapshot", err)
	}
	// Backups follow the level and read back whole.
	var buf bytes.Buffer
	if err := f.WriteBackup(&buf); err != nil || !bytes.HasPrefix(buf.Bytes(), []byte("RCS\x02")) {
		t.Fatalf("backup at level 2: %v", err)
	}
	var keys []string
	if err := ReadBackup(&buf, func(it BackupItem) error { keys = append(keys, string(it.Key)); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys) != "[\x00\xff after c ctr]" {
		t.Fatalf("backup keys %q", keys)
	}
}

func TestRestoreRejectsBadV2Streams(t *testing.T) {
	f := levelTwo(t)
	valid := snapshotBytes(t, f)
	wantView := viewOf(f)
	bad := map[string][]byte{}
	for n := 0; n < len(valid); n++ {
		bad[fmt.Sprintf("prefix-%d", n)] = valid[:n:n]
	}
	bad["format 3"] = append([]byte("RCS\x03"), valid[4:]...)
	bad["format 0"] = append([]byte("RCS\x00"), valid[4:]...)
	bad["dedup twice"] = append(valid[:len(valid)-1:len(valid)-1], secDedup, 0)
	bad["unknown section"] = append(valid[:len(valid)-1:len(valid)-1], 9, 0)
	bad["members missing"] = append([]byte("RCS\x02"), secHeader, 0, 0, 0, 0, 0, 0, 0, 0, secItems, 0, secDedup, 0, secEnd)
	bad["members first"] = append([]byte("RCS\x02"), secMembers, 0, secHeader, 0, 0, 0, 0, 0, 0, 0, 0, secItems, 0, secDedup, 0, secEnd)
	control := append([]byte("RCS\x02"), secHeader, 0, 0, 0, 0, 0, 0, 0, 0, secMembers, 0, secItems, 0, secDedup, 0, secScripts)
	empty := newState()
	control = append(appendScripts(control, &empty.scripts), secChanges)
	control = append(appendChangeLog(control, &empty.changes), secEnd)
	if err := restore(New(nil), control); err != nil {
		t.Fatalf("control: a minimal format 2 stream: %v", err)
	}
	for name, data := range bad {
		if err := restore(f, data); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: Restore = %v, want ErrBadSnapshot", name, err)
		}
	}
	if got := viewOf(f); !reflect.DeepEqual(got, wantView) {
		t.Fatal("failed restores changed the FSM")
	}
}

// TestPoisonOnEntryOfNewerLevel: an FSM meeting an entry it cannot apply
// neither panics nor applies anything more; it keeps the state before
// the entry, answers every later entry with ErrPoisoned, refuses
// snapshots and backups, and says which entry stopped it.
func TestPoisonOnEntryOfNewerLevel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		f     *FSM
		entry Command
		raw   []byte
		op    string
	}{
		{"level entry on level 1", NewAtLevel(nil, 1), Command{Op: OpClusterLevel, Now: t0, Level: 2}, nil, "cluster-level"},
		{"member entry on level 1", NewAtLevel(nil, 1), Command{Op: OpMember, Now: t0, MemberID: "m"}, nil, "member"},
		{"level beyond this binary", New(nil), Command{Op: OpClusterLevel, Now: t0, Level: FeatureLevel + 1}, nil, "cluster-level"},
		{"unknown op", New(nil), Command{}, []byte{1, 200, 0, 0}, "op(200)"},
		{"unknown format", New(nil), Command{}, []byte{9, 1}, "set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			var b logBuilder
			applyOne(t, f, b.cmd(set("before", "1", t0, 0)))
			first := b.cmd(set("same-batch-before", "1", t0, 0))
			bad := b.cmd(tc.entry)
			if tc.raw != nil {
				bad.Data = tc.raw
			}
			logs := []*raft.Log{first, bad, b.cmd(set("after", "1", t0, 0)), b.config()}
			out := f.ApplyBatch(logs)
			if r, ok := out[0].(*Result); !ok || r.Err != nil {
				t.Fatalf("the entry before the bad one: %#v", out[0])
			}
			for i := 1; i <= 2; i++ {
				if r, ok := out[i].(*Result); !ok || !errors.Is(r.Err, ErrPoisoned) || r.Index != logs[i].Index {
					t.Fatalf("entry %d: %#v, want a result with ErrPoisoned", i, out[i])
				}
			}
			select {
			case <-f.PoisonedCh():
			default:
				t.Fatal("PoisonedCh not closed")
			}
			err := f.Poisoned()
			if !errors.Is(err, ErrPoisoned) || !strings.Contains(err.Error(), "entry 3 ") || !strings.Contains(err.Error(), "op "+tc.op) {
				t.Fatalf("Poisoned() = %v, want ErrPoisoned naming entry 3 and op %s", err, tc.op)
			}
			mustGet(t, f, "same-batch-before", t0, "1")
			mustMiss(t, f, "after", t0)
			if f.AppliedIndex() != 2 || f.ClusterLevel() != 1 {
				t.Fatalf("applied index %d, cluster level %d; want 2 and 1", f.AppliedIndex(), f.ClusterLevel())
			}
			// Later entries are refused too, one by one or in batches.
			if r, ok := f.Apply(b.cmd(set("later", "1", t0, 0))).(*Result); !ok || !errors.Is(r.Err, ErrPoisoned) {
				t.Fatalf("a later Apply: %#v", r)
			}
			mustMiss(t, f, "later", t0)
			if f.AppliedIndex() != 2 {
				t.Fatalf("applied index moved to %d", f.AppliedIndex())
			}
			if _, err := f.Snapshot(); !errors.Is(err, ErrPoisoned) {
				t.Fatalf("Snapshot: %v, want ErrPoisoned", err)
			}
			if err := f.WriteBackup(&bytes.Buffer{}); !errors.Is(err, ErrPoisoned) {
				t.Fatalf("WriteBackup: %v, want ErrPoisoned", err)
			}
			if err := restore(f, snapshotBytes(t, New(nil))); !errors.Is(err, ErrPoisoned) {
				t.Fatalf("Restore: %v, want ErrPoisoned", err)
			}
		})
	}
}
