package clustertest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The streams stage of TestRedisDiff: XADD (NOMKSTREAM, MAXLEN and MINID
// with = or ~, LIMIT, `*`, `<ms>-*` and explicit IDs, bad IDs), XRANGE
// and XREVRANGE (exclusive bounds, COUNT), XLEN, XTRIM, XDEL, over the
// shared key space.
//
// IDs made by `*` come from each server's clock (raftcache's: the
// leader's time of the entry), so they differ: the comparers below
// replace every ID whose milliseconds look like a clock reading by
// "<clock>" on both sides, and compare the rest, order and count
// included. Explicit IDs are either tiny (1..8 ms) or far in the future
// (5000000000000 ms, year 2128), so they compare the same way against
// clock IDs on both servers, and `*` after a far-future ID is
// deterministic on both.
//
// raftcache trims exactly where Redis's `~` trims whole nodes of up to
// 100 entries (docs/api.md): the generator uses `~` only where both trim
// alike (MAXLEN ~ 0 or a bound above any stream here, MINID ~ below or
// above every ID, LIMIT 0 or large).
//
//	go test ./cluster-test/ -run 'TestRedisDiff/streams$' -v

var (
	diffStreamMs     = []string{"1", "2", "3", "5", "8", "5000000000000"}
	diffStreamBadIDs = []string{"0-0", "0", "abc", "-1", "1-", "1-abc", " 5", "+5", "007", "5-007", "", "1-2-3", "-5-1",
		"18446744073709551615-18446744073709551615", "18446744073709551616-0", "5-18446744073709551616", "1.5"}
	diffClockID = regexp.MustCompile(`^(\d+)-(\d+)$`)
	// diffStreamTopID is the highest stream ID (in diffStreamBadIDs: an ID
	// no XADD can go beyond).
	diffStreamTopID = "18446744073709551615-18446744073709551615"
)

func init() {
	diffStages = append(diffStages, diffStage{name: "streams", command: (*diffGen).cmdStream, fixed: diffFixedStreams, seqs: 40})
	for _, name := range []string{"XADD", "XRANGE", "XREVRANGE"} {
		diffComparers[name] = diffCompareStreamIDs
	}
}

// diffCompareStreamIDs compares two replies with clock-made IDs masked.
func diffCompareStreamIDs(argv []string, w, g *reply) (string, bool) {
	if !diffMaskClockIDs(w).equal(diffMaskClockIDs(g)) {
		if w.Kind != g.Kind {
			return "different reply types", true
		}
		return "different values (IDs made by `*` masked as <clock>)", true
	}
	return "", true
}

// diffMaskClockIDs copies r with every bulk string that is an ID whose
// milliseconds fall in 2001..2096 (a clock reading) replaced by <clock>.
func diffMaskClockIDs(r *reply) *reply {
	out := *r
	if r.Kind == kBulk {
		if m := diffClockID.FindStringSubmatch(r.Str); m != nil {
			if ms, err := strconv.ParseUint(m[1], 10, 64); err == nil && ms >= 1e12 && ms < 4e12 {
				out.Str = "<clock>"
			}
		}
	}
	out.Elems = nil
	for _, e := range r.Elems {
		out.Elems = append(out.Elems, diffMaskClockIDs(e))
	}
	return &out
}

// streamID is an explicit ID for XADD (autoSeq: `<ms>-*` allowed).
func (g *diffGen) streamID(autoSeq bool) string {
	ms := g.pick(diffStreamMs)
	switch x := g.r.IntN(20); {
	case x < 3:
		return ms
	case x < 6 && autoSeq:
		return ms + "-*"
	default:
		return ms + "-" + strconv.Itoa(g.r.IntN(4))
	}
}

// rangeID is an XRANGE bound: an ID, "-" or "+", exclusive or not, or
// something that is not an ID.
func (g *diffGen) rangeID() string {
	switch x := g.r.IntN(20); {
	case x < 5:
		return g.pick([]string{"-", "+"})
	case x < 13:
		return g.streamID(false)
	case x < 17:
		return "(" + g.streamID(false)
	case x < 18:
		return g.pick([]string{"(-", "(+", "(", "(0-0", "(18446744073709551615-18446744073709551615"})
	default:
		return g.pick(diffStreamBadIDs)
	}
}

// streamTrim is a trimming option: exact, or `~` where Redis's node
// trimming and raftcache's exact trimming agree. They agree while a
// stream's entries are all on one side of the threshold: Redis's `~`
// removes a node (up to 100 entries, so a whole stream here) only if all
// of it is below, where raftcache removes each entry below. Every ID this
// generator makes is below 99999999999999 and at or above 1 except the
// highest ID, 18446744073709551615-18446744073709551615: once a sequence
// has sent it, a stream may hold entries on both sides of 99999999999999,
// and `~` MINID keeps to 1 (below every ID).
func (g *diffGen) streamTrim() []string {
	var out []string
	if g.chance(0.3) {
		out = []string{g.name("MAXLEN"), g.pick([]string{"~", "~", "="}), ""}
	} else {
		out = []string{g.name("MINID"), g.pick([]string{"~", "=", "="}), ""}
	}
	approx := out[1] == "~"
	maxlen := strings.EqualFold(out[0], "MAXLEN")
	switch {
	case maxlen && approx:
		out[2] = g.pick([]string{"0", "60", "1000"})
	case maxlen:
		out[2] = g.pick([]string{"0", "1", "2", "3", "5", "-1", "abc"})
	case approx && g.streamTop:
		out[2] = "1"
	case approx:
		out[2] = g.pick([]string{"1", "99999999999999"})
	default:
		out[2] = g.rangeID()
	}
	if out[1] == "=" && g.chance(0.5) {
		out = []string{out[0], out[2]} // the operator is optional
	}
	if g.chance(0.2) {
		if approx {
			out = append(out, g.name("LIMIT"), g.pick([]string{"0", "100", "1000"}))
		} else {
			out = append(out, g.name("LIMIT"), g.pick([]string{"0", "5", "-1", "abc"})) // refused without ~
		}
	}
	return out
}

func (g *diffGen) streamFields() []string {
	var out []string
	for n := 1 + g.r.IntN(3); n > 0; n-- {
		out = append(out, g.pick([]string{"f", "g", "h"}), g.value())
	}
	if g.chance(0.04) {
		out = out[:len(out)-1] // a field without a value
	}
	return out
}

// cmdStream is one random stream command.
func (g *diffGen) cmdStream() []string {
	k := g.key()
	switch x := g.r.IntN(100); {
	case x < 40:
		argv := []string{g.name("XADD"), k}
		// The ID first: the trimming option depends on it (streamTrim).
		var id string
		switch x := g.r.IntN(20); {
		case x < 6:
			id = "*"
		case x < 18:
			id = g.streamID(true)
		default:
			id = g.pick(diffStreamBadIDs)
		}
		g.streamTop = g.streamTop || id == diffStreamTopID
		var opts [][]string
		if g.chance(0.15) {
			opts = append(opts, []string{g.name("NOMKSTREAM")})
		}
		if g.chance(0.35) {
			opts = append(opts, g.streamTrim())
		}
		if g.chance(0.3) {
			g.r.Shuffle(len(opts), func(i, j int) { opts[i], opts[j] = opts[j], opts[i] })
		}
		for _, o := range opts {
			argv = append(argv, o...)
		}
		argv = append(argv, id)
		return append(argv, g.streamFields()...)
	case x < 58:
		name := g.pick([]string{"XRANGE", "XREVRANGE"})
		argv := []string{g.name(name), k, g.rangeID(), g.rangeID()}
		if g.chance(0.4) {
			argv[2], argv[3] = "-", "+"
			if name == "XREVRANGE" {
				argv[2], argv[3] = "+", "-"
			}
		}
		if g.chance(0.3) {
			argv = append(argv, g.name("COUNT"), g.pick([]string{"0", "1", "2", "3", "10", "-1", "abc"}))
		}
		if g.chance(0.03) {
			argv = append(argv, g.name(g.pick([]string{"FOO", "COUNT"})))
		}
		return argv
	case x < 66:
		return []string{g.name("XLEN"), k}
	case x < 80:
		argv := []string{g.name("XTRIM"), k}
		switch y := g.r.IntN(20); {
		case y < 16:
			argv = append(argv, g.streamTrim()...)
		case y < 17:
			argv = append(argv, g.name("MAXLEN"), "1", g.name("MINID"), "1")
		case y < 18:
			argv = append(argv, g.name("LIMIT"), "5", g.name("MAXLEN"), "1")
		case y < 19:
			argv = append(argv, g.name("NOMKSTREAM"), g.name("MAXLEN"), "1")
		default:
			argv = append(argv, g.name("MAXLEN"))
		}
		return argv
	case x < 96:
		argv := []string{g.name("XDEL"), k}
		for n := 1 + g.r.IntN(3); n > 0; n-- {
			if g.chance(0.1) {
				argv = append(argv, g.pick(diffStreamBadIDs))
			} else {
				argv = append(argv, g.streamID(false))
			}
		}
		return argv
	default:
		c := []struct {
			name string
			n    int
		}{{"XADD", 4}, {"XADD", 3}, {"XRANGE", 3}, {"XREVRANGE", 3}, {"XLEN", 3}, {"XTRIM", 3}, {"XDEL", 2}}[g.r.IntN(7)]
		argv := []string{g.name(c.name)}
		for len(argv) < c.n {
			argv = append(argv, fmt.Sprint(g.r.IntN(3)))
		}
		return argv
	}
}

var diffFixedStreams = [][][]string{
	// A trimming option given twice, of either kind, is refused (level 6).
	{
		{"XADD", "d1", "MAXLEN", "5", "MAXLEN", "1", "1-1", "f", "v"}, {"XADD", "d1", "MINID", "1", "MINID", "2", "2-1", "f", "v"},
		{"XADD", "d1", "3-1", "f", "v"}, {"XTRIM", "d1", "MAXLEN", "5", "MAXLEN", "0"}, {"XTRIM", "d1", "MINID", "0", "MINID", "9"},
		{"XLEN", "d1"},
	},
	// Explicit IDs, `<ms>-*`, ordering errors, the 0-0 and last-ID edges.
	{
		{"XADD", "k1", "1-1", "f", "v"}, {"XADD", "k1", "1-1", "f", "v"}, {"XADD", "k1", "1-0", "f", "v"}, {"XADD", "k1", "1-*", "g", "w"},
		{"XADD", "k1", "1", "f", "v"}, {"XADD", "k1", "2", "f", "v"}, {"XADD", "k1", "0-0", "f", "v"}, {"XADD", "k1", "0", "f", "v"},
		{"XADD", "k2", "0-*", "f", "v"}, {"XADD", "k1", "abc", "f", "v"}, {"XADD", "k1", "3-1", "f"}, {"XADD", "k1", "3-1"},
		{"XADD", "k1", " 5", "f", "v"}, {"XADD", "k1", "+6-007", "f", "v"}, {"XRANGE", "k1", "-", "+"}, {"XLEN", "k1"},
		{"XADD", "k3", "18446744073709551615-18446744073709551615", "f", "v"}, {"XADD", "k3", "*", "f", "v"},
		{"XADD", "k3", "18446744073709551615-*", "f", "v"}, {"XLEN", "k3"},
	},
	// Ranges: inclusive and exclusive bounds, COUNT, reverse, bad bounds.
	{
		{"XADD", "k1", "1-1", "a", "1"}, {"XADD", "k1", "2-1", "b", "2"}, {"XADD", "k1", "3-1", "c", "3", "d", "4"}, {"XADD", "k1", "5-0", "e", "5"},
		{"XRANGE", "k1", "-", "+"}, {"XRANGE", "k1", "2", "3"}, {"XRANGE", "k1", "(1-1", "(5"}, {"XRANGE", "k1", "(1", "+"},
		{"XREVRANGE", "k1", "+", "-"}, {"XREVRANGE", "k1", "+", "-", "COUNT", "2"}, {"XREVRANGE", "k1", "(5-0", "(1-1"},
		{"XRANGE", "k1", "-", "+", "COUNT", "0"}, {"XRANGE", "nope", "-", "+", "COUNT", "0"}, {"XRANGE", "k1", "-", "+", "COUNT", "-1"},
		{"XRANGE", "k1", "-", "+", "COUNT"}, {"XRANGE", "k1", "-", "+", "FOO", "1"}, {"XRANGE", "k1", "5", "1"},
		{"XRANGE", "k1", "(-", "+"}, {"XRANGE", "k1", "-", "(+"}, {"XRANGE", "k1", "(", "+"}, {"XRANGE", "k1", "(0-0", "(0-0"},
		{"XRANGE", "k1", "(18446744073709551615-18446744073709551615", "+"}, {"XRANGE", "k1", "-", "(0-0"},
		{"XRANGE", "k1", "abc", "+"}, {"XREVRANGE", "nope", "+", "-"}, {"XLEN", "nope"},
	},
	// XDEL keeps the last ID; an emptied stream stays a key; XTRIM.
	{
		{"XADD", "k1", "1-1", "a", "1"}, {"XADD", "k1", "2-1", "b", "2"}, {"XADD", "k1", "3-1", "c", "3"}, {"XDEL", "k1", "2-1", "2-1", "9-9"},
		{"XDEL", "k1", "1-1", "abc"}, {"XLEN", "k1"}, {"XDEL", "k1", "1-1", "3-1"}, {"XLEN", "k1"}, {"EXISTS", "k1"}, {"TYPE", "k1"},
		{"XADD", "k1", "3-1", "c", "3"}, {"XADD", "k1", "3-2", "c", "3"}, {"XDEL", "nope", "1-1"}, {"XDEL", "nope", "abc"},
		{"XADD", "k2", "1-1", "a", "1"}, {"XADD", "k2", "2-1", "a", "1"}, {"XADD", "k2", "3-1", "a", "1"}, {"XADD", "k2", "4-1", "a", "1"},
		{"XTRIM", "k2", "MAXLEN", "3"}, {"XTRIM", "k2", "MAXLEN", "=", "2"}, {"XTRIM", "k2", "MINID", "4"}, {"XRANGE", "k2", "-", "+"},
		{"XTRIM", "k2", "MAXLEN", "0"}, {"EXISTS", "k2"}, {"XTRIM", "nope", "MAXLEN", "0"}, {"XTRIM", "k2", "MAXLEN", "-1"},
		{"XTRIM", "k2", "MAXLEN", "1", "LIMIT", "5"}, {"XTRIM", "k2", "MINID", "1", "MAXLEN", "1"}, {"XTRIM", "k2", "LIMIT", "5"},
		{"XTRIM", "k2", "MAXLEN", "~", "1", "LIMIT", "-1"}, {"XTRIM", "k2", "FOO", "1"}, {"XTRIM", "k2", "MINID", "abc"},
	},
	// XADD's options: NOMKSTREAM, trimming with the add, MAXLEN 0.
	{
		{"XADD", "k1", "NOMKSTREAM", "*", "f", "v"}, {"EXISTS", "k1"}, {"XADD", "k1", "MAXLEN", "0", "1-1", "f", "v"}, {"EXISTS", "k1"},
		{"XLEN", "k1"}, {"XADD", "k1", "NOMKSTREAM", "2-1", "f", "v"}, {"XADD", "k1", "MAXLEN", "2", "3-1", "f", "v"},
		{"XADD", "k1", "MAXLEN", "=", "2", "4-1", "f", "v"}, {"XADD", "k1", "MAXLEN", "1", "NOMKSTREAM", "5-1", "f", "v"},
		{"XRANGE", "k1", "-", "+"}, {"XADD", "k1", "MINID", "5-1", "6-1", "f", "v"}, {"XRANGE", "k1", "-", "+"},
		{"XADD", "k1", "MAXLEN", "-1", "*", "f", "v"}, {"XADD", "k1", "MAXLEN", "abc", "*", "f", "v"},
		{"XADD", "k1", "MAXLEN", "1", "MINID", "1", "*", "f", "v"}, {"XADD", "k1", "LIMIT", "5", "*", "f", "v"},
		{"XADD", "k1", "MAXLEN", "1", "LIMIT", "5", "*", "f", "v"}, {"XADD", "k1", "MAXLEN", "~", "0", "LIMIT", "0", "7-1", "f", "v"},
		{"XADD", "k1", "MAXLEN", "~", "1000", "*", "f", "v"}, {"XADD", "k1", "MAXLEN"}, {"XADD", "k1", "MAXLEN", "1", "f", "v"},
		{"XADD", "k1", "NOMKSTREAM"}, {"XLEN", "k1"},
	},
	// Wrong types both ways, and rq's calls.
	{
		{"SET", "k1", "v"}, {"XADD", "k1", "*", "f", "v"}, {"XRANGE", "k1", "-", "+"}, {"XREVRANGE", "k1", "+", "-"}, {"XLEN", "k1"},
		{"XTRIM", "k1", "MAXLEN", "1"}, {"XDEL", "k1", "1-1"}, {"XADD", "k2", "5000000000000-1", "f", "v"}, {"GET", "k2"}, {"INCR", "k2"},
		{"LPUSH", "k2", "a"}, {"XADD", "n1", "MAXLEN", "~", "10", "*", "type", "1", "return_value", "gAN9cQBYAwAAAHJldHEBSwFzLg=="},
		{"XADD", "n1", "MAXLEN", "~", "10", "*", "type", "2", "exc_string", "eJzLSM3JyQcABiwCFQ=="}, {"XREVRANGE", "n1", "+", "-", "COUNT", "1"},
		{"XLEN", "n1"}, {"EXPIRE", "n1", "500"}, {"TTL", "n1"}, {"XREVRANGE", "n1", "+", "-"},
	},
	// Inside a transaction: `*` IDs of one entry share its time.
	{
		{"MULTI"}, {"XADD", "k1", "*", "a", "1"}, {"XADD", "k1", "*", "b", "2"}, {"XLEN", "k1"}, {"XADD", "k1", "5000000000000-1", "c", "3"},
		{"XADD", "k1", "*", "d", "4"}, {"XRANGE", "k1", "5000000000000", "+"}, {"EXEC"}, {"XREVRANGE", "k1", "+", "-", "COUNT", "2"},
	},
	// RESP3: COUNT 0 answers a null.
	{
		{"HELLO", "3"}, {"XADD", "k1", "1-1", "f", "v"}, {"XRANGE", "k1", "-", "+", "COUNT", "0"}, {"XRANGE", "k1", "-", "+"},
		{"XADD", "k1", "NOMKSTREAM", "2-1", "f", "v"}, {"XADD", "k2", "NOMKSTREAM", "2-1", "f", "v"},
	},
}
