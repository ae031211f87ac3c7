package clustertest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The sorted set stage of TestRedisDiff: every sorted set command with
// random arguments over the shared key space (so WRONGTYPE meets the
// string commands), score edge cases (±inf, '(' bounds, hex, blanks,
// overflow, NaN results), lex ranges on sets of one score and of many,
// negative ranks, LIMIT, WITHSCORES, and the RESP3 shapes.
//
//	go test ./cluster-test/ -run 'TestRedisDiff/zset$' -v

var (
	zMembers = []string{"a", "b", "c", "d", "e", "m1", "m2", "x", "aa", "b\x00c", ""}
	// scores for ZADD: "0" often, so that many sets have one score and
	// their lex ranges mean something.
	zScores = []string{"1", "-1", "2.5", "1e3", "-inf", "+inf", "inf", "3", "10", "0.1", "1.1", "-0", "1e-5", "1e17",
		"123456789012345678", "0x10", "-0X1p-2", "5.", ".5", "infinity", "-Infinity", "4611686018427387904", "1e-310",
		"abc", "nan", "", " 1", "1 ", "(1", "1e400", "-1e400", "1e-400", "0x", "1e", "+", "1e+", "0.30000000000000004"}
	zBounds = []string{"-inf", "+inf", "(1", "1", "(-inf", "0", "(2.5", "2.5", "(inf", "10", "(10", "-1", "(0", "3", "1e3",
		"abc", "(", "", " 1", "1e400", "(1e17", "0x10", "nan", "((1", "1.1", "-0", "(-0"}
	zLex   = []string{"-", "+", "[a", "(a", "[c", "(m1", "[", "(", "[b\x00c", "(aa", "[x", "(e", "a", "+a", "--", "[zz", "(\x00"}
	zRanks = []string{"0", "1", "-1", "-2", "2", "5", "-5", "10", "-10", "3", "abc", "1.5", "9223372036854775807", "-9223372036854775808"}
	zCount = []string{"0", "1", "2", "3", "10", "-1", "-2", "-5", "abc", "9223372036854775807", "-9223372036854775807",
		"-9223372036854775808", "4611686018427387904"}
)

func init() {
	diffStages = append(diffStages, diffStage{name: "zset", command: (*diffGen).zsetCommand, fixed: append(diffFixedZSet, diffBigZSet()), seqs: 60})
	diffComparers["ZRANDMEMBER"] = diffZRandMember
	diffComparers["ZSCAN"] = diffZScan
	// HELLO 3 in a fixed sequence: the server descriptions differ.
	diffComparers["HELLO"] = func(argv []string, w, g *reply) (string, bool) {
		if w.Kind == kMap && g.Kind == kMap {
			return "", true
		}
		return "", false
	}
}

func (g *diffGen) zmember() string { return g.pick(zMembers) }

func (g *diffGen) zscore() string {
	if g.chance(0.4) {
		return "0"
	}
	if g.chance(0.8) {
		return g.pick(zScores[:12])
	}
	return g.pick(zScores)
}

func (g *diffGen) zbound() string {
	if g.chance(0.8) {
		return g.pick(zBounds[:15])
	}
	return g.pick(zBounds)
}

func (g *diffGen) zlex() string {
	if g.chance(0.85) {
		return g.pick(zLex[:11])
	}
	return g.pick(zLex)
}

func (g *diffGen) zrank() string {
	if g.chance(0.9) {
		return g.pick(zRanks[:10])
	}
	return g.pick(zRanks)
}

// zopts appends a random choice of options, in random order.
func (g *diffGen) zopts(argv []string, opts ...[]string) []string {
	var chosen [][]string
	for _, o := range opts {
		if g.chance(0.3) {
			chosen = append(chosen, o)
		}
	}
	g.r.Shuffle(len(chosen), func(i, j int) { chosen[i], chosen[j] = chosen[j], chosen[i] })
	for _, o := range chosen {
		argv = append(argv, o...)
	}
	return argv
}

func (g *diffGen) zlimit() []string {
	return []string{g.name("LIMIT"), g.pick(zCount[:8]), g.pick(zCount[:8])}
}

func (g *diffGen) zsetCommand() []string {
	k := g.key()
	switch x := g.r.IntN(100); {
	case x < 22:
		argv := []string{g.name("ZADD"), k}
		if g.chance(0.4) {
			for _, o := range []string{"NX", "XX", "GT", "LT", "CH", "INCR"} {
				if g.chance(0.2) {
					argv = append(argv, g.name(o))
				}
			}
		}
		for n := 1 + g.r.IntN(3); n > 0; n-- {
			argv = append(argv, g.zscore(), g.zmember())
		}
		if g.chance(0.05) {
			argv = argv[:len(argv)-1] // odd pairs
		}
		return argv
	case x < 27:
		return []string{g.name("ZINCRBY"), k, g.zscore(), g.zmember()}
	case x < 31:
		argv := []string{g.name("ZREM"), k}
		for n := 1 + g.r.IntN(3); n > 0; n-- {
			argv = append(argv, g.zmember())
		}
		return argv
	case x < 34:
		return []string{g.name("ZSCORE"), k, g.zmember()}
	case x < 36:
		return []string{g.name("ZMSCORE"), k, g.zmember(), g.zmember()}
	case x < 38:
		return []string{g.name("ZCARD"), k}
	case x < 41:
		return []string{g.name("ZCOUNT"), k, g.zbound(), g.zbound()}
	case x < 44:
		return []string{g.name("ZLEXCOUNT"), k, g.zlex(), g.zlex()}
	case x < 52:
		argv := []string{g.name("ZRANGE"), k}
		var opts [][]string
		switch g.r.IntN(4) {
		case 0:
			argv = append(argv, g.zrank(), g.zrank())
		case 1, 2:
			argv = append(argv, g.zbound(), g.zbound())
			opts = append(opts, []string{g.name("BYSCORE")})
		default:
			argv = append(argv, g.zlex(), g.zlex())
			opts = append(opts, []string{g.name("BYLEX")})
		}
		if g.chance(0.1) {
			opts = append(opts, []string{g.name(g.pick([]string{"BYSCORE", "BYLEX"}))})
		}
		argv = g.zopts(argv, append(opts, []string{g.name("REV")}, []string{g.name("WITHSCORES")}, g.zlimit())...)
		if len(opts) > 0 && g.chance(0.6) && !slices.Contains(argv, opts[0][0]) {
			argv = append(argv, opts[0]...)
		}
		return argv
	case x < 57:
		name := g.pick([]string{"ZRANGEBYSCORE", "ZREVRANGEBYSCORE"})
		return g.zopts([]string{g.name(name), k, g.zbound(), g.zbound()}, []string{g.name("WITHSCORES")}, g.zlimit())
	case x < 60:
		return g.zopts([]string{g.name("ZREVRANGE"), k, g.zrank(), g.zrank()}, []string{g.name("WITHSCORES")})
	case x < 64:
		name := g.pick([]string{"ZRANGEBYLEX", "ZREVRANGEBYLEX"})
		return g.zopts([]string{g.name(name), k, g.zlex(), g.zlex()}, g.zlimit())
	case x < 67:
		return []string{g.name(g.pick([]string{"ZRANK", "ZREVRANK"})), k, g.zmember()}
	case x < 69:
		return []string{g.name("ZREMRANGEBYSCORE"), k, g.zbound(), g.zbound()}
	case x < 71:
		return []string{g.name("ZREMRANGEBYRANK"), k, g.zrank(), g.zrank()}
	case x < 73:
		return []string{g.name("ZREMRANGEBYLEX"), k, g.zlex(), g.zlex()}
	case x < 78:
		argv := []string{g.name(g.pick([]string{"ZPOPMIN", "ZPOPMAX"})), k}
		if g.chance(0.5) {
			argv = append(argv, g.pick(zCount))
		}
		if g.chance(0.05) {
			argv = append(argv, "1")
		}
		return argv
	case x < 83:
		argv := []string{g.name("ZRANDMEMBER"), k}
		if g.chance(0.7) {
			// Never a huge negative count without WITHSCORES: Redis
			// would try to answer that many elements.
			argv = append(argv, g.pick(slices.DeleteFunc(slices.Clone(zCount), func(s string) bool { return s == "-9223372036854775807" })))
			if g.chance(0.5) {
				argv = append(argv, g.name("WITHSCORES"))
			}
		}
		return argv
	case x < 92:
		name := g.pick([]string{"ZUNIONSTORE", "ZINTERSTORE"})
		n := 1 + g.r.IntN(3)
		numkeys := strconv.Itoa(n)
		if g.chance(0.05) {
			numkeys = g.pick([]string{"0", "-1", "abc", "9"})
		}
		argv := append([]string{g.name(name), k, numkeys}, g.keys(n, n)...)
		if g.chance(0.4) {
			argv = append(argv, g.name("WEIGHTS"))
			for i := 0; i < n; i++ {
				argv = append(argv, g.pick([]string{"1", "2", "0", "-1", "0.5", "inf", "-inf", "1.1", "abc"}))
			}
		}
		if g.chance(0.4) {
			argv = append(argv, g.name("AGGREGATE"), g.pick([]string{"SUM", "MIN", "MAX", "sum", "max", "avg"}))
		}
		return argv
	default:
		argv := []string{g.name("ZSCAN"), k, g.pick([]string{"0", "0", "0", "1", "abc", "", "-1"})}
		if g.chance(0.4) {
			argv = append(argv, g.name("MATCH"), g.pick([]string{"*", "a*", "m?", "[ab]", "x"}))
		}
		if g.chance(0.3) {
			argv = append(argv, g.name("COUNT"), g.pick([]string{"1", "10", "0", "abc"}))
		}
		return argv
	}
}

// diffZRandMember compares random replies by their properties: the same
// shape and length, distinct members for a positive count, the whole set
// when the count covers it.
func diffZRandMember(argv []string, w, g *reply) (string, bool) {
	if w.Kind == kStatus || g.Kind == kStatus { // QUEUED
		return "", false
	}
	if len(argv) == 2 {
		if w.Kind == g.Kind && (w.Kind == kBulk || w.Kind == kNilBulk || w.Kind == kNull) {
			return "", true
		}
		return "different reply types", true
	}
	if w.Kind != kArray || g.Kind != kArray {
		return "", false
	}
	if len(w.Elems) != len(g.Elems) {
		return fmt.Sprintf("%d elements, Redis %d", len(g.Elems), len(w.Elems)), true
	}
	withScores := len(argv) == 4
	count, _ := strconv.ParseInt(argv[2], 10, 64)
	members := func(r *reply) []string {
		var out []string
		for i, e := range r.Elems {
			if e.Kind == kArray && len(e.Elems) == 2 { // RESP3 pairs
				out = append(out, e.Elems[0].Str+"="+e.Elems[1].Str)
			} else if !withScores || i%2 == 0 {
				s := e.Str
				if withScores && i+1 < len(r.Elems) {
					s += "=" + r.Elems[i+1].Str
				}
				out = append(out, s)
			}
		}
		return out
	}
	wm, gm := members(w), members(g)
	if count > 0 {
		sorted := slices.Clone(gm)
		slices.Sort(sorted)
		if len(slices.Compact(sorted)) != len(gm) {
			return "repeated members for a positive count", true
		}
		if int64(len(wm)) < count { // the whole set
			ws := slices.Clone(wm)
			slices.Sort(ws)
			if !slices.Equal(ws, sorted) {
				return "not the whole set", true
			}
		}
	}
	return "", true
}

// diffZScan compares a ZSCAN page's elements as a set of member=score
// pairs (Redis answers a small set in score order, raftcache in member
// order).
func diffZScan(argv []string, w, g *reply) (string, bool) {
	if w.Kind == kStatus || g.Kind == kStatus { // QUEUED
		return "", false
	}
	if w.Kind != kArray || g.Kind != kArray || len(w.Elems) != 2 || len(g.Elems) != 2 {
		return "", false
	}
	if !w.Elems[0].equal(g.Elems[0]) {
		return "different cursors", true
	}
	pairs := func(r *reply) []string {
		var out []string
		for i := 0; i+1 < len(r.Elems); i += 2 {
			out = append(out, r.Elems[i].Str+"="+r.Elems[i+1].Str)
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(pairs(w.Elems[1]), pairs(g.Elems[1])) {
		return "different elements: " + strings.Join(pairs(g.Elems[1]), ","), true
	}
	return "", true
}

var diffFixedZSet = [][][]string{
	// REV once (level 6).
	{
		{"ZADD", "r1", "1", "a", "2", "b", "3", "c"}, {"ZRANGE", "r1", "0", "-1", "REV", "REV"},
		{"ZRANGE", "r1", "(1", "5", "BYSCORE", "REV", "REV"}, {"ZRANGE", "r1", "0", "-1", "REV"},
		{"ZRANGESTORE", "r2", "r1", "0", "-1", "REV", "REV"}, {"EXISTS", "r2"},
	},
	// Scores: edge values, printing, parse errors, NaN.
	{
		{"ZADD", "k1", "1", "a", "2.5", "b", "-inf", "c", "+inf", "d", "0.1", "e", "1e17", "f", "-0", "g", "123456789012345678", "h"},
		{"ZRANGE", "k1", "0", "-1", "WITHSCORES"}, {"ZSCORE", "k1", "e"}, {"ZSCORE", "k1", "g"}, {"ZSCORE", "k1", "d"},
		{"ZMSCORE", "k1", "a", "nope", "c"}, {"ZSCAN", "k1", "0"}, {"ZINCRBY", "k1", "-inf", "d"}, {"ZINCRBY", "k1", "inf", "d"},
		{"ZADD", "k1", "INCR", "-inf", "d"}, {"ZADD", "k1", "nan", "x"}, {"ZADD", "k1", "abc", "x"}, {"ZADD", "k1", "1e400", "x"},
		{"ZADD", "k1", "0x10", "x"}, {"ZADD", "k1", "-0x1.8p1", "y"}, {"ZADD", "k1", " 1", "z"}, {"ZADD", "k1", "1e-400", "z"},
		{"ZADD", "k1", "infinity", "z"}, {"ZSCORE", "k1", "x"}, {"ZSCORE", "k1", "y"}, {"ZINCRBY", "k1", "0.2", "e"},
		{"ZINCRBY", "k1", "x", "e"}, {"ZINCRBY", "k2", "5", "new"}, {"ZCARD", "k1"}, {"ZCARD", "k2"}, {"ZCARD", "nope"},
	},
	// ZADD options and their conflicts.
	{
		{"ZADD", "k1", "NX", "XX", "1", "a"}, {"ZADD", "k1", "GT", "LT", "1", "a"}, {"ZADD", "k1", "NX", "GT", "1", "a"},
		{"ZADD", "k1", "INCR", "1", "a", "2", "b"}, {"ZADD", "k1", "1"}, {"ZADD", "k1", "1", "a", "2"}, {"ZADD", "k1", "XX", "1", "a"},
		{"EXISTS", "k1"}, {"ZADD", "k1", "XX", "INCR", "1", "a"}, {"ZADD", "k1", "1", "a", "2", "b"}, {"ZADD", "k1", "NX", "5", "a", "3", "c"},
		{"ZADD", "k1", "XX", "CH", "7", "a", "9", "z"}, {"ZADD", "k1", "GT", "CH", "1", "a", "8", "b"}, {"ZADD", "k1", "LT", "CH", "1", "a", "8", "b"},
		{"ZADD", "k1", "GT", "INCR", "-1", "a"}, {"ZADD", "k1", "LT", "INCR", "-1", "a"}, {"ZADD", "k1", "XX", "GT", "100", "a", "1", "new"},
		{"ZADD", "k1", "CH", "1", "a", "1", "a"}, {"ZADD", "k1", "NX", "INCR", "1", "a"}, {"ZRANGE", "k1", "0", "-1", "WITHSCORES"},
		{"ZADD", "k1", "ch", "incr", "0", "a"}, {"ZADD", "k1", "0", "a"}, {"ZADD", "k1", "-0", "a"}, {"ZSCORE", "k1", "a"},
	},
	// Ranges by rank, score and lex; LIMIT; REV; option errors.
	{
		{"ZADD", "k1", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e"}, {"ZRANGE", "k1", "-2", "-1"}, {"ZRANGE", "k1", "2", "1"},
		{"ZRANGE", "k1", "-100", "100", "WITHSCORES"}, {"ZREVRANGE", "k1", "0", "1", "WITHSCORES"}, {"ZRANGE", "k1", "0", "-1", "REV"},
		{"ZRANGE", "k1", "(1", "5", "BYSCORE", "LIMIT", "1", "2"}, {"ZRANGE", "k1", "5", "(1", "BYSCORE", "REV", "LIMIT", "0", "2"},
		{"ZRANGE", "k1", "0", "-1", "LIMIT", "0", "1"}, {"ZRANGE", "k1", "-", "+", "BYLEX", "WITHSCORES"}, {"ZRANGE", "k1", "0", "1", "BYSCORE", "BYLEX"},
		{"ZRANGEBYSCORE", "k1", "-inf", "+inf", "LIMIT", "-1", "2"}, {"ZRANGEBYSCORE", "k1", "-inf", "+inf", "LIMIT", "1", "-1"},
		{"ZRANGEBYSCORE", "k1", "(2", "(2"}, {"ZRANGEBYSCORE", "k1", "2", "2"}, {"ZRANGEBYSCORE", "k1", "abc", "1"}, {"ZRANGEBYSCORE", "k1", "1", "2", "REV"},
		{"ZREVRANGEBYSCORE", "k1", "+inf", "(3", "WITHSCORES"}, {"ZRANGEBYSCORE", "k1", "", "(3"}, {"ZRANGEBYSCORE", "k1", " 2", "+inf", "LIMIT", "1"},
		{"ZCOUNT", "k1", "(1", "(5"}, {"ZCOUNT", "k1", "5", "1"}, {"ZCOUNT", "k1", "-inf", "inf"}, {"ZRANK", "k1", "c"}, {"ZREVRANK", "k1", "c"},
		{"ZRANK", "k1", "nope"}, {"ZRANK", "nope", "a"}, {"ZRANGE", "nope", "0", "-1"}, {"ZRANGE", "k1", "a", "b"}, {"ZRANGE", "k1", "0"},
	},
	{
		{"ZADD", "k1", "0", "a", "0", "b", "0", "c", "0", "d", "0", "aa", "0", "x"}, {"ZRANGEBYLEX", "k1", "-", "+"}, {"ZRANGEBYLEX", "k1", "[b", "(d"},
		{"ZRANGEBYLEX", "k1", "(a", "[c", "LIMIT", "1", "1"}, {"ZREVRANGEBYLEX", "k1", "+", "-", "LIMIT", "0", "3"}, {"ZREVRANGEBYLEX", "k1", "(d", "[aa"},
		{"ZLEXCOUNT", "k1", "-", "+"}, {"ZLEXCOUNT", "k1", "[aa", "(c"}, {"ZLEXCOUNT", "k1", "+", "-"}, {"ZLEXCOUNT", "k1", "a", "+"}, {"ZLEXCOUNT", "k1", "-", "+a"},
		{"ZRANGE", "k1", "[c", "-", "BYLEX", "REV"}, {"ZREMRANGEBYLEX", "k1", "(a", "[c"}, {"ZRANGE", "k1", "0", "-1"},
		{"ZADD", "k2", "1", "a", "0", "z", "2", "b", "0", "c"}, {"ZRANGEBYLEX", "k2", "[b", "+"}, {"ZRANGEBYLEX", "k2", "-", "[b"},
		{"ZREVRANGEBYLEX", "k2", "[c", "-"}, {"ZLEXCOUNT", "k2", "[a", "[c"}, {"ZREMRANGEBYLEX", "k2", "[c", "[z"}, {"ZRANGE", "k2", "0", "-1"},
	},
	// Removals and pops; the key goes when emptied.
	{
		{"ZADD", "k1", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e"}, {"ZREMRANGEBYRANK", "k1", "-2", "-1"}, {"ZREMRANGEBYRANK", "k1", "5", "10"},
		{"ZREMRANGEBYSCORE", "k1", "(1", "2"}, {"ZREMRANGEBYSCORE", "k1", "x", "2"}, {"ZRANGE", "k1", "0", "-1", "WITHSCORES"}, {"ZPOPMIN", "k1"},
		{"ZPOPMAX", "k1", "5"}, {"EXISTS", "k1"}, {"ZPOPMIN", "k1"}, {"ZPOPMIN", "k1", "0"}, {"ZPOPMIN", "k1", "-1"}, {"ZPOPMIN", "k1", "1", "2"},
		{"ZADD", "k1", "1", "a"}, {"ZPOPMAX", "k1", "0"}, {"ZREM", "k1", "x", "a", "a"}, {"EXISTS", "k1"}, {"ZREM", "k1", "a"},
		{"SET", "k2", "v"}, {"ZADD", "k2", "1", "a"}, {"ZRANGE", "k2", "0", "-1"}, {"ZPOPMIN", "k2"}, {"ZREMRANGEBYRANK", "k2", "0", "1"},
		{"ZREMRANGEBYRANK", "k2", "a", "1"}, {"ZSCAN", "k2", "0"}, {"ZRANDMEMBER", "k2"}, {"ZUNIONSTORE", "k3", "1", "k2"}, {"TYPE", "k1"},
	},
	// Unions and intersections.
	{
		{"ZADD", "k1", "1", "a", "2", "b", "3", "c"}, {"ZADD", "k2", "10", "b", "20", "c", "30", "d"}, {"ZUNIONSTORE", "k3", "2", "k1", "k2"},
		{"ZRANGE", "k3", "0", "-1", "WITHSCORES"}, {"ZINTERSTORE", "k3", "2", "k1", "k2", "WEIGHTS", "2", "0.5", "AGGREGATE", "MAX"},
		{"ZRANGE", "k3", "0", "-1", "WITHSCORES"}, {"ZUNIONSTORE", "k3", "3", "k1", "k2", "nope", "AGGREGATE", "MIN"}, {"ZRANGE", "k3", "0", "-1", "WITHSCORES"},
		{"ZINTERSTORE", "k3", "2", "k1", "nope"}, {"EXISTS", "k3"}, {"ZUNIONSTORE", "k3", "0", "k1"}, {"ZUNIONSTORE", "k3", "3", "k1"},
		{"ZUNIONSTORE", "k3", "1", "k1", "WEIGHTS", "x"}, {"ZUNIONSTORE", "k3", "1", "k1", "WEIGHTS"}, {"ZUNIONSTORE", "k3", "1", "k1", "AGGREGATE", "AVG"},
		{"ZADD", "n1", "inf", "a"}, {"ZADD", "n2", "-inf", "a"}, {"ZUNIONSTORE", "k3", "2", "n1", "n2"}, {"ZSCORE", "k3", "a"},
		{"ZUNIONSTORE", "k3", "1", "n1", "WEIGHTS", "0"}, {"ZSCORE", "k3", "a"}, {"ZINTERSTORE", "k3", "2", "n1", "n1", "WEIGHTS", "0", "1"},
		{"ZSCORE", "k3", "a"}, {"SET", "n2", "x"}, {"ZUNIONSTORE", "k3", "2", "k1", "n2"}, {"ZUNIONSTORE", "n2", "2", "k1", "k1"},
		{"ZRANGE", "n2", "0", "-1", "WITHSCORES"}, {"EXPIRE", "k1", "100"}, {"ZUNIONSTORE", "k1", "1", "k1"}, {"TTL", "k1"},
		{"ZADD", "k1", "0.1", "x"}, {"ZADD", "k2", "0.2", "x"}, {"ZADD", "n1", "0.3", "x"}, {"ZUNIONSTORE", "k3", "3", "k1", "k2", "n1"}, {"ZSCORE", "k3", "x"},
	},
	// Random reads by property; ZSCAN.
	{
		{"ZADD", "k1", "1", "a", "2", "b", "3", "c"}, {"ZRANDMEMBER", "k1"}, {"ZRANDMEMBER", "k1", "2"}, {"ZRANDMEMBER", "k1", "5", "WITHSCORES"},
		{"ZRANDMEMBER", "k1", "-5"}, {"ZRANDMEMBER", "k1", "-5", "WITHSCORES"}, {"ZRANDMEMBER", "k1", "0"}, {"ZRANDMEMBER", "nope", "3"},
		{"ZRANDMEMBER", "k1", "1", "x"}, {"ZRANDMEMBER", "k1", "-9223372036854775808"}, {"ZRANDMEMBER", "k1", "9223372036854775807", "WITHSCORES"},
		{"ZSCAN", "k1", "0", "MATCH", "[ab]"}, {"ZSCAN", "k1", "0", "COUNT", "0"}, {"ZSCAN", "nope", "0", "COUNT", "0"}, {"ZSCAN", "k1", "x"},
		{"ZSCAN", "k1", "7"}, {"ZSCAN", "k1", "0", "COUNT"}, {"ZSCAN", "k1", "0", "TYPE", "zset"},
	},
	// RESP3 shapes: doubles, pairs.
	{
		{"HELLO", "3"}, {"ZADD", "k1", "1", "a", "2.5", "b", "inf", "c"}, {"ZSCORE", "k1", "b"}, {"ZSCORE", "k1", "c"}, {"ZMSCORE", "k1", "a", "x"},
		{"ZRANGE", "k1", "0", "-1", "WITHSCORES"}, {"ZRANGEBYSCORE", "k1", "-inf", "+inf", "WITHSCORES"}, {"ZINCRBY", "k1", "1", "a"},
		{"ZADD", "k1", "INCR", "1", "a"}, {"ZPOPMIN", "k1"}, {"ZPOPMIN", "k1", "1"}, {"ZRANDMEMBER", "k1", "2", "WITHSCORES"}, {"ZSCAN", "k1", "0"},
		{"ZRANK", "k1", "nope"}, {"ZSCORE", "k1", "nope"}, {"MULTI"}, {"ZRANGE", "k1", "0", "-1", "WITHSCORES"}, {"ZPOPMAX", "k1", "2"}, {"EXEC"},
	},
	// The sliding-window rate limiter of the usual libraries.
	{
		{"MULTI"}, {"ZREMRANGEBYSCORE", "rate", "0", "1000"}, {"ZADD", "rate", "1500", "req1"}, {"ZCARD", "rate"}, {"EXPIRE", "rate", "60"}, {"EXEC"},
		{"MULTI"}, {"ZREMRANGEBYSCORE", "rate", "0", "1600"}, {"ZADD", "rate", "2500", "req2"}, {"ZCARD", "rate"}, {"EXPIRE", "rate", "60"}, {"EXEC"},
		{"ZRANGE", "rate", "0", "-1", "WITHSCORES"}, {"TTL", "rate"},
	},
}

// diffBigZSet is a sequence on sets past Redis's compact encoding (200
// elements), where Redis uses its skiplist: ranks, scores and lex ranges
// on a set of one score and on one of many.
func diffBigZSet() [][]string {
	one := []string{"ZADD", "k1"}
	many := []string{"ZADD", "k2"}
	for i := 0; i < 200; i++ {
		one = append(one, "0", fmt.Sprintf("m%03d", i))
		many = append(many, strconv.Itoa(i%17)+".5", fmt.Sprintf("m%03d", i))
	}
	return [][]string{
		one, many, {"ZCARD", "k1"}, {"ZRANGEBYLEX", "k1", "[m050", "(m060"}, {"ZREVRANGEBYLEX", "k1", "(m150", "-", "LIMIT", "3", "4"},
		{"ZLEXCOUNT", "k1", "(m010", "+"}, {"ZRANGE", "k1", "[m190", "+", "BYLEX"}, {"ZREMRANGEBYLEX", "k1", "[m100", "[m149"}, {"ZCARD", "k1"},
		{"ZRANK", "k1", "m150"}, {"ZREVRANK", "k1", "m020"}, {"ZRANGE", "k1", "-5", "-1"}, {"ZREMRANGEBYRANK", "k1", "10", "-10"}, {"ZRANGE", "k1", "0", "-1"},
		{"ZRANGEBYSCORE", "k2", "(3.5", "5.5", "WITHSCORES", "LIMIT", "2", "5"}, {"ZREVRANGEBYSCORE", "k2", "+inf", "16", "WITHSCORES"},
		{"ZCOUNT", "k2", "(0.5", "10.5"}, {"ZRANK", "k2", "m100"}, {"ZREVRANK", "k2", "m100"}, {"ZRANGE", "k2", "100", "104", "WITHSCORES"},
		{"ZREVRANGE", "k2", "0", "3", "WITHSCORES"}, {"ZREMRANGEBYSCORE", "k2", "(2.5", "10.5"}, {"ZCARD", "k2"}, {"ZPOPMIN", "k2", "3"}, {"ZPOPMAX", "k2", "2"},
		{"ZUNIONSTORE", "k3", "2", "k1", "k2", "WEIGHTS", "1", "2"}, {"ZRANGE", "k3", "0", "9", "WITHSCORES"}, {"ZCARD", "k3"},
		{"ZINTERSTORE", "k3", "2", "k1", "k2", "AGGREGATE", "MAX"}, {"ZRANGE", "k3", "0", "-1", "WITHSCORES"}, {"ZRANDMEMBER", "k2", "5"},
		{"ZMSCORE", "k2", "m016", "m999"}, {"ZINCRBY", "k2", "0.25", "m016"}, {"ZSCORE", "k2", "m016"}, {"ZREM", "k2", "m016", "m015"}, {"ZCARD", "k2"},
	}
}
