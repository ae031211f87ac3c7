package fsm

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// Level 6 (LevelRedisFixes) corrects, for every replica at the same
// index, what earlier levels answered unlike Redis; below it the old
// answers stay, so members of both binaries agree during an upgrade.
func TestRedisFixesByLevel(t *testing.T) {
	run := func(level uint32, lines ...string) []Reply {
		t.Helper()
		f := New(nil)
		var b logBuilder
		applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: level}))
		u := Unit{Mode: UnitPlain}
		for _, l := range lines {
			u.Cmds = append(u.Cmds, argv(l))
		}
		// An entry's time in the middle of a millisecond, as a leader's is.
		return execEntry(t, f, &b, t0+123_456, u).Results[0].Replies
	}
	// EXPIRE ... LT against an expiry set in the same millisecond: Redis
	// keeps milliseconds, so they are equal and nothing changes.
	if r := run(LevelRedisFixes, "SET m v PX 100000", "PEXPIRE m 100000 LT"); r[1].Int != 0 {
		t.Errorf("level 6: PEXPIRE LT against an equal expiry = %v, want 0", r[1])
	}
	if r := run(LevelStoredBudget, "SET m v PX 100000", "PEXPIRE m 100000 LT"); r[1].Int != 1 {
		t.Errorf("level 5 answers as it did (1): %v", r[1])
	}
	// EXPIRETIME rounds as Redis does: (ms+500)/1000.
	if r := run(LevelRedisFixes, "SET e v PXAT 4102444800999", "EXPIRETIME e"); r[1].Int != 4102444801 {
		t.Errorf("level 6: EXPIRETIME = %v, want 4102444801", r[1])
	}
	if r := run(LevelStoredBudget, "SET e v PXAT 4102444800999", "EXPIRETIME e"); r[1].Int != 4102444800 {
		t.Errorf("level 5 answers as it did (4102444800): %v", r[1])
	}
	// HRANDFIELD with a count past int64/2 and WITHVALUES is refused.
	if r := run(LevelRedisFixes, "HSET h a 1", "HRANDFIELD h 9223372036854775807 WITHVALUES"); !r[1].IsError() {
		t.Errorf("level 6: HRANDFIELD huge count = %v, want an error", r[1])
	}
	if r := run(LevelStoredBudget, "HSET h a 1", "HRANDFIELD h 9223372036854775807 WITHVALUES"); r[1].IsError() {
		t.Errorf("level 5 answers as it did (the hash): %v", r[1])
	}
}

// SETRANGE at an offset whose sum with the value's length passes int64
// is refused, at every level: it once panicked inside Apply, on every
// replica, at every restart.
func TestSetRangeOffsetOverflow(t *testing.T) {
	for _, level := range []uint32{LevelTypes, LevelRedisFixes} {
		f := New(nil)
		var b logBuilder
		applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: level}))
		u := Unit{Cmds: [][][]byte{argv("SETRANGE k 9223372036854775807 x"), argv("SETRANGE k 9223372036854775800 0123456789"), argv("EXISTS k")}}
		r := execEntry(t, f, &b, t0, u).Results[0].Replies
		if !r[0].IsError() || !r[1].IsError() || r[2].Int != 0 {
			t.Fatalf("level %d: %v", level, r)
		}
	}
}

func init() {
	// A command whose implementation panics after a write: the stand-in
	// for a bug like SETRANGE's overflow (TestCommandPanicIsAnError).
	register(&Spec{Name: "test.panic", Arity: 2, Flags: FlagInternal | FlagWrite, FirstKey: 1, LastKey: 1, Step: 1,
		run: func(t *Tx, a [][]byte) Reply {
			t.put(string(a[1]), []byte("partial"), 0)
			var s []byte
			_ = s[len(a)] // out of range
			return replyOK
		}})
}

// A command that panics inside Apply is answered with an error, the same
// on every replica, instead of stopping them all at that entry for good;
// an atomic unit that met it is dropped whole, and the next entries apply.
func TestCommandPanicIsAnError(t *testing.T) {
	a, c := New(nil), New(nil)
	var b logBuilder
	logs := []*raft.Log{
		b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelRedisFixes}),
		b.cmd(Command{Op: OpExec, Now: t0, Units: []Unit{
			{Cmds: [][][]byte{argv("SET x 1"), argv("test.panic p"), argv("SET y 2")}},
			{Mode: UnitAtomic, Cmds: [][][]byte{argv("SET z 3"), argv("test.panic q")}},
		}}),
		b.cmd(Command{Op: OpExec, Now: t0, Units: []Unit{{Cmds: [][][]byte{argv("SET w 4")}}}}),
	}
	var out []*Result
	for _, l := range logs {
		out = append(out, applyOne(t, a, l))
		applyOne(t, c, l)
	}
	plain, atomic := out[1].Results[0], out[1].Results[1]
	if len(plain.Replies) != 3 || !plain.Replies[1].IsError() || !errors.Is(plain.Replies[1].Err, ErrCommandFailed) ||
		plain.Replies[0].IsError() || plain.Replies[2].IsError() {
		t.Fatalf("a plain unit with a panicking command: %v", plain.Replies)
	}
	if atomic.Err == nil || !errors.Is(atomic.Err, ErrCommandFailed) {
		t.Fatalf("an atomic unit with a panicking command: %+v", atomic)
	}
	v := a.View(t0)
	for k, want := range map[string]string{"x": "1", "y": "2", "z": "", "q": "", "w": "4", "p": "partial"} {
		if got := string(v.Exec(argv("GET " + k)).Bulk); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	da, _ := a.Digest()
	dc, _ := c.Digest()
	if da != dc {
		t.Fatalf("replicas differ after a panicking command: %s, %s", da, dc)
	}
}
