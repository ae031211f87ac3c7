package fsm

import (
	"bytes"
	"strconv"
)

// The HTTP API's own commands. They carry what Redis commands lack:
// versions, compare-and-set on a version, relative TTLs in nanoseconds.
// They are flagged internal: the Redis port does not offer them. Numeric
// arguments are decimal.
//
//	rc.get key                          -> [value, version, expireAt] | null
//	rc.set key value ttl cond ver flags -> [version, previous value | null]
//	rc.del key cond ver                 -> 1 if a live key was removed, else 0
//	rc.incr key by ttl                  -> [value, version]
//	rc.touch key ttl                    -> version | error not found
//	rc.keys prefix limit [after]        -> [[key...], more (0|1), [type...]]
//
// ttl is relative to the entry's time in ns (0: none); cond a Cond; a
// failed condition answers an *Error with ErrConditionFailed and the
// key's current version (0 if absent).

func init() {
	in := FlagInternal
	register(
		&Spec{Name: "rc.get", Arity: 2, Flags: in | FlagReadOnly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, run: rcGet},
		&Spec{Name: "rc.set", Arity: 7, Flags: in | FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 1, Step: 1, run: rcSet},
		&Spec{Name: "rc.del", Arity: 4, Flags: in | FlagWrite, FirstKey: 1, LastKey: 1, Step: 1, run: rcDel},
		&Spec{Name: "rc.incr", Arity: 4, Flags: in | FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 1, Step: 1, run: rcIncr},
		&Spec{Name: "rc.touch", Arity: 3, Flags: in | FlagWrite, FirstKey: 1, LastKey: 1, Step: 1, run: rcTouch},
		&Spec{Name: "rc.keys", Arity: -3, Flags: in | FlagReadOnly, run: rcKeys},
	)
}

// Internal command arguments, built by the HTTP front. What they build
// for a request must not change between versions: a keyed request's id
// carries a digest of its commands from cluster level 6 (TagRequestID),
// so a retry through a binary that built other arguments would be
// refused as another request. TestTagRequestIDStable pins them; a new
// argument is a new command (or builder) used from a new feature level.

// RCGet is rc.get's arguments.
func RCGet(key []byte) [][]byte { return [][]byte{[]byte("rc.get"), key} }

// RCSet is rc.set's arguments: flags are FlagKeepTTL and FlagReturnPrev.
func RCSet(key, value []byte, ttl int64, cond Cond, version uint64, flags uint8) [][]byte {
	return [][]byte{[]byte("rc.set"), key, value, num(ttl), num(int64(cond)), unum(version), num(int64(flags))}
}

// RCDel is rc.del's arguments.
func RCDel(key []byte, cond Cond, version uint64) [][]byte {
	return [][]byte{[]byte("rc.del"), key, num(int64(cond)), unum(version)}
}

// RCIncr is rc.incr's arguments.
func RCIncr(key []byte, by, ttl int64) [][]byte {
	return [][]byte{[]byte("rc.incr"), key, num(by), num(ttl)}
}

// RCTouch is rc.touch's arguments.
func RCTouch(key []byte, ttl int64) [][]byte { return [][]byte{[]byte("rc.touch"), key, num(ttl)} }

// RCKeys is rc.keys's arguments; after nil starts at the prefix.
func RCKeys(prefix, after []byte, limit int) [][]byte {
	a := [][]byte{[]byte("rc.keys"), prefix, num(int64(limit))}
	if after != nil {
		a = append(a, after)
	}
	return a
}

func num(n int64) []byte   { return strconv.AppendInt(nil, n, 10) }
func unum(n uint64) []byte { return strconv.AppendUint(nil, n, 10) }

// nums parses decimal arguments; ok is false if any is malformed.
func nums(args ...[]byte) ([]int64, bool) {
	out := make([]int64, len(args))
	for i, a := range args {
		n, err := strconv.ParseInt(string(a), 10, 64)
		if err != nil {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

func (t *Tx) ttlAt(ttl int64) int64 {
	if ttl > 0 {
		return t.now + ttl
	}
	return 0
}

// condFailed checks cond against the key's current state and returns the
// error reply when it does not hold.
func (t *Tx) condFailed(key []byte, cond Cond, version uint64) (Reply, bool) {
	it, live := t.lookup(key)
	var cur uint64
	if live {
		cur = it.version
	}
	ok := true
	switch cond {
	case CondVersion:
		ok = live && cur == version
	case CondAbsent:
		ok = !live
	case CondExists:
		ok = live
	}
	if ok {
		return Reply{}, false
	}
	return errReply(&Error{Code: ErrConditionFailed, Msg: "ERR condition failed", Current: cur}), true
}

func rcGet(t *Tx, a [][]byte) Reply {
	it, ok, wrong := t.readTyped(a[1], TypeString)
	if wrong {
		return replyWrongType
	}
	if !ok {
		return replyNull
	}
	return arrayReply([]Reply{bulkReply(it.value), intReply(int64(it.version)), intReply(it.expireAt)})
}

func rcSet(t *Tx, a [][]byte) Reply {
	n, ok := nums(a[3], a[4], a[5], a[6])
	if !ok {
		return replySyntax
	}
	if rep, failed := t.condFailed(a[1], Cond(n[1]), uint64(n[2])); failed {
		return rep
	}
	if rep, ok := t.checkValue(a[2]); !ok {
		return rep
	}
	flags := uint8(n[3])
	exp := t.ttlAt(n[0])
	prev := replyNull
	// The HTTP API's values are strings: it does not replace a
	// collection (a queue, a session hash) by accident.
	cur, live, wrong := t.str(a[1])
	if wrong {
		return replyWrongType
	}
	if live {
		if flags&FlagKeepTTL != 0 {
			exp = cur.expireAt
		}
		if flags&FlagReturnPrev != 0 {
			prev = bulkReply(cur.value)
		}
	}
	v := t.put(string(a[1]), bytes.Clone(a[2]), exp)
	t.event("set", string(a[1]))
	return arrayReply([]Reply{intReply(int64(v)), prev})
}

func rcDel(t *Tx, a [][]byte) Reply {
	n, ok := nums(a[2], a[3])
	if !ok {
		return replySyntax
	}
	if rep, failed := t.condFailed(a[1], Cond(n[0]), uint64(n[1])); failed {
		return rep
	}
	if !t.del(a[1]) {
		return boolReply(false)
	}
	t.event("del", string(a[1]))
	return boolReply(true)
}

func rcIncr(t *Tx, a [][]byte) Reply {
	n, ok := nums(a[2], a[3])
	if !ok {
		return replySyntax
	}
	v, rep, ok := t.incr(a[1], n[0], t.ttlAt(n[1]))
	if !ok {
		return rep
	}
	it, _ := t.s.get(a[1])
	return arrayReply([]Reply{intReply(v), intReply(int64(it.version))})
}

func rcTouch(t *Tx, a [][]byte) Reply {
	n, ok := nums(a[2])
	if !ok {
		return replySyntax
	}
	it, live, wrong := t.str(a[1])
	if wrong {
		return replyWrongType // the HTTP API's values are strings
	}
	if !live {
		return errReply(ErrNotFound)
	}
	ev := "expire"
	if n[0] <= 0 {
		ev = "persist"
	}
	v := t.setExpiry(it, t.ttlAt(n[0]))
	t.event(ev, string(a[1]))
	return intReply(int64(v))
}

func rcKeys(t *Tx, a [][]byte) Reply {
	n, ok := nums(a[2])
	if !ok || n[0] < 1 {
		return replySyntax
	}
	var after string
	if len(a) > 3 {
		after = string(a[3])
	}
	var keys, types []Reply
	more := false
	t.ascend(a[1], after, func(it *item) bool {
		if int64(len(keys)) == n[0] {
			more = true
			return false
		}
		keys = append(keys, bulkReply([]byte(it.key)))
		types = append(types, statusReply(it.kind().String()))
		return true
	})
	return arrayReply([]Reply{arrayReply(keys), boolReply(more), arrayReply(types)})
}
