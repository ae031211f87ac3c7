package clustertest

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// The command generator of the differential test (redisdiff_test.go).
//
// Sequences run over a small key space so that commands collide. Times
// are chosen so that the two servers, written a few milliseconds apart,
// cannot disagree by a hair: every relative expiry of a sequence is a
// distinct multiple of 10 s (100 s .. 20100 s), every absolute one a
// distinct multiple of 10 s beyond every relative one (now + 30000 s ..),
// and nothing expires while a sequence runs except what is given a time
// already past.

var (
	diffKeys     = []string{"k1", "k2", "k3", "n1", "n2"}
	diffPatterns = []string{"*", "k*", "n?", "k[13]", "k[1-2]", "[^k]*", "*1", "x*", "k\\1", "?"}
	// values: integers (some at int64's edges) and strings that are not
	// integers to Redis (a sign, a space, a leading zero, a fraction).
	diffInts    = []string{"0", "1", "5", "-3", "10", "42", "100"}
	diffEdges   = []string{"9223372036854775807", "-9223372036854775808", "9223372036854775806", "-9223372036854775807"}
	diffNonInts = []string{"abc", "", "1.5", " 1", "007", "+1", "-0", "hello world", "1e3", "99999999999999999999"}
	// increments for INCRBY/DECRBY.
	diffBys = []string{"1", "-1", "7", "100", "-100", "0", "9223372036854775807", "-9223372036854775808",
		"abc", "1.5", "", "+1", "99999999999999999999", "01", "-0"}
)

// diffGen generates one sequence.
type diffGen struct {
	r       *rand.Rand
	t0      int64 // Unix seconds when the sequence was generated
	usedRel map[int]bool
	usedAbs map[int]bool
	inMulti bool // inside a MULTI block: SCAN only as one complete page
	// streamTop: this sequence has sent XADD with the highest stream ID,
	// the one ID above the `~` MINID threshold (redisdiff_stream_test.go).
	streamTop bool
	// extra, in a data type's stage, generates that type's commands; it
	// is mixed with the string and key commands above.
	extra func(*diffGen) []string
}

// diffStage is a stage of TestRedisDiff added by a data type's file (one
// file per type: redisdiff_<type>_test.go, registering in init): its
// generator, its fixed sequences and its comparers. Keeping each type's
// generator in its own file lets the types grow independently.
type diffStage struct {
	name    string
	command func(*diffGen) []string
	fixed   [][][]string
	seqs    int // random sequences; 0: 30
}

var diffStages []diffStage

// diffComparers compare the replies of one command by its meaning
// (unordered replies as sets, random replies by their properties),
// registered by the data type files. handled false: compare as usual.
var diffComparers = map[string]func(argv []string, w, g *reply) (why string, handled bool){}

func newDiffGen(r *rand.Rand, t0 int64) *diffGen {
	return &diffGen{r: r, t0: t0, usedRel: map[int]bool{}, usedAbs: map[int]bool{}}
}

func (g *diffGen) chance(p float64) bool { return g.r.Float64() < p }

func (g *diffGen) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

// name writes a command or option name, sometimes in lower or mixed case
// (Redis is case-insensitive).
func (g *diffGen) name(s string) string {
	switch g.r.IntN(10) {
	case 0:
		return strings.ToLower(s)
	case 1:
		return strings.ToLower(s[:1]) + s[1:]
	}
	return s
}

func (g *diffGen) key() string { return g.pick(diffKeys) }

// keys returns lo..hi keys, duplicates allowed.
func (g *diffGen) keys(lo, hi int) []string {
	n := lo + g.r.IntN(hi-lo+1)
	out := make([]string, n)
	for i := range out {
		out[i] = g.key()
	}
	return out
}

func (g *diffGen) value() string {
	switch x := g.r.IntN(10); {
	case x < 6:
		return g.pick(diffInts)
	case x < 7:
		return g.pick(diffEdges)
	default:
		return g.pick(diffNonInts)
	}
}

// unique draws k in [0, 2000) not used before in this sequence.
func (g *diffGen) unique(used map[int]bool) int {
	for {
		k := g.r.IntN(2000)
		if !used[k] {
			used[k] = true
			return k
		}
	}
}

// relSeconds is a fresh relative expiry in seconds.
func (g *diffGen) relSeconds() int64 { return 100 + 10*int64(g.unique(g.usedRel)) }

// absSeconds is a fresh absolute expiry (Unix seconds), later than any
// relative one.
func (g *diffGen) absSeconds() int64 { return g.t0 + 30000 + 10*int64(g.unique(g.usedAbs)) }

// timeArg is the time argument of an expiring command: ms for PX-like
// forms, absolute for AT forms. Mostly a valid future time; otherwise
// zero, negative, a time already past, not a number, or huge.
func (g *diffGen) timeArg(ms, abs bool) string {
	scale := int64(1)
	if ms {
		scale = 1000
	}
	if g.chance(0.7) {
		if abs {
			return strconv.FormatInt(g.absSeconds()*scale, 10)
		}
		return strconv.FormatInt(g.relSeconds()*scale, 10)
	}
	switch g.r.IntN(10) {
	case 0:
		return "0"
	case 1:
		return "-1"
	case 2:
		return "-100"
	case 3:
		if abs {
			return strconv.FormatInt((g.t0-100)*scale, 10) // past
		}
		return "abc"
	case 4:
		if abs {
			return strconv.FormatInt(1*scale, 10) // long past
		}
		return "1.5"
	case 5:
		return ""
	case 6:
		return "9223372036854775807"
	case 7:
		return "-9223372036854775808"
	case 8:
		// about 3170 years: Redis takes it (raftcache bounds expiries at 100 years)
		if abs {
			return strconv.FormatInt((g.t0+100000000000)*scale, 10)
		}
		return strconv.FormatInt(100000000000*scale, 10)
	default:
		return "+5"
	}
}

// --- commands ----------------------------------------------------------------

func (g *diffGen) cmdSet() []string {
	argv := []string{g.name("SET"), g.key(), g.value()}
	if g.chance(0.65) {
		// A valid combination, options in any order.
		var groups [][]string
		switch g.r.IntN(4) {
		case 0:
			groups = append(groups, []string{g.name("NX")})
		case 1:
			groups = append(groups, []string{g.name("XX")})
		}
		if g.chance(0.3) {
			groups = append(groups, []string{g.name("GET")})
		}
		switch g.r.IntN(7) {
		case 0:
			groups = append(groups, []string{g.name("EX"), g.timeArg(false, false)})
		case 1:
			groups = append(groups, []string{g.name("PX"), g.timeArg(true, false)})
		case 2:
			groups = append(groups, []string{g.name("EXAT"), g.timeArg(false, true)})
		case 3:
			groups = append(groups, []string{g.name("PXAT"), g.timeArg(true, true)})
		case 4:
			groups = append(groups, []string{g.name("KEEPTTL")})
		}
		g.r.Shuffle(len(groups), func(i, j int) { groups[i], groups[j] = groups[j], groups[i] })
		for _, gr := range groups {
			argv = append(argv, gr...)
		}
		return argv
	}
	// Random tokens: bad combinations, missing arguments, unknown options.
	for n := 1 + g.r.IntN(3); n > 0; n-- {
		opt := g.pick([]string{"NX", "XX", "GET", "KEEPTTL", "EX", "PX", "EXAT", "PXAT", "FOO"})
		argv = append(argv, g.name(opt))
		if len(opt) >= 2 && (opt[1] == 'X' && opt != "NX" && opt != "XX") && g.chance(0.85) {
			argv = append(argv, g.timeArg(opt[0] == 'P', strings.HasSuffix(opt, "AT")))
		}
	}
	return argv
}

func (g *diffGen) cmdExpire() []string {
	name := g.pick([]string{"EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"})
	argv := []string{g.name(name), g.key(), g.timeArg(name[0] == 'P', strings.HasSuffix(name, "AT"))}
	if g.chance(0.45) {
		for n := 1 + g.r.IntN(2); n > 0; n-- {
			argv = append(argv, g.name(g.pick([]string{"NX", "XX", "GT", "LT", "NX", "XX", "GT", "LT", "FOO"})))
		}
	}
	return argv
}

func (g *diffGen) cmdIncr() []string {
	switch g.r.IntN(4) {
	case 0:
		return []string{g.name("INCR"), g.key()}
	case 1:
		return []string{g.name("DECR"), g.key()}
	case 2:
		return []string{g.name("INCRBY"), g.key(), g.pick(diffBys)}
	default:
		return []string{g.name("DECRBY"), g.key(), g.pick(diffBys)}
	}
}

func (g *diffGen) cmdMSet() []string {
	name := "MSET"
	if g.chance(0.5) {
		name = "MSETNX"
	}
	argv := []string{g.name(name)}
	for _, k := range g.keys(1, 3) {
		argv = append(argv, k, g.value())
	}
	if g.chance(0.1) {
		argv = argv[:len(argv)-1] // a key without a value
	}
	return argv
}

func (g *diffGen) cmdScan() []string {
	if g.inMulti {
		// One call that covers the whole (small) key space.
		argv := []string{g.name("SCAN"), "0"}
		if g.chance(0.5) {
			argv = append(argv, g.name("MATCH"), g.pick(diffPatterns))
		}
		return append(argv, g.name("COUNT"), "1000")
	}
	argv := []string{g.name("SCAN"), "0"}
	switch g.r.IntN(20) {
	case 0:
		argv[1] = "abc" // not a cursor
	case 1:
		argv[1] = "-1"
	}
	var opts [][]string
	if g.chance(0.5) {
		opts = append(opts, []string{g.name("MATCH"), g.pick(diffPatterns)})
	}
	if g.chance(0.5) {
		opts = append(opts, []string{g.name("COUNT"), g.pick([]string{"1", "2", "3", "10", "0", "-1", "abc"})})
	}
	if g.chance(0.2) {
		opts = append(opts, []string{g.name("TYPE"), g.pick([]string{"string", "hash", "list", "STRING"})})
	}
	if g.chance(0.05) {
		opts = append(opts, []string{g.name("FOO")})
	}
	g.r.Shuffle(len(opts), func(i, j int) { opts[i], opts[j] = opts[j], opts[i] })
	for _, o := range opts {
		argv = append(argv, o...)
	}
	return argv
}

// arities of the commands under test, as Redis declares them (negative:
// at least that many).
var diffArities = []struct {
	name  string
	arity int
}{
	{"GET", 2}, {"SET", -3}, {"SETNX", 3}, {"SETEX", 4}, {"PSETEX", 4}, {"GETSET", 3}, {"GETDEL", 2},
	{"MGET", -2}, {"MSET", -3}, {"MSETNX", -3}, {"DEL", -2}, {"UNLINK", -2}, {"EXISTS", -2},
	{"INCR", 2}, {"DECR", 2}, {"INCRBY", 3}, {"DECRBY", 3}, {"EXPIRE", -3}, {"PEXPIRE", -3},
	{"EXPIREAT", -3}, {"PEXPIREAT", -3}, {"PERSIST", 2}, {"TTL", 2}, {"PTTL", 2}, {"TYPE", 2},
	{"STRLEN", 2}, {"KEYS", 2}, {"SCAN", -2}, {"DBSIZE", 1}, {"EXPIRETIME", 2}, {"PEXPIRETIME", 2},
	{"ECHO", 2},
}

// cmdWrongArity is a known command with a wrong number of arguments.
func (g *diffGen) cmdWrongArity() []string {
	c := diffArities[g.r.IntN(len(diffArities))]
	var n int // argument count, the name included
	if c.arity > 0 {
		n = c.arity - 1
		if n < 1 || g.chance(0.5) {
			n = c.arity + 1
		}
	} else {
		n = 1 + g.r.IntN(-c.arity-1)
	}
	argv := []string{g.name(c.name)}
	for len(argv) < n {
		if len(argv)%2 == 1 {
			argv = append(argv, g.key())
		} else {
			argv = append(argv, g.value())
		}
	}
	return argv
}

func (g *diffGen) cmdUnknown() []string {
	return [][]string{{"FOOBAR"}, {"GETX", g.key()}, {"sett", g.key(), "1"}, {"INCRX", g.key()}, {"EXPIRES", g.key(), "100"}}[g.r.IntN(5)]
}

// command is one random command of the string part.
func (g *diffGen) command() []string {
	if g.extra != nil && g.chance(0.7) {
		return g.extra(g)
	}
	type entry struct {
		w int
		f func() []string
	}
	table := []entry{
		{14, g.cmdSet},
		{3, func() []string { return []string{g.name("SETNX"), g.key(), g.value()} }},
		{3, func() []string {
			name := g.pick([]string{"SETEX", "PSETEX"})
			return []string{g.name(name), g.key(), g.timeArg(name == "PSETEX", false), g.value()}
		}},
		{2, func() []string { return []string{g.name("GETSET"), g.key(), g.value()} }},
		{3, func() []string { return []string{g.name("GETDEL"), g.key()} }},
		{10, func() []string { return []string{g.name("GET"), g.key()} }},
		{3, func() []string { return append([]string{g.name("MGET")}, g.keys(1, 4)...) }},
		{5, g.cmdMSet},
		{3, func() []string { return append([]string{g.name(g.pick([]string{"DEL", "UNLINK"}))}, g.keys(1, 3)...) }},
		{3, func() []string { return append([]string{g.name("EXISTS")}, g.keys(1, 4)...) }},
		{9, g.cmdIncr},
		{10, g.cmdExpire},
		{3, func() []string { return []string{g.name("PERSIST"), g.key()} }},
		{6, func() []string {
			return []string{g.name(g.pick([]string{"TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"})), g.key()}
		}},
		{2, func() []string { return []string{g.name("TYPE"), g.key()} }},
		{2, func() []string { return []string{g.name("STRLEN"), g.key()} }},
		{3, func() []string { return []string{g.name("KEYS"), g.pick(diffPatterns)} }},
		{3, g.cmdScan},
		{2, func() []string { return []string{g.name("DBSIZE")} }},
		{1, func() []string {
			return [][]string{{g.name("FLUSHDB")}, {g.name("FLUSHDB"), g.name("ASYNC")}, {g.name("FLUSHDB"), "SYNC"}, {g.name("FLUSHDB"), "FOO"}}[g.r.IntN(4)]
		}},
		{2, g.cmdWrongArity},
		{1, g.cmdUnknown},
	}
	total := 0
	for _, e := range table {
		total += e.w
	}
	x := g.r.IntN(total)
	for _, e := range table {
		if x < e.w {
			return e.f()
		}
		x -= e.w
	}
	panic("unreachable")
}

// multiBlock is MULTI, a few queued commands (some refused while
// queueing: unknown, wrong arity; sometimes a nested MULTI), then EXEC
// or DISCARD.
func (g *diffGen) multiBlock() [][]string {
	out := [][]string{{g.name("MULTI")}}
	g.inMulti = true
	for n := 1 + g.r.IntN(6); n > 0; n-- {
		switch x := g.r.IntN(100); {
		case x < 5:
			out = append(out, g.cmdUnknown())
		case x < 10:
			out = append(out, g.cmdWrongArity())
		case x < 13:
			out = append(out, []string{g.name("MULTI")})
		default:
			out = append(out, g.command())
		}
	}
	g.inMulti = false
	if g.chance(0.85) {
		return append(out, []string{g.name("EXEC")})
	}
	return append(out, []string{g.name("DISCARD")})
}

// sequence is n commands (counting a MULTI block's as one each); with
// multi, a third of them in MULTI blocks, plus the odd EXEC or DISCARD
// without MULTI.
func (g *diffGen) sequence(n int, multi bool) [][]string {
	var out [][]string
	for len(out) < n {
		switch {
		case multi && g.chance(0.12):
			out = append(out, g.multiBlock()...)
		case multi && g.chance(0.02):
			out = append(out, []string{g.name(g.pick([]string{"EXEC", "DISCARD"}))})
		default:
			out = append(out, g.command())
		}
	}
	return out
}
