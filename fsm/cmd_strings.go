package fsm

import (
	"bytes"
	"math"
	"strconv"
	"time"
)

// String commands, with Redis 7.0's replies and errors.

func init() {
	rw := FlagWrite | FlagDenyOOM
	register(
		&Spec{Name: "get", Arity: 2, Flags: FlagReadOnly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, run: cmdGet},
		&Spec{Name: "mget", Arity: -2, Flags: FlagReadOnly | FlagFast, FirstKey: 1, LastKey: -1, Step: 1, run: cmdMGet},
		&Spec{Name: "strlen", Arity: 2, Flags: FlagReadOnly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, run: cmdStrlen},
		&Spec{Name: "set", Arity: -3, Flags: rw, FirstKey: 1, LastKey: 1, Step: 1, run: cmdSet},
		&Spec{Name: "setnx", Arity: 3, Flags: rw | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, run: cmdSetNX},
		&Spec{Name: "setex", Arity: 4, Flags: rw, FirstKey: 1, LastKey: 1, Step: 1, run: cmdSetEX(time.Second, "setex")},
		&Spec{Name: "psetex", Arity: 4, Flags: rw, FirstKey: 1, LastKey: 1, Step: 1, run: cmdSetEX(time.Millisecond, "psetex")},
		&Spec{Name: "getset", Arity: 3, Flags: rw | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, run: cmdGetSet},
		&Spec{Name: "getdel", Arity: 2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, run: cmdGetDel},
		&Spec{Name: "mset", Arity: -3, Flags: rw, FirstKey: 1, LastKey: -1, Step: 2, run: cmdMSet},
		&Spec{Name: "msetnx", Arity: -3, Flags: rw, FirstKey: 1, LastKey: -1, Step: 2, run: cmdMSetNX},
		&Spec{Name: "incr", Arity: 2, Flags: rw | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, run: cmdIncr(1, false)},
		&Spec{Name: "decr", Arity: 2, Flags: rw | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, run: cmdIncr(-1, false)},
		&Spec{Name: "incrby", Arity: 3, Flags: rw | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, run: cmdIncr(1, true)},
		&Spec{Name: "decrby", Arity: 3, Flags: rw | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, run: cmdIncr(-1, true)},
	)
}

func cmdGet(t *Tx, a [][]byte) Reply {
	it, ok, wrong := t.readTyped(a[1], TypeString)
	switch {
	case wrong:
		return replyWrongType
	case ok:
		return bulkReply(it.value)
	}
	return replyNull
}

// cmdMGet answers nil for a key of another type, as Redis does.
func cmdMGet(t *Tx, a [][]byte) Reply {
	out := make([]Reply, len(a)-1)
	for i, k := range a[1:] {
		if it, ok, _ := t.readTyped(k, TypeString); ok {
			out[i] = bulkReply(it.value)
		} else {
			out[i] = replyNull
		}
	}
	return arrayReply(out)
}

func cmdStrlen(t *Tx, a [][]byte) Reply {
	it, ok, wrong := t.str(a[1])
	switch {
	case wrong:
		return replyWrongType
	case ok:
		return intReply(int64(len(it.value)))
	}
	return intReply(0)
}

// setArgs are SET's options once parsed.
type setArgs struct {
	nx, xx, get, keepTTL bool
	expireAt             int64 // absolute Unix ns; 0 = none
}

// parseSet reads SET's options as Redis 7.0 does: a repeated option is
// allowed (the last expiry wins), conflicting ones are a syntax error,
// and the expiry is checked after all options are read.
func parseSet(t *Tx, a [][]byte) (setArgs, Reply, bool) {
	var o setArgs
	var expArg []byte
	var unit time.Duration
	var absolute bool
	for i := 3; i < len(a); i++ {
		opt := a[i]
		next := i+1 < len(a)
		switch {
		case eq(opt, "nx") && !o.xx:
			o.nx = true
		case eq(opt, "xx") && !o.nx:
			o.xx = true
		case eq(opt, "get"):
			o.get = true
		case eq(opt, "keepttl") && expArg == nil:
			o.keepTTL = true
		case next && !o.keepTTL && (eq(opt, "ex") || eq(opt, "px") || eq(opt, "exat") || eq(opt, "pxat")):
			u, abs := time.Second, len(opt) == 4
			if opt[0] == 'p' || opt[0] == 'P' {
				u = time.Millisecond
			}
			if expArg != nil && (u != unit || abs != absolute) {
				return o, replySyntax, false
			}
			expArg, unit, absolute = a[i+1], u, abs
			i++
		default:
			return o, replySyntax, false
		}
	}
	if expArg != nil {
		at, rep, ok := expireIn(expArg, unit, absolute, t.expiryNow(), "set")
		if !ok {
			return o, rep, false
		}
		o.expireAt = at
	}
	return o, Reply{}, true
}

func cmdSet(t *Tx, a [][]byte) Reply {
	o, rep, ok := parseSet(t, a)
	if !ok {
		return rep
	}
	if rep, ok := t.checkValue(a[2]); !ok {
		return rep
	}
	// SET replaces a value of any type, but SET ... GET must read a
	// string first.
	cur, found := t.lookup(a[1])
	prev := replyNull
	if o.get && found {
		if cur.obj != nil {
			return replyWrongType
		}
		prev = bulkReply(cur.value)
	}
	if o.nx && found || o.xx && !found {
		if o.get {
			return prev
		}
		return replyNull
	}
	exp := o.expireAt
	if o.keepTTL && found {
		exp = cur.expireAt
	}
	if exp != 0 && exp <= t.now {
		t.del(a[1]) // an expiry already past: Redis deletes the key at once
		// and reports it as Redis 7.0 does: stored, given its expiry, expired.
		t.event("set", string(a[1]))
		t.event("expire", string(a[1]))
		t.event("expired", string(a[1]))
	} else {
		t.put(string(a[1]), bytes.Clone(a[2]), exp)
		t.event("set", string(a[1]))
		if exp != 0 && !o.keepTTL {
			t.event("expire", string(a[1]))
		}
	}
	if o.get {
		return prev
	}
	return replyOK
}

func cmdSetNX(t *Tx, a [][]byte) Reply {
	if _, found := t.lookup(a[1]); found {
		return intReply(0)
	}
	if rep, ok := t.checkValue(a[2]); !ok {
		return rep
	}
	t.put(string(a[1]), bytes.Clone(a[2]), 0)
	t.event("set", string(a[1]))
	return intReply(1)
}

func cmdSetEX(unit time.Duration, name string) func(*Tx, [][]byte) Reply {
	return func(t *Tx, a [][]byte) Reply {
		at, rep, ok := expireIn(a[2], unit, false, t.expiryNow(), name)
		if !ok {
			return rep
		}
		if rep, ok := t.checkValue(a[3]); !ok {
			return rep
		}
		t.put(string(a[1]), bytes.Clone(a[3]), at)
		t.event("set", string(a[1]))
		t.event("expire", string(a[1]))
		return replyOK
	}
}

func cmdGetSet(t *Tx, a [][]byte) Reply {
	if rep, ok := t.checkValue(a[2]); !ok {
		return rep
	}
	prev := replyNull
	cur, found, wrong := t.str(a[1])
	if wrong {
		return replyWrongType
	}
	if found {
		prev = bulkReply(cur.value)
	}
	t.put(string(a[1]), bytes.Clone(a[2]), 0)
	t.event("set", string(a[1]))
	return prev
}

func cmdGetDel(t *Tx, a [][]byte) Reply {
	cur, found, wrong := t.str(a[1])
	if wrong {
		return replyWrongType
	}
	if !found {
		return replyNull
	}
	t.del(a[1])
	t.event("del", string(a[1]))
	return bulkReply(cur.value)
}

func cmdMSet(t *Tx, a [][]byte) Reply {
	if len(a)%2 != 1 {
		return replyArity("mset")
	}
	for i := 2; i < len(a); i += 2 {
		if rep, ok := t.checkValue(a[i]); !ok {
			return rep
		}
	}
	for i := 1; i < len(a); i += 2 {
		t.put(string(a[i]), bytes.Clone(a[i+1]), 0)
		t.event("set", string(a[i]))
	}
	return replyOK
}

func cmdMSetNX(t *Tx, a [][]byte) Reply {
	if len(a)%2 != 1 {
		return replyArity("msetnx")
	}
	for i := 1; i < len(a); i += 2 {
		if _, found := t.lookup(a[i]); found {
			return intReply(0)
		}
		if rep, ok := t.checkValue(a[i+1]); !ok {
			return rep
		}
	}
	for i := 1; i < len(a); i += 2 {
		t.put(string(a[i]), bytes.Clone(a[i+1]), 0)
		t.event("set", string(a[i]))
	}
	return intReply(1)
}

func cmdIncr(sign int64, withArg bool) func(*Tx, [][]byte) Reply {
	return func(t *Tx, a [][]byte) Reply {
		by := sign
		if withArg {
			n, ok := ParseInt(a[2])
			if !ok {
				return replyNotInteger
			}
			if sign < 0 {
				if n == math.MinInt64 {
					return cmdErr(ErrOverflow, "ERR decrement would overflow")
				}
				n = -n
			}
			by = n
		}
		v, rep, ok := t.incr(a[1], by, 0)
		if !ok {
			return rep
		}
		return intReply(v)
	}
}

// incr adds by to the counter under key (created at 0 with expiry
// expireAt when absent; an existing key keeps its expiry), returning the
// new value.
func (t *Tx) incr(key []byte, by int64, expireAt int64) (int64, Reply, bool) {
	var v int64
	cur, found, wrong := t.str(key)
	if wrong {
		return 0, replyWrongType, false
	}
	if found {
		var ok bool
		if v, ok = ParseInt(cur.value); !ok {
			return 0, replyNotInteger, false
		}
		expireAt = cur.expireAt
	}
	if by > 0 && v > math.MaxInt64-by || by < 0 && v < math.MinInt64-by {
		return 0, replyOverflow, false
	}
	v += by
	t.put(string(key), strconv.AppendInt(nil, v, 10), expireAt)
	t.event("incrby", string(key))
	return v, Reply{}, true
}

// checkValue refuses a value over the limit the leader stamped into the
// entry (node checks arguments before proposing; this catches values a
// command builds, and entries proposed before a limit was lowered).
func (t *Tx) checkValue(v []byte) (Reply, bool) {
	if m := t.limits.MaxValueSize; m > 0 && int64(len(v)) > m {
		return errReply(ErrValueTooLarge), false
	}
	return Reply{}, true
}
