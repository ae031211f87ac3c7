package fsm

import (
	"encoding/binary"
	"errors"
	"testing"
)

// A test-only collection kind that checks the typed-value machinery
// (copy once per private state, accounting, empty deletes, snapshots,
// digest, WRONGTYPE, level gating) independently of the real types.
const typeTest ValueType = 200

type testList struct{ elems []string }

func (l *testList) kind() ValueType { return typeTest }
func (l *testList) length() int     { return len(l.elems) }
func (l *testList) size() int64 {
	var n int64
	for _, e := range l.elems {
		n += int64(len(e)) + 8
	}
	return n
}
func (l *testList) clone() object {
	testClones++
	return &testList{elems: append([]string(nil), l.elems...)}
}
func (l *testList) appendTo(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(l.elems)))
	for _, e := range l.elems {
		b = appendBytes(b, []byte(e))
	}
	return b
}

var testClones int

func init() {
	registerKind(typeTest, func(b []byte) (object, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, errors.New("bad count")
		}
		b = b[k:]
		l := &testList{}
		for i := uint64(0); i < n; i++ {
			m, k := binary.Uvarint(b)
			if k <= 0 || uint64(len(b)-k) < m {
				return nil, errors.New("bad element")
			}
			l.elems = append(l.elems, string(b[k:k+int(m)]))
			b = b[k+int(m):]
		}
		return l, nil
	})
	register(
		&Spec{Name: "test.push", Arity: -3, Flags: FlagWrite, FirstKey: 1, LastKey: 1, Step: 1, Level: LevelTypes,
			run: func(t *Tx, a [][]byte) Reply {
				it, _, wrong := t.mutable(a[1], typeTest, func() object { return &testList{} })
				if wrong {
					return replyWrongType
				}
				l := it.obj.(*testList)
				for _, e := range a[2:] {
					l.elems = append(l.elems, string(e))
				}
				t.save(it)
				t.event("test.push", it.key)
				return intReply(int64(len(l.elems)))
			}},
		&Spec{Name: "test.pop", Arity: 2, Flags: FlagWrite, FirstKey: 1, LastKey: 1, Step: 1, Level: LevelTypes,
			run: func(t *Tx, a [][]byte) Reply {
				it, found, wrong := t.mutable(a[1], typeTest, nil)
				if wrong {
					return replyWrongType
				}
				if !found {
					return replyNull
				}
				l := it.obj.(*testList)
				e := l.elems[0]
				l.elems = l.elems[1:]
				t.save(it)
				return bulkReply([]byte(e))
			}},
	)
}

func raiseLevel(t *testing.T, f *FSM, b *logBuilder, l uint32) {
	t.Helper()
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: l}))
}

func TestTypedValues(t *testing.T) {
	f := New(nil)
	var b logBuilder
	raiseLevel(t, f, &b, 2)
	// Refused below level 3, deterministically.
	res := execEntry(t, f, &b, t0, unit(UnitPlain, "test.push k a"))
	if r := res.Results[0].Replies[0]; !r.IsError() || !errors.Is(r.Err, ErrNewerLevel) {
		t.Fatalf("below level 3: %s", r)
	}
	raiseLevel(t, f, &b, 3)

	testClones = 0
	res = execEntry(t, f, &b, t0,
		unit(UnitPlain, "test.push k a b", "test.push k c", "TYPE k", "GET k", "MGET k", "SET s v", "test.push s x"))
	if got, want := replies(res.Results[0].Replies), `(integer) 2, (integer) 3, kind200, (error) WRONGTYPE Operation against a key holding the wrong kind of value, [(nil)], OK, (error) WRONGTYPE Operation against a key holding the wrong kind of value`; got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if testClones != 0 {
		t.Fatalf("a new collection was cloned %d times", testClones)
	}
	v1 := f.View(t0)
	bytes1 := v1.Stats().Bytes

	// A second entry copies the published collection once, however many
	// commands change it; the published view keeps its elements.
	res = execEntry(t, f, &b, t0, unit(UnitPlain, "test.push k d", "test.pop k", "test.pop k"))
	if got := replies(res.Results[0].Replies); got != `(integer) 4, "a", "b"` {
		t.Fatalf("got %s", got)
	}
	if testClones != 1 {
		t.Fatalf("%d clones in one entry, want 1", testClones)
	}
	if got := v1.Exec(argv("TYPE k")).String(); got != "kind200" {
		t.Fatalf("old view: %s", got)
	}
	if v1.t.s.tree.Len() != 2 {
		t.Fatal("old view changed")
	}
	if l, _ := v1.t.s.get([]byte("k")); len(l.obj.(*testList).elems) != 3 {
		t.Fatalf("old view's collection changed: %v", l.obj)
	}
	// An atomic unit that fails leaves the collection as it was.
	res = execEntry(t, f, &b, t0, unit(UnitAtomic, "test.push k e", "INCR s"))
	if res.Results[0].Err == nil {
		t.Fatal("atomic unit with a failing command succeeded")
	}
	if l, _ := f.View(t0).t.s.get([]byte("k")); len(l.obj.(*testList).elems) != 2 {
		t.Fatalf("rolled-back unit changed the collection: %v", l.obj)
	}
	// Accounting follows the collection; emptying it deletes the key.
	want := bytes1 - (1 + 8) - (1 + 8) + (1 + 8) // a, b popped; d pushed
	if got := f.View(t0).Stats().Bytes; got != want {
		t.Fatalf("bytes %d, want %d", got, want)
	}
	execEntry(t, f, &b, t0, unit(UnitPlain, "test.pop k", "test.pop k", "test.pop k"))
	if got := f.View(t0).Exec(argv("EXISTS k")).String(); got != "(integer) 0" {
		t.Fatalf("empty collection kept: %s", got)
	}
	execEntry(t, f, &b, t0, unit(UnitPlain, "test.push k x y", "EXPIRE k 100"))

	// Snapshots of level 3 keep the kinds; the digest covers them.
	snap := snapshotBytes(t, f)
	g := New(nil)
	if err := restore(g, snap); err != nil {
		t.Fatal(err)
	}
	d1, _ := f.Digest()
	d2, _ := g.Digest()
	if d1 != d2 {
		t.Fatal("digest differs after restore")
	}
	if got := g.View(t0).Exec(argv("test.pop k")); !got.IsError() {
		t.Fatalf("write on a view: %s", got)
	}
	if got := g.View(t0).Stats().Bytes; got != f.View(t0).Stats().Bytes {
		t.Fatalf("restored bytes %d, want %d", got, f.View(t0).Stats().Bytes)
	}
	res = execEntry(t, g, &b, t0, unit(UnitPlain, "test.pop k", "TTL k"))
	if got := replies(res.Results[0].Replies); got != `"x", (integer) 100` {
		t.Fatalf("after restore: %s", got)
	}
	execEntry(t, f, &b, t0, unit(UnitPlain, "test.pop k"))
	if d1, _ = f.Digest(); d1 == d2 {
		t.Fatal("digest ignores collection contents")
	}
}

func TestTypedChangeEvents(t *testing.T) {
	f := New(nil)
	var b logBuilder
	raiseLevel(t, f, &b, 3)
	var got []Change
	f.OnChange(func(c Change) { got = append(got, c) })
	execEntry(t, f, &b, t0, unit(UnitAtomic, "test.push k a"), unit(UnitAtomic, "test.push j a", "INCR k"))
	if len(got) != 1 || len(got[0].Events) != 1 || got[0].Events[0] != (KeyEvent{Key: "k", Event: "test.push"}) || len(got[0].Keys) != 1 {
		t.Fatalf("changes %+v", got)
	}
}
