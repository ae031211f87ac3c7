package fsm

import (
	"bytes"
	"math"
	"math/big"
	"strconv"
)

// Hash commands, with Redis 7.0's replies and errors (t_hash.c).

func init() {
	rw := FlagWrite | FlagDenyOOM
	ro := FlagReadOnly
	k1 := func(s *Spec) *Spec { s.FirstKey, s.LastKey, s.Step, s.Level = 1, 1, 1, LevelTypes; return s }
	register(
		k1(&Spec{Name: "hset", Arity: -4, Flags: rw | FlagFast, run: cmdHSet(false)}),
		k1(&Spec{Name: "hmset", Arity: -4, Flags: rw | FlagFast, run: cmdHSet(true)}),
		k1(&Spec{Name: "hsetnx", Arity: 4, Flags: rw | FlagFast, run: cmdHSetNX}),
		k1(&Spec{Name: "hget", Arity: 3, Flags: ro | FlagFast, run: cmdHGet}),
		k1(&Spec{Name: "hmget", Arity: -3, Flags: ro | FlagFast, run: cmdHMGet}),
		k1(&Spec{Name: "hgetall", Arity: 2, Flags: ro, run: cmdHGetAll(true, true)}),
		k1(&Spec{Name: "hkeys", Arity: 2, Flags: ro, run: cmdHGetAll(true, false)}),
		k1(&Spec{Name: "hvals", Arity: 2, Flags: ro, run: cmdHGetAll(false, true)}),
		k1(&Spec{Name: "hdel", Arity: -3, Flags: FlagWrite | FlagFast, run: cmdHDel}),
		k1(&Spec{Name: "hexists", Arity: 3, Flags: ro | FlagFast, run: cmdHExists}),
		k1(&Spec{Name: "hlen", Arity: 2, Flags: ro | FlagFast, run: cardinality(TypeHash)}),
		k1(&Spec{Name: "hstrlen", Arity: 3, Flags: ro | FlagFast, run: cmdHStrlen}),
		k1(&Spec{Name: "hincrby", Arity: 4, Flags: rw | FlagFast, run: cmdHIncrBy}),
		k1(&Spec{Name: "hincrbyfloat", Arity: 4, Flags: rw | FlagFast, run: cmdHIncrByFloat}),
		k1(&Spec{Name: "hrandfield", Arity: -2, Flags: ro, run: cmdHRandField}),
		k1(&Spec{Name: "hscan", Arity: -3, Flags: ro, run: cmdHScan}),
	)
}

// hashOf returns the hash under key for a read command.
func (t *Tx) hashOf(key []byte) (*hashObj, bool, bool) {
	it, found, wrong := t.readTyped(key, TypeHash)
	if !found {
		return nil, false, wrong
	}
	return it.obj.(*hashObj), true, false
}

// checkValues refuses values over the value limit (a hash field's value
// is bounded as a string is).
func (t *Tx) checkValues(vals ...[]byte) (Reply, bool) {
	for _, v := range vals {
		if rep, ok := t.checkValue(v); !ok {
			return rep, false
		}
	}
	return Reply{}, true
}

func cmdHSet(hmset bool) func(*Tx, [][]byte) Reply {
	return func(t *Tx, a [][]byte) Reply {
		if len(a)%2 != 0 {
			return replyArity(string(bytes.ToLower(a[0])))
		}
		for i := 3; i < len(a); i += 2 {
			if rep, ok := t.checkValues(a[i]); !ok {
				return rep
			}
		}
		it, _, wrong := t.mutable(a[1], TypeHash, newHash)
		if wrong {
			return replyWrongType
		}
		h := it.obj.(*hashObj)
		n := 0
		for i := 2; i < len(a); i += 2 {
			if h.set(string(a[i]), bytes.Clone(a[i+1])) {
				n++
			}
		}
		t.save(it)
		t.event("hset", it.key)
		if hmset {
			return replyOK
		}
		return intReply(int64(n))
	}
}

func cmdHSetNX(t *Tx, a [][]byte) Reply {
	if rep, ok := t.checkValues(a[3]); !ok {
		return rep
	}
	cur, found, wrong := t.typed(a[1], TypeHash)
	if wrong {
		return replyWrongType
	}
	if found {
		if _, ok := cur.obj.(*hashObj).get(string(a[2])); ok {
			return intReply(0)
		}
	}
	it, _, _ := t.mutable(a[1], TypeHash, newHash)
	it.obj.(*hashObj).set(string(a[2]), bytes.Clone(a[3]))
	t.save(it)
	t.event("hset", it.key)
	return intReply(1)
}

func cmdHGet(t *Tx, a [][]byte) Reply {
	h, found, wrong := t.hashOf(a[1])
	if wrong {
		return replyWrongType
	}
	if found {
		if v, ok := h.get(string(a[2])); ok {
			return bulkReply(v)
		}
	}
	return replyNull
}

func cmdHMGet(t *Tx, a [][]byte) Reply {
	h, found, wrong := t.hashOf(a[1])
	if wrong {
		return replyWrongType
	}
	out := make([]Reply, len(a)-2)
	for i, f := range a[2:] {
		out[i] = replyNull
		if found {
			if v, ok := h.get(string(f)); ok {
				out[i] = bulkReply(v)
			}
		}
	}
	return arrayReply(out)
}

// cmdHGetAll is HGETALL (a map), HKEYS and HVALS (arrays).
func cmdHGetAll(keys, vals bool) func(*Tx, [][]byte) Reply {
	return func(t *Tx, a [][]byte) Reply {
		h, found, wrong := t.hashOf(a[1])
		if wrong {
			return replyWrongType
		}
		kind := KindArray
		if keys && vals {
			kind = KindMap
		}
		if !found {
			return Reply{Kind: kind, Elems: []Reply{}}
		}
		out := make([]Reply, 0, h.length()*2)
		h.t.Ascend(func(x hfield) bool {
			if keys {
				out = append(out, bulkReply([]byte(x.f)))
			}
			if vals {
				out = append(out, bulkReply(x.v))
			}
			return true
		})
		return Reply{Kind: kind, Elems: out}
	}
}

func cmdHDel(t *Tx, a [][]byte) Reply {
	it, found, wrong := t.mutable(a[1], TypeHash, nil)
	if wrong {
		return replyWrongType
	}
	if !found {
		return intReply(0)
	}
	h := it.obj.(*hashObj)
	n := 0
	for _, f := range a[2:] {
		if h.del(string(f)) {
			n++
		}
	}
	if n > 0 {
		t.save(it)
		t.event("hdel", it.key)
		if h.length() == 0 {
			t.event("del", it.key)
		}
	}
	return intReply(int64(n))
}

func cmdHExists(t *Tx, a [][]byte) Reply {
	h, found, wrong := t.hashOf(a[1])
	if wrong {
		return replyWrongType
	}
	if !found {
		return intReply(0)
	}
	_, ok := h.get(string(a[2]))
	return boolReply(ok)
}

func cmdHStrlen(t *Tx, a [][]byte) Reply {
	h, found, wrong := t.hashOf(a[1])
	if wrong {
		return replyWrongType
	}
	if found {
		if v, ok := h.get(string(a[2])); ok {
			return intReply(int64(len(v)))
		}
	}
	return intReply(0)
}

func cmdHIncrBy(t *Tx, a [][]byte) Reply {
	by, ok := ParseInt(a[3])
	if !ok {
		return replyNotInteger
	}
	it, _, wrong := t.mutable(a[1], TypeHash, newHash)
	if wrong {
		return replyWrongType
	}
	h := it.obj.(*hashObj)
	var v int64
	if cur, ok := h.get(string(a[2])); ok {
		if v, ok = ParseInt(cur); !ok {
			return cmdErr(ErrNotInteger, "ERR hash value is not an integer")
		}
	}
	if by > 0 && v > math.MaxInt64-by || by < 0 && v < math.MinInt64-by {
		return replyOverflow
	}
	v += by
	h.set(string(a[2]), strconv.AppendInt(nil, v, 10))
	t.save(it)
	t.event("hincrby", it.key)
	return intReply(v)
}

func cmdHIncrByFloat(t *Tx, a [][]byte) Reply {
	by, ok := parseLongDouble(a[3])
	if !ok {
		return replyNotFloat
	}
	if by.IsInf() {
		return cmdErr(ErrSyntax, "ERR value is NaN or Infinity")
	}
	it, _, wrong := t.mutable(a[1], TypeHash, newHash)
	if wrong {
		return replyWrongType
	}
	h := it.obj.(*hashObj)
	cur := new(big.Float)
	if b, ok := h.get(string(a[2])); ok {
		if cur, ok = parseLongDouble(b); !ok {
			return cmdErr(ErrNotInteger, "ERR hash value is not a float")
		}
	}
	sum, ok := addLongDouble(cur, by)
	if !ok {
		return cmdErr(ErrNotInteger, "ERR increment would produce NaN or Infinity")
	}
	v := formatLongDouble(sum)
	if rep, ok := t.checkValues(v); !ok {
		return rep
	}
	h.set(string(a[2]), v)
	t.save(it)
	t.event("hincrbyfloat", it.key)
	return bulkReply(v)
}

// cmdHRandField is HRANDFIELD key [count [WITHVALUES]]. A positive count
// answers distinct fields, a negative one may repeat them. Inside Apply
// (MULTI, scripts) the draws are seeded by the entry.
func cmdHRandField(t *Tx, a [][]byte) Reply {
	var count int64
	if len(a) > 2 {
		var ok bool
		if count, ok = ParseInt(a[2]); !ok {
			return replyNotInteger
		}
		if count == math.MinInt64 {
			return replyCountRange
		}
	}
	if len(a) > 4 || len(a) == 4 && !eq(a[3], "withvalues") {
		return replySyntax
	}
	h, found, wrong := t.hashOf(a[1])
	if wrong {
		return replyWrongType
	}
	r := t.randN()
	key := func(x hfield) string { return x.f }
	probe := func(s string) hfield { return hfield{f: s} }
	if len(a) == 2 {
		if !found {
			return replyNull
		}
		return bulkReply([]byte(randomPick(h.t, r, key, probe).f))
	}
	withValues := len(a) == 4
	if withValues && (count < -math.MaxInt64/2 || count > math.MaxInt64/2 && t.s.clusterLevel() >= LevelRedisFixes) {
		return cmdErr(ErrSyntax, "ERR value is out of range")
	}
	if !found || count == 0 {
		return arrayReply([]Reply{})
	}
	var picks []hfield
	switch n := h.length(); {
	case count < 0:
		if -count > maxRandCount {
			return replyRandCount()
		}
		for i := int64(0); i < -count; i++ {
			picks = append(picks, randomPick(h.t, r, key, probe))
		}
	case count >= int64(n):
		h.t.Ascend(func(x hfield) bool { picks = append(picks, x); return true })
	default:
		picks = pickDistinct(h.t, int(count), r, key, probe)
		shuffle(picks, r)
	}
	out := make([]Reply, 0, len(picks)*2)
	for _, x := range picks {
		out = append(out, bulkReply([]byte(x.f)))
		if withValues {
			out = append(out, bulkReply(x.v))
		}
	}
	if withValues {
		return pairsReply(out) // RESP3: [field, value] pairs, as Redis 7.0
	}
	return arrayReply(out)
}

// shuffle puts a distinct pick (drawn in tree order) in random order.
func shuffle[T any](xs []T, r func(int) int) {
	for i := len(xs) - 1; i > 0; i-- {
		j := r(i + 1)
		xs[i], xs[j] = xs[j], xs[i]
	}
}

// cmdHScan is HSCAN key cursor [MATCH pattern] [COUNT count]. A hash that
// Redis keeps as a listpack (128 fields or fewer, each of 64 bytes or
// fewer) is answered whole in one page with cursor 0, as Redis does.
func cmdHScan(t *Tx, a [][]byte) Reply {
	if _, rep, ok := scanCursor(a); !ok {
		return rep
	}
	h, found, wrong := t.hashOf(a[1])
	if wrong {
		return replyWrongType
	}
	if !found {
		return t.collScanReply(false, "", []Reply{})
	}
	s, rep, ok := t.parseCollScan(a, h.encoding() == "listpack")
	if !ok {
		return rep
	}
	count := s.count
	if h.encoding() == "listpack" {
		// Redis answers a compact hash whole, whatever the cursor.
		count, s.resume, s.after = h.length(), false, ""
	}
	var out []Reply
	seen, last, more := 0, "", false
	h.t.AscendGreaterOrEqual(hfield{f: s.after}, func(x hfield) bool {
		if s.resume && x.f == s.after {
			return true
		}
		if seen == count {
			more = true
			return false
		}
		seen++
		last = x.f
		if s.pattern == nil || GlobMatch(s.pattern, []byte(x.f)) {
			out = append(out, bulkReply([]byte(x.f)), bulkReply(x.v))
		}
		return true
	})
	if out == nil {
		out = []Reply{}
	}
	return t.collScanReply(more, last, out)
}
