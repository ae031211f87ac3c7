package fsm

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// Sorted set commands, with Redis 7.0's replies, options and errors (the
// order in which Redis checks arguments included: an error a client sees
// for a bad command is the one Redis gives). The structure is in
// type_zset.go, score parsing and printing in zset_parse.go.

func init() {
	rw := FlagWrite | FlagDenyOOM
	ro := FlagReadOnly
	one := func(s *Spec) *Spec { s.FirstKey, s.LastKey, s.Step, s.Level = 1, 1, 1, LevelTypes; return s }
	register(
		one(&Spec{Name: "zadd", Arity: -4, Flags: rw | FlagFast, run: func(t *Tx, a [][]byte) Reply { return zadd(t, a, false) }}),
		one(&Spec{Name: "zincrby", Arity: 4, Flags: rw | FlagFast, run: func(t *Tx, a [][]byte) Reply { return zadd(t, a, true) }}),
		one(&Spec{Name: "zrem", Arity: -3, Flags: FlagWrite | FlagFast, run: cmdZRem}),
		one(&Spec{Name: "zscore", Arity: 3, Flags: ro | FlagFast, run: cmdZScore}),
		one(&Spec{Name: "zmscore", Arity: -3, Flags: ro | FlagFast, run: cmdZMScore}),
		one(&Spec{Name: "zcard", Arity: 2, Flags: ro | FlagFast, run: cardinality(TypeZSet)}),
		one(&Spec{Name: "zcount", Arity: 4, Flags: ro | FlagFast, run: cmdZCount}),
		one(&Spec{Name: "zlexcount", Arity: 4, Flags: ro | FlagFast, run: cmdZLexCount}),
		one(&Spec{Name: "zrange", Arity: -4, Flags: ro, run: zrangeCmd(zrAuto, false, false)}),
		one(&Spec{Name: "zrevrange", Arity: -4, Flags: ro, run: zrangeCmd(zrRank, true, true)}),
		one(&Spec{Name: "zrangebyscore", Arity: -4, Flags: ro, run: zrangeCmd(zrScore, false, true)}),
		one(&Spec{Name: "zrevrangebyscore", Arity: -4, Flags: ro, run: zrangeCmd(zrScore, true, true)}),
		one(&Spec{Name: "zrangebylex", Arity: -4, Flags: ro, run: zrangeCmd(zrLex, false, true)}),
		one(&Spec{Name: "zrevrangebylex", Arity: -4, Flags: ro, run: zrangeCmd(zrLex, true, true)}),
		one(&Spec{Name: "zrank", Arity: 3, Flags: ro | FlagFast, run: func(t *Tx, a [][]byte) Reply { return zrank(t, a, false) }}),
		one(&Spec{Name: "zrevrank", Arity: 3, Flags: ro | FlagFast, run: func(t *Tx, a [][]byte) Reply { return zrank(t, a, true) }}),
		one(&Spec{Name: "zremrangebyscore", Arity: 4, Flags: FlagWrite, run: zremrange(zrScore)}),
		one(&Spec{Name: "zremrangebyrank", Arity: 4, Flags: FlagWrite, run: zremrange(zrRank)}),
		one(&Spec{Name: "zremrangebylex", Arity: 4, Flags: FlagWrite, run: zremrange(zrLex)}),
		one(&Spec{Name: "zpopmin", Arity: -2, Flags: FlagWrite | FlagFast, run: func(t *Tx, a [][]byte) Reply { return cmdZPop(t, a, false) }}),
		one(&Spec{Name: "zpopmax", Arity: -2, Flags: FlagWrite | FlagFast, run: func(t *Tx, a [][]byte) Reply { return cmdZPop(t, a, true) }}),
		one(&Spec{Name: "zrandmember", Arity: -2, Flags: ro, run: cmdZRandMember}),
		one(&Spec{Name: "zscan", Arity: -3, Flags: ro, run: cmdZScan}),
		&Spec{Name: "zunionstore", Arity: -4, Flags: rw, FirstKey: 1, LastKey: 1, Step: 1, keys: zstoreKeys, Level: LevelTypes, run: zstore(false)},
		&Spec{Name: "zinterstore", Arity: -4, Flags: rw, FirstKey: 1, LastKey: 1, Step: 1, keys: zstoreKeys, Level: LevelTypes, run: zstore(true)},
	)
}

// KindPairs replies (ZRANGE WITHSCORES, ZPOPMIN with a count...) hold
// member, score, member, score... in Elems: RESP2 sends them flat, RESP3
// as an array of [member, score] arrays, as Redis 7.0 does.
func pairsReply(e []Reply) Reply { return Reply{Kind: KindPairs, Elems: e} }

func doubleReply(f float64) Reply { return Reply{Kind: KindDouble, Float: f} }

var (
	replyNotFloat    = cmdErr(ErrSyntax, "ERR value is not a valid float")
	replyNaNScore    = cmdErr(ErrSyntax, "ERR resulting score is not a number (NaN)")
	replyMinMaxFloat = cmdErr(ErrSyntax, "ERR min or max is not a float")
	replyMinMaxLex   = cmdErr(ErrSyntax, "ERR min or max not valid string range item")
	replyEmptyArray  = arrayReply([]Reply{})
	replyNotPositive = cmdErr(ErrSyntax, "ERR value is out of range, must be positive")
)

// zsetOf returns the sorted set under key for a read.
func (t *Tx) zsetOf(key []byte) (z *zset, found, wrong bool) {
	it, found, wrong := t.readTyped(key, TypeZSet)
	if !found {
		return nil, false, wrong
	}
	return it.obj.(*zset), true, false
}

// --- ZADD, ZINCRBY, ZREM --------------------------------------------------------

func zadd(t *Tx, a [][]byte, zincrby bool) Reply {
	var nx, xx, gt, lt, ch bool
	incr := zincrby
	i := 2
	for ; i < len(a); i++ {
		switch o := a[i]; {
		case eq(o, "nx"):
			nx = true
		case eq(o, "xx"):
			xx = true
		case eq(o, "ch"):
			ch = true
		case eq(o, "incr"):
			incr = true
		case eq(o, "gt"):
			gt = true
		case eq(o, "lt"):
			lt = true
		default:
			goto pairs
		}
	}
pairs:
	n := len(a) - i
	switch {
	case n == 0 || n%2 == 1:
		return replySyntax
	case nx && xx:
		return cmdErr(ErrSyntax, "ERR XX and NX options at the same time are not compatible")
	case gt && nx || lt && nx || gt && lt:
		return cmdErr(ErrSyntax, "ERR GT, LT, and/or NX options at the same time are not compatible")
	case incr && n > 2:
		return cmdErr(ErrSyntax, "ERR INCR option supports a single increment-element pair")
	}
	scores := make([]float64, n/2)
	for j := range scores {
		s, ok := parseScore(a[i+2*j])
		if !ok {
			return replyNotFloat
		}
		scores[j] = s
		if rep, ok := t.checkValue(a[i+2*j+1]); !ok {
			return rep
		}
	}
	var create func() object
	if !xx {
		create = func() object { return newZSet() }
	}
	it, found, wrong := t.mutable(a[1], TypeZSet, create)
	switch {
	case wrong:
		return replyWrongType
	case it == nil: // XX on a missing key
		if incr {
			return replyNull
		}
		return intReply(0)
	}
	z := it.obj.(*zset)
	added, updated, processed := 0, 0, 0
	var score float64
	for j, s := range scores {
		m := string(a[i+2*j+1])
		cur, exists := z.score(m)
		switch {
		case exists && nx, !exists && xx:
			continue
		case exists:
			if incr {
				s = float64(s + cur)
				if math.IsNaN(s) {
					return replyNaNScore // INCR: the only pair, nothing changed yet
				}
			}
			if lt && s >= cur || gt && s <= cur {
				continue
			}
			if s != cur {
				z.update(m, cur, s)
				updated++
			}
		default:
			z.add(m, s)
			added++
		}
		processed++
		score = s
	}
	if added+updated > 0 {
		ev := "zadd"
		if incr {
			ev = "zincr"
		}
		t.zsaved(it, found, ev)
	}
	if incr {
		if processed > 0 {
			return doubleReply(score)
		}
		return replyNull
	}
	if ch {
		return intReply(int64(added + updated))
	}
	return intReply(int64(added))
}

// zsaved saves a changed sorted set and records Redis's events: ev, and
// "del" when the change emptied the key.
func (t *Tx) zsaved(it *item, found bool, ev string) {
	t.save(it)
	t.event(ev, it.key)
	if it.obj.length() == 0 && found {
		t.event("del", it.key)
	}
}

func cmdZRem(t *Tx, a [][]byte) Reply {
	it, found, wrong := t.mutable(a[1], TypeZSet, nil)
	if wrong {
		return replyWrongType
	}
	if !found {
		return intReply(0)
	}
	z := it.obj.(*zset)
	n := 0
	for _, m := range a[2:] {
		if _, ok := z.remove(string(m)); ok {
			n++
		}
		if z.length() == 0 {
			break
		}
	}
	if n > 0 {
		t.zsaved(it, found, "zrem")
	}
	return intReply(int64(n))
}

// --- single reads -------------------------------------------------------------------

func cmdZScore(t *Tx, a [][]byte) Reply {
	z, found, wrong := t.zsetOf(a[1])
	switch {
	case wrong:
		return replyWrongType
	case !found:
		return replyNull
	}
	if s, ok := z.score(string(a[2])); ok {
		return doubleReply(s)
	}
	return replyNull
}

func cmdZMScore(t *Tx, a [][]byte) Reply {
	z, found, wrong := t.zsetOf(a[1])
	if wrong {
		return replyWrongType
	}
	out := make([]Reply, len(a)-2)
	for i, m := range a[2:] {
		out[i] = replyNull
		if found {
			if s, ok := z.score(string(m)); ok {
				out[i] = doubleReply(s)
			}
		}
	}
	return arrayReply(out)
}

func zrank(t *Tx, a [][]byte, rev bool) Reply {
	z, found, wrong := t.zsetOf(a[1])
	switch {
	case wrong:
		return replyWrongType
	case !found:
		return replyNull
	}
	r, ok := z.rank(string(a[2]))
	if !ok {
		return replyNull
	}
	if rev {
		r = z.length() - 1 - r
	}
	return intReply(int64(r))
}

// --- ranges ---------------------------------------------------------------------------

type zrangeType int

const (
	zrAuto zrangeType = iota
	zrRank
	zrScore
	zrLex
)

// span returns the ranks lo..hi (inclusive; empty when lo > hi) of the
// elements in r.
func (z *zset) scoreSpan(r scoreRange) (lo, hi int) {
	if r.empty() {
		return 0, -1
	}
	return z.below(r.min, r.minex), z.below(r.max, !r.maxex) - 1
}

// sameScore says whether every element has one score: the tree's order
// is then the members' order, and lex ranges are binary searches.
func (z *zset) sameScore() bool {
	n := z.length()
	return n == 0 || z.at(0).score == z.at(n-1).score
}

// lexSpan returns the ranks lo..hi of the elements in r, walking forward
// (rev false) or backward as Redis does. Redis defines lex ranges only
// for elements of one score; for others, it answers what its small-set
// encoding does (a linear walk), which this reproduces in O(n).
func (z *zset) lexSpan(r lexRange, rev bool) (lo, hi int) {
	n := z.length()
	if r.empty() || n == 0 {
		return 0, -1
	}
	if z.sameScore() {
		lo, hi = 0, n
		switch {
		case r.min.inf == 1:
			lo = n
		case r.min.inf == 0:
			lo = z.belowMember(r.min.s, r.min.ex)
		}
		switch {
		case r.max.inf == -1:
			hi = 0
		case r.max.inf == 0:
			hi = z.belowMember(r.max.s, !r.max.ex)
		}
		return lo, hi - 1
	}
	// Redis's listpack walk: the range is empty unless the last element
	// is past min and the first before max.
	if !r.gteMin(z.at(n-1).member) || !r.lteMax(z.at(0).member) {
		return 0, -1
	}
	if !rev {
		lo = -1
		z.ascend(0, func(e *znode) bool { lo++; return !r.gteMin(e.member) })
		hi = lo - 1
		z.ascend(lo, func(e *znode) bool {
			if !r.lteMax(e.member) {
				return false
			}
			hi++
			return true
		})
		return lo, hi
	}
	hi = n
	z.descend(n-1, func(e *znode) bool { hi--; return !r.lteMax(e.member) })
	lo = hi + 1
	z.descend(hi, func(e *znode) bool {
		if !r.gteMin(e.member) {
			return false
		}
		lo--
		return true
	})
	return lo, hi
}

// zrangeCmd is ZRANGE and its older forms, as Redis's zrangeGenericCommand:
// fixed is set for the forms whose range type and direction the name
// gives.
func zrangeCmd(kind zrangeType, rev, fixed bool) func(*Tx, [][]byte) Reply {
	return func(t *Tx, a [][]byte) Reply {
		rt, reverse := kind, rev
		withScores := false
		offset, limit := int64(0), int64(-1)
		for j := 4; j < len(a); j++ {
			left := len(a) - j - 1
			switch o := a[j]; {
			case eq(o, "withscores"):
				withScores = true
			case eq(o, "limit") && left >= 2:
				var ok bool
				if offset, ok = ParseInt(a[j+1]); !ok {
					return replyNotInteger
				}
				if limit, ok = ParseInt(a[j+2]); !ok {
					return replyNotInteger
				}
				j += 2
			case !fixed && eq(o, "rev") && !(reverse && t.s.clusterLevel() >= LevelRedisFixes): // once, as Redis (level 6 on)
				reverse = true
			case rt == zrAuto && eq(o, "bylex"):
				rt = zrLex
			case rt == zrAuto && eq(o, "byscore"):
				rt = zrScore
			default:
				return replySyntax
			}
		}
		if rt == zrAuto {
			rt = zrRank
		}
		if limit != -1 && rt == zrRank {
			return cmdErr(ErrSyntax, "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
		}
		if withScores && rt == zrLex {
			return cmdErr(ErrSyntax, "ERR syntax error, WITHSCORES not supported in combination with BYLEX")
		}
		lo, hi := a[2], a[3]
		if reverse && rt != zrRank {
			lo, hi = hi, lo
		}
		var start, end int64
		var sr scoreRange
		var lr lexRange
		var ok bool
		switch rt {
		case zrRank:
			if start, ok = ParseInt(lo); !ok {
				return replyNotInteger
			}
			if end, ok = ParseInt(hi); !ok {
				return replyNotInteger
			}
		case zrScore:
			if sr, ok = parseScoreRange(lo, hi); !ok {
				return replyMinMaxFloat
			}
		case zrLex:
			if lr, ok = parseLexRange(lo, hi); !ok {
				return replyMinMaxLex
			}
		}
		z, found, wrong := t.zsetOf(a[1])
		switch {
		case wrong:
			return replyWrongType
		case !found:
			return replyEmptyArray
		}
		n := int64(z.length())
		var first, last int64 // ranks, in walking order
		switch rt {
		case zrRank:
			if start < 0 {
				start += n
			}
			if end < 0 {
				end += n
			}
			start = max(start, 0)
			if start > end || start >= n {
				return zrangeReply(nil, withScores)
			}
			end = min(end, n-1)
			if reverse {
				first, last = n-1-start, n-1-end
			} else {
				first, last = start, end
			}
		default:
			var l, h int
			if rt == zrScore {
				l, h = z.scoreSpan(sr)
			} else {
				l, h = z.lexSpan(lr, reverse)
			}
			if offset < 0 || l > h {
				return zrangeReply(nil, withScores)
			}
			count := int64(h - l + 1)
			if offset >= count {
				return zrangeReply(nil, withScores)
			}
			count -= offset
			if limit >= 0 {
				count = min(count, limit)
			}
			if count == 0 {
				return zrangeReply(nil, withScores)
			}
			if reverse {
				first = int64(h) - offset
				last = first - count + 1
			} else {
				first = int64(l) + offset
				last = first + count - 1
			}
		}
		return zrangeReply(zwalk(z, int(first), int(last)), withScores)
	}
}

// zwalk returns the elements of ranks first..last, walking backward when
// last < first.
func zwalk(z *zset, first, last int) []*znode {
	var out []*znode
	if first <= last {
		out = make([]*znode, 0, last-first+1)
		z.ascend(first, func(n *znode) bool { out = append(out, n); return len(out) <= last-first })
	} else {
		out = make([]*znode, 0, first-last+1)
		z.descend(first, func(n *znode) bool { out = append(out, n); return len(out) <= first-last })
	}
	return out
}

func zrangeReply(ns []*znode, withScores bool) Reply {
	if !withScores {
		out := make([]Reply, len(ns))
		for i, n := range ns {
			out[i] = bulkReply([]byte(n.member))
		}
		return arrayReply(out)
	}
	out := make([]Reply, 0, 2*len(ns))
	for _, n := range ns {
		out = append(out, bulkReply([]byte(n.member)), doubleReply(n.score))
	}
	return pairsReply(out)
}

func cmdZCount(t *Tx, a [][]byte) Reply {
	r, ok := parseScoreRange(a[2], a[3])
	if !ok {
		return replyMinMaxFloat
	}
	z, found, wrong := t.zsetOf(a[1])
	switch {
	case wrong:
		return replyWrongType
	case !found:
		return intReply(0)
	}
	lo, hi := z.scoreSpan(r)
	return intReply(int64(max(0, hi-lo+1)))
}

func cmdZLexCount(t *Tx, a [][]byte) Reply {
	r, ok := parseLexRange(a[2], a[3])
	if !ok {
		return replyMinMaxLex
	}
	z, found, wrong := t.zsetOf(a[1])
	switch {
	case wrong:
		return replyWrongType
	case !found:
		return intReply(0)
	}
	lo, hi := z.lexSpan(r, false)
	return intReply(int64(max(0, hi-lo+1)))
}

// zremrange is ZREMRANGEBYRANK, ZREMRANGEBYSCORE and ZREMRANGEBYLEX.
func zremrange(rt zrangeType) func(*Tx, [][]byte) Reply {
	return func(t *Tx, a [][]byte) Reply {
		var start, end int64
		var sr scoreRange
		var lr lexRange
		var ok bool
		ev := "zremrangebyrank"
		switch rt {
		case zrRank:
			if start, ok = ParseInt(a[2]); !ok {
				return replyNotInteger
			}
			if end, ok = ParseInt(a[3]); !ok {
				return replyNotInteger
			}
		case zrScore:
			ev = "zremrangebyscore"
			if sr, ok = parseScoreRange(a[2], a[3]); !ok {
				return replyMinMaxFloat
			}
		case zrLex:
			ev = "zremrangebylex"
			if lr, ok = parseLexRange(a[2], a[3]); !ok {
				return replyMinMaxLex
			}
		}
		it, found, wrong := t.mutable(a[1], TypeZSet, nil)
		switch {
		case wrong:
			return replyWrongType
		case !found:
			return intReply(0)
		}
		z := it.obj.(*zset)
		var lo, hi int
		switch rt {
		case zrRank:
			n := int64(z.length())
			if start < 0 {
				start += n
			}
			if end < 0 {
				end += n
			}
			start = max(start, 0)
			if start > end || start >= n {
				return intReply(0)
			}
			lo, hi = int(start), int(min(end, n-1))
		case zrScore:
			lo, hi = z.scoreSpan(sr)
		case zrLex:
			lo, hi = z.lexSpan(lr, false)
		}
		if lo > hi {
			return intReply(0)
		}
		n := z.removeRange(lo, hi)
		t.zsaved(it, found, ev)
		return intReply(int64(n))
	}
}

// --- ZPOPMIN, ZPOPMAX ----------------------------------------------------------------

func cmdZPop(t *Tx, a [][]byte, max bool) Reply {
	if len(a) > 3 {
		return replySyntax
	}
	count := -1
	if len(a) == 3 {
		n, ok := ParseInt(a[2])
		if !ok || n < 0 {
			return replyNotPositive
		}
		count = int(min(n, math.MaxInt32))
	}
	return zpop(t, a[1], max, count)
}

// zpop pops from the sorted set under key: the lowest scores (the highest
// with max). count < 0 is the plain form, one element as a flat [member,
// score] array; count >= 0 pops up to count elements, a KindPairs reply.
// A missing key answers an empty array; a key of another type
// WRONGTYPE. It is the non-blocking half of BZPOPMIN/BZPOPMAX.
func zpop(t *Tx, key []byte, max bool, count int) Reply {
	it, found, wrong := t.mutable(key, TypeZSet, nil)
	switch {
	case wrong:
		return replyWrongType
	case !found || count == 0:
		return replyEmptyArray
	}
	z := it.obj.(*zset)
	k := count
	if k < 0 {
		k = 1
	}
	k = min(k, z.length())
	out := make([]Reply, 0, 2*k)
	for range k {
		var n *znode
		if max {
			n = z.at(z.length() - 1)
		} else {
			n = z.at(0)
		}
		out = append(out, bulkReply([]byte(n.member)), doubleReply(n.score))
		z.remove(n.member)
	}
	ev := "zpopmin"
	if max {
		ev = "zpopmax"
	}
	t.zsaved(it, found, ev)
	if count < 0 {
		return arrayReply(out)
	}
	return pairsReply(out)
}

// --- ZRANDMEMBER -------------------------------------------------------------------------

// zsetRandMax bounds the elements one ZRANDMEMBER with a negative count
// returns (Redis has no bound; docs/api.md lists the difference).
const zsetRandMax = 1 << 20

// zrng draws random numbers: inside an entry from a generator seeded by
// the entry (every member draws the same), in a view from math/rand/v2.
func (t *Tx) zrng() func(n int) int {
	if !t.write {
		return rand.IntN
	}
	return func(n int) int {
		t.seed += 0x9e3779b97f4a7c15
		z := t.seed
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		return int(z % uint64(n))
	}
}

func cmdZRandMember(t *Tx, a [][]byte) Reply {
	if len(a) == 2 {
		z, found, wrong := t.zsetOf(a[1])
		switch {
		case wrong:
			return replyWrongType
		case !found:
			return replyNull
		}
		return bulkReply([]byte(z.at(t.zrng()(z.length())).member))
	}
	l, ok := ParseInt(a[2])
	if !ok {
		return replyNotInteger
	}
	if l == math.MinInt64 {
		return cmdErr(ErrSyntax, "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
	}
	withScores := false
	if len(a) > 4 || len(a) == 4 && !eq(a[3], "withscores") {
		return replySyntax
	}
	if len(a) == 4 {
		withScores = true
		if l < -math.MaxInt64/2 || l > math.MaxInt64/2 {
			return cmdErr(ErrSyntax, "ERR value is out of range")
		}
	}
	z, found, wrong := t.zsetOf(a[1])
	switch {
	case wrong:
		return replyWrongType
	case !found || l == 0:
		return replyEmptyArray
	}
	n := z.length()
	rnd := t.zrng()
	var ns []*znode
	switch {
	case l < 0:
		if -l > zsetRandMax {
			return cmdErr(ErrSyntax, "ERR value is out of range (raftcache returns at most "+strconv.Itoa(zsetRandMax)+" random elements)")
		}
		ns = make([]*znode, -l)
		for i := range ns {
			ns[i] = z.at(rnd(n))
		}
	case l >= int64(n):
		// The whole set, in Redis's order for it (from the highest).
		ns = zwalk(z, n-1, 0)
	default:
		// Floyd's sampling: l distinct ranks, in the order drawn.
		seen := make(map[int]bool, l)
		ranks := make([]int, 0, l)
		for j := n - int(l); j < n; j++ {
			r := rnd(j + 1)
			if seen[r] {
				r = j
			}
			seen[r] = true
			ranks = append(ranks, r)
		}
		ns = make([]*znode, len(ranks))
		for i, r := range ranks {
			ns[i] = z.at(r)
		}
	}
	return zrangeReply(ns, withScores)
}

// --- ZSCAN ------------------------------------------------------------------------------------

// zsetSmall is the size up to which Redis 7.0 keeps a sorted set in its
// compact encoding (zset-max-listpack-entries 128, members of at most
// 64 bytes), for which ZSCAN answers every element in one page and prints
// integral scores as integers.
func (z *zset) small() bool {
	if z.length() > 128 {
		return false
	}
	small := true
	z.members.Ascend(func(e zmember) bool { small = len(e.m) <= 64; return small })
	return small
}

func cmdZScan(t *Tx, a [][]byte) Reply {
	cursor, ok := parseScanCursor(a[2])
	if !ok {
		return cmdErr(ErrSyntax, "ERR invalid cursor")
	}
	// Redis looks the key up before it reads the options.
	z, found, wrong := t.zsetOf(a[1])
	switch {
	case wrong:
		return replyWrongType
	case !found:
		return arrayReply([]Reply{bulkReply([]byte("0")), replyEmptyArray})
	}
	var pattern []byte
	count := int64(10)
	for i := 3; i < len(a); i += 2 {
		switch {
		case eq(a[i], "count") && i+1 < len(a):
			var ok bool
			if count, ok = ParseInt(a[i+1]); !ok {
				return replyNotInteger
			}
			if count < 1 {
				return replySyntax
			}
		case eq(a[i], "match") && i+1 < len(a):
			pattern = a[i+1]
			if len(pattern) == 1 && pattern[0] == '*' {
				pattern = nil
			}
		default:
			return replySyntax
		}
	}
	// A small set is answered whole, whatever the cursor, as Redis does.
	small := z.small()
	var after string
	if small {
		cursor, count = 0, math.MaxInt64
	} else if cursor != 0 {
		var ok bool
		if after, ok = t.f.cursors.get(cursor, t.now); !ok || len(after) == 0 || after[0] != 'z' {
			return cmdErr(ErrSyntax, "ERR invalid cursor: unknown or expired on this node (cursors live "+
				time.Duration(cursorTTL).String()+" on the node that issued them)")
		}
		after = after[1:]
	}
	count = min(count, maxScanCount)
	var out []Reply
	seen, last, more := int64(0), "", false
	fn := func(e zmember) bool {
		if cursor != 0 && e.m == after {
			return true
		}
		if seen == count {
			more = true
			return false
		}
		seen++
		last = e.m
		if pattern == nil || GlobMatch(pattern, []byte(e.m)) {
			s := FormatDouble(e.score)
			if small {
				s = formatScoreCompact(e.score)
			}
			out = append(out, bulkReply([]byte(e.m)), bulkReply([]byte(s)))
		}
		return true
	}
	if cursor != 0 {
		z.members.AscendGreaterOrEqual(zmember{m: after}, fn)
	} else {
		z.members.Ascend(fn)
	}
	next := uint64(0)
	if more {
		// "z": a position in a collection, never taken for a key's.
		next = t.f.cursors.put("z"+last, t.now)
	}
	return arrayReply([]Reply{bulkReply(strconv.AppendUint(nil, next, 10)), arrayReply(out)})
}

// parseScanCursor reads a cursor as Redis's strtoul: a sign is allowed
// (a negative number wraps), a blank first or anything after the digits
// is not, nor a number past 2^64-1.
func parseScanCursor(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, true // strtoul reads nothing, and nothing is left
	}
	neg := b[0] == '-'
	if b[0] == '-' || b[0] == '+' {
		b = b[1:]
	}
	if len(b) == 0 || !isDigit(b[0]) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// --- ZUNIONSTORE, ZINTERSTORE ---------------------------------------------------------

func zstoreKeys(a [][]byte) [][]byte {
	n, ok := ParseInt(a[2])
	if !ok || n < 1 || n > int64(len(a)-3) {
		return a[1:2]
	}
	return append([][]byte{a[1]}, a[3:3+n]...)
}

// zsetSource is what ZUNIONSTORE and ZINTERSTORE need of a plain set
// among their sources (Redis takes sets, each member with score 1); the
// set type has these methods. members lists them in a deterministic
// order (they are sorted).
type zsetSource interface {
	length() int
	has(member string) bool
	members() []string
}

type zsrc struct {
	z      *zset      // a sorted set, or
	set    zsetSource // a set, or neither (a missing key)
	weight float64
}

func (s *zsrc) length() int {
	switch {
	case s.z != nil:
		return s.z.length()
	case s.set != nil:
		return s.set.length()
	}
	return 0
}

func (s *zsrc) find(m string) (float64, bool) {
	switch {
	case s.z != nil:
		return s.z.score(m)
	case s.set != nil && s.set.has(m):
		return 1, true
	}
	return 0, false
}

func (s *zsrc) each(fn func(m string, score float64)) {
	switch {
	case s.z != nil:
		s.z.descend(s.z.length()-1, func(n *znode) bool { fn(n.member, n.score); return true })
	case s.set != nil:
		for _, m := range s.set.members() {
			fn(m, 1)
		}
	}
}

// zaggregate folds v into *acc as Redis's zunionInterAggregate: a sum of
// +inf and -inf is 0.
func zaggregate(acc *float64, v float64, agg byte) {
	switch agg {
	case 's':
		*acc = float64(*acc + v)
		if math.IsNaN(*acc) {
			*acc = 0
		}
	case 'n':
		if v < *acc {
			*acc = v
		}
	case 'x':
		if v > *acc {
			*acc = v
		}
	}
}

func zstore(inter bool) func(*Tx, [][]byte) Reply {
	name := "zunionstore"
	if inter {
		name = "zinterstore"
	}
	return func(t *Tx, a [][]byte) Reply {
		setnum, ok := ParseInt(a[2])
		if !ok {
			return replyNotInteger
		}
		if setnum < 1 {
			return cmdErr(ErrSyntax, "ERR at least 1 input key is needed for '"+name+"' command")
		}
		if setnum > int64(len(a)-3) {
			return replySyntax
		}
		src := make([]zsrc, setnum)
		for i := range src {
			src[i].weight = 1
			it, found := t.read(a[3+i])
			if !found {
				continue
			}
			switch o := it.obj.(type) {
			case *zset:
				src[i].z = o
			case zsetSource:
				if it.kind() != TypeSet {
					return replyWrongType
				}
				src[i].set = o
			default:
				return replyWrongType
			}
		}
		agg := byte('s')
		for j := 3 + int(setnum); j < len(a); {
			left := len(a) - j
			switch {
			case left >= int(setnum)+1 && eq(a[j], "weights"):
				j++
				for i := range src {
					w, ok := parseScore(a[j])
					if !ok {
						return cmdErr(ErrSyntax, "ERR weight value is not a float")
					}
					src[i].weight = w
					j++
				}
			case left >= 2 && eq(a[j], "aggregate"):
				switch {
				case eq(a[j+1], "sum"):
					agg = 's'
				case eq(a[j+1], "min"):
					agg = 'n'
				case eq(a[j+1], "max"):
					agg = 'x'
				default:
					return replySyntax
				}
				j += 2
			default:
				return replySyntax
			}
		}
		// Smallest first, in a stable order (glibc's qsort is a merge
		// sort): the order in which sums are taken decides their last bit.
		slices.SortStableFunc(src, func(x, y zsrc) int { return x.length() - y.length() })
		var elems []zmember
		if inter {
			if src[0].length() > 0 {
				src[0].each(func(m string, s float64) {
					score := float64(src[0].weight * s)
					if math.IsNaN(score) {
						score = 0
					}
					for j := 1; j < len(src); j++ {
						v, ok := src[j].find(m)
						if !ok {
							return
						}
						zaggregate(&score, float64(v*src[j].weight), agg)
					}
					elems = append(elems, zmember{m, score})
				})
			}
		} else {
			at := map[string]int{}
			for i := range src {
				src[i].each(func(m string, s float64) {
					score := float64(src[i].weight * s)
					if math.IsNaN(score) {
						score = 0
					}
					if k, ok := at[m]; ok {
						zaggregate(&elems[k].score, score, agg)
						return
					}
					at[m] = len(elems)
					elems = append(elems, zmember{m, score})
				})
			}
		}
		existed := false
		if _, found := t.lookup(a[1]); found {
			existed = true
		}
		z := zsetFrom(elems)
		t.putObject(string(a[1]), z, 0)
		if z.length() > 0 {
			t.event(name, string(a[1]))
		} else if existed {
			t.event("del", string(a[1]))
		}
		return intReply(int64(z.length()))
	}
}

// zsetFrom builds a sorted set of distinct members.
func zsetFrom(elems []zmember) *zset {
	z := newZSet()
	nodes := make([]*znode, len(elems))
	for i, e := range elems {
		e.score = zkeep(e.score)
		nodes[i] = &znode{member: e.m, score: e.score, size: 1, height: 1, tok: z.tok}
		z.members.ReplaceOrInsert(e)
		z.bytes += int64(len(e.m))
	}
	slices.SortFunc(nodes, func(x, y *znode) int { return zcmp(x.score, x.member, y) })
	z.root = buildBalanced(nodes)
	return z
}
