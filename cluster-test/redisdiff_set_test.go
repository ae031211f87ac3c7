package clustertest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The set stage of TestRedisDiff: SADD .. SSCAN with random arguments,
// wrong types (the key space is shared with strings), empty and missing
// sets. Unordered replies are compared as sets; random ones (SPOP,
// SRANDMEMBER) by their properties. Two SPOPs that popped different
// members (both valid) leave the servers' sets different: that is an
// allowed difference, after which the test resynchronizes the key space. This file also holds the helpers the hash and key stages
// share (hs...).

var (
	diffMembers = []string{"1", "2", "3", "10", "-5", "a", "b", "c", "007", ""}
	diffCounts  = []string{"0", "1", "2", "3", "5", "100", "-1", "-3", "-10", "abc", "-9223372036854775808"}
)

// hsStrings returns the bulk strings of an array, set or map reply (a
// map's keys and values alternating, as RESP2's flat array has them), and
// of an array of [field, value] pairs (RESP3's WITHVALUES) flattened.
// hsShape tells those shapes apart: the comparers flatten both sides the
// same way, so they compare shapes first.
func hsStrings(r *reply) ([]string, bool) {
	if r.Kind != kArray && r.Kind != kSet && r.Kind != kMap {
		return nil, false
	}
	out := make([]string, 0, len(r.Elems))
	for _, e := range r.Elems {
		switch {
		case e.Kind == kBulk:
			out = append(out, e.Str)
		case e.Kind == kArray && len(e.Elems) == 2 && e.Elems[0].Kind == kBulk && e.Elems[1].Kind == kBulk:
			out = append(out, e.Elems[0].Str, e.Elems[1].Str)
		default:
			return nil, false
		}
	}
	return out, true
}

// hsShape is a reply's type and, for an aggregate, whether its elements
// are pairs: RESP3 answers HGETALL with a map and WITHVALUES with pairs
// where RESP2 has flat arrays, and a follower must answer as the leader.
func hsShape(r *reply) string {
	if len(r.Elems) > 0 && r.Elems[0].Kind == kArray {
		return string(r.Kind) + "pairs"
	}
	return string(r.Kind)
}

// hsSameShape reports the first difference in shape, or "".
func hsSameShape(w, g *reply) string {
	if hsShape(w) != hsShape(g) {
		return fmt.Sprintf("reply types differ: redis %s, raftcache %s", w, g)
	}
	return ""
}

// hsSameSet compares two array/set replies as multisets.
func hsSameSet(w, g *reply) string {
	if d := hsSameShape(w, g); d != "" {
		return d
	}
	a, ok1 := hsStrings(w)
	b, ok2 := hsStrings(g)
	if !ok1 || !ok2 {
		return fmt.Sprintf("not arrays of strings: %s, %s", w, g)
	}
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		return fmt.Sprintf("different elements: redis %q, raftcache %q", a, b)
	}
	return ""
}

func hsDistinct(xs []string) bool {
	s := slices.Clone(xs)
	slices.Sort(s)
	return len(slices.Compact(s)) == len(xs)
}

// hsRandCompare compares replies of a random pick with count (SRANDMEMBER,
// HRANDFIELD, ZRANDMEMBER-like): the same number of elements, distinct
// for a positive count, the whole collection when the count covers it.
// pairs: elements come as field, value (the values of a field must agree).
func hsRandCompare(count int64, pairs bool, w, g *reply) string {
	if d := hsSameShape(w, g); d != "" {
		return d
	}
	a, ok1 := hsStrings(w)
	b, ok2 := hsStrings(g)
	if !ok1 || !ok2 {
		return fmt.Sprintf("not arrays of strings: %s, %s", w, g)
	}
	if len(a) != len(b) {
		return fmt.Sprintf("%d elements, redis %d", len(b), len(a))
	}
	step := 1
	if pairs {
		step = 2
		wv := map[string]string{}
		for i := 0; i+1 < len(a); i += 2 {
			wv[a[i]] = a[i+1]
		}
		for i := 0; i+1 < len(b); i += 2 {
			if v, ok := wv[b[i]]; ok && v != b[i+1] {
				return fmt.Sprintf("field %q: value %q, redis %q", b[i], b[i+1], v)
			}
		}
	}
	var ka, kb []string
	for i := 0; i < len(a); i += step {
		ka, kb = append(ka, a[i]), append(kb, b[i])
	}
	if count > 0 {
		if !hsDistinct(kb) {
			return fmt.Sprintf("positive count answered repeated elements: %q", kb)
		}
		if int64(len(ka)) < count { // the whole collection
			slices.Sort(ka)
			slices.Sort(kb)
			if !slices.Equal(ka, kb) {
				return fmt.Sprintf("whole collection differs: redis %q, raftcache %q", ka, kb)
			}
		}
	}
	return ""
}

// hsScanCompare compares HSCAN/SSCAN pages: when both ended the scan
// (cursor 0) the elements (or field/value pairs) as sets; otherwise only
// that raftcache's page is well formed.
func hsScanCompare(pairs bool, w, g *reply) (string, bool) {
	if w.Kind != kArray || g.Kind != kArray || len(w.Elems) != 2 || len(g.Elems) != 2 {
		return "", false
	}
	if w.Elems[0].Str != "0" || g.Elems[0].Str != "0" {
		if g.Elems[1].Kind != kArray || pairs && len(g.Elems[1].Elems)%2 != 0 {
			return "malformed page: " + g.String(), true
		}
		return "", true
	}
	if !pairs {
		return hsSameSet(w.Elems[1], g.Elems[1]), true
	}
	return hsSamePairs(w.Elems[1], g.Elems[1]), true
}

// hsSamePairs compares flat field, value arrays as sets of pairs.
func hsSamePairs(w, g *reply) string {
	if d := hsSameShape(w, g); d != "" {
		return d
	}
	a, ok1 := hsStrings(w)
	b, ok2 := hsStrings(g)
	if !ok1 || !ok2 || len(a)%2 != 0 || len(b)%2 != 0 {
		return fmt.Sprintf("not field/value arrays: %s, %s", w, g)
	}
	join := func(xs []string) []string {
		var out []string
		for i := 0; i < len(xs); i += 2 {
			out = append(out, strconv.Quote(xs[i])+"="+strconv.Quote(xs[i+1]))
		}
		slices.Sort(out)
		return out
	}
	if pa, pb := join(a), join(b); !slices.Equal(pa, pb) {
		return fmt.Sprintf("different pairs: redis %v, raftcache %v", pa, pb)
	}
	return ""
}

// hsComparer leaves replies that are not the command's own (QUEUED
// inside MULTI) to the usual comparison.
func hsComparer(f func(argv []string, w, g *reply) (string, bool)) func(argv []string, w, g *reply) (string, bool) {
	return func(argv []string, w, g *reply) (string, bool) {
		if w.Kind == kStatus || g.Kind == kStatus {
			return "", false
		}
		return f(argv, w, g)
	}
}

// hsSPOPValid says whether two SPOP replies are alike but for the
// members drawn: the same kind, as many members, distinct.
func hsSPOPValid(argv []string, w, g *reply) bool {
	if len(argv) == 2 {
		return w.Kind == g.Kind && w.Kind == kBulk
	}
	a, ok1 := hsStrings(w)
	b, ok2 := hsStrings(g)
	return ok1 && ok2 && len(a) == len(b) && hsDistinct(b)
}

func (g *diffGen) member() string { return g.pick(diffMembers) }

func (g *diffGen) members(lo, hi int) []string {
	out := make([]string, lo+g.r.IntN(hi-lo+1))
	for i := range out {
		out[i] = g.member()
	}
	return out
}

func (g *diffGen) scanArgs(name, key string) []string {
	argv := []string{g.name(name), key, "0"}
	if g.chance(0.05) {
		argv[2] = g.pick([]string{"abc", "-1"})
	}
	if g.chance(0.4) {
		argv = append(argv, g.name("MATCH"), g.pick([]string{"*", "a*", "?", "1*", "f[12]", "[^a]*"}))
	}
	if g.chance(0.7) {
		argv = append(argv, g.name("COUNT"), g.pick([]string{"1000", "1000", "2", "0", "abc"}))
	}
	if g.chance(0.03) {
		argv = append(argv, "FOO")
	}
	return argv
}

func (g *diffGen) setCommand() []string {
	k := g.key()
	switch x := g.r.IntN(100); {
	case x < 18:
		return append([]string{g.name("SADD"), k}, g.members(1, 4)...)
	case x < 26:
		return append([]string{g.name("SREM"), k}, g.members(1, 3)...)
	case x < 32:
		return []string{g.name("SMEMBERS"), k}
	case x < 37:
		return []string{g.name("SISMEMBER"), k, g.member()}
	case x < 41:
		return append([]string{g.name("SMISMEMBER"), k}, g.members(1, 3)...)
	case x < 46:
		return []string{g.name("SCARD"), k}
	case x < 52:
		argv := []string{g.name("SPOP"), k}
		if g.chance(0.5) {
			argv = append(argv, g.pick(diffCounts))
		}
		return argv
	case x < 58:
		argv := []string{g.name("SRANDMEMBER"), k}
		if g.chance(0.7) {
			argv = append(argv, g.pick(diffCounts))
		}
		return argv
	case x < 64:
		return []string{g.name("SMOVE"), k, g.key(), g.member()}
	case x < 76:
		return append([]string{g.name(g.pick([]string{"SINTER", "SUNION", "SDIFF"}))}, g.keys(1, 3)...)
	case x < 86:
		return append([]string{g.name(g.pick([]string{"SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"})), k}, g.keys(1, 3)...)
	case x < 92:
		keys := g.keys(1, 3)
		n := strconv.Itoa(len(keys))
		if g.chance(0.1) {
			n = g.pick([]string{"0", "-1", "abc", "9"})
		}
		argv := append([]string{g.name("SINTERCARD"), n}, keys...)
		if g.chance(0.4) {
			argv = append(argv, g.name("LIMIT"), g.pick([]string{"0", "1", "2", "-1", "abc"}))
		}
		return argv
	case x < 97:
		return g.scanArgs("SSCAN", k)
	}
	// Wrong arity.
	return [][]string{{"SADD", k}, {"SREM", k}, {"SISMEMBER", k}, {"SMOVE", k, k}, {"SINTERSTORE", k}, {"SINTERCARD", "1"}, {"SPOP"}, {"SCARD", k, k}}[g.r.IntN(8)]
}

func init() {
	diffStages = append(diffStages, diffStage{name: "sets", command: (*diffGen).setCommand, fixed: diffFixedSets})
	unordered := func(argv []string, w, g *reply) (string, bool) { return hsSameSet(w, g), true }
	for _, n := range []string{"SMEMBERS", "SINTER", "SUNION", "SDIFF"} {
		diffComparers[n] = hsComparer(unordered)
	}
	diffComparers["SPOP"] = hsComparer(func(argv []string, w, g *reply) (string, bool) {
		if w.equal(g) || len(argv) == 3 && hsSameSet(w, g) == "" {
			return "", true
		}
		return "popped other members", true // allowed if well formed: hsSPOPValid
	})
	diffAllowed = append(diffAllowed, struct {
		reason string
		match  func(argv []string, redis, rc *reply) bool
	}{
		reason: "`SPOP` pops members at random, as Redis does: replies that differ are compared by their properties, then the key space is resynchronized.",
		match: func(argv []string, redis, rc *reply) bool {
			return strings.EqualFold(argv[0], "spop") && hsSPOPValid(argv, redis, rc)
		},
	})
	diffComparers["SRANDMEMBER"] = hsComparer(func(argv []string, w, g *reply) (string, bool) {
		if len(argv) == 2 {
			if w.Kind != g.Kind {
				return "different reply types", true
			}
			return "", true
		}
		n, _ := strconv.ParseInt(argv[2], 10, 64)
		return hsRandCompare(n, false, w, g), true
	})
	diffComparers["SSCAN"] = hsComparer(func(argv []string, w, g *reply) (string, bool) { return hsScanCompare(false, w, g) })
}

var diffFixedSets = [][][]string{
	{
		{"SADD", "k1", "a", "b", "c", "a"}, {"SADD", "k1", "a", "d"}, {"SCARD", "k1"}, {"SMEMBERS", "k1"}, {"SISMEMBER", "k1", "a"},
		{"SISMEMBER", "k1", "z"}, {"SISMEMBER", "nope", "a"}, {"SMISMEMBER", "k1", "a", "z", "d"}, {"SMISMEMBER", "nope", "a"},
		{"SREM", "k1", "a", "z"}, {"SREM", "nope", "a"}, {"SMEMBERS", "nope"}, {"SCARD", "nope"}, {"SREM", "k1", "b", "c", "d"},
		{"EXISTS", "k1"}, {"TYPE", "k1"}, {"SET", "k2", "v"}, {"SADD", "k2", "x"}, {"SMEMBERS", "k2"}, {"SCARD", "k2"},
		{"SISMEMBER", "k2", "v"}, {"SPOP", "k2"}, {"SRANDMEMBER", "k2"}, {"SADD", "k3", "1", "2", "3"}, {"OBJECT", "ENCODING", "k3"},
		{"SADD", "k3", "x"}, {"OBJECT", "ENCODING", "k3"}, {"SREM", "k3", "x"}, {"OBJECT", "ENCODING", "k3"}, {"TYPE", "k3"},
	},
	{
		{"SADD", "k1", "1", "2", "3", "4"}, {"SADD", "k2", "3", "4", "5"}, {"SADD", "k3", "4", "9"}, {"SINTER", "k1", "k2"},
		{"SINTER", "k1", "k2", "k3"}, {"SINTER", "k1", "nope"}, {"SUNION", "k1", "k2", "nope"}, {"SDIFF", "k1", "k2"},
		{"SDIFF", "nope", "k1"}, {"SDIFF", "k1", "nope"}, {"SINTERSTORE", "n1", "k1", "k2"}, {"SMEMBERS", "n1"},
		{"SUNIONSTORE", "n1", "k1", "k3"}, {"SCARD", "n1"}, {"SDIFFSTORE", "n1", "k1", "k1"}, {"EXISTS", "n1"},
		{"SET", "n2", "s"}, {"SINTERSTORE", "n2", "k1", "k2"}, {"TYPE", "n2"}, {"SINTER", "k1", "n2"}, {"SUNIONSTORE", "n1", "n2"},
		{"SINTERCARD", "2", "k1", "k2"}, {"SINTERCARD", "2", "k1", "k2", "LIMIT", "1"}, {"SINTERCARD", "2", "k1", "k2", "LIMIT", "0"},
		{"SINTERCARD", "0", "k1"}, {"SINTERCARD", "3", "k1", "k2"}, {"SINTERCARD", "1", "k1", "LIMIT", "-1"}, {"SINTERCARD", "1", "k1", "FOO"},
		{"SINTERCARD", "1", "n2"}, {"SINTERSTORE", "k1", "k1", "nope"}, {"EXISTS", "k1"},
	},
	{
		{"SADD", "k1", "a"}, {"SPOP", "k1"}, {"EXISTS", "k1"}, {"SPOP", "k1"}, {"SPOP", "k1", "3"}, {"SADD", "k1", "a", "b"},
		{"SPOP", "k1", "5"}, {"EXISTS", "k1"}, {"SADD", "k1", "a"}, {"SPOP", "k1", "0"}, {"SPOP", "k1", "-1"}, {"SPOP", "k1", "abc"},
		{"SPOP", "k1", "1", "2"}, {"SRANDMEMBER", "k1", "-3"}, {"SRANDMEMBER", "k1", "3"}, {"SRANDMEMBER", "k1", "0"},
		{"SRANDMEMBER", "nope", "3"}, {"SRANDMEMBER", "nope"}, {"SRANDMEMBER", "k1", "abc"}, {"SRANDMEMBER", "k1", "-9223372036854775808"},
		{"SADD", "k2", "x"}, {"SMOVE", "k1", "k2", "a"}, {"EXISTS", "k1"}, {"SMEMBERS", "k2"}, {"SMOVE", "k2", "k2", "a"},
		{"SMOVE", "k2", "k2", "z"}, {"SMOVE", "nope", "k2", "a"}, {"SET", "n1", "v"}, {"SMOVE", "k2", "n1", "a"}, {"SMOVE", "n1", "k2", "a"},
		{"SMOVE", "k2", "k3", "a"}, {"SMOVE", "k2", "k3", "x"}, {"EXISTS", "k2"}, {"SMEMBERS", "k3"},
	},
	{
		{"SADD", "k1", "a1", "a2", "b1", "1", "2"}, {"SSCAN", "k1", "0"}, {"SSCAN", "k1", "0", "MATCH", "a*"}, {"SSCAN", "k1", "0", "COUNT", "1000"},
		{"SSCAN", "k1", "abc"}, {"SSCAN", "k1", "0", "COUNT", "0"}, {"SSCAN", "k1", "0", "FOO", "1"}, {"SSCAN", "nope", "0"},
		{"SADD", "k2", "1", "2", "3"}, {"SSCAN", "k2", "0", "COUNT", "1"}, {"SET", "n1", "v"}, {"SSCAN", "n1", "0"},
	},
}
