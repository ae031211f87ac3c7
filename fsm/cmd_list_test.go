package fsm

import (
	"fmt"
	mrand "math/rand"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// listStreamFSM is an FSM at level 3 and its log builder.
func listStreamFSM(t testing.TB) (*FSM, *logBuilder) {
	f := New(nil)
	b := &logBuilder{}
	raiseLevel(t.(*testing.T), f, b, 3)
	return f, b
}

// checkListStream runs lines as one plain unit at now and compares each
// reply's rendering with want (a line each).
func checkListStream(t *testing.T, f *FSM, b *logBuilder, now int64, lines []string, want []string) {
	t.Helper()
	if len(lines) != len(want) {
		t.Fatalf("%d commands, %d replies wanted", len(lines), len(want))
	}
	res := execEntry(t, f, b, now, unit(UnitPlain, lines...))
	for i, r := range res.Results[0].Replies {
		if got := r.String(); got != want[i] {
			t.Errorf("%s: got %s, want %s", lines[i], got, want[i])
		}
	}
}

// The replies are Redis 7.0's (the differential test checks the same
// against a real redis-server); here they pin the engine's own view.
func TestListCommands(t *testing.T) {
	f, b := listStreamFSM(t)
	checkListStream(t, f, b, t0, []string{
		"RPUSH l a b c d e", "LPUSH l y z", "LRANGE l 0 -1", "LLEN l",
		"LPOP l", "RPOP l", "LPOP l 2", "RPOP l 2", "LPOP l 0", "LRANGE l 0 -1",
		"LPOP l 5", "EXISTS l", "LPOP l", "LPOP l 2", "LPOP l 0", "RPOP l -1", "RPOP l x", "LPOP l 1 2",
		"LPUSHX l a", "RPUSH l a", "LPUSHX l b c", "RPUSHX l d", "LRANGE l 0 -1",
	}, []string{
		"(integer) 5", "(integer) 7", `["z" "y" "a" "b" "c" "d" "e"]`, "(integer) 7",
		`"z"`, `"e"`, `["y" "a"]`, `["d" "c"]`, "[]", `["b"]`,
		`["b"]`, "(integer) 0", "(nil)", "(nil)", "(nil)", "(error) ERR value is out of range, must be positive",
		"(error) ERR value is out of range, must be positive", "(error) ERR wrong number of arguments for 'lpop' command",
		"(integer) 0", "(integer) 1", "(integer) 3", "(integer) 4", `["c" "b" "a" "d"]`,
	})
	// The count pop of a missing key is a null array (RESP3's null), not
	// a nil bulk.
	res := execEntry(t, f, b, t0, unit(UnitPlain, "LPOP nope 2", "LPOP nope"))
	if k := res.Results[0].Replies[0].Kind; k != KindNullArray {
		t.Errorf("LPOP nope 2: kind %d, want KindNullArray", k)
	}
	if k := res.Results[0].Replies[1].Kind; k != KindNull {
		t.Errorf("LPOP nope: kind %d, want KindNull", k)
	}

	checkListStream(t, f, b, t0, []string{
		"DEL l", "RPUSH l 0 1 2 3 4 5", "LRANGE l -3 -1", "LRANGE l -100 100", "LRANGE l 4 2", "LRANGE l 6 10", "LRANGE l x 1",
		"LINDEX l -1", "LINDEX l 6", "LINDEX l -7", "LINDEX l x", "LINDEX nope x",
		"LSET l -1 z", "LSET l 6 z", "LSET l x z", "LSET nope 0 z", "LSET nope x z",
		"LTRIM l 1 -2", "LRANGE l 0 -1", "LTRIM l x 1", "LTRIM nope 0 1", "LTRIM l 3 1", "EXISTS l",
	}, []string{
		"(integer) 1", "(integer) 6", `["3" "4" "5"]`, `["0" "1" "2" "3" "4" "5"]`, "[]", "[]", "(error) ERR value is not an integer or out of range",
		`"5"`, "(nil)", "(nil)", "(error) ERR value is not an integer or out of range", "(nil)",
		"OK", "(error) ERR index out of range", "(error) ERR value is not an integer or out of range", "(error) ERR no such key", "(error) ERR no such key",
		"OK", `["1" "2" "3" "4"]`, "(error) ERR value is not an integer or out of range", "OK", "OK", "(integer) 0",
	})

	checkListStream(t, f, b, t0, []string{
		"RPUSH l a b a c a b", "LREM l 1 a", "LRANGE l 0 -1", "LREM l -1 b", "LRANGE l 0 -1", "LREM l 0 a", "LRANGE l 0 -1",
		"LREM l 0 zz", "LREM l x a", "LREM nope 0 a",
		"LINSERT l BEFORE c q", "LINSERT l after c r", "LINSERT l AFTER zz r", "LINSERT l MIDDLE c r", "LINSERT nope BEFORE c r",
		"LRANGE l 0 -1",
		"RPUSH m a b c a b c a", "LPOS m a", "LPOS m a RANK 2", "LPOS m a RANK -1", "LPOS m a COUNT 0", "LPOS m a COUNT 2 RANK -1",
		"LPOS m a MAXLEN 3 COUNT 0", "LPOS m a RANK 0", "LPOS m a COUNT -1", "LPOS m zz", "LPOS m zz COUNT 1", "LPOS nope a",
		"LPOS nope a COUNT 1", "LPOS m a FOO", "LPOS m a RANK", "LPOS m a RANK -9223372036854775808", "LPOS m a RANK 9223372036854775807",
		"LPOS m c RANK -2 MAXLEN 5",
	}, []string{
		"(integer) 6", "(integer) 1", `["b" "a" "c" "a" "b"]`, "(integer) 1", `["b" "a" "c" "a"]`, "(integer) 2", `["b" "c"]`,
		"(integer) 0", "(error) ERR value is not an integer or out of range", "(integer) 0",
		"(integer) 3", "(integer) 4", "(integer) -1", "(error) ERR syntax error", "(integer) 0",
		`["b" "q" "c" "r"]`,
		"(integer) 7", "(integer) 0", "(integer) 3", "(integer) 6", "[(integer) 0 (integer) 3 (integer) 6]", "[(integer) 6 (integer) 3]",
		"[(integer) 0]", "(error) ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
		"(error) ERR COUNT can't be negative", "(nil)", "[]", "(nil)",
		"[]", "(error) ERR syntax error", "(error) ERR syntax error", "(integer) 6", "(nil)",
		"(integer) 2",
	})

	checkListStream(t, f, b, t0, []string{
		"DEL l m", "RPUSH l a b c", "LMOVE l m LEFT RIGHT", "LMOVE l m right left", "LRANGE l 0 -1", "LRANGE m 0 -1",
		"LMOVE m m LEFT RIGHT", "LRANGE m 0 -1", "RPOPLPUSH m m", "LRANGE m 0 -1", "LMOVE l l LEFT LEFT", "LRANGE l 0 -1",
		"RPOPLPUSH l n", "EXISTS l", "RPOPLPUSH l n", "LMOVE nope n LEFT LEFT",
		"SET s v", "LMOVE n s LEFT LEFT", "LMOVE s n LEFT LEFT", "RPOPLPUSH n s", "LRANGE n 0 -1", "LMOVE n m UP LEFT",
		"LPUSH s a", "LLEN s", "LRANGE s 0 1", "LPOS s a", "LREM s 0 a", "LTRIM s 0 1", "LINSERT s BEFORE a b", "LINDEX s 0", "LSET s 0 a",
		"RPUSHX s a", "LPOP s", "TYPE n", "GET n",
	}, []string{
		"(integer) 2", "(integer) 3", `"a"`, `"c"`, `["b"]`, `["c" "a"]`,
		`"c"`, `["a" "c"]`, `"c"`, `["c" "a"]`, `"b"`, `["b"]`,
		`"b"`, "(integer) 0", "(nil)", "(nil)",
		"OK", wrongTypeText, wrongTypeText, wrongTypeText, `["b"]`, "(error) ERR syntax error",
		wrongTypeText, wrongTypeText, wrongTypeText, wrongTypeText, wrongTypeText, wrongTypeText, wrongTypeText, wrongTypeText, wrongTypeText,
		wrongTypeText, wrongTypeText, "list", wrongTypeText,
	})
}

const wrongTypeText = "(error) WRONGTYPE Operation against a key holding the wrong kind of value"

// TestListEvents checks the keyspace events, in Redis's names and order.
func TestListEvents(t *testing.T) {
	f, b := listStreamFSM(t)
	var got []string
	f.OnChange(func(c Change) {
		for _, e := range c.Events {
			got = append(got, e.Event+":"+e.Key)
		}
	})
	execEntry(t, f, b, t0, unit(UnitPlain,
		"RPUSH l a b", "LPUSHX l c", "LPUSHX nope c", "LSET l 0 x", "LINSERT l BEFORE x y", "LINSERT l BEFORE zz y",
		"LREM l 1 y", "LREM l 1 zz", "LTRIM l 0 -1", "LMOVE l m LEFT RIGHT", "RPOPLPUSH l l", "LPOP l 5", "LPOP m"))
	want := "rpush:l lpush:l lset:l linsert:l lrem:l ltrim:l rpush:m lpop:l lpush:l rpop:l lpop:l del:l lpop:m del:m"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("events\n got %s\nwant %s", s, want)
	}
}

// TestListCopyOnWrite: a view pinned before an entry keeps its list
// whatever the entry does to it, and the accounting follows the list.
func TestListCopyOnWrite(t *testing.T) {
	f, b := listStreamFSM(t)
	var cmds []string
	for i := 0; i < 2000; i++ {
		cmds = append(cmds, fmt.Sprintf("RPUSH l e%d", i))
	}
	execEntry(t, f, b, t0, unit(UnitPlain, cmds...))
	before := f.View(t0)
	bytes0 := before.Stats().Bytes
	execEntry(t, f, b, t0, unit(UnitPlain, "LPUSH l new", "RPOP l 10", "LSET l 500 changed", "LTRIM l 1 1500",
		"LINSERT l AFTER e700 ins", "LREM l 0 e10"))
	if got := before.Exec(argv("LRANGE l 0 2")).String(); got != `["e0" "e1" "e2"]` {
		t.Fatalf("old view changed: %s", got)
	}
	if got := before.Exec(argv("LINDEX l 500")).String(); got != `"e500"` {
		t.Fatalf("old view changed: %s", got)
	}
	if got := before.Exec(argv("LLEN l")).String(); got != "(integer) 2000" {
		t.Fatalf("old view changed: %s", got)
	}
	now := f.View(t0)
	if got := now.Exec(argv("LLEN l")).String(); got != "(integer) 1500" {
		t.Fatalf("new length %s", got)
	}
	// Elements are "eN" plus "changed"/"ins": recompute the accounting.
	var want int64 = int64(len("l")) + EntryOverhead
	items := now.Exec(argv("LRANGE l 0 -1")).Elems
	for _, e := range items {
		want += int64(len(e.Bulk)) + ListElemOverhead
	}
	if got := now.Stats().Bytes; got != want {
		t.Fatalf("bytes %d, want %d (before %d)", got, want, bytes0)
	}
	// Emptying the list deletes the key and its bytes.
	execEntry(t, f, b, t0, unit(UnitPlain, "LTRIM l 1 0"))
	if got := f.View(t0).Stats(); got.Keys != 0 || got.Bytes != 0 {
		t.Fatalf("after emptying: %+v", got)
	}
}

// randomTypedUnit is a unit of random list and stream commands over a
// few keys (strings among them, for WRONGTYPE), for the determinism
// test; a third of them atomic, some failing midway.
func randomTypedUnit(r *rand.Rand) Unit {
	elems := []string{"a", "b", "c", "1"}
	// Lists live in l1, l2 and streams in s1, s2, but now and then a
	// command meets the other kind or a string (WRONGTYPE).
	var k func() string
	pick := func(a, b string) func() string {
		return func() string {
			switch x := r.IntN(20); {
			case x == 0:
				return "str"
			case x == 1:
				return [...]string{"l1", "s1"}[r.IntN(2)]
			case x < 11:
				return a
			}
			return b
		}
	}
	lk, sk := pick("l1", "l2"), pick("s1", "s2")
	e := func() string { return elems[r.IntN(len(elems))] }
	i := func() string { return fmt.Sprint(r.IntN(9) - 4) }
	id := func() string {
		switch r.IntN(4) {
		case 0:
			return "*"
		case 1:
			return fmt.Sprintf("%d-*", r.IntN(5))
		}
		return fmt.Sprintf("%d-%d", r.IntN(5), r.IntN(3))
	}
	u := Unit{Mode: UnitPlain}
	if r.IntN(3) == 0 {
		u.Mode = UnitAtomic
	}
	for n := 1 + r.IntN(5); n > 0; n-- {
		var line string
		x := r.IntN(24)
		k = lk
		if x >= 14 && x <= 20 {
			k = sk
		}
		switch x {
		case 0, 1:
			line = fmt.Sprintf("LPUSH %s %s %s", k(), e(), e())
		case 2, 3:
			line = fmt.Sprintf("RPUSH %s %s", k(), e())
		case 4:
			line = fmt.Sprintf("LPOP %s %d", k(), r.IntN(3))
		case 5:
			line = "RPOP " + k()
		case 6:
			line = fmt.Sprintf("LSET %s %s %s", k(), i(), e())
		case 7:
			line = fmt.Sprintf("LREM %s %s %s", k(), i(), e())
		case 8:
			line = fmt.Sprintf("LTRIM %s %s %s", k(), i(), i())
		case 9:
			line = fmt.Sprintf("LINSERT %s BEFORE %s %s", k(), e(), e())
		case 10:
			line = fmt.Sprintf("LMOVE %s %s LEFT RIGHT", k(), k())
		case 11:
			line = fmt.Sprintf("RPOPLPUSH %s %s", k(), k())
		case 12:
			line = fmt.Sprintf("LRANGE %s %s %s", k(), i(), i())
		case 13:
			line = fmt.Sprintf("LPOS %s %s COUNT 0", k(), e())
		case 14, 15, 16:
			line = fmt.Sprintf("XADD %s %s f %s", k(), id(), e())
		case 17:
			line = fmt.Sprintf("XADD %s MAXLEN %d * f %s", k(), r.IntN(4), e())
		case 18:
			line = fmt.Sprintf("XDEL %s %d-%d", k(), r.IntN(5), r.IntN(3))
		case 19:
			line = fmt.Sprintf("XTRIM %s MINID %d", k(), r.IntN(5))
		case 20:
			line = fmt.Sprintf("XRANGE %s - + COUNT %d", k(), r.IntN(3))
		case 21:
			line = "SET str " + e()
		case 22:
			line = fmt.Sprintf("EXPIRE %s %d", []string{"l1", "l2", "s1", "s2"}[r.IntN(4)], 1+r.IntN(30))
		default:
			line = "DEL " + []string{"l1", "l2", "s1", "s2", "str"}[r.IntN(5)]
		}
		u.Cmds = append(u.Cmds, argv(line))
	}
	return u
}

// TestTypedListStreamDeterminism replays a random log of list and stream
// commands on three FSMs (one entry at a time, random batches, and from a
// snapshot taken midway): equal replies, digests and snapshots.
func TestTypedListStreamDeterminism(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 17))
	var b logBuilder
	logs := []*raft.Log{b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: 3})}
	clock := t0
	for len(logs) < 3000 {
		clock += int64(r.IntN(800)) * 1e6 // expiries of 1-30 s happen
		now := clock
		if r.IntN(20) == 0 {
			now -= int64(r.IntN(5000)) * 1e6 // a new leader with a slower clock
		}
		var units []Unit
		for n := 1 + r.IntN(3); n > 0; n-- {
			units = append(units, randomTypedUnit(r))
		}
		logs = append(logs, b.cmd(Command{Op: OpExec, Now: now, Units: units}))
		if r.IntN(10) == 0 {
			c := &Command{Op: OpExpire, Now: now}
			for _, k := range []string{"l1", "l2", "s1", "s2"} {
				c.Keys = append(c.Keys, []byte(k))
			}
			logs = append(logs, b.cmd(*c))
		}
	}
	mid := len(logs) / 2
	a := New(nil)
	resA := applySingly(a, logs[:mid])
	snap := snapshotBytes(t, a)
	resA = append(resA, applySingly(a, logs[mid:])...)
	bb := New(nil)
	resB := applyBatched(bb, logs, mrand.New(mrand.NewSource(7)))
	c := New(nil)
	if err := restore(c, snap); err != nil {
		t.Fatal(err)
	}
	resC := applyBatched(c, logs[mid:], mrand.New(mrand.NewSource(8)))

	da, _ := a.Digest()
	db, _ := bb.Digest()
	dc, _ := c.Digest()
	if da != db || da != dc {
		t.Fatalf("digests differ: single %s, batched %s, restored %s", da, db, dc)
	}
	if !reflect.DeepEqual(resA, resB) || !reflect.DeepEqual(resA[mid:], resC) {
		t.Fatal("replies differ")
	}
	if string(snapshotBytes(t, a)) != string(snapshotBytes(t, c)) {
		t.Fatal("snapshots differ")
	}
	if a.Stats().Bytes != c.Stats().Bytes || a.Stats().Bytes != bb.Stats().Bytes {
		t.Fatalf("bytes differ: %d %d %d", a.Stats().Bytes, bb.Stats().Bytes, c.Stats().Bytes)
	}
	// The log did what it claims: lists and streams exist, errors and
	// WRONGTYPE happened, streams were emptied and kept.
	kinds := map[string]int{}
	for _, res := range resA {
		r, ok := res.(*Result)
		if !ok {
			continue
		}
		for _, u := range r.Results {
			for _, rep := range u.Replies {
				switch {
				case rep.IsError() && strings.HasPrefix(ErrorText(rep.Err), "WRONGTYPE"):
					kinds["wrongtype"]++
				case rep.IsError():
					kinds["error"]++
				case rep.Kind == KindArray && len(rep.Elems) > 0:
					kinds["array"]++
				}
			}
			if u.Err != nil {
				kinds["failed unit"]++
			}
		}
	}
	v := a.View(clock)
	t.Logf("replies %v; final: %d keys, l1 %s, l2 %s, s1 %s, s2 %s", kinds, v.Stats().Keys, v.Exec(argv("LLEN l1")),
		v.Exec(argv("LLEN l2")), v.Exec(argv("XLEN s1")), v.Exec(argv("XLEN s2")))
	if v.Stats().Keys < 3 || kinds["wrongtype"] == 0 || kinds["error"] == 0 || kinds["array"] == 0 || kinds["failed unit"] == 0 {
		t.Fatal("the random log did not exercise errors, arrays and failed units")
	}

	// Negative control: one element more or less changes the digest.
	b1, b2 := b, b
	execEntry(t, a, &b1, clock, unit(UnitPlain, "RPUSH ctl extra"))
	execEntry(t, c, &b2, clock, unit(UnitPlain, "RPUSH ctl other"))
	if d1, _ := a.Digest(); d1 == func() string { d, _ := c.Digest(); return d }() {
		t.Fatal("different list contents, same digest")
	}
}

// TestScanTypeLists: SCAN's TYPE filter knows lists and streams.
func TestScanTypeLists(t *testing.T) {
	f, b := listStreamFSM(t)
	checkListStream(t, f, b, t0, []string{
		"RPUSH l a", "XADD s 1-1 f v", "SET str v", "SCAN 0 TYPE list", "SCAN 0 TYPE STREAM", "SCAN 0 TYPE string", "SCAN 0 TYPE hash",
	}, []string{
		"(integer) 1", `"1-1"`, "OK", `["0" ["l"]]`, `["0" ["s"]]`, `["0" ["str"]]`, `["0" []]`,
	})
}
