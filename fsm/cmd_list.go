package fsm

// List commands, with Redis 7.0's replies, errors, argument order of
// checks (which argument is parsed before the key is looked up decides
// the error a bad command gets) and keyspace events (t_list.c).
//
// listPop and listMove are the non-blocking halves of BLPOP, BRPOP,
// BLMOVE and BRPOPLPUSH: the blocking commands call them once an element
// is there, so both kinds answer and notify alike.

func init() {
	rw := FlagWrite | FlagDenyOOM
	ro := FlagReadOnly
	one := func(s *Spec) *Spec { s.FirstKey, s.LastKey, s.Step, s.Level = 1, 1, 1, LevelTypes; return s }
	two := func(s *Spec) *Spec { s.FirstKey, s.LastKey, s.Step, s.Level = 1, 2, 1, LevelTypes; return s }
	register(
		one(&Spec{Name: "lpush", Arity: -3, Flags: rw | FlagFast, run: cmdPush(true, false)}),
		one(&Spec{Name: "rpush", Arity: -3, Flags: rw | FlagFast, run: cmdPush(false, false)}),
		one(&Spec{Name: "lpushx", Arity: -3, Flags: rw | FlagFast, run: cmdPush(true, true)}),
		one(&Spec{Name: "rpushx", Arity: -3, Flags: rw | FlagFast, run: cmdPush(false, true)}),
		one(&Spec{Name: "lpop", Arity: -2, Flags: FlagWrite | FlagFast, run: cmdPop("lpop", true)}),
		one(&Spec{Name: "rpop", Arity: -2, Flags: FlagWrite | FlagFast, run: cmdPop("rpop", false)}),
		one(&Spec{Name: "llen", Arity: 2, Flags: ro | FlagFast, run: cardinality(TypeList)}),
		one(&Spec{Name: "lrange", Arity: 4, Flags: ro, run: cmdLRange}),
		one(&Spec{Name: "lindex", Arity: 3, Flags: ro, run: cmdLIndex}),
		one(&Spec{Name: "lset", Arity: 4, Flags: rw, run: cmdLSet}),
		one(&Spec{Name: "lrem", Arity: 4, Flags: FlagWrite, run: cmdLRem}),
		one(&Spec{Name: "ltrim", Arity: 4, Flags: FlagWrite, run: cmdLTrim}),
		one(&Spec{Name: "linsert", Arity: 5, Flags: rw, run: cmdLInsert}),
		one(&Spec{Name: "lpos", Arity: -3, Flags: ro, run: cmdLPos}),
		two(&Spec{Name: "lmove", Arity: 5, Flags: rw, run: cmdLMove}),
		two(&Spec{Name: "rpoplpush", Arity: 3, Flags: rw, run: func(t *Tx, a [][]byte) Reply {
			return listMove(t, a[1], a[2], false, true)
		}}),
	)
}

var (
	replyIndexRange = cmdErr(ErrSyntax, "ERR index out of range")
	listNullArray   = Reply{Kind: KindNullArray}
	listEmptyArray  = Reply{Kind: KindArray, Elems: []Reply{}}
)

// parseListCount is Redis's getPositiveLongFromObjectOrReply: an integer
// that is not negative. Its one error (msg, or Redis's default words)
// answers both a negative number and one that is not a number.
func parseListCount(arg []byte, msg string) (int64, Reply, bool) {
	n, ok := ParseInt(arg)
	if !ok || n < 0 {
		if msg == "" {
			msg = "value is out of range, must be positive"
		}
		return 0, cmdErr(ErrNotInteger, "ERR "+msg), false
	}
	return n, Reply{}, true
}

func pushEvent(left bool) string {
	if left {
		return "lpush"
	}
	return "rpush"
}

func popEvent(left bool) string {
	if left {
		return "lpop"
	}
	return "rpop"
}

func elemReply(v string) Reply { return bulkReply([]byte(v)) }

// listChanged saves a list changed in place and records event, and "del"
// if the change emptied it (save deleted the key), as Redis notifies.
func (t *Tx) listChanged(it *item, event string) {
	t.save(it)
	t.event(event, it.key)
	if it.obj.length() == 0 {
		t.event("del", it.key)
	}
}

func cmdPush(left, onlyIfExists bool) func(t *Tx, a [][]byte) Reply {
	return func(t *Tx, a [][]byte) Reply {
		create := newList
		if onlyIfExists {
			create = nil
		}
		it, found, wrong := t.mutable(a[1], TypeList, create)
		switch {
		case wrong:
			return replyWrongType
		case !found && onlyIfExists:
			return intReply(0)
		}
		o := it.obj.(*listObj)
		for _, v := range a[2:] {
			o.push(string(v), left)
		}
		t.listChanged(it, pushEvent(left))
		return intReply(int64(o.length()))
	}
}

func cmdPop(name string, left bool) func(t *Tx, a [][]byte) Reply {
	return func(t *Tx, a [][]byte) Reply {
		if len(a) > 3 {
			return replyArity(name)
		}
		if len(a) == 2 {
			return listPop(t, a[1], left, 0)
		}
		n, rep, ok := parseListCount(a[2], "")
		if !ok {
			return rep
		}
		if n == 0 {
			_, found, wrong := t.typed(a[1], TypeList)
			switch {
			case wrong:
				return replyWrongType
			case !found:
				return listNullArray
			}
			return listEmptyArray
		}
		return listPop(t, a[1], left, int(min(n, 1<<40)))
	}
}

// listPop pops from the left or right end of the list at key, as LPOP
// and RPOP do: with count <= 0 one element, answered as a bulk string
// (null when the key is absent); with count > 0 up to count elements, an
// array (a null array when the key is absent). A key of another type
// answers WRONGTYPE and changes nothing. Events: lpop/rpop, and del when
// the list is emptied.
func listPop(t *Tx, key []byte, left bool, count int) Reply {
	it, found, wrong := t.mutable(key, TypeList, nil)
	switch {
	case wrong:
		return replyWrongType
	case !found && count > 0:
		return listNullArray
	case !found:
		return replyNull
	}
	o := it.obj.(*listObj)
	var out Reply
	if count <= 0 {
		out = elemReply(o.pop(left))
	} else {
		elems := make([]Reply, min(count, o.length()))
		for i := range elems {
			elems[i] = elemReply(o.pop(left))
		}
		out = arrayReply(elems)
	}
	t.listChanged(it, popEvent(left))
	return out
}

// listMove pops an element from one end of src and pushes it onto one
// end of dst, as LMOVE and RPOPLPUSH do (src == dst rotates the list),
// answering the element, or null when src is absent. A src or dst of
// another type answers WRONGTYPE and changes nothing. Events, in Redis's
// order: lpush/rpush on dst, lpop/rpop on src, del if src was emptied.
func listMove(t *Tx, src, dst []byte, fromLeft, toLeft bool) Reply {
	sit, found, wrong := t.mutable(src, TypeList, nil)
	switch {
	case wrong:
		return replyWrongType
	case !found:
		return replyNull
	}
	so := sit.obj.(*listObj)
	if string(src) == string(dst) {
		v := so.pop(fromLeft)
		so.push(v, toLeft)
		t.save(sit)
		t.event(pushEvent(toLeft), sit.key)
		t.event(popEvent(fromLeft), sit.key)
		return elemReply(v)
	}
	dit, _, wrong := t.mutable(dst, TypeList, newList)
	if wrong {
		return replyWrongType
	}
	v := so.pop(fromLeft)
	dit.obj.(*listObj).push(v, toLeft)
	t.listChanged(dit, pushEvent(toLeft))
	t.listChanged(sit, popEvent(fromLeft))
	return elemReply(v)
}

// parseSide reads LMOVE's LEFT or RIGHT.
func parseSide(arg []byte) (left bool, ok bool) {
	switch {
	case eq(arg, "left"):
		return true, true
	case eq(arg, "right"):
		return false, true
	}
	return false, false
}

func cmdLMove(t *Tx, a [][]byte) Reply {
	from, ok1 := parseSide(a[3])
	to, ok2 := parseSide(a[4])
	if !ok1 || !ok2 {
		return replySyntax
	}
	return listMove(t, a[1], a[2], from, to)
}

// listRange converts LRANGE/LTRIM's start and stop (negative from the
// end) into [lo, hi), empty when nothing is in range.
func listRange(start, stop int64, n int) (lo, hi int) {
	ln := int64(n)
	if start < 0 {
		start += ln
	}
	if stop < 0 {
		stop += ln
	}
	start = max(start, 0)
	if start > stop || start >= ln {
		return 0, 0
	}
	stop = min(stop, ln-1)
	return int(start), int(stop) + 1
}

func cmdLRange(t *Tx, a [][]byte) Reply {
	start, ok1 := ParseInt(a[2])
	stop, ok2 := ParseInt(a[3])
	if !ok1 || !ok2 {
		return replyNotInteger
	}
	it, found, wrong := t.readTyped(a[1], TypeList)
	switch {
	case wrong:
		return replyWrongType
	case !found:
		return listEmptyArray
	}
	o := it.obj.(*listObj)
	lo, hi := listRange(start, stop, o.length())
	out := make([]Reply, 0, hi-lo)
	o.each(lo, hi, func(_ int, v string) bool { out = append(out, elemReply(v)); return true })
	return arrayReply(out)
}

// listIndex converts LINDEX/LSET's index (negative from the end) into a
// position, ok false when out of range.
func listIndex(i int64, n int) (int, bool) {
	if i < 0 {
		i += int64(n)
	}
	return int(i), i >= 0 && i < int64(n)
}

func cmdLIndex(t *Tx, a [][]byte) Reply {
	it, found, wrong := t.readTyped(a[1], TypeList)
	switch {
	case wrong:
		return replyWrongType
	case !found:
		return replyNull
	}
	i, ok := ParseInt(a[2])
	if !ok {
		return replyNotInteger
	}
	o := it.obj.(*listObj)
	if p, ok := listIndex(i, o.length()); ok {
		return elemReply(o.get(p))
	}
	return replyNull
}

func cmdLSet(t *Tx, a [][]byte) Reply {
	it, found, wrong := t.mutable(a[1], TypeList, nil)
	switch {
	case wrong:
		return replyWrongType
	case !found:
		return errReply(ErrNotFound)
	}
	i, ok := ParseInt(a[2])
	if !ok {
		return replyNotInteger
	}
	o := it.obj.(*listObj)
	p, ok := listIndex(i, o.length())
	if !ok {
		return replyIndexRange
	}
	o.set(p, string(a[3]))
	t.listChanged(it, "lset")
	return replyOK
}

func cmdLTrim(t *Tx, a [][]byte) Reply {
	start, ok1 := ParseInt(a[2])
	stop, ok2 := ParseInt(a[3])
	if !ok1 || !ok2 {
		return replyNotInteger
	}
	it, found, wrong := t.mutable(a[1], TypeList, nil)
	switch {
	case wrong:
		return replyWrongType
	case !found:
		return replyOK
	}
	o := it.obj.(*listObj)
	lo, hi := listRange(start, stop, o.length())
	o.keep(lo, hi)
	// Redis signals the key modified (and notifies) even when nothing
	// was trimmed; a new version does the same for WATCH.
	t.listChanged(it, "ltrim")
	return replyOK
}

func cmdLRem(t *Tx, a [][]byte) Reply {
	count, ok := ParseInt(a[2])
	if !ok {
		return replyNotInteger
	}
	it, found, wrong := t.mutable(a[1], TypeList, nil)
	switch {
	case wrong:
		return replyWrongType
	case !found:
		return intReply(0)
	}
	o := it.obj.(*listObj)
	elem := string(a[3])
	// limit stays negative for count = MinInt64 (its negation overflows):
	// then, as in Redis, every match is removed.
	limit := count
	if count < 0 {
		limit = -count
	}
	first, last, removed := -1, -1, int64(0)
	match := func(i int, v string) bool {
		if v != elem {
			return true
		}
		if first < 0 || i < first {
			first = i
		}
		last = max(last, i)
		removed++
		return limit == 0 || removed != limit
	}
	n := o.length()
	if count < 0 {
		o.eachReverse(0, n, match)
	} else {
		o.each(0, n, match)
	}
	if removed == 0 {
		return intReply(0)
	}
	// Rebuild the span from the first to the last match without the
	// matches (every match in it was removed: the scan stopped past it).
	keep := make([]string, 0, last+1-first)
	o.each(first, last+1, func(_ int, v string) bool {
		if v != elem {
			keep = append(keep, v)
		}
		return true
	})
	o.splice(first, last+1, keep)
	t.listChanged(it, "lrem")
	return intReply(removed)
}

func cmdLInsert(t *Tx, a [][]byte) Reply {
	var after bool
	switch {
	case eq(a[2], "after"):
		after = true
	case eq(a[2], "before"):
	default:
		return replySyntax
	}
	it, found, wrong := t.mutable(a[1], TypeList, nil)
	switch {
	case wrong:
		return replyWrongType
	case !found:
		return intReply(0)
	}
	o := it.obj.(*listObj)
	pivot := string(a[3])
	at := -1
	o.each(0, o.length(), func(i int, v string) bool {
		if v == pivot {
			at = i
			return false
		}
		return true
	})
	if at < 0 {
		return intReply(-1)
	}
	if after {
		at++
	}
	o.splice(at, at, []string{string(a[4])})
	t.listChanged(it, "linsert")
	return intReply(int64(o.length()))
}

func cmdLPos(t *Tx, a [][]byte) Reply {
	rank, count, maxlen := int64(1), int64(-1), int64(0)
	for j := 3; j < len(a); j++ {
		more := j+1 < len(a)
		var rep Reply
		ok := true
		switch {
		case more && eq(a[j], "rank"):
			j++
			if rank, ok = ParseInt(a[j]); !ok {
				return replyNotInteger
			}
			if rank == 0 {
				return cmdErr(ErrSyntax, "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list")
			}
		case more && eq(a[j], "count"):
			j++
			count, rep, ok = parseListCount(a[j], "COUNT can't be negative")
		case more && eq(a[j], "maxlen"):
			j++
			maxlen, rep, ok = parseListCount(a[j], "MAXLEN can't be negative")
		default:
			return replySyntax
		}
		if !ok {
			return rep
		}
	}
	fromTail := rank < 0
	if fromTail {
		// -MinInt64 overflows and stays negative; no rank that large can
		// match anything anyway, but keep Redis's arithmetic.
		rank = -rank
	}
	it, found, wrong := t.readTyped(a[1], TypeList)
	switch {
	case wrong:
		return replyWrongType
	case !found && count >= 0:
		return listEmptyArray
	case !found:
		return replyNull
	}
	o := it.obj.(*listObj)
	elem := string(a[2])
	n := o.length()
	var out []Reply
	matches, scanned, found1 := int64(0), int64(0), -1
	visit := func(i int, v string) bool {
		if maxlen != 0 && scanned >= maxlen {
			return false
		}
		scanned++
		if v != elem {
			return true
		}
		matches++
		if matches < rank {
			return true
		}
		if count < 0 {
			found1 = i
			return false
		}
		out = append(out, intReply(int64(i)))
		return count == 0 || matches-rank+1 < count
	}
	if fromTail {
		o.eachReverse(0, n, visit)
	} else {
		o.each(0, n, visit)
	}
	if count >= 0 {
		if out == nil {
			return listEmptyArray
		}
		return arrayReply(out)
	}
	if found1 < 0 {
		return replyNull
	}
	return intReply(int64(found1))
}
