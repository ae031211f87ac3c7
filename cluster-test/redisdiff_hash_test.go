package clustertest

import (
	"strconv"
)

// The hash stage of TestRedisDiff: HSET .. HSCAN with random arguments,
// wrong types, missing hashes and fields, integer and float increments
// at their edges. HGETALL, HKEYS, HVALS and HSCAN pages are compared as
// sets, HRANDFIELD by its properties (hsRandCompare).

var (
	diffFields = []string{"f1", "f2", "f3", "a", "b", ""}
	// increments of HINCRBYFLOAT and INCRBYFLOAT: ordinary, long double
	// edge cases, and not numbers to Redis.
	diffFloats = []string{"1", "1.5", "-0.1", "0.1", "0.2", "1e3", "5.0e3", "10.50", "-3", "3.0e-5", "1e400", "123456789012345678",
		"inf", "-inf", "abc", "", " 1", "1 ", "nan", ".5", "5.", "+2", "0x10", "1e", "-0"}
)

func (g *diffGen) field() string { return g.pick(diffFields) }

func (g *diffGen) hashValue() string {
	if g.chance(0.3) {
		return g.pick(diffFloats)
	}
	return g.value()
}

func (g *diffGen) hashCommand() []string {
	k := g.key()
	switch x := g.r.IntN(100); {
	case x < 16:
		name := g.pick([]string{"HSET", "HSET", "HMSET"})
		argv := []string{g.name(name), k}
		for n := 1 + g.r.IntN(3); n > 0; n-- {
			argv = append(argv, g.field(), g.hashValue())
		}
		if g.chance(0.05) {
			argv = argv[:len(argv)-1]
		}
		return argv
	case x < 20:
		return []string{g.name("HSETNX"), k, g.field(), g.hashValue()}
	case x < 28:
		return []string{g.name("HGET"), k, g.field()}
	case x < 32:
		argv := []string{g.name("HMGET"), k}
		for n := 1 + g.r.IntN(3); n > 0; n-- {
			argv = append(argv, g.field())
		}
		return argv
	case x < 38:
		return []string{g.name(g.pick([]string{"HGETALL", "HKEYS", "HVALS"})), k}
	case x < 44:
		argv := []string{g.name("HDEL"), k}
		for n := 1 + g.r.IntN(3); n > 0; n-- {
			argv = append(argv, g.field())
		}
		return argv
	case x < 48:
		return []string{g.name("HEXISTS"), k, g.field()}
	case x < 52:
		return []string{g.name("HLEN"), k}
	case x < 56:
		return []string{g.name("HSTRLEN"), k, g.field()}
	case x < 66:
		return []string{g.name("HINCRBY"), k, g.field(), g.pick(diffBys)}
	case x < 76:
		return []string{g.name("HINCRBYFLOAT"), k, g.field(), g.pick(diffFloats)}
	case x < 84:
		argv := []string{g.name("HRANDFIELD"), k}
		if g.chance(0.7) {
			argv = append(argv, g.pick(diffCounts))
			if g.chance(0.5) {
				argv = append(argv, g.name(g.pick([]string{"WITHVALUES", "WITHVALUES", "FOO"})))
			}
		}
		return argv
	case x < 92:
		return g.scanArgs("HSCAN", k)
	case x < 96:
		return []string{g.name("TYPE"), k}
	}
	return [][]string{{"HSET", k}, {"HSET", k, "f"}, {"HGET", k}, {"HMGET", k}, {"HDEL", k}, {"HINCRBY", k, "f"},
		{"HLEN"}, {"HSETNX", k, "f"}, {"HRANDFIELD"}, {"HSCAN", k}}[g.r.IntN(10)]
}

func init() {
	diffStages = append(diffStages, diffStage{name: "hashes", command: (*diffGen).hashCommand, fixed: diffFixedHashes})
	diffComparers["HGETALL"] = hsComparer(func(argv []string, w, g *reply) (string, bool) { return hsSamePairs(w, g), true })
	unordered := func(argv []string, w, g *reply) (string, bool) { return hsSameSet(w, g), true }
	diffComparers["HKEYS"] = hsComparer(unordered)
	diffComparers["HVALS"] = hsComparer(unordered)
	diffComparers["HSCAN"] = hsComparer(func(argv []string, w, g *reply) (string, bool) { return hsScanCompare(true, w, g) })
	diffComparers["HRANDFIELD"] = hsComparer(func(argv []string, w, g *reply) (string, bool) {
		if len(argv) == 2 {
			if w.Kind != g.Kind {
				return "different reply types", true
			}
			return "", true
		}
		n, _ := strconv.ParseInt(argv[2], 10, 64)
		return hsRandCompare(n, len(argv) == 4, w, g), true
	})
}

var diffFixedHashes = [][][]string{
	{
		{"HSET", "k1", "f1", "v1", "f2", "v2"}, {"HSET", "k1", "f1", "w1", "f3", "v3"}, {"HGET", "k1", "f1"}, {"HGET", "k1", "zz"},
		{"HGET", "nope", "f1"}, {"HMGET", "k1", "f1", "zz", "f3"}, {"HMGET", "nope", "a"}, {"HGETALL", "k1"}, {"HGETALL", "nope"},
		{"HKEYS", "k1"}, {"HVALS", "k1"}, {"HKEYS", "nope"}, {"HLEN", "k1"}, {"HLEN", "nope"}, {"HEXISTS", "k1", "f2"},
		{"HEXISTS", "k1", "zz"}, {"HSTRLEN", "k1", "f1"}, {"HSTRLEN", "k1", "zz"}, {"HDEL", "k1", "f1", "zz", "f1"}, {"HDEL", "nope", "f"},
		{"HSETNX", "k1", "f2", "x"}, {"HSETNX", "k1", "f9", "x"}, {"HMSET", "k1", "a", "1"}, {"HMSET", "k1", "a"}, {"HSET", "k1", "a"},
		{"HDEL", "k1", "f2", "f3", "f9", "a"}, {"EXISTS", "k1"}, {"TYPE", "k1"}, {"OBJECT", "ENCODING", "k1"},
	},
	{
		{"SET", "k1", "str"}, {"HSET", "k1", "f", "v"}, {"HGET", "k1", "f"}, {"HGETALL", "k1"}, {"HLEN", "k1"}, {"HDEL", "k1", "f"},
		{"HINCRBY", "k1", "f", "1"}, {"HRANDFIELD", "k1"}, {"HSCAN", "k1", "0"}, {"HSET", "k2", "f", "v"}, {"GET", "k2"},
		{"INCR", "k2"}, {"APPEND", "k2", "x"}, {"STRLEN", "k2"}, {"GETRANGE", "k2", "0", "1"}, {"SET", "k2", "x"}, {"TYPE", "k2"},
		{"MGET", "k1", "k2"},
	},
	{
		{"HINCRBY", "k1", "n", "5"}, {"HINCRBY", "k1", "n", "-10"}, {"HINCRBY", "k1", "n", "abc"}, {"HINCRBY", "k1", "n", "9223372036854775807"},
		{"HINCRBY", "k1", "n", "9223372036854775807"}, {"HSET", "k1", "s", "abc"}, {"HINCRBY", "k1", "s", "1"}, {"HSET", "k1", "z", "007"},
		{"HINCRBY", "k1", "z", "1"}, {"HINCRBYFLOAT", "k1", "x", "0.1"}, {"HINCRBYFLOAT", "k1", "x", "0.2"}, {"HGET", "k1", "x"},
		{"HINCRBYFLOAT", "k1", "x", "1e3"}, {"HINCRBYFLOAT", "k1", "x", "-1000.3"}, {"HINCRBYFLOAT", "k1", "n", "1.5"},
		{"HINCRBYFLOAT", "k1", "s", "1"}, {"HINCRBYFLOAT", "k1", "x", "abc"}, {"HINCRBYFLOAT", "k1", "x", "inf"},
		{"HINCRBYFLOAT", "k1", "y", "1e400"}, {"HINCRBYFLOAT", "k1", "y", "-1e400"}, {"HINCRBYFLOAT", "k1", "w", "3.0e-5"},
		{"HINCRBYFLOAT", "k1", "w", "-3.0e-5"}, {"HINCRBYFLOAT", "k1", "v", "1.23456789012345678"}, {"HINCRBYFLOAT", "k1", "v", ".5"},
		{"HINCRBYFLOAT", "k1", "v", "5."}, {"HINCRBYFLOAT", "k1", "v", " 1"}, {"HINCRBYFLOAT", "k1", "v", "nan"},
		{"HINCRBY", "k1", "x", "1"}, {"HGETALL", "k1"},
	},
	{
		{"HSET", "k1", "a", "1", "b", "2", "c", "3"}, {"HRANDFIELD", "k1", "5"}, {"HRANDFIELD", "k1", "5", "WITHVALUES"},
		{"HRANDFIELD", "k1", "-5"}, {"HRANDFIELD", "k1", "-5", "WITHVALUES"}, {"HRANDFIELD", "k1", "2"}, {"HRANDFIELD", "k1", "0"},
		{"HRANDFIELD", "k1", "abc"}, {"HRANDFIELD", "k1", "1", "FOO"}, {"HRANDFIELD", "nope"}, {"HRANDFIELD", "nope", "3"},
		{"HRANDFIELD", "k1", "-9223372036854775808"}, {"HRANDFIELD", "k1", "-9223372036854775807", "WITHVALUES"},
		{"HRANDFIELD", "k1", "9223372036854775807", "WITHVALUES"}, {"HRANDFIELD", "nope", "9223372036854775807", "WITHVALUES"},
		{"HRANDFIELD", "k1", "4611686018427387904", "WITHVALUES"}, {"HRANDFIELD", "k1", "4611686018427387903"},
		{"HSCAN", "k1", "0"}, {"HSCAN", "k1", "0", "MATCH", "a*"}, {"HSCAN", "k1", "0", "COUNT", "1"}, {"HSCAN", "nope", "0"},
		{"HSCAN", "k1", "x"}, {"HSCAN", "k1", "0", "COUNT", "0"}, {"HSCAN", "k1", "0", "MATCH"},
	},
}
