package fsm

import (
	"bytes"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// Engine tests of hashes, sets and the key commands over every type
// (Redis's replies themselves are checked against redis-server by
// cluster-test/redisdiff_{hash,set,keys2}_test.go).

func typesFSM(t *testing.T) (*FSM, *logBuilder) {
	t.Helper()
	f := New(nil)
	b := &logBuilder{}
	raiseLevel(t, f, b, LevelTypes)
	return f, b
}

func run(t *testing.T, f *FSM, b *logBuilder, lines ...string) string {
	t.Helper()
	return replies(execEntry(t, f, b, t0, unit(UnitPlain, lines...)).Results[0].Replies)
}

func TestHashAndSetCommands(t *testing.T) {
	f, b := typesFSM(t)
	for _, c := range []struct{ in, want string }{
		{"HSET h a 1 b 2|HSET h a 3 c 4|HGET h a|HMGET h a x c|HLEN h|HSTRLEN h c|HEXISTS h b",
			`(integer) 2, (integer) 1, "3", ["3" (nil) "4"], (integer) 3, (integer) 1, (integer) 1`},
		{"HGETALL h|HKEYS h|HVALS h|HDEL h a x|HSETNX h b 9|HSETNX h d 9|HMSET h e 5",
			`["a" "3" "b" "2" "c" "4"], ["a" "b" "c"], ["3" "2" "4"], (integer) 1, (integer) 0, (integer) 1, OK`},
		{"HINCRBY h n 5|HINCRBY h n -7|HINCRBY h d 9223372036854775807|HINCRBYFLOAT h f 0.1|HINCRBYFLOAT h f 0.2|HINCRBYFLOAT h f 1e3",
			`(integer) 5, (integer) -2, (error) ERR increment or decrement would overflow, "0.1", "0.3", "1000.29999999999999999"`},
		{"HINCRBYFLOAT h g 0x10|HINCRBYFLOAT h g inf|HINCRBYFLOAT h g 1e20|HINCRBY h f 1|SET s x|HGET s a",
			`"16", (error) ERR value is NaN or Infinity, "100000000000000000016", (error) ERR hash value is not an integer, OK, (error) WRONGTYPE Operation against a key holding the wrong kind of value`},
		{"SADD k 1 2 3 2|SADD k x|SCARD k|SISMEMBER k 2|SMISMEMBER k 1 9|SREM k 1 9|SMEMBERS k|OBJECT ENCODING k",
			`(integer) 3, (integer) 1, (integer) 4, (integer) 1, [(integer) 1 (integer) 0], (integer) 1, ["2" "3" "x"], "hashtable"`},
		{"SADD j 3 4|SINTER k j|SUNION k j nope|SDIFF k j|SINTERSTORE d k j|SMEMBERS d|SINTERCARD 2 k j LIMIT 1|SDIFFSTORE d j j|EXISTS d",
			`(integer) 2, ["3"], ["2" "3" "4" "x"], ["2" "x"], (integer) 1, ["3"], (integer) 1, (integer) 0, (integer) 0`},
		{"SMOVE k j x|SMOVE k j nope|SMOVE nope j x|SMOVE k s 2|SMEMBERS j|SPOP nope|SPOP j 0|SRANDMEMBER nope 3",
			`(integer) 1, (integer) 0, (integer) 0, (error) WRONGTYPE Operation against a key holding the wrong kind of value, ["3" "4" "x"], (nil), [], []`},
		{"SPOP k 10|EXISTS k|HSCAN h 0 MATCH [ab]*|SSCAN j 0 COUNT 10|SCAN 0 TYPE set|TYPE h|TYPE j",
			`["2" "3"], (integer) 0, ["0" ["b" "2"]], ["0" ["3" "4" "x"]], ["0" ["j"]], hash, set`},
	} {
		if got := run(t, f, b, strings.Split(c.in, "|")...); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

// TestKeyCommandsMoveCollections: RENAME moves a collection and its
// expiry; COPY's copy is independent of its source (copy on write); an
// entry that changes a collection many times copies it once.
func TestKeyCommandsMoveCollections(t *testing.T) {
	f, b := typesFSM(t)
	run(t, f, b, "HSET h a 1 b 2", "EXPIRE h 100", "SADD s x y")
	if got := run(t, f, b, "RENAME h g", "EXISTS h", "TTL g", "COPY g c", "HSET c z 9", "HLEN g", "HLEN c", "COPY s c", "COPY s c REPLACE", "TYPE c",
		"SADD c q", "SCARD s", "RENAMENX s c", "COPY s s", "COPY s t DB 1"); got !=
		`OK, (integer) 0, (integer) 100, (integer) 1, (integer) 1, (integer) 2, (integer) 3, (integer) 0, (integer) 1, set, (integer) 1, (integer) 2, (integer) 0, `+
			`(error) ERR source and destination objects are the same, (error) ERR COPY to another database is not supported: raftcache has one database (DB 0)` {
		t.Fatalf("got %s", got)
	}
	if got := run(t, f, b, "APPEND k ab", "SETRANGE k 4 z", "GETRANGE k 0 -1", "GETEX k EX 50", "TTL k", "GETEX k PERSIST", "TTL k",
		"INCRBYFLOAT n 10.5", "INCRBYFLOAT n 0.1", "TOUCH k n nope", "OBJECT ENCODING n", "OBJECT ENCODING g"); got !=
		`(integer) 2, (integer) 5, "ab\x00\x00z", "ab\x00\x00z", (integer) 50, "ab\x00\x00z", (integer) -1, "10.5", "10.6", (integer) 2, "embstr", "listpack"` {
		t.Fatalf("got %s", got)
	}
	// Many changes of one hash in one entry: one clone of the published one.
	v := f.View(t0)
	run(t, f, b, "HSET g x 1", "HSET g y 2", "HDEL g a", "HINCRBY g n 1")
	if got := v.Exec(argv("HGETALL g")).String(); got != `["a" "1" "b" "2"]` {
		t.Fatalf("a published hash changed: %s", got)
	}
}

// TestTypesSnapshotRoundTrip: hashes and sets (with their expiries and
// their encodings' memory) survive a snapshot; the digest covers them.
func TestTypesSnapshotRoundTrip(t *testing.T) {
	f, b := typesFSM(t)
	run(t, f, b, "HSET h a 1 b 2 big "+strings.Repeat("v", 70), "HDEL h big", "SADD s 1 2 x", "SREM s x", "EXPIRE s 100", "SADD e ''", "SET str v")
	g := New(nil)
	if err := restore(g, snapshotBytes(t, f)); err != nil {
		t.Fatal(err)
	}
	d1, _ := f.Digest()
	d2, _ := g.Digest()
	if d1 != d2 || f.View(t0).Stats() != g.View(t0).Stats() {
		t.Fatalf("restored state differs: %v %v", f.View(t0).Stats(), g.View(t0).Stats())
	}
	want := `["a" "1" "b" "2"], ["1" "2"], (integer) 100, "hashtable", "hashtable", ["''"]`
	for _, x := range []*FSM{f, g} {
		if got := replies(execEntry(t, x, b, t0, unit(UnitPlain, "HGETALL h", "SMEMBERS s", "TTL s", "OBJECT ENCODING h", "OBJECT ENCODING s", "SMEMBERS e")).Results[0].Replies); got != want {
			t.Fatalf("got %s\nwant %s", got, want)
		}
	}
	run(t, f, b, "SADD s 3")
	if d1, _ = f.Digest(); d1 == d2 {
		t.Fatal("the digest ignores a set's members")
	}
}

// typedLog is a random log of hash, set and key commands over a small
// key space, SPOP and the random reads included (seeded by the entry).
func typedLog(seed int64, n int) []*raft.Log {
	rng := rand.New(rand.NewSource(seed))
	keys := []string{"a", "b", "c", "d"}
	key := func() string { return keys[rng.Intn(len(keys))] }
	mem := func() string { return fmt.Sprint(rng.Intn(12)) }
	cmds := []func() string{
		func() string { return fmt.Sprintf("HSET %s f%s %s f%s %s", key(), mem(), mem(), mem(), mem()) },
		func() string { return fmt.Sprintf("HDEL %s f%s", key(), mem()) },
		func() string { return fmt.Sprintf("HINCRBYFLOAT %s f%s 0.%s", key(), mem(), mem()) },
		func() string { return fmt.Sprintf("HRANDFIELD %s -%s WITHVALUES", key(), mem()) },
		func() string { return fmt.Sprintf("SADD %s %s %s x%s", key(), mem(), mem(), mem()) },
		func() string { return fmt.Sprintf("SREM %s %s", key(), mem()) },
		func() string { return fmt.Sprintf("SPOP %s %d", key(), rng.Intn(3)) },
		func() string { return "SPOP " + key() },
		func() string { return fmt.Sprintf("SRANDMEMBER %s %d", key(), rng.Intn(7)-3) },
		func() string { return fmt.Sprintf("SMOVE %s %s %s", key(), key(), mem()) },
		func() string { return fmt.Sprintf("SUNIONSTORE %s %s %s", key(), key(), key()) },
		func() string { return fmt.Sprintf("SINTERSTORE %s %s %s", key(), key(), key()) },
		func() string { return fmt.Sprintf("RENAME %s %s", key(), key()) },
		func() string { return fmt.Sprintf("COPY %s %s REPLACE", key(), key()) },
		func() string { return fmt.Sprintf("EXPIRE %s %d", key(), rng.Intn(5)) },
		func() string { return fmt.Sprintf("SET %s %s", key(), mem()) },
		func() string { return fmt.Sprintf("APPEND %s %s", key(), mem()) },
		func() string { return "DEL " + key() },
	}
	var b logBuilder
	var logs []*raft.Log
	now := t0
	for len(logs) < n {
		now += int64(rng.Intn(1500)) * 1e6
		var units []Unit
		for u := rng.Intn(3); u >= 0; u-- {
			var lines []string
			for c := rng.Intn(4); c >= 0; c-- {
				lines = append(lines, cmds[rng.Intn(len(cmds))]())
			}
			units = append(units, unit(UnitMode(rng.Intn(2)), lines...))
		}
		logs = append(logs, b.cmd(Command{Op: OpExec, Now: now, Units: units}))
		if rng.Intn(10) == 0 {
			logs = append(logs, b.cmd(Command{Op: OpExpire, Now: now, Keys: [][]byte{[]byte(key()), []byte(key())}}))
		}
	}
	return logs
}

// TestTypesDeterminism: random typed commands applied one entry at a
// time, in random batches, and from a midway snapshot end in the same
// digest, with the same replies (SPOP and SRANDMEMBER draw from the
// entry's seed).
func TestTypesDeterminism(t *testing.T) {
	var lb logBuilder
	lvl := lb.cmd(Command{Op: OpClusterLevel, Now: t0, Level: LevelTypes})
	logs := append([]*raft.Log{lvl}, typedLog(7, 3000)...)
	for i, l := range logs {
		l.Index = uint64(i + 1)
	}
	mid := len(logs) / 2
	a := New(nil)
	resA := applySingly(a, logs[:mid])
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	resA = append(resA, applySingly(a, logs[mid:])...)
	bf := New(nil)
	resB := applyBatched(bf, logs, rand.New(rand.NewSource(3)))
	c := New(nil)
	if err := restore(c, persist(t, snap)); err != nil {
		t.Fatal(err)
	}
	resC := applyBatched(c, logs[mid:], rand.New(rand.NewSource(4)))
	da, _ := a.Digest()
	db, _ := bf.Digest()
	dc, _ := c.Digest()
	if da != db || da != dc {
		t.Fatalf("digests differ: single %s, batched %s, from snapshot %s", da, db, dc)
	}
	if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, c)) {
		t.Fatal("snapshots differ")
	}
	spops := 0
	for i := range resA {
		ra, rb := resA[i].(*Result), resB[i].(*Result)
		if fmt.Sprint(ra.Results) != fmt.Sprint(rb.Results) {
			t.Fatalf("entry %d: replies differ:\n%v\n%v", i+1, ra.Results, rb.Results)
		}
		if i >= mid && fmt.Sprint(ra.Results) != fmt.Sprint(resC[i-mid].(*Result).Results) {
			t.Fatalf("entry %d: replies differ after restore", i+1)
		}
		for _, u := range ra.Results {
			for _, r := range u.Replies {
				if r.Kind == KindBulk || r.Kind == KindSet {
					spops++
				}
			}
		}
	}
	st := a.Stats()
	t.Logf("%d keys, %d bytes, %d replies with values", st.Keys, st.Bytes, spops)
	if st.Keys == 0 || spops < 100 {
		t.Fatal("the random log did not exercise the typed commands")
	}
}

// TestRandomPickSpread: picks by bisection of the key range (collections
// above randWalkMax) reach nearly every element, none far more often
// than the others, for keys of the usual "prefix:number" shape.
func TestRandomPickSpread(t *testing.T) {
	const n, draws = 4096, 3 * 4096
	s := newSet().(*setObj)
	for i := 0; i < n; i++ {
		s.add(fmt.Sprintf("member:%d", i))
	}
	rng := rand.New(rand.NewSource(1))
	count := map[string]int{}
	for i := 0; i < draws; i++ {
		count[bisectPick(s.t, rng.Intn, setKey, setProbe)]++
	}
	most := 0
	for _, c := range count {
		most = max(most, c)
	}
	t.Logf("%d of %d elements drawn in %d draws; the most drawn %d times (uniform: %d)", len(count), n, draws, most, draws/n)
	// Uniform draws would reach 95% of the elements, none more than ~12 times.
	if len(count) < n*7/10 || most > 40*draws/n {
		t.Fatal("random picks are far from uniform")
	}
}

// TestCardinalityCountsHits: HLEN, LLEN, SCARD, XLEN and ZCARD count a
// keyspace hit on a key that exists and a miss on one that does not, as
// Redis's lookupKeyReadOrReply does (one implementation, cardinality).
func TestCardinalityCountsHits(t *testing.T) {
	f, b := typesFSM(t)
	run(t, f, b, "HSET h a 1", "RPUSH l a", "SADD s a", "XADD x 1-1 f v", "ZADD z 1 a")
	for _, c := range []string{"HLEN h", "LLEN l", "SCARD s", "XLEN x", "ZCARD z"} {
		before := f.Stats()
		if got := f.View(t0).Exec(argv(c)); got.Int != 1 {
			t.Fatalf("%s: %+v, want 1", c, got)
		}
		if miss := f.View(t0).Exec(argv(strings.Fields(c)[0] + " nope")); miss.Int != 0 {
			t.Fatalf("%s on a missing key: %+v, want 0", c, miss)
		}
		after := f.Stats()
		if after.Hits != before.Hits+1 || after.Misses != before.Misses+1 {
			t.Errorf("%s: hits %d -> %d, misses %d -> %d; want one of each", c, before.Hits, after.Hits, before.Misses, after.Misses)
		}
	}
}
