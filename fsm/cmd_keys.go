package fsm

import (
	"bytes"
	"math"
	"strconv"
	"time"
)

// Keyspace and server commands, with Redis 7.0's replies and errors.

func init() {
	ro := FlagReadOnly | FlagFast
	register(
		&Spec{Name: "del", Arity: -2, Flags: FlagWrite, FirstKey: 1, LastKey: -1, Step: 1, run: cmdDel},
		&Spec{Name: "unlink", Arity: -2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: -1, Step: 1, run: cmdDel},
		&Spec{Name: "exists", Arity: -2, Flags: ro, FirstKey: 1, LastKey: -1, Step: 1, run: cmdExists},
		&Spec{Name: "type", Arity: 2, Flags: ro, FirstKey: 1, LastKey: 1, Step: 1, run: cmdType},
		&Spec{Name: "ttl", Arity: 2, Flags: ro, FirstKey: 1, LastKey: 1, Step: 1, run: cmdTTL(time.Second, false)},
		&Spec{Name: "pttl", Arity: 2, Flags: ro, FirstKey: 1, LastKey: 1, Step: 1, run: cmdTTL(time.Millisecond, false)},
		&Spec{Name: "expiretime", Arity: 2, Flags: ro, FirstKey: 1, LastKey: 1, Step: 1, run: cmdTTL(time.Second, true)},
		&Spec{Name: "pexpiretime", Arity: 2, Flags: ro, FirstKey: 1, LastKey: 1, Step: 1, run: cmdTTL(time.Millisecond, true)},
		&Spec{Name: "expire", Arity: -3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, run: cmdExpire("expire", time.Second, false)},
		&Spec{Name: "pexpire", Arity: -3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, run: cmdExpire("pexpire", time.Millisecond, false)},
		&Spec{Name: "expireat", Arity: -3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, run: cmdExpire("expireat", time.Second, true)},
		&Spec{Name: "pexpireat", Arity: -3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, run: cmdExpire("pexpireat", time.Millisecond, true)},
		&Spec{Name: "persist", Arity: 2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, run: cmdPersist},
		&Spec{Name: "keys", Arity: 2, Flags: FlagReadOnly, run: cmdKeys},
		&Spec{Name: "scan", Arity: -2, Flags: FlagReadOnly, run: cmdScan},
		&Spec{Name: "dbsize", Arity: 1, Flags: ro, run: cmdDBSize},
		&Spec{Name: "flushdb", Arity: -1, Flags: FlagWrite | FlagAdmin, run: cmdFlush},
		&Spec{Name: "flushall", Arity: -1, Flags: FlagWrite | FlagAdmin, run: cmdFlush},
		&Spec{Name: "ping", Arity: -1, Flags: FlagFast, run: cmdPing},
		&Spec{Name: "echo", Arity: 2, Flags: FlagFast, run: func(t *Tx, a [][]byte) Reply { return bulkReply(a[1]) }},
		&Spec{Name: "time", Arity: 1, Flags: FlagFast, run: cmdTime},
	)
}

func cmdDel(t *Tx, a [][]byte) Reply {
	n := 0
	for _, k := range a[1:] {
		if t.del(k) {
			t.event("del", string(k))
			n++
		}
	}
	return intReply(int64(n))
}

func cmdExists(t *Tx, a [][]byte) Reply {
	n := 0
	for _, k := range a[1:] {
		if _, ok := t.lookup(k); ok {
			n++
		}
	}
	return intReply(int64(n))
}

func cmdType(t *Tx, a [][]byte) Reply {
	if it, ok := t.lookup(a[1]); ok {
		return statusReply(it.kind().String())
	}
	return statusReply("none")
}

// cmdTTL is TTL and PTTL (remaining time, as Redis rounds it: PTTL in
// whole ms rounded up, TTL to the nearest second) and, absolute,
// EXPIRETIME and PEXPIRETIME.
func cmdTTL(unit time.Duration, absolute bool) func(*Tx, [][]byte) Reply {
	return func(t *Tx, a [][]byte) Reply {
		it, ok := t.lookup(a[1])
		switch {
		case !ok:
			return intReply(-2)
		case it.expireAt == 0:
			return intReply(-1)
		case absolute && t.s.clusterLevel() >= LevelRedisFixes && unit == time.Second:
			return intReply((it.expireAt/int64(time.Millisecond) + 500) / 1000) // Redis rounds
		case absolute:
			return intReply(it.expireAt / int64(unit))
		}
		ms := (it.expireAt - t.now + int64(time.Millisecond) - 1) / int64(time.Millisecond)
		if unit == time.Second {
			return intReply((ms + 500) / 1000)
		}
		return intReply(ms)
	}
}

// EXPIRE's conditions; every one given must hold.
const (
	expNX = 1 << iota // only if the key has no expiry
	expXX             // only if it has one
	expGT             // only if the new expiry is later (no expiry counts as infinite)
	expLT             // only if the new expiry is earlier
)

// cmdExpire is EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT key t [NX|XX|GT|LT]. A
// time not in the future deletes the key, as in Redis.
func cmdExpire(name string, unit time.Duration, absolute bool) func(*Tx, [][]byte) Reply {
	return func(t *Tx, a [][]byte) Reply {
		var cond int
		for _, o := range a[3:] {
			switch {
			case eq(o, "nx"):
				cond |= expNX
			case eq(o, "xx"):
				cond |= expXX
			case eq(o, "gt"):
				cond |= expGT
			case eq(o, "lt"):
				cond |= expLT
			default:
				return cmdErr(ErrSyntax, "ERR Unsupported option "+string(o))
			}
		}
		if cond&expNX != 0 && cond&^expNX != 0 {
			return cmdErr(ErrSyntax, "ERR NX and XX, GT or LT options at the same time are not compatible")
		}
		if cond&expGT != 0 && cond&expLT != 0 {
			return cmdErr(ErrSyntax, "ERR GT and LT options at the same time are not compatible")
		}
		n, ok := ParseInt(a[2])
		if !ok {
			return replyNotInteger
		}
		// As Redis: in milliseconds, refusing only what overflows.
		ms := n
		if unit == time.Second {
			if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
				return replyInvalidExpire(name)
			}
			ms = n * 1000
		}
		nowMs := t.now / int64(time.Millisecond)
		if !absolute {
			if ms > math.MaxInt64-nowMs {
				return replyInvalidExpire(name)
			}
			ms += nowMs
		}
		if ms > nowMs && ms-nowMs > int64(MaxTTL/time.Millisecond) {
			return replyInvalidExpire(name)
		}
		at := ms * int64(time.Millisecond) // in the past it may be far in the past: only compared below
		if ms <= nowMs {
			at = t.now
		}
		it, found := t.lookup(a[1])
		if !found {
			return intReply(0)
		}
		cur := it.expireAt
		if cond&expNX != 0 && cur != 0 || cond&expXX != 0 && cur == 0 ||
			cond&expGT != 0 && (cur == 0 || at <= cur) || cond&expLT != 0 && cur != 0 && at >= cur {
			return intReply(0)
		}
		if at <= t.now {
			t.del(a[1])
			t.event("del", string(a[1]))
			return intReply(1)
		}
		t.setExpiry(it, at)
		t.event("expire", string(a[1]))
		return intReply(1)
	}
}

func cmdPersist(t *Tx, a [][]byte) Reply {
	it, found := t.lookup(a[1])
	if !found || it.expireAt == 0 {
		return intReply(0)
	}
	t.setExpiry(it, 0)
	t.event("persist", string(a[1]))
	return intReply(1)
}

// keysPage is how many keys KEYS reads at a time between pattern checks.
const keysPage = 10000

func cmdKeys(t *Tx, a [][]byte) Reply {
	pattern := a[1]
	var out []Reply
	t.ascend(literalPrefix(pattern), "", func(it *item) bool {
		if GlobMatch(pattern, []byte(it.key)) {
			out = append(out, bulkReply([]byte(it.key)))
		}
		return true
	})
	return arrayReply(out)
}

// maxScanCount bounds the keys one SCAN call examines.
const maxScanCount = 100000

func cmdScan(t *Tx, a [][]byte) Reply {
	cursor, err := strconv.ParseUint(string(a[1]), 10, 64)
	if err != nil {
		return cmdErr(ErrSyntax, "ERR invalid cursor")
	}
	var pattern []byte
	count := int64(10)
	var typ []byte // TYPE's name; nil: every type
	for i := 2; i < len(a); i += 2 {
		if i+1 >= len(a) {
			return replySyntax
		}
		switch {
		case eq(a[i], "match"):
			pattern = a[i+1]
		case eq(a[i], "count"):
			var ok bool
			if count, ok = ParseInt(a[i+1]); !ok {
				return replyNotInteger
			}
			if count < 1 {
				return replySyntax
			}
		case eq(a[i], "type"):
			typ = a[i+1]
		default:
			return replySyntax
		}
	}
	count = min(count, maxScanCount)
	var after string
	if cursor != 0 {
		var ok bool
		if after, ok = t.f.cursors.get(cursor, t.now); !ok {
			return cmdErr(ErrSyntax, "ERR invalid cursor: unknown or expired on this node (cursors live "+
				time.Duration(cursorTTL).String()+" on the node that issued them)")
		}
	}
	var keys []Reply
	seen, last, more := int64(0), "", false
	t.ascend(literalPrefix(pattern), after, func(it *item) bool {
		if seen == count {
			more = true
			return false
		}
		seen++
		last = it.key
		if (typ == nil || eq(typ, it.kind().String())) && (pattern == nil || GlobMatch(pattern, []byte(it.key))) {
			keys = append(keys, bulkReply([]byte(it.key)))
		}
		return true
	})
	next := uint64(0)
	if more {
		next = t.f.cursors.put(last, t.now)
	}
	return arrayReply([]Reply{bulkReply(strconv.AppendUint(nil, next, 10)), arrayReply(keys)})
}

// ascend calls fn for the live keys with prefix, in order, after the key
// after (exclusive; "" starts at the prefix), until fn returns false.
func (t *Tx) ascend(prefix []byte, after string, fn func(*item) bool) {
	start := string(prefix)
	if after > start {
		start = after
	}
	t.s.tree.AscendGreaterOrEqual(&item{key: start}, func(it *item) bool {
		if !bytes.HasPrefix([]byte(it.key), prefix) {
			return false
		}
		if it.key == after && after != "" || it.expired(t.now) {
			return true
		}
		return fn(it)
	})
}

// cmdDBSize counts live keys: the expired ones that the leader has not
// yet removed are left out (Redis counts them until its expiry cycle
// removes them), so every node answers the same at the same index.
func cmdDBSize(t *Tx, a [][]byte) Reply {
	expired := 0
	t.s.ttl.Ascend(func(k ttlKey) bool {
		if k.at > t.now {
			return false
		}
		expired++
		return true
	})
	return intReply(int64(t.s.tree.Len() - expired))
}

// cmdFlush is FLUSHDB/FLUSHALL [ASYNC|SYNC]: every key, at once.
func cmdFlush(t *Tx, a [][]byte) Reply {
	if len(a) > 2 || len(a) == 2 && !eq(a[1], "async") && !eq(a[1], "sync") {
		return replySyntax
	}
	n := t.s.clear(t.now)
	t.s.counters.Deletes += uint64(n)
	if t.ch != nil {
		t.ch.prefix(nil)
	}
	return replyOK
}

func cmdPing(t *Tx, a [][]byte) Reply {
	switch len(a) {
	case 1:
		return statusReply("PONG")
	case 2:
		return bulkReply(a[1])
	}
	return replyArity("ping")
}

// cmdTime answers the time of the entry (the leader's clock) inside a
// transaction, the reader's clock in a view.
func cmdTime(t *Tx, a [][]byte) Reply {
	us := t.now / int64(time.Microsecond)
	return arrayReply([]Reply{
		bulkReply(strconv.AppendInt(nil, us/1e6, 10)),
		bulkReply(strconv.AppendInt(nil, us%1e6, 10)),
	})
}
