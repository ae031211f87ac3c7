package clustertest

import (
	"strings"
)

// The keys stage of TestRedisDiff: RENAME, RENAMENX, COPY, TOUCH and
// OBJECT over every type (hashes and sets are made here too), and the
// string commands APPEND, GETRANGE, SUBSTR, SETRANGE, GETEX, INCRBYFLOAT.

var diffOffsets = []string{"0", "1", "2", "5", "-1", "-2", "-100", "100", "abc", "9223372036854775807", "-9223372036854775808"}

func (g *diffGen) keys2Command() []string {
	k := g.key()
	switch x := g.r.IntN(100); {
	case x < 8:
		return []string{g.name("HSET"), k, g.field(), g.value()}
	case x < 14:
		return append([]string{g.name("SADD"), k}, g.members(1, 3)...)
	case x < 24:
		return []string{g.name(g.pick([]string{"RENAME", "RENAMENX"})), k, g.key()}
	case x < 32:
		argv := []string{g.name("COPY"), k, g.key()}
		if g.chance(0.4) {
			argv = append(argv, g.name("REPLACE"))
		}
		if g.chance(0.1) {
			argv = append(argv, g.name("DB"), g.pick([]string{"0", "abc"}))
		}
		if g.chance(0.03) {
			argv = append(argv, "FOO")
		}
		return argv
	case x < 36:
		return append([]string{g.name("TOUCH")}, g.keys(1, 3)...)
	case x < 46:
		return []string{g.name("APPEND"), k, g.value()}
	case x < 54:
		return []string{g.name(g.pick([]string{"GETRANGE", "GETRANGE", "SUBSTR"})), k, g.pick(diffOffsets), g.pick(diffOffsets)}
	case x < 62:
		off := g.pick([]string{"0", "1", "3", "10", "-1", "abc", "536870912"})
		return []string{g.name("SETRANGE"), k, off, g.pick([]string{"x", "hello", "", "12"})}
	case x < 72:
		argv := []string{g.name("GETEX"), k}
		switch g.r.IntN(8) {
		case 0:
			argv = append(argv, g.name("EX"), g.timeArg(false, false))
		case 1:
			argv = append(argv, g.name("PX"), g.timeArg(true, false))
		case 2:
			argv = append(argv, g.name("EXAT"), g.timeArg(false, true))
		case 3:
			argv = append(argv, g.name("PXAT"), g.timeArg(true, true))
		case 4:
			argv = append(argv, g.name("PERSIST"))
		case 5:
			argv = append(argv, g.name(g.pick([]string{"EX", "PERSIST", "FOO"})), g.name(g.pick([]string{"PERSIST", "EX"})))
		}
		return argv
	case x < 84:
		return []string{g.name("INCRBYFLOAT"), k, g.pick(diffFloats)}
	case x < 92:
		return []string{g.name("OBJECT"), g.name("ENCODING"), k}
	case x < 96:
		return []string{g.name("TYPE"), k}
	}
	return [][]string{{"RENAME", k}, {"COPY", k}, {"TOUCH"}, {"APPEND", k}, {"GETRANGE", k, "0"}, {"SETRANGE", k, "0"},
		{"GETEX"}, {"INCRBYFLOAT", k}, {"OBJECT"}, {"OBJECT", "ENCODING"}}[g.r.IntN(10)]
}

func init() {
	diffStages = append(diffStages, diffStage{name: "keys2", command: (*diffGen).keys2Command, fixed: diffFixedKeys2})
	diffAllowed = append(diffAllowed,
		struct {
			reason string
			match  func(argv []string, redis, rc *reply) bool
		}{
			reason: "`OBJECT ENCODING` of a string answers by its value (`int`, `embstr`, `raw`), where Redis's answer also depends on the command that made it (`raw` after APPEND or SETRANGE, `embstr` after INCRBYFLOAT).",
			match: func(argv []string, redis, rc *reply) bool {
				return len(argv) == 3 && strings.EqualFold(argv[0], "object") && redis.Kind == kBulk && rc.Kind == kBulk &&
					(redis.Str == "raw" && (rc.Str == "embstr" || rc.Str == "int") || redis.Str == "embstr" && rc.Str == "int")
			},
		},
		struct {
			reason string
			match  func(argv []string, redis, rc *reply) bool
		}{
			// GETEX's times, as SET's (diffHasFarTime knows SET's), and SET GET
			// of a collection with such a time.
			reason: "Expiry times more than 100 years ahead are refused with `ERR invalid expire time`.",
			match: func(argv []string, redis, rc *reply) bool {
				if strings.EqualFold(argv[0], "set") { // SET ... GET on a collection: Redis's WRONGTYPE comes after the time
					return rc.Kind == kError && strings.HasPrefix(rc.Str, "ERR invalid expire time") &&
						redis.Kind == kError && redis.firstWord() == "WRONGTYPE" && diffHasFarTime(argv)
				}
				return strings.EqualFold(argv[0], "getex") && rc.Kind == kError && strings.HasPrefix(rc.Str, "ERR invalid expire time") &&
					redis.Kind != kError && diffHasFarTime(append([]string{"SET", argv[1], "v"}, argv[2:]...))
			},
		},
		struct {
			reason string
			match  func(argv []string, redis, rc *reply) bool
		}{
			reason: "`HSCAN` and `SSCAN` of a big collection with a cursor this node did not issue answer `ERR invalid cursor`.",
			match: func(argv []string, redis, rc *reply) bool {
				return (strings.EqualFold(argv[0], "hscan") || strings.EqualFold(argv[0], "sscan")) && redis.Kind != kError &&
					rc.Kind == kError && strings.HasPrefix(rc.Str, "ERR invalid cursor")
			},
		},
		struct {
			reason string
			match  func(argv []string, redis, rc *reply) bool
		}{
			reason: "`COPY` with `DB` other than 0 is refused: raftcache has one database.",
			match: func(argv []string, redis, rc *reply) bool {
				return strings.EqualFold(argv[0], "copy") && rc.Kind == kError && strings.Contains(rc.Str, "one database")
			},
		},
	)
}

var diffFixedKeys2 = [][][]string{
	{
		{"SET", "k1", "v"}, {"EXPIRE", "k1", "1000"}, {"RENAME", "k1", "k2"}, {"TTL", "k2"}, {"EXISTS", "k1"}, {"RENAME", "k1", "k2"},
		{"RENAME", "k2", "k2"}, {"RENAMENX", "k2", "k2"}, {"SET", "k3", "x"}, {"RENAMENX", "k2", "k3"}, {"RENAMENX", "k2", "n1"},
		{"GET", "n1"}, {"HSET", "k1", "f", "v"}, {"RENAME", "k1", "n1"}, {"TYPE", "n1"}, {"HGETALL", "n1"}, {"SADD", "k1", "a", "b"},
		{"RENAME", "k1", "n1"}, {"SMEMBERS", "n1"}, {"TYPE", "n1"}, {"RENAMENX", "nope", "k1"},
	},
	{
		{"HSET", "k1", "f", "v"}, {"COPY", "k1", "k2"}, {"HSET", "k2", "g", "w"}, {"HGETALL", "k1"}, {"HGETALL", "k2"},
		{"COPY", "k1", "k2"}, {"COPY", "k1", "k2", "REPLACE"}, {"HLEN", "k2"}, {"COPY", "k1", "k1"}, {"COPY", "nope", "k3"},
		{"SADD", "k3", "1"}, {"EXPIRE", "k3", "500"}, {"COPY", "k3", "n1"}, {"TTL", "n1"}, {"SADD", "n1", "2"}, {"SCARD", "k3"},
		{"COPY", "k3", "n1", "REPLACE", "DB", "0"}, {"COPY", "k3", "n2", "FOO"}, {"COPY", "k3", "n2", "DB"}, {"TOUCH", "k1", "k3", "nope", "k1"},
	},
	{
		{"APPEND", "k1", "ab"}, {"APPEND", "k1", "cd"}, {"GET", "k1"}, {"GETRANGE", "k1", "0", "-1"}, {"GETRANGE", "k1", "1", "2"},
		{"GETRANGE", "k1", "-2", "-1"}, {"GETRANGE", "k1", "-1", "-2"}, {"GETRANGE", "k1", "5", "10"}, {"GETRANGE", "k1", "-100", "100"},
		{"GETRANGE", "nope", "0", "-1"}, {"SUBSTR", "k1", "0", "1"}, {"GETRANGE", "k1", "a", "1"}, {"SETRANGE", "k1", "1", "XY"},
		{"GET", "k1"}, {"SETRANGE", "k2", "3", "z"}, {"GET", "k2"}, {"SETRANGE", "k3", "3", ""}, {"EXISTS", "k3"}, {"SETRANGE", "k1", "-1", "x"},
		{"SETRANGE", "k1", "536870912", "x"}, {"SETRANGE", "k1", "0", ""}, {"HSET", "n1", "f", "v"}, {"APPEND", "n1", "x"},
		{"GETRANGE", "n1", "0", "1"}, {"SETRANGE", "n1", "0", "x"}, {"STRLEN", "k2"},
		// offset + length past int64 (once a panic that every replica met)
		{"SETRANGE", "k1", "9223372036854775807", "x"}, {"SETRANGE", "k4", "9223372036854775800", "0123456789"}, {"EXISTS", "k4"},
	},
	{
		// Expiries at millisecond resolution, EXPIRETIME rounding (Redis: (ms+500)/1000).
		{"SET", "e1", "v", "PXAT", "4102444800999"}, {"EXPIRETIME", "e1"}, {"PEXPIRETIME", "e1"},
		{"SET", "e2", "v", "PXAT", "4102444800499"}, {"EXPIRETIME", "e2"}, {"PEXPIRETIME", "e2"},
		{"SET", "e3", "v", "PXAT", "4102444800500"}, {"EXPIRETIME", "e3"},
		// LT against an expiry set the same way just before: never
		// earlier (Redis: 0). Not GT: Redis 7.0's clock runs on inside
		// MULTI, so across a millisecond GT answers 1 now and then.
		{"MULTI"}, {"SET", "m", "v", "PX", "100000"}, {"PEXPIRE", "m", "100000", "LT"}, {"EXEC"},
		{"MULTI"}, {"SET", "m2", "v", "EX", "100"}, {"EXPIRE", "m2", "100", "LT"}, {"EXEC"},
	},
	{
		{"SET", "k1", "v"}, {"GETEX", "k1"}, {"GETEX", "k1", "EX", "100"}, {"TTL", "k1"}, {"GETEX", "k1", "PX", "200000"}, {"PTTL", "k1"},
		{"GETEX", "k1", "PERSIST"}, {"TTL", "k1"}, {"GETEX", "k1", "EX", "0"}, {"GETEX", "k1", "EX", "abc"}, {"GETEX", "k1", "EX", "1", "PX", "1"},
		{"GETEX", "k1", "PERSIST", "EX", "1"}, {"GETEX", "k1", "FOO"}, {"GETEX", "nope", "EX", "10"}, {"GETEX", "k1", "EXAT", "1"},
		{"EXISTS", "k1"}, {"HSET", "k2", "f", "v"}, {"GETEX", "k2"},
	},
	{
		{"INCRBYFLOAT", "k1", "0.1"}, {"INCRBYFLOAT", "k1", "0.2"}, {"GET", "k1"}, {"INCRBYFLOAT", "k1", "1e3"}, {"INCRBYFLOAT", "k1", "abc"},
		{"INCRBYFLOAT", "k1", "inf"}, {"INCRBYFLOAT", "k2", "3.0e-5"}, {"INCRBYFLOAT", "k2", "-3.0e-5"}, {"SET", "k3", "10.50"},
		{"INCRBYFLOAT", "k3", "0.1"}, {"SET", "k3", "abc"}, {"INCRBYFLOAT", "k3", "1"}, {"SET", "n1", "5"}, {"EXPIRE", "n1", "300"},
		{"INCRBYFLOAT", "n1", "5.0e3"}, {"TTL", "n1"}, {"INCRBYFLOAT", "n2", "1e400"}, {"INCRBYFLOAT", "n2", "-1e400"}, {"GET", "n2"},
		{"INCRBYFLOAT", "n2", "123456789012345678"}, {"INCRBYFLOAT", "n2", "1.5"},
	},
	{
		{"SET", "k1", "123"}, {"OBJECT", "ENCODING", "k1"}, {"SET", "k1", "abc"}, {"OBJECT", "ENCODING", "k1"},
		{"SET", "k1", "0123456789012345678901234567890123456789012345"}, {"OBJECT", "ENCODING", "k1"}, {"HSET", "k2", "f", "v"},
		{"OBJECT", "ENCODING", "k2"}, {"SADD", "k3", "1", "2"}, {"OBJECT", "ENCODING", "k3"}, {"SADD", "n1", "x"}, {"OBJECT", "ENCODING", "n1"},
		{"OBJECT", "ENCODING", "nope"}, {"OBJECT", "FOO", "k1"}, {"OBJECT", "ENCODING"}, {"OBJECT", "HELP"}, {"OBJECT", "FREQ", "k1"},
		{"OBJECT", "REFCOUNT", "k2"}, {"OBJECT", "REFCOUNT", "nope"}, {"OBJECT", "IDLETIME", "nope"},
		{"HSET", "k2", "big", "0123456789012345678901234567890123456789012345678901234567890123456789"}, {"OBJECT", "ENCODING", "k2"},
		{"HDEL", "k2", "big"}, {"OBJECT", "ENCODING", "k2"}, {"SCAN", "0", "TYPE", "hash"}, {"SCAN", "0", "TYPE", "SET"}, {"SCAN", "0", "TYPE", "string"},
	},
}
