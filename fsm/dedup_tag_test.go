package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"strconv"
	"testing"

	"github.com/hashicorp/raft"
)

// From level 6 a tagged request id (TagRequestID) names one request: a
// repeat is answered, the same key on another request is refused and
// changes nothing, and a key stored untagged before the raise still
// answers a tagged retry. Below level 6 a tagged id is compared whole.
func TestTaggedRequestIDs(t *testing.T) {
	f := New(nil)
	var b logBuilder
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelStoredBudget}))
	incr := func(key, counter string, tag bool) Result {
		t.Helper()
		u := Unit{Cmds: [][][]byte{argv("INCR " + counter)}}
		u.ReqID = []byte(key)
		if tag {
			u.ReqID = TagRequestID([]byte(key), &u)
		}
		return execEntry(t, f, &b, t0, u).Results[0]
	}
	value := func(counter string) string {
		t.Helper()
		rep := f.View(t0).Exec(argv("GET " + counter))
		return string(rep.Bulk)
	}

	// Level 5: tags are part of the id, nothing more.
	if r := incr("old", "a", false); r.Err != nil || r.Replies[0].Int != 1 {
		t.Fatalf("level 5, untagged: %+v", r)
	}
	if r := incr("k5", "a", true); r.Err != nil || r.Duplicate {
		t.Fatalf("level 5, tagged: %+v", r)
	}
	if r := incr("k5", "b", true); r.Err != nil || r.Duplicate || value("b") != "1" {
		t.Fatalf("level 5, the same key on another request is another id: %+v", r)
	}

	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelRequestDigest}))
	if r := incr("old", "c", true); !r.Duplicate || r.Err != nil || r.Replies[0].Int != 1 || value("c") != "" {
		t.Fatalf("a tagged retry of a key stored untagged before the raise: %+v, want the first result", r)
	}
	if r := incr("k", "x", true); r.Err != nil || r.Duplicate || r.Replies[0].Int != 1 {
		t.Fatalf("first: %+v", r)
	}
	if r := incr("k", "x", true); !r.Duplicate || r.Replies[0].Int != 1 || value("x") != "1" {
		t.Fatalf("repeat: %+v, x = %q", r, value("x"))
	}
	// A front that has not applied the raise yet sends the key untagged:
	// it may be the retry of a tagged first attempt, so it is answered.
	if r := incr("k", "q", false); !r.Duplicate || r.Replies[0].Int != 1 || value("q") != "" {
		t.Fatalf("an untagged retry of a tagged key: %+v, want the first result", r)
	}
	ids := f.Stats().RequestIDs
	r := incr("k", "y", true)
	if !errors.Is(r.Err, ErrRequestMismatch) || r.Duplicate || len(r.Replies) != 0 || r.Index != b.index {
		t.Fatalf("the key on another request: %+v, want ErrRequestMismatch at %d", r, b.index)
	}
	if value("y") != "" || f.Stats().RequestIDs != ids {
		t.Fatalf("a refused reuse changed something: y = %q, %d ids (was %d)", value("y"), f.Stats().RequestIDs, ids)
	}
	// Keys that extend one another are different keys.
	if r := incr("k\x01", "z", true); r.Err != nil || r.Duplicate {
		t.Fatalf("a longer key: %+v", r)
	}
	if r := incr("", "z", true); r.Err != nil || r.Duplicate {
		t.Fatalf("an empty key: %+v", r)
	}
	// An id that is not a tag (a Redis relay's, a blocked pop's) is
	// compared whole, whatever it holds.
	if r := incr("k\x00short", "w", false); r.Err != nil || r.Duplicate {
		t.Fatalf("an untagged id with a NUL: %+v", r)
	}
	// A legacy id with a NUL that is not a tag sorts among the key's tags
	// ("m\x00!" before "m\x00<hex>"): it is looked past.
	if r := incr("m\x00!", "v", false); r.Err != nil || r.Duplicate {
		t.Fatalf("a legacy id with a NUL: %+v", r)
	}
	if r := incr("m", "v", true); r.Err != nil || r.Duplicate {
		t.Fatalf("a key after a legacy id: %+v", r)
	}
	if r := incr("m", "w", true); !errors.Is(r.Err, ErrRequestMismatch) {
		t.Fatalf("a key reused behind a legacy id: %+v, want ErrRequestMismatch", r)
	}
	// A non-atomic batch's sub-command and an atomic unit say alike.
	u := Unit{Mode: UnitAtomic, Cmds: [][][]byte{argv("INCR x"), argv("INCR y")}}
	u.ReqID = TagRequestID([]byte("k"), &u)
	if r := execEntry(t, f, &b, t0, u).Results[0]; !errors.Is(r.Err, ErrRequestMismatch) || value("y") != "" {
		t.Fatalf("an atomic unit under a used key: %+v", r)
	}

	// A snapshot carries it, under format 6, which a level-5 binary
	// refuses.
	data := snapshotBytes(t, f)
	if !bytes.HasPrefix(data, []byte("RCS\x06")) {
		t.Fatalf("a snapshot at level 6 starts %q, want format 6", data[:4])
	}
	if err := restore(NewAtLevel(nil, LevelStoredBudget), data); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("a level-5 FSM restoring format 6: %v, want ErrBadSnapshot", err)
	}
	f = restoredCopy(t, f)
	if r := incr("k", "y", true); !errors.Is(r.Err, ErrRequestMismatch) {
		t.Fatalf("restored: %+v, want ErrRequestMismatch", r)
	}
	if r := incr("k", "x", true); !r.Duplicate || r.Replies[0].Int != 1 {
		t.Fatalf("restored, repeat: %+v", r)
	}
}

// The tag is the unit's content: the same request builds the same id,
// any change in mode, command or argument another.
func TestTagRequestID(t *testing.T) {
	base := Unit{Cmds: [][][]byte{argv("SET a 1")}}
	id := TagRequestID([]byte("key"), &base)
	if !bytes.HasPrefix(id, []byte("key\x00")) || len(id) != len("key")+1+tagLen {
		t.Fatalf("id %q", id)
	}
	if k, ok := untag(string(id)); !ok || k != "key" {
		t.Fatalf("untag(%q) = %q, %v", id, k, ok)
	}
	same := Unit{Cmds: [][][]byte{argv("SET a 1")}}
	if got := TagRequestID([]byte("key"), &same); !bytes.Equal(got, id) {
		t.Fatalf("the same unit tagged %q, then %q", id, got)
	}
	for name, u := range map[string]Unit{
		"mode":     {Mode: UnitAtomic, Cmds: [][][]byte{argv("SET a 1")}},
		"value":    {Cmds: [][][]byte{argv("SET a 2")}},
		"split":    {Cmds: [][][]byte{argv("SET a1")}},
		"boundary": {Cmds: [][][]byte{{[]byte("SET"), []byte("a1"), []byte("")}}},
		"two":      {Cmds: [][][]byte{argv("SET a 1"), argv("SET a 1")}},
	} {
		if got := TagRequestID([]byte("key"), &u); bytes.Equal(got, id) {
			t.Errorf("%s: a different unit has the same id", name)
		}
	}
}

// Tagged ids are decided from the log alone: random logs of tagged and
// untagged units over a few keys, with the raise to level 6 somewhere in
// them, give every replica the same results and state, including one
// restored from another's snapshot halfway.
func TestTaggedRequestIDsDeterminism(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	var b logBuilder
	logs := []*raft.Log{b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelStoredBudget})}
	raiseAt := 20 + rng.Intn(100)
	for i := 0; i < 300; i++ {
		if i == raiseAt {
			logs = append(logs, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelRequestDigest}))
		}
		var units []Unit
		for j := rng.Intn(4); j >= 0; j-- {
			u := Unit{Mode: UnitMode(rng.Intn(2)), Cmds: [][][]byte{argv("INCRBY c" + strconv.Itoa(rng.Intn(3)) + " " + strconv.Itoa(1+rng.Intn(2)))}}
			// Keys before the raise are 0-11, after it 8-19: some cross it.
			// Untagged ids after it are a relay's, or a key from a front
			// that has not applied the raise.
			n := rng.Intn(12)
			if i >= raiseAt {
				n += 8
			}
			key := []byte(fmt.Sprint("key-", n))
			switch {
			case rng.Intn(3) > 0:
				u.ReqID = TagRequestID(key, &u)
			case i < raiseAt || rng.Intn(2) == 0:
				u.ReqID = key // below level 6, or from a front behind
			default:
				u.ReqID = []byte(fmt.Sprint("relay-", rng.Intn(12)))
			}
			units = append(units, u)
		}
		logs = append(logs, b.cmd(Command{Op: OpExec, Now: t0 + int64(i)*1e6, Units: units}))
	}
	a, c := New(nil), New(nil)
	var ra, rc []string
	var restored *FSM
	var rr []string
	half := len(logs) / 2
	for i, l := range logs {
		ra = append(ra, fmt.Sprintf("%+v", *applyOne(t, a, l)))
		rc = append(rc, fmt.Sprintf("%+v", *applyOne(t, c, l)))
		if i == half {
			restored = restoredCopy(t, a)
		} else if i > half {
			rr = append(rr, fmt.Sprintf("%+v", *applyOne(t, restored, l)))
		}
	}
	refused := 0
	for i := range ra {
		if ra[i] != rc[i] {
			t.Fatalf("entry %d: %s on one replica, %s on another", i, ra[i], rc[i])
		}
		if i > half && ra[i] != rr[i-half-1] {
			t.Fatalf("entry %d: %s, on the restored replica %s", i, ra[i], rr[i-half-1])
		}
		refused += bytes.Count([]byte(ra[i]), []byte(ErrRequestMismatch.Error()))
	}
	da, _ := a.Digest()
	dc, _ := c.Digest()
	dr, _ := restored.Digest()
	if da != dc || da != dr {
		t.Fatalf("digests differ: %s %s %s", da, dc, dr)
	}
	if refused == 0 {
		t.Fatal("setup: no reuse was refused; the test proves nothing")
	}
}

// The ids HTTP requests are tagged with must be the same in every
// version (cmd_internal.go): a retry may reach a leader running another
// binary. If this fails, a builder or the digest changed: restore it, and
// put the change behind a new command and feature level.
func TestTagRequestIDStable(t *testing.T) {
	for _, c := range []struct {
		name string
		u    Unit
		want string
	}{
		{"set", Unit{Cmds: [][][]byte{RCSet([]byte("k"), []byte("v"), 60e9, CondVersion, 7, 0)}}, "b083b771da22f742"},
		{"del", Unit{Cmds: [][][]byte{RCDel([]byte("k"), CondNone, 0)}}, "174ad8f4a6f5c15b"},
		{"incr", Unit{Cmds: [][][]byte{RCIncr([]byte("k"), -3, 0)}}, "55e99241a6394014"},
		{"touch", Unit{Cmds: [][][]byte{RCTouch([]byte("k"), 1e9)}}, "23922d8cda51a1d3"},
		{"batch", Unit{Mode: UnitAtomic, Cmds: [][][]byte{RCSet([]byte("a"), []byte("1"), 0, CondAbsent, 0, 0), RCIncr([]byte("b"), 1, 0)}}, "6ab8e47d9677e2fc"},
	} {
		id := TagRequestID([]byte("key"), &c.u)
		if got := string(id[len("key")+1:]); got != c.want {
			t.Errorf("%s: tag %s, want %s", c.name, got, c.want)
		}
	}
}
