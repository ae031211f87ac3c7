package fsm

import (
	"errors"
	"math"
	"testing"
)

// The determinism test proves replicas agree; these pin down what the
// cache ops mean, so that agreeing on a wrong answer is caught too.

func TestExpireRemovesOnlyExpiredKeys(t *testing.T) {
	f := New(nil)
	var b logBuilder
	applyOne(t, f, b.cmd(set("due", "1", t0, t0+10)))
	applyOne(t, f, b.cmd(set("later", "2", t0, t0+1000)))
	applyOne(t, f, b.cmd(set("forever", "3", t0, 0)))
	applyOne(t, f, b.cmd(set("rewritten", "4", t0, t0+10)))
	// The leader lists due keys, but before its OpExpire applies, one is
	// rewritten without a TTL: the reaper must spare it.
	listed := f.Expired(t0+10, 100)
	if len(listed) != 2 {
		t.Fatalf("Expired(t0+10) = %q, want due and rewritten", listed)
	}
	applyOne(t, f, b.cmd(set("rewritten", "5", t0+5, 0)))
	r := applyOne(t, f, b.cmd(Command{Op: OpExpire, Now: t0 + 10, Keys: append(listed, []byte("later"), []byte("forever"), []byte("nosuch"))}))
	if r.Count != 1 {
		t.Errorf("OpExpire Count = %d, want 1 (only due)", r.Count)
	}
	mustGet(t, f, "later", t0+10, "2")
	mustGet(t, f, "forever", t0+10, "3")
	mustGet(t, f, "rewritten", t0+10, "5")
	if st := f.Stats(); st.Keys != 3 || st.Expirations != 1 {
		t.Errorf("Stats = %+v, want 3 keys and 1 expiration", st)
	}
	if left := f.Expired(math.MaxInt64, 100); len(left) != 1 || string(left[0]) != "later" {
		t.Errorf("expiry index after reaping = %q, want only later", left)
	}
}

func TestEvictRemovesOnlyTheChosenVersion(t *testing.T) {
	f := New(nil)
	var b logBuilder
	v1 := applyOne(t, f, b.cmd(set("a", "1", t0, 0))).Version
	vb := applyOne(t, f, b.cmd(set("b", "1", t0, 0))).Version
	applyOne(t, f, b.cmd(set("a", "2", t0, 0))) // a rewritten after being chosen
	r := applyOne(t, f, b.cmd(Command{Op: OpEvict, Now: t0, Keys: [][]byte{[]byte("a"), []byte("b")}, Versions: []uint64{v1, vb}}))
	if r.Count != 1 {
		t.Errorf("OpEvict Count = %d, want 1", r.Count)
	}
	mustGet(t, f, "a", t0, "2")
	mustMiss(t, f, "b", t0)
	if st := f.Stats(); st.Evictions != 1 || st.Keys != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestConditions(t *testing.T) {
	f := New(nil)
	var b logBuilder
	cmd := func(op Op, key string, cond Cond, version uint64) Command {
		return Command{Op: op, Now: t0, Key: []byte(key), Value: []byte("new"), Cond: cond, Version: version}
	}
	v := applyOne(t, f, b.cmd(set("k", "old", t0, 0))).Version
	applyOne(t, f, b.cmd(set("gone", "x", t0, t0-1))) // already expired: counts as absent

	for _, tc := range []struct {
		name    string
		c       Command
		ok      bool
		current uint64
	}{
		{"absent on live", cmd(OpSet, "k", CondAbsent, 0), false, v},
		{"version mismatch", cmd(OpSet, "k", CondVersion, v+100), false, v},
		{"exists on absent", cmd(OpDelete, "nosuch", CondExists, 0), false, 0},
		{"version on expired", cmd(OpSet, "gone", CondVersion, 2), false, 0},
		{"absent on expired", cmd(OpSet, "gone", CondAbsent, 0), true, 0},
		{"version match", cmd(OpSet, "k", CondVersion, v), true, 0},
	} {
		before := viewOf(f)
		r := applyOne(t, f, b.cmd(tc.c))
		if tc.ok != (r.Err == nil) {
			t.Errorf("%s: Err = %v", tc.name, r.Err)
		}
		if !tc.ok {
			if !errors.Is(r.Err, ErrConditionFailed) || r.Current != tc.current {
				t.Errorf("%s: %+v, want ErrConditionFailed with Current %d", tc.name, r, tc.current)
			}
			if after := viewOf(f); after.Digest != before.Digest || after.Bytes != before.Bytes {
				t.Errorf("%s: a failed condition changed the cache", tc.name)
			}
		}
	}
	mustGet(t, f, "k", t0, "new")
	mustGet(t, f, "gone", t0, "new")
}

func TestBatchAtomicity(t *testing.T) {
	f := New(nil)
	var b logBuilder
	applyOne(t, f, b.cmd(set("taken", "x", t0, 0)))
	ops := func(atomic bool) Command {
		return Command{Op: OpBatch, Now: t0, Atomic: atomic, Cmds: []*Command{
			{Op: OpSet, Key: []byte("a"), Value: []byte("1")},
			{Op: OpSet, Key: []byte("taken"), Value: []byte("2"), Cond: CondAbsent}, // fails
			{Op: OpSet, Key: []byte("c"), Value: []byte("3")},
		}}
	}
	before := viewOf(f)
	r := applyOne(t, f, b.cmd(ops(true)))
	if !errors.Is(r.Err, ErrConditionFailed) || len(r.Results) != 3 {
		t.Fatalf("atomic batch = %+v, want ErrConditionFailed and 3 results", r)
	}
	if after := viewOf(f); after.Digest != before.Digest || after.Counters != before.Counters {
		t.Fatalf("a failed atomic batch changed the cache")
	}
	mustMiss(t, f, "a", t0)

	r = applyOne(t, f, b.cmd(ops(false)))
	if r.Err != nil || !errors.Is(r.Results[1].Err, ErrConditionFailed) || r.Results[0].Err != nil || r.Results[2].Err != nil {
		t.Fatalf("non-atomic batch = %+v", r)
	}
	ea, ec := mustGet(t, f, "a", t0, "1"), mustGet(t, f, "c", t0, "3")
	mustGet(t, f, "taken", t0, "x")
	if ea.Version == ec.Version || ea.Version < r.Index {
		t.Errorf("versions in one entry: a %d, c %d (index %d): want distinct, from the index up", ea.Version, ec.Version, r.Index)
	}

	// An atomic batch whose conditions all hold applies every command.
	ok := Command{Op: OpBatch, Now: t0, Atomic: true, Cmds: []*Command{
		{Op: OpSet, Key: []byte("a"), Value: []byte("10"), Cond: CondVersion, Version: ea.Version},
		{Op: OpDelete, Key: []byte("taken"), Cond: CondExists},
		{Op: OpSet, Key: []byte("d"), Value: []byte("4"), Cond: CondAbsent},
	}}
	if r := applyOne(t, f, b.cmd(ok)); r.Err != nil || !r.Results[1].Deleted {
		t.Fatalf("atomic batch = %+v", r)
	}
	mustGet(t, f, "a", t0, "10")
	mustMiss(t, f, "taken", t0)
	mustGet(t, f, "d", t0, "4")
}

func TestRequestIDsAreAppliedOnce(t *testing.T) {
	f := New(nil)
	var b logBuilder
	incr := Command{Op: OpIncr, Now: t0, Key: []byte("n"), By: 5, ReqID: []byte("retry-me")}
	first := applyOne(t, f, b.cmd(incr))
	again := f.Apply(b.cmd(incr)).(*Result)
	if !again.Duplicate || first.Duplicate || again.Value != 5 || again.Index != first.Index {
		t.Fatalf("first %+v, retry %+v: want the retry answered with the first result", first, again)
	}
	mustGet(t, f, "n", t0, "5")
	// The memory of the id survives a snapshot.
	g := New(nil)
	if err := restore(g, snapshotBytes(t, f)); err != nil {
		t.Fatal(err)
	}
	if r := g.Apply(b.cmd(incr)).(*Result); !r.Duplicate || r.Value != 5 {
		t.Fatalf("retry after restore = %+v", r)
	}
	mustGet(t, g, "n", t0, "5")
}

func TestIncrTouchDeletePrefix(t *testing.T) {
	f := New(nil)
	var b logBuilder
	if r := applyOne(t, f, b.cmd(Command{Op: OpIncr, Now: t0, Key: []byte("c"), By: -3, ExpireAt: t0 + 100})); r.Value != -3 || r.Err != nil {
		t.Fatalf("incr create = %+v", r)
	}
	if r := applyOne(t, f, b.cmd(Command{Op: OpIncr, Now: t0, Key: []byte("c"), By: 10, ExpireAt: t0 + 9999})); r.Value != 7 {
		t.Fatalf("incr = %+v", r)
	}
	if e := mustGet(t, f, "c", t0, "7"); e.ExpireAt != t0+100 {
		t.Errorf("incr changed the expiry to %d", e.ExpireAt)
	}
	if r := applyOne(t, f, b.cmd(Command{Op: OpIncr, Now: t0, Key: []byte("c"), By: math.MaxInt64})); !errors.Is(r.Err, ErrOverflow) {
		t.Errorf("overflow: %+v", r)
	}
	applyOne(t, f, b.cmd(set("text", "abc", t0, 0)))
	if r := applyOne(t, f, b.cmd(Command{Op: OpIncr, Now: t0, Key: []byte("text"), By: 1})); !errors.Is(r.Err, ErrNotInteger) {
		t.Errorf("incr of text: %+v", r)
	}

	if r := applyOne(t, f, b.cmd(Command{Op: OpTouch, Now: t0, Key: []byte("nosuch"), ExpireAt: t0 + 5})); !errors.Is(r.Err, ErrNotFound) {
		t.Errorf("touch of a missing key: %+v", r)
	}
	applyOne(t, f, b.cmd(Command{Op: OpTouch, Now: t0, Key: []byte("text"), ExpireAt: t0 + 5}))
	if e := mustGet(t, f, "text", t0, "abc"); e.ExpireAt != t0+5 {
		t.Errorf("touch: ExpireAt %d", e.ExpireAt)
	}

	for _, k := range []string{"p/1", "p/2", "p", "q/1"} {
		applyOne(t, f, b.cmd(set(k, "v", t0, 0)))
	}
	applyOne(t, f, b.cmd(set("p/dead", "v", t0, t0))) // expired: removed, not counted
	if r := applyOne(t, f, b.cmd(Command{Op: OpDeletePrefix, Now: t0, Key: []byte("p/")})); r.Count != 2 {
		t.Errorf("delete-prefix Count = %d, want 2", r.Count)
	}
	mustGet(t, f, "p", t0, "v")
	mustGet(t, f, "q/1", t0, "v")
	if keys, _ := f.Keys([]byte("p"), nil, 10, t0); len(keys) != 1 {
		t.Errorf("keys under p after delete-prefix: %q", keys)
	}
}

// A prefix delete in chunks removes at most Limit keys per entry, in key
// order, counts only live ones, and says whether keys remain.
func TestDeletePrefixChunk(t *testing.T) {
	f := New(nil)
	var b logBuilder
	for _, k := range []string{"p/1", "p/2", "p/3", "p/4", "p/5", "p", "q/1"} {
		applyOne(t, f, b.cmd(set(k, "v", t0, 0)))
	}
	applyOne(t, f, b.cmd(set("p/0", "v", t0, t0))) // expired: removed, not counted, but it takes a slot
	chunk := Command{Op: OpDeletePrefixChunk, Now: t0, Key: []byte("p/"), Limit: 2}
	for i, want := range []struct {
		count int
		more  bool
		left  int
	}{{1, true, 4}, {2, true, 2}, {2, false, 0}, {0, false, 0}} {
		r := applyOne(t, f, b.cmd(chunk))
		if r.Count != want.count || r.More != want.more {
			t.Fatalf("chunk %d: Count %d More %v, want %d %v", i, r.Count, r.More, want.count, want.more)
		}
		if keys, _ := f.Keys([]byte("p/"), nil, 10, t0); len(keys) != want.left {
			t.Fatalf("chunk %d: %d keys left under p/, want %d", i, len(keys), want.left)
		}
	}
	mustGet(t, f, "p", t0, "v")
	mustGet(t, f, "q/1", t0, "v")
	if st := f.Stats(); st.Deletes != 5 || st.Keys != 2 {
		t.Errorf("stats after the chunks: %+v", st)
	}
}

// Deleting the empty prefix (a flush) clears everything in one step and
// counts the live keys, the same as removing them one by one would.
func TestFlushClearsEverything(t *testing.T) {
	f, g := New(nil), New(nil)
	var bf, bg logBuilder
	for _, k := range []string{"a", "b/1", "c"} {
		applyOne(t, f, bf.cmd(set(k, "v", t0, t0+1e9)))
		applyOne(t, g, bg.cmd(set(k, "v", t0, t0+1e9)))
	}
	for _, fx := range []*FSM{f, g} {
		var b *logBuilder
		if fx == f {
			b = &bf
		} else {
			b = &bg
		}
		applyOne(t, fx, b.cmd(set("dead", "v", t0, t0+10)))
		applyOne(t, fx, b.cmd(set("forever", "v", t0, 0)))
	}
	r := applyOne(t, f, bf.cmd(Command{Op: OpDeletePrefix, Now: t0 + 10}))
	if r.Count != 4 {
		t.Errorf("flush Count = %d, want 4 live keys", r.Count)
	}
	// The same removal, key by key, through chunks.
	for more := true; more; {
		more = applyOne(t, g, bg.cmd(Command{Op: OpDeletePrefixChunk, Now: t0 + 10, Limit: 2})).More
	}
	if fs, gs := f.Stats(), g.Stats(); fs.Keys != 0 || fs.Bytes != 0 || fs.Deletes != gs.Deletes || gs.Keys != 0 || gs.Bytes != 0 {
		t.Errorf("after a flush %+v; after chunks %+v", fs, gs)
	}
	if got := f.Expired(t0+2e9, 10); len(got) != 0 {
		t.Errorf("the expiry index still lists %q after a flush", got)
	}
	applyOne(t, f, bf.cmd(set("a", "new", t0+20, 0)))
	mustGet(t, f, "a", t0+20, "new")
}
