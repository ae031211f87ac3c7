package fsm

import (
	"math"
)

// Set commands, with Redis 7.0's replies and errors (t_set.c).

func init() {
	rw := FlagWrite | FlagDenyOOM
	ro := FlagReadOnly
	k1 := func(s *Spec) *Spec { s.FirstKey, s.LastKey, s.Step, s.Level = 1, 1, 1, LevelTypes; return s }
	kAll := func(s *Spec) *Spec { s.FirstKey, s.LastKey, s.Step, s.Level = 1, -1, 1, LevelTypes; return s }
	register(
		k1(&Spec{Name: "sadd", Arity: -3, Flags: rw | FlagFast, run: cmdSAdd}),
		k1(&Spec{Name: "srem", Arity: -3, Flags: FlagWrite | FlagFast, run: cmdSRem}),
		k1(&Spec{Name: "smembers", Arity: 2, Flags: ro, run: cmdSMembers}),
		k1(&Spec{Name: "sismember", Arity: 3, Flags: ro | FlagFast, run: cmdSIsMember}),
		k1(&Spec{Name: "smismember", Arity: -3, Flags: ro | FlagFast, run: cmdSMIsMember}),
		k1(&Spec{Name: "scard", Arity: 2, Flags: ro | FlagFast, run: cardinality(TypeSet)}),
		k1(&Spec{Name: "spop", Arity: -2, Flags: FlagWrite | FlagFast, run: cmdSPop}),
		k1(&Spec{Name: "srandmember", Arity: -2, Flags: ro, run: cmdSRandMember}),
		k1(&Spec{Name: "sscan", Arity: -3, Flags: ro, run: cmdSScan}),
		&Spec{Name: "smove", Arity: 4, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 2, Step: 1, Level: LevelTypes, run: cmdSMove},
		kAll(&Spec{Name: "sinter", Arity: -2, Flags: ro, run: cmdSetOp(opInter, false)}),
		kAll(&Spec{Name: "sunion", Arity: -2, Flags: ro, run: cmdSetOp(opUnion, false)}),
		kAll(&Spec{Name: "sdiff", Arity: -2, Flags: ro, run: cmdSetOp(opDiff, false)}),
		kAll(&Spec{Name: "sinterstore", Arity: -3, Flags: rw, run: cmdSetOp(opInter, true)}),
		kAll(&Spec{Name: "sunionstore", Arity: -3, Flags: rw, run: cmdSetOp(opUnion, true)}),
		kAll(&Spec{Name: "sdiffstore", Arity: -3, Flags: rw, run: cmdSetOp(opDiff, true)}),
		&Spec{Name: "sintercard", Arity: -3, Flags: ro, Level: LevelTypes, keys: numKeys(1), run: cmdSInterCard},
	)
}

// numKeys locates the keys of a "numkeys key..." command whose numkeys
// is argument i (SINTERCARD, ZUNIONSTORE...).
func numKeys(i int) func([][]byte) [][]byte {
	return func(a [][]byte) [][]byte {
		if i >= len(a) {
			return nil
		}
		n, ok := ParseInt(a[i])
		if !ok || n <= 0 || n > int64(len(a)-i-1) {
			return nil
		}
		return a[i+1 : i+1+int(n)]
	}
}

// setOf returns the set under key for a read command.
func (t *Tx) setOf(key []byte) (*setObj, bool, bool) {
	it, found, wrong := t.readTyped(key, TypeSet)
	if !found {
		return nil, false, wrong
	}
	return it.obj.(*setObj), true, false
}

func strReplies(ms []string) []Reply {
	out := make([]Reply, len(ms))
	for i, m := range ms {
		out[i] = bulkReply([]byte(m))
	}
	return out
}

func setReply(ms []string) Reply { return Reply{Kind: KindSet, Elems: strReplies(ms)} }

func cmdSAdd(t *Tx, a [][]byte) Reply {
	it, _, wrong := t.mutable(a[1], TypeSet, newSet)
	if wrong {
		return replyWrongType
	}
	s := it.obj.(*setObj)
	n := 0
	for _, m := range a[2:] {
		if s.add(string(m)) {
			n++
		}
	}
	if n > 0 {
		t.save(it)
		t.event("sadd", it.key)
	}
	return intReply(int64(n))
}

func cmdSRem(t *Tx, a [][]byte) Reply {
	it, found, wrong := t.mutable(a[1], TypeSet, nil)
	if wrong {
		return replyWrongType
	}
	if !found {
		return intReply(0)
	}
	s := it.obj.(*setObj)
	n := 0
	for _, m := range a[2:] {
		if s.remove(string(m)) {
			n++
		}
	}
	if n > 0 {
		t.save(it)
		t.event("srem", it.key)
		if s.length() == 0 {
			t.event("del", it.key)
		}
	}
	return intReply(int64(n))
}

func cmdSMembers(t *Tx, a [][]byte) Reply {
	s, found, wrong := t.setOf(a[1])
	if wrong {
		return replyWrongType
	}
	if !found {
		return setReply(nil)
	}
	return setReply(s.members())
}

func cmdSIsMember(t *Tx, a [][]byte) Reply {
	s, found, wrong := t.setOf(a[1])
	if wrong {
		return replyWrongType
	}
	return boolReply(found && s.has(string(a[2])))
}

func cmdSMIsMember(t *Tx, a [][]byte) Reply {
	s, found, wrong := t.setOf(a[1])
	if wrong {
		return replyWrongType
	}
	out := make([]Reply, len(a)-2)
	for i, m := range a[2:] {
		out[i] = boolReply(found && s.has(string(m)))
	}
	return arrayReply(out)
}

var (
	setKey   = func(m string) string { return m }
	setProbe = func(m string) string { return m }
)

// cmdSPop is SPOP key [count]: the members are drawn from a generator
// seeded by the entry, so every node pops the same ones.
func cmdSPop(t *Tx, a [][]byte) Reply {
	if len(a) > 3 {
		return replySyntax
	}
	count := int64(-1)
	if len(a) == 3 {
		n, ok := ParseInt(a[2])
		if !ok || n < 0 {
			return cmdErr(ErrSyntax, "ERR value is out of range, must be positive")
		}
		count = n
	}
	it, found, wrong := t.mutable(a[1], TypeSet, nil)
	if wrong {
		return replyWrongType
	}
	if !found {
		if count < 0 {
			return replyNull
		}
		return setReply(nil)
	}
	if count == 0 {
		return setReply(nil)
	}
	s := it.obj.(*setObj)
	r := t.randN()
	var popped []string
	switch {
	case count < 0:
		popped = []string{randomPick(s.t, r, setKey, setProbe)}
	case count >= int64(s.length()):
		popped = s.members()
	default:
		popped = pickDistinct(s.t, int(count), r, setKey, setProbe)
		shuffle(popped, r)
	}
	for _, m := range popped {
		s.remove(m)
	}
	t.save(it)
	t.event("spop", it.key)
	if s.length() == 0 {
		t.event("del", it.key)
	}
	if count < 0 {
		return bulkReply([]byte(popped[0]))
	}
	return setReply(popped)
}

// cmdSRandMember is SRANDMEMBER key [count]: distinct members for a
// positive count, repetitions allowed for a negative one.
func cmdSRandMember(t *Tx, a [][]byte) Reply {
	if len(a) > 3 {
		return replySyntax
	}
	var count int64
	if len(a) == 3 {
		var ok bool
		if count, ok = ParseInt(a[2]); !ok {
			return replyNotInteger
		}
		if count == math.MinInt64 {
			return replyCountRange
		}
	}
	s, found, wrong := t.setOf(a[1])
	if wrong {
		return replyWrongType
	}
	r := t.randN()
	if len(a) == 2 {
		if !found {
			return replyNull
		}
		return bulkReply([]byte(randomPick(s.t, r, setKey, setProbe)))
	}
	if !found || count == 0 {
		return arrayReply([]Reply{})
	}
	var picks []string
	switch {
	case count < 0:
		if -count > maxRandCount {
			return replyRandCount()
		}
		for i := int64(0); i < -count; i++ {
			picks = append(picks, randomPick(s.t, r, setKey, setProbe))
		}
	case count >= int64(s.length()):
		picks = s.members()
	default:
		picks = pickDistinct(s.t, int(count), r, setKey, setProbe)
		shuffle(picks, r)
	}
	return arrayReply(strReplies(picks))
}

func cmdSMove(t *Tx, a [][]byte) Reply {
	// Redis's order: a missing source answers 0 before any type check.
	if _, found := t.lookup(a[1]); !found {
		return intReply(0)
	}
	src, _, wrong := t.mutable(a[1], TypeSet, nil)
	if wrong {
		return replyWrongType
	}
	if _, _, wrong := t.typed(a[2], TypeSet); wrong {
		return replyWrongType
	}
	m := string(a[3])
	if !src.obj.(*setObj).has(m) {
		return intReply(0)
	}
	if string(a[1]) == string(a[2]) {
		return intReply(1)
	}
	src.obj.(*setObj).remove(m)
	t.save(src)
	t.event("srem", src.key)
	if src.obj.length() == 0 {
		t.event("del", src.key)
	}
	dst, _, _ := t.mutable(a[2], TypeSet, newSet)
	if dst.obj.(*setObj).add(m) {
		t.save(dst)
		t.event("sadd", dst.key)
	}
	return intReply(1)
}

type setOp int

const (
	opInter setOp = iota
	opUnion
	opDiff
)

// setCombine computes the operation over the sets under keys (an absent
// key is an empty set). wrong: one of them holds another type.
func (t *Tx) setCombine(op setOp, keys [][]byte, limit int) (out []string, wrong bool) {
	sets := make([]*setObj, len(keys))
	missing := false
	for i, k := range keys {
		s, found, wrong := t.setOf(k)
		if wrong {
			return nil, true
		}
		sets[i] = s
		missing = missing || !found
	}
	switch op {
	case opInter:
		if missing {
			return nil, false
		}
		small := 0
		for i, s := range sets {
			if s.length() < sets[small].length() {
				small = i
			}
		}
		sets[small].t.Ascend(func(m string) bool {
			for i, s := range sets {
				if i != small && !s.has(m) {
					return true
				}
			}
			out = append(out, m)
			return limit == 0 || len(out) < limit
		})
	case opUnion:
		u := newSet().(*setObj)
		for _, s := range sets {
			if s == nil {
				continue
			}
			s.t.Ascend(func(m string) bool { u.add(m); return true })
		}
		out = u.members()
	case opDiff:
		if sets[0] == nil {
			return nil, false
		}
		sets[0].t.Ascend(func(m string) bool {
			for _, s := range sets[1:] {
				if s != nil && s.has(m) {
					return true
				}
			}
			out = append(out, m)
			return true
		})
	}
	return out, false
}

var setOpEvents = [...]string{opInter: "sinterstore", opUnion: "sunionstore", opDiff: "sdiffstore"}

// cmdSetOp is SINTER/SUNION/SDIFF (a set reply) and their STORE forms
// (the result replaces the destination, whatever it held; an empty
// result deletes it).
func cmdSetOp(op setOp, store bool) func(*Tx, [][]byte) Reply {
	return func(t *Tx, a [][]byte) Reply {
		keys := a[1:]
		if store {
			keys = a[2:]
		}
		ms, wrong := t.setCombine(op, keys, 0)
		if wrong {
			return replyWrongType
		}
		if !store {
			return setReply(ms)
		}
		s := newSet().(*setObj)
		for _, m := range ms {
			s.add(m)
		}
		dst := string(a[1])
		if s.length() == 0 {
			if t.del(a[1]) {
				t.event("del", dst)
			}
			return intReply(0)
		}
		t.putObject(dst, s, 0)
		t.event(setOpEvents[op], dst)
		return intReply(int64(s.length()))
	}
}

// cmdSInterCard is SINTERCARD numkeys key [key ...] [LIMIT limit].
func cmdSInterCard(t *Tx, a [][]byte) Reply {
	n, ok := ParseInt(a[1])
	if !ok || n <= 0 {
		return cmdErr(ErrSyntax, "ERR numkeys should be greater than 0")
	}
	if n > int64(len(a)-2) {
		return cmdErr(ErrSyntax, "ERR Number of keys can't be greater than number of args")
	}
	keys := a[2 : 2+n]
	limit := int64(0)
	for i := 2 + int(n); i < len(a); i += 2 {
		if !eq(a[i], "limit") || i+1 >= len(a) {
			return replySyntax
		}
		l, ok := ParseInt(a[i+1])
		if !ok || l < 0 {
			return cmdErr(ErrSyntax, "ERR LIMIT can't be negative")
		}
		limit = l
	}
	ms, wrong := t.setCombine(opInter, keys, int(min(limit, math.MaxInt32)))
	if wrong {
		return replyWrongType
	}
	return intReply(int64(len(ms)))
}

// cmdSScan is SSCAN key cursor [MATCH pattern] [COUNT count]. A set
// Redis keeps as an intset is answered whole with cursor 0, as Redis does.
func cmdSScan(t *Tx, a [][]byte) Reply {
	if _, rep, ok := scanCursor(a); !ok {
		return rep
	}
	s, found, wrong := t.setOf(a[1])
	if wrong {
		return replyWrongType
	}
	if !found {
		return t.collScanReply(false, "", []Reply{})
	}
	sc, rep, ok := t.parseCollScan(a, s.encoding() == "intset")
	if !ok {
		return rep
	}
	count := sc.count
	if s.encoding() == "intset" {
		// Redis answers a compact set whole, whatever the cursor.
		count, sc.resume, sc.after = s.length(), false, ""
	}
	out := []Reply{}
	seen, last, more := 0, "", false
	s.t.AscendGreaterOrEqual(sc.after, func(m string) bool {
		if sc.resume && m == sc.after {
			return true
		}
		if seen == count {
			more = true
			return false
		}
		seen++
		last = m
		if sc.pattern == nil || GlobMatch(sc.pattern, []byte(m)) {
			out = append(out, bulkReply([]byte(m)))
		}
		return true
	})
	return t.collScanReply(more, last, out)
}
