package clustertest

import "strconv"

// The lists stage of TestRedisDiff: every list command with random
// arguments over the shared key space (so lists meet strings and
// WRONGTYPE), empty and missing lists, negative and out-of-range
// indices, bad counts and options. List replies are ordered and
// deterministic: compared value by value, no comparer needed.
//
//	go test ./cluster-test/ -run 'TestRedisDiff/lists$' -v

var (
	// elements: a few, so that LREM, LPOS and LINSERT find matches.
	diffListElems = []string{"a", "b", "c", "a", "1", "", "x y"}
	// indices and counts, at the edges too.
	diffListIdx = []string{"0", "1", "2", "-1", "-2", "3", "-3", "5", "-5", "100", "-100",
		"9223372036854775807", "-9223372036854775808", "abc", "1.5", "", "+1", "01"}
)

func init() {
	diffStages = append(diffStages, diffStage{name: "lists", command: (*diffGen).cmdList, fixed: diffFixedLists, seqs: 40})
	// HELLO answers server details (ids, versions) that differ: a map on
	// both is all a sequence that switches protocol needs.
	if diffComparers["HELLO"] == nil {
		diffComparers["HELLO"] = func(argv []string, w, g *reply) (string, bool) {
			if w.Kind == kMap && g.Kind == kMap {
				return "", true
			}
			return "", false
		}
	}
}

func (g *diffGen) listElem() string {
	if g.chance(0.15) {
		return g.value()
	}
	return g.pick(diffListElems)
}

func (g *diffGen) listIdx() string {
	if g.chance(0.6) {
		return strconv.Itoa(g.r.IntN(9) - 4)
	}
	return g.pick(diffListIdx)
}

func (g *diffGen) side() string {
	if g.chance(0.05) {
		return g.name("MIDDLE")
	}
	return g.name(g.pick([]string{"LEFT", "RIGHT"}))
}

// cmdList is one random list command.
func (g *diffGen) cmdList() []string {
	k := g.key()
	switch x := g.r.IntN(100); {
	case x < 22:
		argv := []string{g.name(g.pick([]string{"LPUSH", "RPUSH", "LPUSH", "RPUSH", "LPUSHX", "RPUSHX"})), k}
		for n := 1 + g.r.IntN(4); n > 0; n-- {
			argv = append(argv, g.listElem())
		}
		return argv
	case x < 34:
		argv := []string{g.name(g.pick([]string{"LPOP", "RPOP"})), k}
		if g.chance(0.5) {
			argv = append(argv, g.pick([]string{"0", "1", "2", "3", "10", "-1", "abc", "9223372036854775807"}))
		}
		if g.chance(0.03) {
			argv = append(argv, "1")
		}
		return argv
	case x < 38:
		return []string{g.name("LLEN"), k}
	case x < 48:
		return []string{g.name("LRANGE"), k, g.listIdx(), g.listIdx()}
	case x < 54:
		return []string{g.name("LINDEX"), k, g.listIdx()}
	case x < 59:
		return []string{g.name("LSET"), k, g.listIdx(), g.listElem()}
	case x < 65:
		return []string{g.name("LREM"), k, g.listIdx(), g.listElem()}
	case x < 70:
		return []string{g.name("LTRIM"), k, g.listIdx(), g.listIdx()}
	case x < 75:
		where := g.pick([]string{"BEFORE", "AFTER", "BEFORE", "AFTER", "FOO"})
		return []string{g.name("LINSERT"), k, g.name(where), g.listElem(), g.listElem()}
	case x < 83:
		return g.cmdLPos(k)
	case x < 92:
		return []string{g.name("LMOVE"), k, g.key(), g.side(), g.side()}
	case x < 96:
		return []string{g.name("RPOPLPUSH"), k, g.key()}
	default:
		return g.cmdListArity()
	}
}

func (g *diffGen) cmdLPos(k string) []string {
	argv := []string{g.name("LPOS"), k, g.listElem()}
	var opts [][]string
	if g.chance(0.4) {
		opts = append(opts, []string{g.name("RANK"), g.pick([]string{"1", "2", "-1", "-2", "3", "0", "abc", "-9223372036854775808", "9223372036854775807"})})
	}
	if g.chance(0.4) {
		opts = append(opts, []string{g.name("COUNT"), g.pick([]string{"0", "1", "2", "5", "-1", "abc"})})
	}
	if g.chance(0.3) {
		opts = append(opts, []string{g.name("MAXLEN"), g.pick([]string{"0", "1", "2", "3", "-1", "abc"})})
	}
	if g.chance(0.05) {
		opts = append(opts, []string{g.name(g.pick([]string{"FOO", "RANK", "COUNT"}))}) // unknown, or missing its value
	}
	g.r.Shuffle(len(opts), func(i, j int) { opts[i], opts[j] = opts[j], opts[i] })
	for _, o := range opts {
		argv = append(argv, o...)
	}
	return argv
}

var diffListArities = []struct {
	name  string
	arity int
}{
	{"LPUSH", -3}, {"RPUSH", -3}, {"LPUSHX", -3}, {"RPUSHX", -3}, {"LPOP", -2}, {"RPOP", -2}, {"LLEN", 2},
	{"LRANGE", 4}, {"LINDEX", 3}, {"LSET", 4}, {"LREM", 4}, {"LTRIM", 4}, {"LINSERT", 5}, {"LPOS", -3},
	{"LMOVE", 5}, {"RPOPLPUSH", 3},
}

// cmdListArity is a list command with too few (or, for a fixed arity,
// too many) arguments.
func (g *diffGen) cmdListArity() []string {
	c := diffListArities[g.r.IntN(len(diffListArities))]
	n := -c.arity - 1
	if c.arity > 0 {
		n = c.arity - 1
		if g.chance(0.5) {
			n = c.arity + 1
		}
	}
	n = max(n, 1)
	argv := []string{g.name(c.name)}
	for len(argv) < n {
		argv = append(argv, g.key())
	}
	return argv
}

var diffFixedLists = [][][]string{
	// Pushes, pops with and without a count, the reply forms of a
	// missing key (nil, nil array) and of a count of 0.
	{
		{"RPUSH", "k1", "a", "b", "c", "d", "e"}, {"LPUSH", "k1", "z", "y"}, {"LRANGE", "k1", "0", "-1"}, {"LLEN", "k1"},
		{"LPOP", "k1"}, {"RPOP", "k1"}, {"LPOP", "k1", "2"}, {"RPOP", "k1", "2"}, {"LPOP", "k1", "0"}, {"LRANGE", "k1", "0", "-1"},
		{"LPOP", "k1", "5"}, {"EXISTS", "k1"}, {"LPOP", "k1"}, {"LPOP", "k1", "2"}, {"LPOP", "k1", "0"}, {"RPOP", "k1", "-1"},
		{"RPOP", "k1", "abc"}, {"LPOP", "k1", "1", "2"}, {"LPUSHX", "k1", "a"}, {"RPUSHX", "k1", "a"}, {"EXISTS", "k1"},
		{"RPUSH", "k1", "a"}, {"LPUSHX", "k1", "b", "c"}, {"RPUSHX", "k1", "d"}, {"LRANGE", "k1", "0", "-1"}, {"TYPE", "k1"},
	},
	// Ranges and indices, negative and out of range.
	{
		{"RPUSH", "k1", "0", "1", "2", "3", "4", "5"}, {"LRANGE", "k1", "-3", "-1"}, {"LRANGE", "k1", "-100", "100"},
		{"LRANGE", "k1", "4", "2"}, {"LRANGE", "k1", "6", "10"}, {"LRANGE", "k1", "-1", "-3"}, {"LRANGE", "k1", "0", "-7"},
		{"LRANGE", "k1", "a", "1"}, {"LRANGE", "nope", "0", "-1"}, {"LINDEX", "k1", "-1"}, {"LINDEX", "k1", "6"},
		{"LINDEX", "k1", "-7"}, {"LINDEX", "k1", "x"}, {"LINDEX", "nope", "x"}, {"LSET", "k1", "-1", "z"}, {"LSET", "k1", "6", "z"},
		{"LSET", "k1", "x", "z"}, {"LSET", "nope", "0", "z"}, {"LSET", "nope", "x", "z"}, {"LRANGE", "k1", "0", "-1"},
		{"LTRIM", "k1", "1", "-2"}, {"LRANGE", "k1", "0", "-1"}, {"LTRIM", "k1", "-100", "100"}, {"LTRIM", "k1", "x", "1"},
		{"LTRIM", "nope", "0", "1"}, {"LTRIM", "k1", "3", "1"}, {"EXISTS", "k1"},
	},
	// LREM from either end, LINSERT, LPOS with every option.
	{
		{"RPUSH", "k1", "a", "b", "a", "c", "a", "b"}, {"LREM", "k1", "1", "a"}, {"LRANGE", "k1", "0", "-1"},
		{"LREM", "k1", "-1", "b"}, {"LRANGE", "k1", "0", "-1"}, {"LREM", "k1", "0", "a"}, {"LRANGE", "k1", "0", "-1"},
		{"LREM", "k1", "0", "zz"}, {"LREM", "k1", "x", "a"}, {"LREM", "nope", "0", "a"},
		{"LINSERT", "k1", "BEFORE", "c", "q"}, {"LINSERT", "k1", "after", "c", "r"}, {"LINSERT", "k1", "AFTER", "zz", "r"},
		{"LINSERT", "k1", "MIDDLE", "c", "r"}, {"LINSERT", "nope", "BEFORE", "c", "r"}, {"LRANGE", "k1", "0", "-1"},
		{"RPUSH", "k2", "a", "b", "c", "a", "b", "c", "a"}, {"LPOS", "k2", "a"}, {"LPOS", "k2", "a", "RANK", "2"},
		{"LPOS", "k2", "a", "RANK", "-1"}, {"LPOS", "k2", "a", "COUNT", "0"}, {"LPOS", "k2", "a", "COUNT", "2", "RANK", "-1"},
		{"LPOS", "k2", "a", "MAXLEN", "3", "COUNT", "0"}, {"LPOS", "k2", "a", "RANK", "0"}, {"LPOS", "k2", "a", "COUNT", "-1"},
		{"LPOS", "k2", "a", "MAXLEN", "-1"}, {"LPOS", "k2", "zz"}, {"LPOS", "k2", "zz", "COUNT", "1"}, {"LPOS", "nope", "a"},
		{"LPOS", "nope", "a", "COUNT", "1"}, {"LPOS", "k2", "a", "FOO"}, {"LPOS", "k2", "a", "RANK"},
		{"LPOS", "k2", "a", "RANK", "-9223372036854775808"}, {"LPOS", "k2", "a", "RANK", "9223372036854775807"},
	},
	// LMOVE and RPOPLPUSH: between lists, onto a new key, same-key
	// rotation, a one-element list, wrong types on either side.
	{
		{"RPUSH", "k1", "a", "b", "c"}, {"LMOVE", "k1", "k2", "LEFT", "RIGHT"}, {"LMOVE", "k1", "k2", "right", "left"},
		{"LRANGE", "k1", "0", "-1"}, {"LRANGE", "k2", "0", "-1"}, {"LMOVE", "k2", "k2", "LEFT", "RIGHT"}, {"LRANGE", "k2", "0", "-1"},
		{"RPOPLPUSH", "k2", "k2"}, {"LRANGE", "k2", "0", "-1"}, {"LMOVE", "k1", "k1", "LEFT", "LEFT"}, {"LRANGE", "k1", "0", "-1"},
		{"RPOPLPUSH", "k1", "k3"}, {"EXISTS", "k1"}, {"RPOPLPUSH", "k1", "k3"}, {"LMOVE", "nope", "k3", "LEFT", "LEFT"},
		{"SET", "n1", "v"}, {"LMOVE", "k3", "n1", "LEFT", "LEFT"}, {"LMOVE", "n1", "k3", "LEFT", "LEFT"}, {"RPOPLPUSH", "k3", "n1"},
		{"LRANGE", "k3", "0", "-1"}, {"LMOVE", "k3", "k2", "UP", "LEFT"}, {"LMOVE", "nope", "k2", "LEFT", "DOWN"},
	},
	// Wrong types both ways.
	{
		{"SET", "k1", "v"}, {"LPUSH", "k1", "a"}, {"RPUSHX", "k1", "a"}, {"LPOP", "k1"}, {"LPOP", "k1", "0"}, {"LLEN", "k1"},
		{"LRANGE", "k1", "0", "-1"}, {"LINDEX", "k1", "0"}, {"LSET", "k1", "0", "a"}, {"LREM", "k1", "0", "a"}, {"LTRIM", "k1", "0", "1"},
		{"LINSERT", "k1", "BEFORE", "a", "b"}, {"LPOS", "k1", "a"}, {"RPUSH", "k2", "a"}, {"GET", "k2"}, {"INCR", "k2"},
		{"SET", "k2", "x", "NX"}, {"SET", "k2", "x"}, {"TYPE", "k2"},
	},
	// Inside a transaction, and an element popped onto an expiring key.
	{
		{"RPUSH", "k1", "a", "b"}, {"EXPIRE", "k1", "1000"}, {"MULTI"}, {"LPUSH", "k1", "c"}, {"RPOP", "k1", "2"}, {"LLEN", "k1"},
		{"LMOVE", "k1", "k2", "LEFT", "LEFT"}, {"EXEC"}, {"EXISTS", "k1"}, {"TTL", "k2"}, {"LRANGE", "k2", "0", "-1"},
	},
	// RESP3: the null array of a count pop on a missing key is a null.
	{
		{"HELLO", "3"}, {"LPOP", "nope", "2"}, {"LPOP", "nope"}, {"RPUSH", "k1", "a"}, {"RPOP", "k1", "3"}, {"LPOS", "k1", "z"},
		{"LINDEX", "k1", "5"},
	},
}
