package fsm

import (
	"bytes"
	"math"
	"math/big"
	"strings"
	"time"
)

// Key commands that work on every type (RENAME, COPY, TOUCH, OBJECT) and
// the remaining string commands (APPEND, GETRANGE, SETRANGE, GETEX,
// INCRBYFLOAT), with Redis 7.0's replies and errors (db.c, t_string.c,
// object.c).

func init() {
	rw := FlagWrite | FlagDenyOOM
	k1 := func(s *Spec) *Spec { s.FirstKey, s.LastKey, s.Step, s.Level = 1, 1, 1, LevelTypes; return s }
	k2 := func(s *Spec) *Spec { s.FirstKey, s.LastKey, s.Step, s.Level = 1, 2, 1, LevelTypes; return s }
	register(
		k2(&Spec{Name: "rename", Arity: 3, Flags: FlagWrite, run: cmdRename(false)}),
		k2(&Spec{Name: "renamenx", Arity: 3, Flags: FlagWrite | FlagFast, run: cmdRename(true)}),
		k2(&Spec{Name: "copy", Arity: -3, Flags: rw, run: cmdCopy}),
		&Spec{Name: "touch", Arity: -2, Flags: FlagReadOnly | FlagFast, FirstKey: 1, LastKey: -1, Step: 1, Level: LevelTypes, run: cmdTouch},
		k1(&Spec{Name: "append", Arity: 3, Flags: rw | FlagFast, run: cmdAppend}),
		k1(&Spec{Name: "getrange", Arity: 4, Flags: FlagReadOnly, run: cmdGetRange}),
		k1(&Spec{Name: "substr", Arity: 4, Flags: FlagReadOnly, run: cmdGetRange}),
		k1(&Spec{Name: "setrange", Arity: 4, Flags: rw, run: cmdSetRange}),
		k1(&Spec{Name: "getex", Arity: -2, Flags: FlagWrite | FlagFast, run: cmdGetEx}),
		k1(&Spec{Name: "incrbyfloat", Arity: 3, Flags: rw | FlagFast, run: cmdIncrByFloat}),
		&Spec{Name: "object", Arity: -2, Flags: FlagReadOnly, FirstKey: 2, LastKey: 2, Step: 1, Level: LevelTypes, run: cmdObject, check: checkObject},
	)
}

// moveValue stores a copy of it (a string's bytes are immutable and
// shared; a collection is cloned in O(1)) under key with expiry exp.
func (t *Tx) moveValue(key string, it *item, exp int64) {
	if it.obj == nil {
		t.put(key, it.value, exp)
		return
	}
	t.putObject(key, it.obj.clone(), exp)
}

// cmdRename is RENAME and RENAMENX: the value and its expiry move to the
// new name, replacing whatever it held (RENAMENX: only if it is free).
func cmdRename(nx bool) func(*Tx, [][]byte) Reply {
	return func(t *Tx, a [][]byte) Reply {
		it, found := t.lookup(a[1])
		if !found {
			return errReply(ErrNotFound)
		}
		if bytes.Equal(a[1], a[2]) {
			if nx {
				return intReply(0)
			}
			return replyOK
		}
		if nx {
			if _, exists := t.lookup(a[2]); exists {
				return intReply(0)
			}
		}
		t.del(a[2])
		t.moveValue(string(a[2]), it, it.expireAt)
		t.del(a[1])
		t.event("rename_from", string(a[1]))
		t.event("rename_to", string(a[2]))
		if nx {
			return intReply(1)
		}
		return replyOK
	}
}

// cmdCopy is COPY source destination [DB db] [REPLACE]. raftcache has one
// database: DB 0 is accepted, any other is refused.
func cmdCopy(t *Tx, a [][]byte) Reply {
	replace := false
	for i := 3; i < len(a); i++ {
		switch {
		case eq(a[i], "replace"):
			replace = true
		case eq(a[i], "db") && i+1 < len(a):
			n, ok := ParseInt(a[i+1])
			if !ok {
				return replyNotInteger
			}
			if n != 0 {
				return cmdErr(ErrSyntax, "ERR COPY to another database is not supported: raftcache has one database (DB 0)")
			}
			i++
		default:
			return replySyntax
		}
	}
	if bytes.Equal(a[1], a[2]) {
		return cmdErr(ErrSyntax, "ERR source and destination objects are the same")
	}
	it, found := t.lookup(a[1])
	if !found {
		return intReply(0)
	}
	if _, exists := t.lookup(a[2]); exists {
		if !replace {
			return intReply(0)
		}
		t.del(a[2])
	}
	t.moveValue(string(a[2]), it, it.expireAt)
	t.event("copy_to", string(a[2]))
	return intReply(1)
}

// cmdTouch counts the keys that exist and refreshes their LRU hint.
func cmdTouch(t *Tx, a [][]byte) Reply {
	n := 0
	for _, k := range a[1:] {
		if _, ok := t.read(k); ok {
			n++
		}
	}
	return intReply(int64(n))
}

func cmdAppend(t *Tx, a [][]byte) Reply {
	cur, found, wrong := t.str(a[1])
	if wrong {
		return replyWrongType
	}
	var v []byte
	exp := int64(0)
	if found {
		v = make([]byte, 0, len(cur.value)+len(a[2]))
		v = append(append(v, cur.value...), a[2]...)
		exp = cur.expireAt
	} else {
		v = bytes.Clone(a[2])
	}
	if rep, ok := t.checkValue(v); !ok {
		return rep
	}
	t.put(string(a[1]), v, exp)
	t.event("append", string(a[1]))
	return intReply(int64(len(v)))
}

// cmdGetRange is GETRANGE (and its old name SUBSTR) with Redis's
// clamping of negative and out-of-range offsets.
func cmdGetRange(t *Tx, a [][]byte) Reply {
	start, ok1 := ParseInt(a[2])
	end, ok2 := ParseInt(a[3])
	if !ok1 || !ok2 {
		return replyNotInteger
	}
	it, found, wrong := t.readTyped(a[1], TypeString)
	if wrong {
		return replyWrongType
	}
	if !found {
		return bulkReply([]byte{})
	}
	n := int64(len(it.value))
	if start < 0 && end < 0 && start > end {
		return bulkReply([]byte{})
	}
	if start < 0 {
		start += n
	}
	if end < 0 {
		end += n
	}
	start, end = max(start, 0), max(end, 0)
	if end >= n {
		end = n - 1
	}
	if start > end || n == 0 {
		return bulkReply([]byte{})
	}
	return bulkReply(it.value[start : end+1])
}

// maxStringSize is Redis's proto-max-bulk-len default, the bound of
// SETRANGE's offset + length (the node's value limit applies as well).
const maxStringSize = 512 << 20

func cmdSetRange(t *Tx, a [][]byte) Reply {
	off, ok := ParseInt(a[2])
	if !ok {
		return replyNotInteger
	}
	if off < 0 {
		return cmdErr(ErrSyntax, "ERR offset is out of range")
	}
	cur, found, wrong := t.str(a[1])
	if wrong {
		return replyWrongType
	}
	val := a[3]
	if len(val) == 0 {
		if found {
			return intReply(int64(len(cur.value)))
		}
		return intReply(0)
	}
	if off > maxStringSize-int64(len(val)) { // not off+len: that wraps past int64
		return cmdErr(ErrValueTooLarge, "ERR string exceeds maximum allowed size (proto-max-bulk-len)")
	}
	n := int(off) + len(val)
	if lim := t.limits.MaxValueSize; lim > 0 && int64(n) > lim {
		return errReply(ErrValueTooLarge)
	}
	var old []byte
	exp := int64(0)
	if found {
		old, exp = cur.value, cur.expireAt
	}
	v := make([]byte, max(n, len(old)))
	copy(v, old)
	copy(v[off:], val)
	t.put(string(a[1]), v, exp)
	t.event("setrange", string(a[1]))
	return intReply(int64(len(v)))
}

// cmdGetEx is GETEX key [EX s | PX ms | EXAT t | PXAT t | PERSIST].
func cmdGetEx(t *Tx, a [][]byte) Reply {
	var expArg []byte
	var unit time.Duration
	abs, persist := false, false
	for i := 2; i < len(a); i++ {
		o := a[i]
		// As Redis: an option may repeat (the last time wins), but
		// two different ones conflict.
		switch {
		case eq(o, "persist") && expArg == nil:
			persist = true
		case (eq(o, "ex") || eq(o, "px") || eq(o, "exat") || eq(o, "pxat")) && i+1 < len(a) && !persist:
			u, ab := time.Second, len(o) == 4
			if o[0] == 'p' || o[0] == 'P' {
				u = time.Millisecond
			}
			if expArg != nil && (u != unit || ab != abs) {
				return replySyntax
			}
			unit, abs, expArg = u, ab, a[i+1]
			i++
		default:
			return replySyntax
		}
	}
	// As Redis: the key is looked up before the time is parsed.
	it, found, wrong := t.readTyped(a[1], TypeString)
	if wrong {
		return replyWrongType
	}
	if !found {
		return replyNull
	}
	var at int64
	if expArg != nil {
		var rep Reply
		var ok bool
		if at, rep, ok = expireIn(expArg, unit, abs, t.expiryNow(), "getex"); !ok {
			return rep
		}
	}
	v := bulkReply(it.value)
	switch {
	case expArg != nil && at <= t.now:
		t.del(a[1])
		t.event("del", it.key)
	case expArg != nil:
		t.setExpiry(it, at)
		t.event("expire", it.key)
	case persist && it.expireAt != 0:
		t.setExpiry(it, 0)
		t.event("persist", it.key)
	}
	return v
}

// cmdIncrByFloat adds in long double precision, as Redis 7.0 does
// (longdouble.go), keeping the key's expiry.
func cmdIncrByFloat(t *Tx, a [][]byte) Reply {
	cur, found, wrong := t.str(a[1])
	if wrong {
		return replyWrongType
	}
	v, exp := new(big.Float), int64(0)
	ok := true
	if found {
		if v, ok = parseLongDouble(cur.value); !ok {
			return replyNotFloat
		}
		exp = cur.expireAt
	}
	by, ok := parseLongDouble(a[2])
	if !ok {
		return replyNotFloat
	}
	sum, ok := addLongDouble(v, by)
	if !ok {
		return cmdErr(ErrNotInteger, "ERR increment would produce NaN or Infinity")
	}
	out := formatLongDouble(sum)
	if rep, ok := t.checkValue(out); !ok {
		return rep
	}
	t.put(string(a[1]), out, exp)
	t.event("incrbyfloat", string(a[1]))
	return bulkReply(out)
}

var objectHelp = []string{
	"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"ENCODING <key>",
	"    Return the kind of internal representation used in order to store the value",
	"    associated with a <key>.",
	"FREQ <key>",
	"    Return the access frequency index of the <key>. The returned integer is",
	"    proportional to the logarithm of the recent access frequency of the key.",
	"IDLETIME <key>",
	"    Return the idle time of the <key>, that is the approximated number of",
	"    seconds elapsed since the last access to the key.",
	"REFCOUNT <key>",
	"    Return the number of references of the value associated with the specified",
	"    <key>.",
	"HELP",
	"    Prints this help.",
}

// checkObject refuses an unknown subcommand or a subcommand's wrong
// arity before the command is queued or proposed, as Redis does with
// its subcommand table.
func checkObject(a [][]byte) error {
	sub := strings.ToLower(string(a[1]))
	want := 3
	switch sub {
	case "help":
		want = 2
	case "encoding", "idletime", "refcount", "freq":
	default:
		return &Error{Code: ErrSyntax, Msg: "ERR unknown subcommand '" + printable(a[1]) + "'. Try OBJECT HELP."}
	}
	if len(a) != want {
		return &Error{Code: ErrArity, Msg: "ERR wrong number of arguments for 'object|" + sub + "' command"}
	}
	return nil
}

// cmdObject is OBJECT ENCODING / IDLETIME / REFCOUNT / FREQ / HELP.
// ENCODING answers what Redis 7.0 would for the value as it is now;
// IDLETIME comes from the node's LRU hint (not replicated).
func cmdObject(t *Tx, a [][]byte) Reply {
	if err := checkObject(a); err != nil {
		return errReply(err)
	}
	sub := strings.ToLower(string(a[1]))
	if sub == "help" {
		out := make([]Reply, len(objectHelp))
		for i, l := range objectHelp {
			out[i] = statusReply(l)
		}
		return arrayReply(out)
	}
	it, found := t.lookup(a[2])
	if !found {
		return replyNull
	}
	switch sub {
	case "encoding":
		return bulkReply([]byte(encodingOf(it)))
	case "idletime":
		return intReply(max(0, (t.now-it.access.Load())/int64(time.Second)))
	case "refcount":
		if n, ok := ParseInt(it.value); ok && it.obj == nil && n >= 0 && n < 10000 {
			return intReply(math.MaxInt32) // Redis's shared integers
		}
		return intReply(1)
	}
	return cmdErr(ErrSyntax, "ERR An LFU maxmemory policy is not selected, access frequency not tracked. "+
		"Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
}

// encodingOf is Redis 7.0's encoding for the value: a string that is an
// integer is "int", up to 44 bytes "embstr", else "raw" (Redis also
// answers "raw" for a short string changed by APPEND or SETRANGE; this
// answer does not remember how a value was made).
func encodingOf(it *item) string {
	switch o := it.obj.(type) {
	case nil:
		if len(it.value) <= 20 {
			if _, ok := ParseInt(it.value); ok {
				return "int"
			}
		}
		if len(it.value) <= 44 {
			return "embstr"
		}
		return "raw"
	case *hashObj:
		return o.encoding()
	case *setObj:
		return o.encoding()
	case interface{ encoding() string }:
		return o.encoding()
	}
	return "unknown"
}
