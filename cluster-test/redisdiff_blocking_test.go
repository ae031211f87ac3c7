package clustertest

import "github.com/raftcache/raftcache/fsm"

// The blocking stage of TestRedisDiff: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH,
// BZPOPMIN and BZPOPMAX among pushes and adds over the shared key space,
// outside MULTI with short timeouts (a nil after the wait on an empty
// key; an element at once) and inside MULTI (never blocking), with bad
// timeouts and directions and keys of other types. It runs when the
// binary has lists and sorted sets.
//
//	go test ./cluster-test/ -run 'TestRedisDiff/blocking$' -v

func init() {
	if fsm.Lookup([]byte("lpush")) == nil || fsm.Lookup([]byte("zadd")) == nil {
		return // before lists and sorted sets are merged
	}
	diffStages = append(diffStages, diffStage{name: "blocking", command: (*diffGen).cmdBlocking, fixed: diffFixedBlocking, seqs: 20})
}

// blockTimeout is a short timeout outside MULTI (0 would wait forever on
// an empty key); inside MULTI anything goes.
func (g *diffGen) blockTimeout() string {
	switch x := g.r.IntN(100); {
	case x < 6:
		return g.pick([]string{"-1", "abc", "nan", "inf", "1e20", "", " 1"})
	case g.inMulti && x < 40:
		return g.pick([]string{"0", "1", "0.5"})
	}
	return g.pick([]string{"0.01", "0.02", ".01"})
}

func (g *diffGen) cmdBlocking() []string {
	k := g.key()
	switch x := g.r.IntN(100); {
	case x < 25:
		return []string{g.name(g.pick([]string{"LPUSH", "RPUSH"})), k, g.pick([]string{"a", "b", "c"}), g.pick([]string{"d", "e"})}
	case x < 35:
		return []string{g.name("ZADD"), k, g.pick([]string{"1", "2", "-1", "inf"}), g.pick([]string{"m", "n", "o"})}
	case x < 55:
		argv := []string{g.name(g.pick([]string{"BLPOP", "BRPOP"}))}
		argv = append(argv, g.keys(1, 3)...)
		return append(argv, g.blockTimeout())
	case x < 70:
		argv := []string{g.name(g.pick([]string{"BZPOPMIN", "BZPOPMAX"}))}
		argv = append(argv, g.keys(1, 3)...)
		return append(argv, g.blockTimeout())
	case x < 85:
		from, to := g.pick([]string{"LEFT", "RIGHT", "left"}), g.pick([]string{"LEFT", "RIGHT"})
		if g.chance(0.05) {
			from = "UP"
		}
		return []string{g.name("BLMOVE"), k, g.key(), from, to, g.blockTimeout()}
	case x < 92:
		return []string{g.name("BRPOPLPUSH"), k, g.key(), g.blockTimeout()}
	}
	return []string{g.name("LRANGE"), k, "0", "-1"}
}

var diffFixedBlocking = [][][]string{
	// An element at once, nil after the timeout, the key named in the
	// reply, the first non-empty key of several, WRONGTYPE, a bad timeout.
	{
		{"RPUSH", "k1", "a", "b"}, {"BLPOP", "k0", "k1", "0"}, {"BRPOP", "k1", "0.01"}, {"BLPOP", "k1", "0.01"},
		{"SET", "k2", "s"}, {"BLPOP", "k1", "k2", "0.01"}, {"BLPOP", "k1", "-1"}, {"BLPOP", "k1", "x"},
		{"ZADD", "z1", "1", "m", "2", "n"}, {"BZPOPMIN", "k1", "z1", "0"}, {"BZPOPMAX", "z1", "0"}, {"BZPOPMAX", "z1", "0.01"},
		{"RPUSH", "k1", "x", "y"}, {"BLMOVE", "k1", "k3", "LEFT", "RIGHT", "0"}, {"BRPOPLPUSH", "k1", "k3", "0"},
		{"LRANGE", "k3", "0", "-1"}, {"BLMOVE", "k1", "k3", "LEFT", "RIGHT", "0.01"}, {"BLMOVE", "k3", "k2", "LEFT", "RIGHT", "0"},
		{"BLMOVE", "k3", "k3", "UP", "RIGHT", "0"},
	},
	// Inside MULTI nothing blocks: nil for empty keys, even with 0.
	{
		{"MULTI"}, {"BLPOP", "k1", "0"}, {"RPUSH", "k1", "a"}, {"BRPOP", "k1", "0"}, {"BZPOPMIN", "z9", "0"},
		{"BLMOVE", "k1", "k2", "LEFT", "LEFT", "0"}, {"BRPOPLPUSH", "k1", "k2", "0"}, {"BLPOP", "k1", "-1"}, {"EXEC"},
	},
	// Timeouts under a millisecond round up (Redis 7.0.8 on): a nil after
	// the wait, not a wait for ever; long double forms (hex, tiny
	// exponents); a negative one that rounds to 0 never times out (not
	// sent outside MULTI); out of range.
	{
		{"BLPOP", "e0", "0.0001"}, {"BZPOPMIN", "e0", "0.0005"}, {"BLMOVE", "e0", "e1", "LEFT", "LEFT", "0.0009"},
		{"BRPOPLPUSH", "e0", "e1", "1e-400"}, {"BLPOP", "e0", "1e-5000"}, {"BLPOP", "e0", "1e5000"},
		{"MULTI"}, {"BLPOP", "e0", "0x10"}, {"BLPOP", "e0", "-0.0005"}, {"BLPOP", "e0", "-0.5"}, {"BLPOP", "e0", "inf"}, {"EXEC"},
	},
	// Scripts may not call them (Redis 7.0: noscript).
	{
		{"RPUSH", "k1", "a"}, {"EVAL", "return redis.call('blpop', KEYS[1], '0')", "1", "k1"},
		{"EVAL", "return redis.pcall('bzpopmin', KEYS[1], '0')", "1", "k1"}, {"LRANGE", "k1", "0", "-1"},
	},
}
