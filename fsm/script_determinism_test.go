package fsm

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// randomScript writes a small script from a grammar that reaches the
// runtime's moving parts: redis.call and pcall on a few keys, time,
// math.random, loops, string and table builtins, cjson, bit, errors,
// attempts to change globals and library tables, and now and then an
// endless or memory-hungry loop.
func randomScript(rng *rand.Rand) string {
	key := func() string { return fmt.Sprintf("KEYS[%d]", 1+rng.Intn(3)) }
	stmts := []func() string{
		func() string { return "redis.call('SET', " + key() + ", tostring(math.random(100)))" },
		func() string { return "redis.call('INCRBY', 'n' .. math.random(3), math.random(5))" },
		func() string { return "redis.pcall('INCR', " + key() + ")" },
		func() string { return "redis.call('DEL', " + key() + ")" },
		func() string { return "redis.call('EXPIRE', " + key() + ", math.random(1, 100))" },
		func() string { return "acc[#acc+1] = redis.call('GET', " + key() + ") or 'nil'" },
		func() string { return "acc[#acc+1] = redis.call('TIME')[1]" },
		func() string { return "acc[#acc+1] = cjson.encode({a = math.random(), b = {1, 2}})" },
		func() string { return "acc[#acc+1] = bit.tohex(bit.bxor(math.random(1000), 0xff))" },
		func() string { return "acc[#acc+1] = string.rep('ab', math.random(10)) .. tostring(1/3)" },
		func() string { return "for i = 1, math.random(50) do acc[#acc+1] = i * 1.5 end" },
		func() string { return "pcall(function() math.pi = 3 end)" },
		func() string { return "pcall(rawset, math, 'pi', 3)" },
		func() string { return "table.sort(acc, function(a, b) return tostring(a) < tostring(b) end)" },
		func() string { return "if math.random(10) == 1 then error('bad luck') end" },
		func() string { return "if math.random(6) == 1 then while true do end end" },
		func() string { return "if math.random(6) == 1 then local s = 'x' while true do s = s .. s end end" },
		func() string { return "acc[#acc+1] = math.pi" },
		func() string { return "redis.call('SET', " + key() + ", tostring({}) .. tostring(acc))" },
		func() string {
			return "local t = {} for k, v in pairs({x = 1, y = 2, [3] = 4, z = {}}) do t[#t+1] = tostring(k) end acc[#acc+1] = table.concat(t, ',')"
		},
	}
	var b strings.Builder
	b.WriteString("local acc = {}\n")
	for i := 0; i < 1+rng.Intn(8); i++ {
		b.WriteString(stmts[rng.Intn(len(stmts))]() + "\n")
	}
	b.WriteString("return acc\n")
	return b.String()
}

// Random scripts applied on three FSMs, batched differently, one of them
// restored from a snapshot halfway and each sharing the interpreter pool
// with the others' runs: identical replies and digests.
func TestScriptDeterminism(t *testing.T) {
	rng := rand.New(rand.NewSource(16))
	var logs []*raft.Log
	var b logBuilder
	// Scripts run only once the cluster is at level 2, whose snapshots
	// keep the script cache.
	logs = append(logs, b.cmd(Command{Op: OpClusterLevel, Now: t0, Level: 2}))
	entries := 60
	if raceEnabled {
		entries = 15 // runs to the budget are tenfold slower under the race detector
	}
	for i := 0; i < entries; i++ {
		var units []Unit
		for j := 0; j < 1+rng.Intn(3); j++ {
			u := evalUnit(randomScript(rng), []string{"a", "b", "c"})
			if rng.Intn(4) == 0 {
				body := string(u.Cmds[0][1])
				u.Cmds = append(u.Cmds, [][]byte{[]byte("EVALSHA"), []byte(sha1hex([]byte(body))), []byte("3"), []byte("a"), []byte("b"), []byte("c")})
			}
			units = append(units, u)
		}
		logs = append(logs, b.cmd(Command{Op: OpExec, Now: t0 + int64(i)*1e9, Units: units}))
	}
	fsms := []*FSM{New(nil), New(nil), New(nil)}
	var replies [3][]string
	record := func(k int, out []interface{}) {
		for _, o := range out {
			for _, u := range o.(*Result).Results {
				replies[k] = append(replies[k], replies2(u.Replies))
			}
		}
	}
	// 0: one entry at a time; 1: batches of 7; 2: batches of 3 with a
	// snapshot and restore into a fresh FSM halfway.
	for _, l := range logs {
		record(0, fsms[0].ApplyBatch([]*raft.Log{l}))
	}
	for i := 0; i < len(logs); i += 7 {
		record(1, fsms[1].ApplyBatch(logs[i:min(i+7, len(logs))]))
	}
	for i := 0; i < len(logs); i += 3 {
		if i == entries/2/3*3 {
			g := New(nil)
			if err := restore(g, snapshotBytes(t, fsms[2])); err != nil {
				t.Fatal(err)
			}
			fsms[2] = g
		}
		record(2, fsms[2].ApplyBatch(logs[i:min(i+3, len(logs))]))
	}
	d0, _ := fsms[0].Digest()
	for k := 1; k < 3; k++ {
		if d, _ := fsms[k].Digest(); d != d0 {
			t.Fatalf("FSM %d digest %s, FSM 0 %s", k, d, d0)
		}
		if strings.Join(replies[k], "\n") != strings.Join(replies[0], "\n") {
			for i := range replies[0] {
				if replies[k][i] != replies[0][i] {
					t.Fatalf("FSM %d reply %d: %s\nFSM 0: %s", k, i, replies[k][i], replies[0][i])
				}
			}
		}
	}
	// The corpus exercised what it should.
	all := strings.Join(replies[0], "\n")
	for _, want := range []string{"instruction budget", "memory budget", "bad luck"} {
		if !strings.Contains(all, want) && !raceEnabled {
			t.Errorf("no reply mentions %q", want)
		}
	}
}

func replies2(rs []Reply) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	return strings.Join(s, " | ")
}

// FuzzScript runs script bodies and arguments through the engine on two
// FSMs: no panic, and the same replies and digests.
func FuzzScript(f *testing.F) {
	for _, s := range []string{"return 1", "return redis.call('INCR', KEYS[1])", "return {ARGV[1], #ARGV}",
		"return cjson.decode(ARGV[1])", "return bit.band(tonumber(ARGV[1]) or 0, 7)", "error(ARGV[1])",
		"return string.format(ARGV[1], 1)", "return string.rep(ARGV[1], 3)", "local t = {} t[tonumber(ARGV[1]) or 1] = 1 return #t",
		"return redis.call(ARGV[1], KEYS[1])", "return tostring(tonumber(ARGV[1]))"} {
		f.Add(s, "k", "1")
	}
	f.Fuzz(func(t *testing.T, body, key, arg string) {
		if len(body) > 4096 || strings.Contains(body, "while") || strings.Contains(body, "repeat") || strings.Contains(body, "for") {
			t.Skip() // loops are the budget's job (TestScriptErrors); keep runs short
		}
		a, b := New(nil), New(nil)
		var la, lb logBuilder
		u := Unit{Cmds: [][][]byte{{[]byte("EVAL"), []byte(body), []byte("1"), []byte(key), []byte(arg)}}}
		if key == "" {
			u.Cmds[0][3] = []byte("k")
		}
		ra := execEntry(t, a, &la, t0, u).Results[0].Replies
		rb := execEntry(t, b, &lb, t0, u).Results[0].Replies
		if replies2(ra) != replies2(rb) {
			t.Fatalf("replies differ: %s vs %s", replies2(ra), replies2(rb))
		}
		da, _ := a.Digest()
		db, _ := b.Digest()
		if da != db {
			t.Fatal("digests differ")
		}
	})
}
