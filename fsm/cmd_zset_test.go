package fsm

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// Sorted set commands through the engine (no Raft): replies, errors,
// events, accounting, snapshots. The differential test compares them
// with Redis itself; these pin what it cannot see.

func zsetFSM(t testing.TB) (*FSM, *logBuilder) {
	f := New(nil)
	b := &logBuilder{}
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelTypes}))
	return f, b
}

func TestZSetCommands(t *testing.T) {
	f, b := zsetFSM(t)
	for _, c := range []struct{ cmds, want string }{
		{"ZADD z 1 a 2 b 3 c|ZADD z XX CH 5 a 9 nope|ZRANGE z 0 -1 WITHSCORES", `(integer) 3, (integer) 1, ["b" 2 "c" 3 "a" 5]`},
		{"ZINCRBY z 1.5 b|ZADD z INCR GT -1 b|ZADD z INCR inf b|ZINCRBY z -inf b", `3.5, (nil), inf, (error) ERR resulting score is not a number (NaN)`},
		{"ZSCORE z b|ZMSCORE z a x|ZRANK z a|ZREVRANK z a|ZCARD z", `inf, [5 (nil)], (integer) 1, (integer) 1, (integer) 3`},
		{"ZADD z nan x|ZADD z 1e999 x|ZADD z 0x10 x|ZSCORE z x|ZADD z NX XX 1 a|ZADD z 1 a 2", `(error) ERR value is not a valid float, (error) ERR value is not a valid float, (integer) 1, 16, (error) ERR XX and NX options at the same time are not compatible, (error) ERR syntax error`},
		{"ZRANGEBYSCORE z (3 +inf|ZREVRANGEBYSCORE z +inf -inf LIMIT 1 2|ZCOUNT z (5 inf|ZRANGEBYSCORE z a 1", `["a" "x" "b"], ["x" "a"], (integer) 2, (error) ERR min or max is not a float`},
		{"ZREMRANGEBYRANK z 0 0|ZREMRANGEBYSCORE z 16 (17|ZPOPMAX z|ZPOPMIN z 5|EXISTS z", `(integer) 1, (integer) 1, ["b" inf], ["a" 5], (integer) 0`},
		{"ZADD l 0 a 0 b 0 c 0 d|ZRANGEBYLEX l (a [c|ZLEXCOUNT l - +|ZREVRANGEBYLEX l + - LIMIT 1 2|ZREMRANGEBYLEX l - (c|ZRANGE l 0 -1", `(integer) 4, ["b" "c"], (integer) 4, ["c" "b"], (integer) 2, ["c" "d"]`},
		{"ZRANGE l [c + BYLEX WITHSCORES|ZRANGE l 0 1 LIMIT 0 1|ZRANGE l 0 -1 BYSCORE BYLEX", `(error) ERR syntax error, WITHSCORES not supported in combination with BYLEX, (error) ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX, (error) ERR syntax error`},
		{"SET s v|ZADD s 1 a|ZRANGE s 0 -1|ZUNIONSTORE u 2 l s|ZPOPMIN s|ZSCORE s a", `OK, (error) WRONGTYPE Operation against a key holding the wrong kind of value, (error) WRONGTYPE Operation against a key holding the wrong kind of value, (error) WRONGTYPE Operation against a key holding the wrong kind of value, (error) WRONGTYPE Operation against a key holding the wrong kind of value, (error) WRONGTYPE Operation against a key holding the wrong kind of value`},
		{"ZADD w 1 a 2 b|ZUNIONSTORE u 2 l w WEIGHTS 2 3 AGGREGATE MAX|ZRANGE u 0 -1 WITHSCORES|ZINTERSTORE u 2 l w|EXISTS u|ZUNIONSTORE u 0 w", `(integer) 2, (integer) 4, ["c" 0 "d" 0 "a" 3 "b" 6], (integer) 0, (integer) 0, (error) ERR at least 1 input key is needed for 'zunionstore' command`},
		{"ZPOPMIN nope|ZPOPMIN w -1|ZRANDMEMBER nope|ZRANDMEMBER w 0|ZSCAN nope 0 COUNT 0|ZSCAN w 0", `[], (error) ERR value is out of range, must be positive, (nil), [], ["0" []], ["0" ["a" "1" "b" "2"]]`},
	} {
		res := execEntry(t, f, b, t0, unit(UnitPlain, strings.Split(c.cmds, "|")...))
		if got := replies(res.Results[0].Replies); got != c.want {
			t.Errorf("%s\n got %s\nwant %s", c.cmds, got, c.want)
		}
	}
	// Reply shapes for the fronts: pairs with a count, a flat pair without.
	res := execEntry(t, f, b, t0, unit(UnitPlain, "ZADD p 1 a 2 b", "ZPOPMIN p", "ZPOPMIN p 1", "ZRANGE w 0 -1 WITHSCORES", "ZRANGE w 0 -1"))
	for i, k := range []Kind{KindInt, KindArray, KindPairs, KindPairs, KindArray} {
		if r := res.Results[0].Replies[i]; r.Kind != k {
			t.Errorf("reply %d kind %d, want %d", i, r.Kind, k)
		}
	}
}

// Events are Redis's names; a key emptied by a removal also gets "del";
// nothing changed, no event and no new version.
func TestZSetEventsAndVersions(t *testing.T) {
	f, b := zsetFSM(t)
	var got []string
	f.OnChange(func(c Change) {
		for _, e := range c.Events {
			got = append(got, e.Event+":"+e.Key)
		}
	})
	execEntry(t, f, b, t0, unit(UnitPlain, "ZADD z 1 a 2 b", "ZINCRBY z 1 a", "ZADD z NX 5 a", "ZREM z nope", "ZREM z a",
		"ZREMRANGEBYSCORE z -inf +inf", "ZADD y 1 a", "ZPOPMAX y", "ZADD x 1 a", "ZUNIONSTORE u 1 x", "ZINTERSTORE u 2 x nope"))
	want := "zadd:z zincr:z zrem:z zremrangebyscore:z del:z zadd:y zpopmax:y del:y zadd:x zunionstore:u del:u"
	if strings.Join(got, " ") != want {
		t.Fatalf("events %s\nwant   %s", strings.Join(got, " "), want)
	}
	v := f.View(t0)
	it, _ := v.t.s.get([]byte("x"))
	ver := it.version
	execEntry(t, f, b, t0, unit(UnitPlain, "ZADD x NX 2 a", "ZADD x XX 1 a", "ZREM x b", "ZREMRANGEBYRANK x 5 6"))
	if it, _ := f.View(t0).t.s.get([]byte("x")); it.version != ver {
		t.Fatalf("commands that changed nothing gave a new version")
	}
}

// A published sorted set is never changed by later entries; accounting
// follows the elements; snapshots round-trip the type exactly.
func TestZSetSnapshotAndAccounting(t *testing.T) {
	f, b := zsetFSM(t)
	execEntry(t, f, b, t0, unit(UnitPlain, "ZADD z 1 a 2 bb -inf ccc 3.25 d", "EXPIRE z 100"))
	v1 := f.View(t0)
	base := v1.Stats().Bytes
	execEntry(t, f, b, t0, unit(UnitPlain, "ZREM z bb", "ZADD z 7 eeeee", "ZINCRBY z 1 a"))
	if got := v1.Exec(argv("ZRANGE z 0 -1 WITHSCORES")).String(); got != `["ccc" -inf "a" 1 "bb" 2 "d" 3.25]` {
		t.Fatalf("old view changed: %s", got)
	}
	if got, want := f.View(t0).Stats().Bytes, base-2+5; got != want {
		t.Fatalf("bytes %d, want %d", got, want)
	}
	g := New(nil)
	if err := restore(g, snapshotBytes(t, f)); err != nil {
		t.Fatal(err)
	}
	d1, _ := f.Digest()
	d2, _ := g.Digest()
	if d1 != d2 || g.View(t0).Stats().Bytes != f.View(t0).Stats().Bytes {
		t.Fatal("restored sorted set differs")
	}
	for _, c := range []string{"ZRANGE z 0 -1 WITHSCORES", "TTL z", "ZRANK z eeeee", "TYPE z"} {
		if a, b := f.View(t0).Exec(argv(c)).String(), g.View(t0).Exec(argv(c)).String(); a != b {
			t.Errorf("%s: %s after restore, %s before", c, b, a)
		}
	}
	execEntry(t, f, b, t0, unit(UnitPlain, "ZADD z 1 a"))
	execEntry(t, f, b, t0, unit(UnitPlain, "ZADD z 1.5 a"))
	if d1, _ = f.Digest(); d1 == d2 {
		t.Fatal("digest ignores scores")
	}
}

// Below level 3 every sorted set command is refused.
func TestZSetLevel(t *testing.T) {
	f := New(nil)
	var b logBuilder
	applyOne(t, f, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: 2}))
	res := execEntry(t, f, &b, t0, unit(UnitPlain, "ZADD z 1 a"))
	if r := res.Results[0].Replies[0]; !r.IsError() || !errors.Is(r.Err, ErrNewerLevel) {
		t.Fatalf("ZADD at level 2: %s", r)
	}
	for _, s := range Specs() {
		if strings.HasPrefix(s.Name, "z") && s.Level != LevelTypes {
			t.Errorf("%s has level %d", s.Name, s.Level)
		}
	}
}

func TestZSetScoreParsing(t *testing.T) {
	for in, want := range map[string]string{"1": "1", "-0x1p-2": "-0.25", "0X1.8P1": "3", "5.": "5", ".5": "0.5", "+inf": "inf",
		"-Infinity": "-inf", "1e-310": "9.9999999999999694e-311", "0.1": "0.10000000000000001", "1e17": "1e+17"} {
		v, ok := parseScore([]byte(in))
		if !ok || FormatDouble(v) != want {
			t.Errorf("parseScore(%q) = %s %v, want %s", in, FormatDouble(v), ok, want)
		}
	}
	for _, in := range []string{"", " 1", "1 ", "nan", "-nan", "1e400", "1e-400", "0x", "1e", "abc", "1\x002", "(1"} {
		if v, ok := parseScore([]byte(in)); ok {
			t.Errorf("parseScore(%q) = %v, want an error", in, v)
		}
	}
	for in, want := range map[string]string{"(1": "1 ex", " 2": "2", "": "0", "(": "0 ex", "1e400": "inf", "3\x00junk": "3", "-inf": "-inf"} {
		v, ex, ok := parseBound([]byte(in))
		got := FormatDouble(v)
		if ex {
			got += " ex"
		}
		if !ok || got != want {
			t.Errorf("parseBound(%q) = %s %v, want %s", in, got, ok, want)
		}
	}
	for in, want := range map[float64]string{-0.0: "0", 3: "3", 1e17: "100000000000000000", 1e19: "1e+19", 0.5: "0.5", math.Inf(1): "inf"} {
		if got := formatScoreCompact(in); got != want && !(in == 0 && got == "0") {
			t.Errorf("formatScoreCompact(%v) = %s, want %s", in, got, want)
		}
	}
	if got := formatScoreCompact(math.Copysign(0, -1)); got != "-0" {
		t.Errorf("formatScoreCompact(-0) = %s", got)
	}
}

// Random sorted set commands (plain, in transactions and in scripts,
// ZRANDMEMBER drawing inside entries) applied on three FSMs, batched
// differently, one restored from a snapshot halfway: identical replies
// and digests. A changed command changes the digest (negative control).
func TestZSetDeterminism(t *testing.T) {
	logs := zsetRandomLog(23, 300)
	run := func(logs []*raft.Log, batch int, restoreAt int) (string, []string) {
		f := New(nil)
		var out []string
		for i := 0; i < len(logs); i += batch {
			if restoreAt > 0 && i >= restoreAt && i-batch < restoreAt {
				g := New(nil)
				if err := restore(g, snapshotBytes(t, f)); err != nil {
					t.Fatal(err)
				}
				f = g
			}
			for _, r := range f.ApplyBatch(logs[i:min(i+batch, len(logs))]) {
				if res, ok := r.(*Result); ok {
					for _, u := range res.Results {
						out = append(out, replies(u.Replies))
					}
				}
			}
		}
		d, _ := f.Digest()
		return d, out
	}
	d0, r0 := run(logs, 1, 0)
	for k, c := range []struct{ batch, restoreAt int }{{7, 0}, {3, 150}} {
		d, r := run(logs, c.batch, c.restoreAt)
		if d != d0 {
			t.Fatalf("FSM %d digest %s, want %s", k+1, d, d0)
		}
		for i := range r0 {
			if r[i] != r0[i] {
				t.Fatalf("FSM %d reply %d: %s\nwant %s", k+1, i, r[i], r0[i])
			}
		}
	}
	all := strings.Join(r0, "\n")
	for _, want := range []string{"WRONGTYPE", "inf", "ERR syntax error"} {
		if !strings.Contains(all, want) {
			t.Errorf("the random log never produced %q", want)
		}
	}
	// Negative control: one more element in the last plain ZADD.
	changed := zsetRandomLog(23, 300)
	for i := len(changed) - 1; i >= 0; i-- {
		l := changed[i]
		c, err := Decode(l.Data)
		if err != nil || c.Op != OpExec || c.Units[0].Mode != UnitPlain || len(c.Units[0].Cmds[0]) < 4 ||
			!strings.EqualFold(string(c.Units[0].Cmds[0][0]), "zadd") || string(c.Units[0].Cmds[0][1]) == "s" {
			continue
		}
		c.Units[0].Cmds[0] = append(c.Units[0].Cmds[0], []byte("7"), []byte("extra-member"))
		l2 := *l
		l2.Data = c.Encode(nil)
		changed[i] = &l2
		break
	}
	if d, _ := run(changed, 1, 0); d == d0 {
		t.Fatal("a changed log gave the same digest")
	}
}

// zsetRandomLog is a level-3 log of random sorted set commands, for the
// determinism tests (the general generator, fsm/determinism_test.go, has
// none).
func zsetRandomLog(seed int64, n int) []*raft.Log {
	rng := rand.New(rand.NewSource(seed))
	var b logBuilder
	logs := []*raft.Log{b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelTypes})}
	keys := []string{"z1", "z2", "z3", "s"}
	pick := func(xs ...string) string { return xs[rng.Intn(len(xs))] }
	score := func() string { return pick("0", "1", "-1", "2.5", "inf", "-inf", "0.1", "1e300", "nan", "3") }
	member := func() string { return fmt.Sprint("m", rng.Intn(30)) }
	cmd := func() string {
		k := keys[rng.Intn(len(keys))]
		switch rng.Intn(16) {
		case 0, 1, 2:
			s := "ZADD " + k + " " + pick("", "NX ", "XX ", "GT ", "CH ", "INCR ")
			for i := rng.Intn(3); i >= 0; i-- {
				s += score() + " " + member() + " "
			}
			return s
		case 3:
			return "ZINCRBY " + k + " " + score() + " " + member()
		case 4:
			return "ZREM " + k + " " + member() + " " + member()
		case 5:
			return "ZRANGE " + k + " " + pick("0 -1", "(1 +inf BYSCORE", "- + BYLEX", "-inf inf BYSCORE REV LIMIT 1 3") + pick("", " WITHSCORES")
		case 6:
			return "ZREMRANGEBYRANK " + k + " " + pick("0 0", "-2 -1", "1 3")
		case 7:
			return "ZREMRANGEBYSCORE " + k + " " + pick("-inf (0", "(1 2.5", "inf inf")
		case 8:
			return "ZPOPMIN " + k + pick("", " 2")
		case 9:
			return "ZPOPMAX " + k + pick("", " 3")
		case 10:
			return "ZRANDMEMBER " + k + pick("", " 3", " -4 WITHSCORES", " 100")
		case 11:
			return pick("ZUNIONSTORE", "ZINTERSTORE") + " " + k + " 2 z1 z2 " + pick("", "WEIGHTS 0.5 3 ", "AGGREGATE MIN")
		case 12:
			return "SET s " + member()
		case 13:
			return "ZRANK " + k + " " + member()
		case 14:
			return "EXPIRE " + k + " 100"
		}
		return "ZSCAN " + k + " 0"
	}
	now := t0
	for len(logs) < n {
		now += int64(rng.Intn(1e9))
		var units []Unit
		for u := rng.Intn(3); u >= 0; u-- {
			switch rng.Intn(6) {
			case 0:
				// A script drawing twice: each call draws anew.
				units = append(units, evalUnit("return {redis.call('ZRANDMEMBER', KEYS[1], -3), redis.call('ZRANDMEMBER', KEYS[1], -3), redis.call('ZPOPMIN', KEYS[1])}", []string{keys[rng.Intn(3)]}))
			case 1:
				units = append(units, unit(UnitAtomic, cmd(), cmd(), cmd()))
			default:
				units = append(units, unit(UnitPlain, cmd(), cmd()))
			}
		}
		logs = append(logs, b.cmd(Command{Op: OpExec, Now: now, Units: units}))
	}
	return logs
}

// TestZSetMemory measures the Go heap a sorted set takes per element and
// checks the accounted constant against it (docs/api.md records both
// with Redis's MEMORY USAGE).
func TestZSetMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("measures the heap: not with -short or the race detector")
	}
	const n = 200000
	members := make([]string, n)
	for i := range members {
		members[i] = fmt.Sprintf("m%09d", i) // 10 bytes, as in docs/api.md
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	z := newZSet()
	for i, m := range members {
		z.add(m, float64(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	perElem := float64(m1.HeapAlloc-m0.HeapAlloc) / n // the members were allocated before
	runtime.KeepAlive(z)
	t.Logf("Go heap per element beyond its 10-byte member: %.1f bytes (accounted: %d)", perElem, ZSetElemOverhead)
	if perElem < 0.7*ZSetElemOverhead || perElem > 1.3*ZSetElemOverhead {
		t.Errorf("heap per element %.1f is far from ZSetElemOverhead %d: measure again and define a new constant", perElem, ZSetElemOverhead)
	}
}

// ZRANDMEMBER inside an entry draws from the entry's generator: the same
// on every member, but each call anew; on a view it draws freely.
func TestZSetRandom(t *testing.T) {
	f, b := zsetFSM(t)
	add := "ZADD z"
	for i := range 50 {
		add += fmt.Sprintf(" %d m%02d", i, i)
	}
	execEntry(t, f, b, t0, unit(UnitPlain, add))
	res := execEntry(t, f, b, t0, evalUnit("return {redis.call('ZRANDMEMBER', KEYS[1], 5), redis.call('ZRANDMEMBER', KEYS[1], 5)}", []string{"z"}),
		unit(UnitPlain, "ZRANDMEMBER z 5", "ZRANDMEMBER z 5"))
	script, plain := res.Results[0].Replies[0], res.Results[1].Replies
	if a, b := script.Elems[0].String(), script.Elems[1].String(); a == b {
		t.Errorf("two draws in one script gave the same sample %s", a)
	}
	if plain[0].String() == plain[1].String() {
		t.Errorf("two draws in one entry gave the same sample %s", plain[0])
	}
	seen := map[string]bool{}
	for range 20 {
		seen[f.View(t0).Exec(argv("ZRANDMEMBER z 3")).String()] = true
	}
	if len(seen) < 2 {
		t.Error("a view's ZRANDMEMBER always answers the same")
	}
}

// ZSCAN pages a set too big for Redis's compact encoding with cursors:
// every member present throughout is returned, none twice, even when
// the set changes between pages.
func TestZSetScanPages(t *testing.T) {
	f, b := zsetFSM(t)
	add := "ZADD z"
	for i := range 300 {
		add += fmt.Sprintf(" %d m%03d", i%7, i)
	}
	execEntry(t, f, b, t0, unit(UnitPlain, add))
	seen := map[string]int{}
	cursor, pages := "0", 0
	for {
		r := f.View(t0).Exec(argv("ZSCAN z " + cursor + " COUNT 25"))
		if r.IsError() || len(r.Elems) != 2 {
			t.Fatalf("ZSCAN: %s", r)
		}
		pages++
		els := r.Elems[1].Elems
		for i := 0; i < len(els); i += 2 {
			seen[string(els[i].Bulk)]++
		}
		if pages == 3 {
			execEntry(t, f, b, t0, unit(UnitPlain, "ZADD z 1 a-new 2 zz-new", "ZREM z m299"))
		}
		cursor = string(r.Elems[0].Bulk)
		if cursor == "0" {
			break
		}
	}
	for i := range 299 {
		if m := fmt.Sprintf("m%03d", i); seen[m] != 1 {
			t.Errorf("%s returned %d times", m, seen[m])
		}
	}
	if pages < 12 || seen["zz-new"] != 1 {
		t.Errorf("%d pages; a member added after the cursor passed its place: %d", pages, seen["zz-new"])
	}
	if r := f.View(t0).Exec(argv("ZSCAN z 12345")); !r.IsError() {
		t.Errorf("unknown cursor on a big set: %s", r)
	}
}
