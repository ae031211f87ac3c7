package fsm

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// argv splits a command line on spaces.
func argv(line string) [][]byte {
	var out [][]byte
	for _, f := range strings.Fields(line) {
		out = append(out, []byte(f))
	}
	return out
}

func unit(mode UnitMode, lines ...string) Unit {
	u := Unit{Mode: mode}
	for _, l := range lines {
		u.Cmds = append(u.Cmds, argv(l))
	}
	return u
}

// execEntry applies one OpExec entry of units and returns its result.
func execEntry(t testing.TB, f *FSM, b *logBuilder, now int64, units ...Unit) *Result {
	t.Helper()
	res := applyOne(t, f, b.cmd(Command{Op: OpExec, Now: now, Units: units}))
	if len(res.Results) != len(units) {
		t.Fatalf("%d unit results, want %d", len(res.Results), len(units))
	}
	return res
}

func replies(rs []Reply) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	return strings.Join(s, ", ")
}

func TestTransactionSeesItsOwnWrites(t *testing.T) {
	f := New(nil)
	var b logBuilder
	res := execEntry(t, f, &b, t0,
		unit(UnitPlain, "SET k 1", "INCR k", "GET k"),
		unit(UnitPlain, "GET k", "INCR k", "GET k"),
		unit(UnitPlain, "SET s abc", "INCR s", "GET s"), // a run-time error fails that command only
	)
	want := []string{`OK, (integer) 2, "2"`, `"2", (integer) 3, "3"`, `OK, (error) ERR value is not an integer or out of range, "abc"`}
	for i, w := range want {
		if got := replies(res.Results[i].Replies); got != w {
			t.Errorf("unit %d: %s, want %s", i, got, w)
		}
	}
}

func TestAtomicUnitRollsBack(t *testing.T) {
	f := New(nil)
	var b logBuilder
	execEntry(t, f, &b, t0, unit(UnitPlain, "SET a x"))
	res := execEntry(t, f, &b, t0, unit(UnitAtomic, "SET b 1", "INCR a", "SET c 1"), unit(UnitPlain, "MGET a b c"))
	if res.Results[0].Err == nil {
		t.Fatalf("atomic unit succeeded: %s", replies(res.Results[0].Replies))
	}
	if got := replies(res.Results[1].Replies); got != `["x" (nil) (nil)]` {
		t.Fatalf("after a failed atomic unit: %s", got)
	}
}

// A view pinned before an entry is applied reads none of it, however
// many keys the entry wrote; a view taken after reads all of it.
func TestViewNeverSeesHalfAnEntry(t *testing.T) {
	f := New(nil)
	var b logBuilder
	execEntry(t, f, &b, t0, unit(UnitPlain, "MSET a 1 b 1 c 1"))
	before := f.View(t0)
	execEntry(t, f, &b, t0, unit(UnitAtomic, "SET a 2", "SET b 2"), unit(UnitPlain, "SET c 2"))
	after := f.View(t0)
	if got := before.Exec(argv("MGET a b c")).String(); got != `["1" "1" "1"]` {
		t.Fatalf("pinned view: %s", got)
	}
	if got := after.Exec(argv("MGET a b c")).String(); got != `["2" "2" "2"]` {
		t.Fatalf("new view: %s", got)
	}
	if before.Index() != 1 || after.Index() != 2 {
		t.Fatalf("indexes %d %d", before.Index(), after.Index())
	}
	if r := after.Exec(argv("SET a 3")); !r.IsError() {
		t.Fatalf("write on a view: %s", r)
	}
}

func TestChangeRecords(t *testing.T) {
	f := New(nil)
	var got []Change
	f.OnChange(func(c Change) { got = append(got, c) })
	var b logBuilder
	execEntry(t, f, &b, t0, unit(UnitPlain, "MSET a 1 b 1", "DEL a", "GET b"))
	execEntry(t, f, &b, t0, unit(UnitPlain, "GET b"))
	execEntry(t, f, &b, t0, unit(UnitPlain, "FLUSHDB"))
	applyOne(t, f, b.cmd(Command{Op: OpDeletePrefixChunk, Now: t0, Key: []byte("p:"), Limit: 10}))
	if len(got) != 3 {
		t.Fatalf("changes %+v", got)
	}
	if strings.Join(got[0].Keys, ",") != "a,b" || got[0].Index != 1 {
		t.Errorf("first change %+v", got[0])
	}
	if !got[1].All || got[1].Index != 3 {
		t.Errorf("flush change %+v", got[1])
	}
	if len(got[2].Prefixes) != 1 || !got[2].Covers("p:x") || got[2].Covers("q") {
		t.Errorf("prefix change %+v", got[2])
	}
}

func TestExecEncoding(t *testing.T) {
	c := Command{Op: OpExec, Now: t0, Limits: Limits{MaxValueSize: 99},
		Units: []Unit{unit(UnitAtomic, "SET a b", "GET a"), {ReqID: []byte("r1"), Cmds: [][][]byte{{[]byte("ping"), {}}}}}}
	d, err := Decode(c.Encode(nil))
	if err != nil {
		t.Fatal(err)
	}
	if d.Limits != c.Limits || len(d.Units) != 2 || d.Units[0].Mode != UnitAtomic || string(d.Units[1].ReqID) != "r1" ||
		string(d.Units[0].Cmds[1][1]) != "a" || len(d.Units[1].Cmds[0][1]) != 0 {
		t.Fatalf("decoded %+v", d)
	}
}

func TestLowerUnit(t *testing.T) {
	f := New(nil)
	var b logBuilder
	u := unit(UnitPlain, "SET k 5", "INCRBY k 3", "DEL k x", "SETNX n 1", "EXPIRE n 100")
	cmd, conv, ok := LowerUnit(&u, t0)
	if !ok {
		t.Fatal("not lowered")
	}
	res := conv(applyOne(t, f, b.cmd(*cmd)))
	if got := replies(res.Replies); got != "OK, (integer) 8, (integer) 1, (integer) 1, (integer) 1" {
		t.Fatalf("lowered replies: %s", got)
	}
	for _, line := range []string{"GET k", "SET k v NX GET", "HSET h a b"} {
		u := unit(UnitPlain, line)
		if _, _, ok := LowerUnit(&u, t0); ok {
			t.Errorf("%q lowered", line)
		}
	}
}

func TestReplyCodecRoundTrip(t *testing.T) {
	in := []Reply{replyNull, replyOK, intReply(-7), bulkReply([]byte{0, 0xff}), {Kind: KindDouble, Float: 1.5},
		arrayReply([]Reply{bulkReply([]byte("a")), {Kind: KindNullArray}}), {Kind: KindMap, Elems: []Reply{bulkReply([]byte("k")), intReply(1)}},
		errReply(ErrNotInteger), errReply(&Error{Code: ErrConditionFailed, Msg: "ERR condition failed", Current: 9})}
	out, err := readReplies(bufio.NewReader(bytes.NewReader(appendReplies(nil, in))))
	if err != nil {
		t.Fatal(err)
	}
	if replies(out) != replies(in) {
		t.Fatalf("round trip:\n got %s\nwant %s", replies(out), replies(in))
	}
	var e *Error
	if !errors.As(out[8].Err, &e) || !errors.Is(e, ErrConditionFailed) || e.Current != 9 || !errors.Is(out[7].Err, ErrNotInteger) {
		t.Fatalf("errors lost their codes: %#v %#v", out[7].Err, out[8].Err)
	}
}

// A unit retried with its request id after the state went through a
// snapshot is answered with the first attempt's replies and error, not
// run again and not answered empty.
func TestDeduplicatedRepliesSurviveSnapshots(t *testing.T) {
	f := New(nil)
	var b logBuilder
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: 2}))
	ok := unit(UnitPlain, "SET k 5", "INCR k")
	ok.ReqID = []byte("r1")
	bad := unit(UnitAtomic, "SET j 1", "INCR k x")
	bad.ReqID = []byte("r2")
	first := execEntry(t, f, &b, t0, ok, bad)
	g := New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	b2 := b
	again := execEntry(t, g, &b2, t0, ok, bad)
	for i := range first.Results {
		r, a := first.Results[i], again.Results[i]
		if !a.Duplicate || replies(a.Replies) != replies(r.Replies) || (a.Err == nil) != (r.Err == nil) {
			t.Fatalf("unit %d after a snapshot: duplicate=%v %s err=%v, first %s err=%v", i, a.Duplicate, replies(a.Replies), a.Err, replies(r.Replies), r.Err)
		}
	}
	if got := g.View(t0).Exec(argv("GET k")).String(); got != `"6"` {
		t.Fatalf("k = %s after the retry: the unit ran twice", got)
	}
}
