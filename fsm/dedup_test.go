package fsm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// bigPops fills n keys with 1 MiB values and pops each under its own
// request id (GETDEL, one unit per entry): n MiB of replies to keep.
func bigPops(t *testing.T, f *FSM, b *logBuilder, n int) {
	t.Helper()
	val := bytes.Repeat([]byte("v"), 1<<20)
	for i := 0; i < n; i++ {
		key := []byte(fmt.Sprintf("k%d", i))
		execEntry(t, f, b, t0, Unit{Cmds: [][][]byte{{[]byte("set"), key, val}}})
		res := execEntry(t, f, b, t0, Unit{ReqID: []byte(fmt.Sprintf("r%d", i)), Cmds: [][][]byte{{[]byte("getdel"), key}}})
		if r := res.Results[0]; len(r.Replies) != 1 || len(r.Replies[0].Bulk) != 1<<20 {
			t.Fatalf("pop %d: %s", i, replies(r.Replies))
		}
	}
}

// retry sends request id i's pop again.
func retry(t *testing.T, f *FSM, b *logBuilder, i int) Result {
	t.Helper()
	key := []byte(fmt.Sprintf("k%d", i))
	res := execEntry(t, f, b, t0, Unit{ReqID: []byte(fmt.Sprintf("r%d", i)), Cmds: [][][]byte{{[]byte("getdel"), key}}})
	r := res.Results[0]
	if !r.Duplicate {
		t.Fatalf("retry of r%d ran again: %s", i, replies(r.Replies))
	}
	return r
}

// From level 4 the replies kept for request ids are bounded: past
// DedupMaxReplyBytes the oldest lose their replies but keep their ids (a
// retry is a duplicate answered without replies, never run again), the
// newest keep theirs, and a state restored from a snapshot drops the same
// ones as the state it was taken from. Below level 4 every reply is kept,
// as the binaries of level 3 do.
func TestDedupKeptRepliesBounded(t *testing.T) {
	const n = DedupMaxReplyBytes>>20 + 6 // MiB of replies
	for _, level := range []uint32{LevelTypes, LevelReplyBudget} {
		t.Run(fmt.Sprintf("level%d", level), func(t *testing.T) {
			f := New(nil)
			var b logBuilder
			applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: level}))
			bigPops(t, f, &b, n)
			d := f.root.Load().dedup
			if level < LevelReplyBudget {
				if d.keptBytes < n<<20 {
					t.Fatalf("level %d kept %d bytes of replies, want all %d MiB", level, d.keptBytes, n)
				}
				if r := retry(t, f, &b, 0); len(r.Replies) != 1 {
					t.Fatalf("level %d: the oldest reply was dropped", level)
				}
				return
			}
			if d.keptBytes > DedupMaxReplyBytes || d.keptBytes < DedupMaxReplyBytes-(2<<20) {
				t.Fatalf("kept %d bytes of replies, want just under %d", d.keptBytes, DedupMaxReplyBytes)
			}
			g := New(nil)
			if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
				t.Fatal(err)
			}
			if gd := g.root.Load().dedup; gd.keptBytes != d.keptBytes || gd.kept.Len() != d.kept.Len() {
				t.Fatalf("restored: %d bytes in %d kept, want %d in %d", gd.keptBytes, gd.kept.Len(), d.keptBytes, d.kept.Len())
			}
			for _, h := range []*FSM{f, g} {
				hb := b
				if r := retry(t, h, &hb, 0); len(r.Replies) != 0 {
					t.Fatalf("the oldest reply is still kept: %d replies", len(r.Replies))
				}
				if r := retry(t, h, &hb, n-1); len(r.Replies) != 1 || len(r.Replies[0].Bulk) != 1<<20 {
					t.Fatalf("the newest reply was dropped: %d replies", len(r.Replies))
				}
			}
			if d.byID.Len() != n || d.byTime.Len() != n {
				t.Fatalf("%d/%d ids kept, want %d: an id was forgotten with its reply", d.byID.Len(), d.byTime.Len(), n)
			}
		})
	}
}

// A unit sent again (Resend) under an id the table does not know is
// refused, not applied, while the full table has evicted ids younger than
// ResendHorizon (the first attempt may have been applied and forgotten);
// otherwise it is applied, and a known id is answered as a duplicate.
func TestResendOfForgottenIDRefused(t *testing.T) {
	f := New(nil)
	var b logBuilder
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelReplyBudget}))
	incr := func(now int64, id string, resend bool) Result {
		u := unit(UnitPlain, "INCR c")
		u.ReqID, u.Resend = []byte(id), resend
		return execEntry(t, f, &b, now, u).Results[0]
	}
	if r := incr(t0, "early", true); r.Err != nil || r.Duplicate {
		t.Fatalf("a resend of an unknown id, nothing forgotten: %+v", r)
	}
	fillIDs(t, f, &b, t0+1e9) // past the table's count: ids are evicted for room
	if f.root.Load().dedup.known([]byte("early"), FeatureLevel) {
		t.Fatal("setup: the first id was not evicted")
	}
	now := t0 + 2e9
	if r := incr(now, "early", true); !errors.Is(r.Err, ErrResendForgotten) {
		t.Fatalf("a resend of an id evicted for room: %+v, want ErrResendForgotten", r)
	}
	if r := incr(now, "fill0000500", true); !r.Duplicate {
		t.Fatalf("a resend of a known id: %+v, want a duplicate", r)
	}
	if r := incr(now, "new", false); r.Err != nil || len(r.Replies) != 1 || r.Replies[0].Int != 2 {
		t.Fatalf("a first attempt: %+v (%s), want c = 2", r, replies(r.Replies))
	}
	if r := incr(t0+2e9+ResendHorizon, "early2", true); r.Err != nil || r.Duplicate {
		t.Fatalf("a resend once every evicted id is older than the horizon: %+v", r)
	}
	if got := f.View(now).Exec(argv("GET c")).String(); got != `"3"` {
		t.Fatalf("c = %s: the refused resend was applied", got)
	}
}

// Dropping replies never changes a published state (an older view still
// answers with them), the window's evictions give their bytes back, and a
// cluster raised to level 4 over the budget comes under it at the next id.
func TestDedupBudgetBookkeeping(t *testing.T) {
	f := New(nil)
	var b logBuilder
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelTypes}))
	const n = DedupMaxReplyBytes>>20 + 4
	bigPops(t, f, &b, n)
	before := f.root.Load()
	if before.dedup.keptBytes <= DedupMaxReplyBytes {
		t.Fatalf("setup: level 3 kept only %d bytes", before.dedup.keptBytes)
	}
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelReplyBudget}))
	execEntry(t, f, &b, t0, Unit{ReqID: []byte("small"), Cmds: [][][]byte{argv("INCR c")}})
	after := f.root.Load().dedup
	if after.keptBytes > DedupMaxReplyBytes {
		t.Fatalf("after the raise and one more id: %d bytes kept, over %d", after.keptBytes, DedupMaxReplyBytes)
	}
	if res, ok := before.dedup.lookup([]byte("r0"), FeatureLevel); !ok || len(res.Replies) != 1 || len(res.Replies[0].Bulk) != 1<<20 {
		t.Fatal("dropping a reply changed a published state")
	}
	if res, _ := after.lookup([]byte("r0"), FeatureLevel); len(res.Replies) != 0 {
		t.Fatal("the oldest reply was not dropped")
	}
	// Past the window every id goes, and its bytes with it.
	execEntry(t, f, &b, t0+DedupWindow+1, Unit{ReqID: []byte("late"), Cmds: [][][]byte{argv("INCR c")}})
	d := f.root.Load().dedup
	if d.byID.Len() != 1 || d.kept.Len() != 1 || d.keptBytes != repliesSize([]Reply{{Kind: KindInt}}, LevelReplyBudget) {
		t.Fatalf("after the window: %d ids, %d kept, %d bytes; want only the last id's", d.byID.Len(), d.kept.Len(), d.keptBytes)
	}
}

// A reply the snapshot reader could not read back (nested past its
// limit) is not kept from level 4, and decoding one kept below that
// answers without replies: never a panic inside Apply.
func TestUnreadableRepliesNotKept(t *testing.T) {
	deep := Reply{Kind: KindInt, Int: 1}
	for i := 0; i <= maxReplyDepth+1; i++ {
		deep = Reply{Kind: KindArray, Elems: []Reply{deep}}
	}
	res := &Result{Index: 7, Replies: []Reply{deep}}
	if readableReplies(res.Replies, 0) {
		t.Fatal("a reply nested past the reader's depth counts as readable")
	}
	if got := decodeStored(encodeStored(res)); got.Index != 7 || len(got.Replies) != 0 {
		t.Fatalf("decoded: index %d, %d replies; want index 7 and none", got.Index, len(got.Replies))
	}
	var s state
	s.dedup = newDedup()
	s.level = LevelReplyBudget
	s.once([]byte("deep"), 1, t0, func() Result { return *res })
	if r, ok := s.dedup.lookup([]byte("deep"), FeatureLevel); !ok || len(r.Replies) != 0 {
		t.Fatalf("level 4 kept an unreadable reply: %v %d", ok, len(r.Replies))
	}
	// One kept below level 4 is stored again without it when the cluster
	// rises to level 5, so no later snapshot carries what it cannot read.
	var old state
	old.dedup = newDedup()
	old.level = LevelTypes
	old.once([]byte("deep"), 1, t0, func() Result { return *res })
	e, _ := old.dedup.byID.Get(&dedupEntry{id: "deep"})
	if _, err := readStored(bufio.NewReader(bytes.NewReader(e.enc))); err == nil {
		t.Fatal("setup: level 3 did not keep the unreadable reply")
	}
	old.dedup.resize(LevelStoredBudget)
	e, _ = old.dedup.byID.Get(&dedupEntry{id: "deep"})
	if _, err := readStored(bufio.NewReader(bytes.NewReader(e.enc))); err != nil || e.size != 0 {
		t.Fatalf("after the raise to level 5 the entry is still unreadable (%v) or counts %d", err, e.size)
	}
}

// The table reports the memory its ids hold (Stats.RequestIDBytes, outside
// Bytes): the sum over its entries, the same on a replica restored from a
// snapshot, and given back as ids leave the window.
func TestRequestIDBytes(t *testing.T) {
	f := New(nil)
	var b logBuilder
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelReplyBudget}))
	for i := range 100 {
		execEntry(t, f, &b, t0, Unit{ReqID: []byte(fmt.Sprintf("id%03d", i)), Cmds: [][][]byte{argv("RPUSH q aaaaaaaaaa"), argv("INCR c")}})
	}
	sum := func(d dedupTable) (n int64) {
		d.byID.Ascend(func(e *dedupEntry) bool { n += entryBytes(e); return true })
		return n
	}
	st := f.Stats()
	if st.RequestIDs != 100 || st.RequestIDBytes != sum(f.root.Load().dedup) || st.RequestIDBytes < 100*dedupEntryOverhead {
		t.Fatalf("100 ids: stats %d ids, %d bytes; the entries hold %d", st.RequestIDs, st.RequestIDBytes, sum(f.root.Load().dedup))
	}
	if v := f.View(t0).Stats(); v.RequestIDs != st.RequestIDs || v.RequestIDBytes != st.RequestIDBytes {
		t.Fatalf("a view reports %d ids, %d bytes; the FSM %d, %d", v.RequestIDs, v.RequestIDBytes, st.RequestIDs, st.RequestIDBytes)
	}
	g := restoredCopy(t, f)
	if got := g.Stats(); got.RequestIDs != st.RequestIDs || got.RequestIDBytes != st.RequestIDBytes {
		t.Fatalf("restored: %d ids, %d bytes; want %d, %d", got.RequestIDs, got.RequestIDBytes, st.RequestIDs, st.RequestIDBytes)
	}
	execEntry(t, f, &b, t0+DedupWindow+1, Unit{ReqID: []byte("late"), Cmds: [][][]byte{argv("INCR c")}})
	if st := f.Stats(); st.RequestIDs != 1 || st.RequestIDBytes != sum(f.root.Load().dedup) || st.RequestIDBytes > 2*dedupEntryOverhead {
		t.Fatalf("past the window: %d ids, %d bytes", st.RequestIDs, st.RequestIDBytes)
	}
	if DedupMaxBytes > 128<<20 {
		t.Fatalf("DedupMaxBytes %d: the docs say about 107 MiB", DedupMaxBytes)
	}
}

// From level 5 error texts count against the reply budget: level 4
// counted an error reply at 32 bytes, so scripts failing with long errors
// under request ids (every write relayed through a follower carries one)
// could pile up without bound. The raise to level 5 counts the table again
// and trims it; a failed unit dropped so answers errReplyDropped, a
// dropped error reply no reply at all; a replica restored from a snapshot
// counts alike.
func TestDedupErrorTextsBounded(t *testing.T) {
	f := New(nil)
	var b logBuilder
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelReplyBudget}))
	eval := func(mode UnitMode, id string) Result {
		t.Helper()
		u := Unit{Mode: mode, ReqID: []byte(id), Cmds: [][][]byte{{[]byte("EVAL"), []byte("return redis.error_reply(string.rep('x', 1048576))"), []byte("0")}}}
		r := execEntry(t, f, &b, t0, u).Results[0]
		if len(r.Replies) != 1 || !r.Replies[0].IsError() || len(ErrorText(r.Replies[0].Err)) != 1<<20 {
			t.Fatalf("%s: %d replies", id, len(r.Replies))
		}
		return r
	}
	const n = DedupMaxReplyBytes>>20 + 4
	for i := range n {
		eval(UnitPlain, fmt.Sprintf("e%d", i))
	}
	st, d := f.Stats(), f.root.Load().dedup
	if d.keptBytes > 1<<20 || st.RequestIDBytes < n<<20 {
		t.Fatalf("setup: level 4 counted %d bytes of %d held", d.keptBytes, st.RequestIDBytes)
	}
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelStoredBudget}))
	if st, d := f.Stats(), f.root.Load().dedup; d.keptBytes > DedupMaxReplyBytes || st.RequestIDBytes > DedupMaxReplyBytes+1<<20 || st.RequestIDs != n {
		t.Fatalf("after the raise to level 5: %d bytes counted, %d held, %d ids", d.keptBytes, st.RequestIDBytes, st.RequestIDs)
	}
	if r, ok := f.root.Load().dedup.lookup([]byte("e0"), FeatureLevel); !ok || len(r.Replies) != 0 || r.Err != nil {
		t.Fatalf("the oldest error reply was not dropped: %v, %d replies, %v", ok, len(r.Replies), r.Err)
	}
	if r := eval(UnitAtomic, "failed"); r.Err == nil {
		t.Fatal("setup: an atomic unit whose script failed has no error")
	}
	for i := range n {
		eval(UnitPlain, fmt.Sprintf("l%d", i))
	}
	if st, d := f.Stats(), f.root.Load().dedup; d.keptBytes > DedupMaxReplyBytes || st.RequestIDBytes > DedupMaxReplyBytes+1<<20 {
		t.Fatalf("level 5: %d bytes counted, %d held", d.keptBytes, st.RequestIDBytes)
	}
	r, ok := f.root.Load().dedup.lookup([]byte("failed"), FeatureLevel)
	if !ok || len(r.Replies) != 0 || r.Err == nil || ErrorText(r.Err) != errReplyDropped.Msg {
		t.Fatalf("a dropped failure: %v, %d replies, %v; want %q", ok, len(r.Replies), r.Err, errReplyDropped.Msg)
	}
	data := snapshotBytes(t, f)
	if !bytes.HasPrefix(data, []byte("RCS\x05")) {
		t.Fatalf("a snapshot at level 5 starts %q, want format 5", data[:4])
	}
	if err := restore(NewAtLevel(nil, LevelReplyBudget), data); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("a level-4 FSM restoring format 5: %v, want ErrBadSnapshot", err)
	}
	g := New(nil)
	if err := restore(g, data); err != nil {
		t.Fatal(err)
	}
	if a, b := f.root.Load().dedup, g.root.Load().dedup; a.keptBytes != b.keptBytes || a.bytes != b.bytes || a.kept.Len() != b.kept.Len() {
		t.Fatalf("restored: %d counted, %d held, %d kept; the original %d, %d, %d", b.keptBytes, b.bytes, b.kept.Len(), a.keptBytes, a.bytes, a.kept.Len())
	}
}

// From level 5 a resend whose id is unknown is judged by the log: refused
// only if an id applied above its Unit.After was forgotten. The raise to
// level 5 counts everything before it as possibly forgotten; evictions
// for room move the mark to the evicted id's index; snapshots carry it;
// and Unit.After survives the entry's encoding.
func TestResendRefusedByIndex(t *testing.T) {
	f := New(nil)
	var b logBuilder
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelReplyBudget}))
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelStoredBudget}))
	raise := b.index
	if got := f.root.Load().dedup.forgot; got != raise {
		t.Fatalf("after the raise to level 5 the mark is %d, want the raise's index %d", got, raise)
	}
	incr := func(id string, after uint64) Result {
		u := unit(UnitPlain, "INCR c")
		u.ReqID, u.Resend, u.After = []byte(id), true, after
		return execEntry(t, f, &b, t0+1e9, u).Results[0]
	}
	if r := incr("before-raise", raise-1); !errors.Is(r.Err, ErrResendForgotten) {
		t.Fatalf("a resend whose first attempt may predate the raise: %+v, want ErrResendForgotten", r)
	}
	if r := incr("after-raise", raise); r.Err != nil || r.Duplicate || r.Replies[0].Int != 1 {
		t.Fatalf("a resend first sent after the raise, its id unknown: %+v, want it applied", r)
	}
	fillFrom := b.index // the fill's ids apply above it
	fillIDs(t, f, &b, t0+2e9)
	d := f.root.Load().dedup
	if d.known([]byte("after-raise"), FeatureLevel) || d.forgot <= fillFrom {
		t.Fatalf("setup: the first ids were not evicted for room (mark %d, fill from %d)", d.forgot, fillFrom)
	}
	if r := incr("old", fillFrom); !errors.Is(r.Err, ErrResendForgotten) {
		t.Fatalf("a resend first sent before ids now forgotten were applied: %+v, want ErrResendForgotten", r)
	}
	if r := incr("new", b.index); r.Err != nil || r.Duplicate || r.Replies[0].Int != 2 {
		t.Fatalf("a resend first sent after every forgotten id, unknown: %+v, want it applied (c = 2)", r)
	}
	if r := incr("fill0150000", 0); !r.Duplicate {
		t.Fatalf("a resend of a known id: %+v, want the first result", r)
	}
	g := restoredCopy(t, f)
	if a, b := f.root.Load().dedup.forgot, g.root.Load().dedup.forgot; a != b || a == 0 {
		t.Fatalf("restored mark %d, the original's %d", b, a)
	}
	c := Command{Op: OpExec, Now: t0, Units: []Unit{{ReqID: []byte("r"), Resend: true, After: 42, Mode: UnitAtomic, Cmds: [][][]byte{argv("INCR c")}}}}
	got, err := Decode(c.Encode(nil))
	if err != nil || len(got.Units) != 1 || got.Units[0].After != 42 || !got.Units[0].Resend || got.Units[0].Mode != UnitAtomic {
		t.Fatalf("a unit with After through its encoding: %+v, %v", got.Units, err)
	}
}

// restoredCopy is a new FSM restored from a snapshot of f.
func restoredCopy(t *testing.T, f *FSM) *FSM {
	t.Helper()
	g := New(nil)
	if err := restore(g, snapshotBytes(t, f)); err != nil {
		t.Fatal(err)
	}
	return g
}

// fillIDs applies DedupMax+1 writes under ids fill0000000 and up, in
// entries of MaxBatch units at leader time now: one more id than the
// table holds.
func fillIDs(t *testing.T, f *FSM, b *logBuilder, now int64) {
	t.Helper()
	for i := 0; i < DedupMax+1; {
		var us []Unit
		for ; len(us) < MaxBatch && i < DedupMax+1; i++ {
			u := unit(UnitPlain, "SET x 1")
			u.ReqID = []byte(fmt.Sprintf("fill%07d", i))
			us = append(us, u)
		}
		execEntry(t, f, b, now, us...)
	}
}
