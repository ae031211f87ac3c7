package resp

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

// maxTTL bounds expiries, as the HTTP API does (and keeps now+TTL in int64).
const maxTTL = 100 * 365 * 24 * time.Hour

// casAttempts bounds the read-modify-write loops (GETDEL, SET NX GET,
// EXPIRE NX|XX|GT|LT, PERSIST) when the key keeps changing under them.
const casAttempts = 16

var errBusyKey = replyError("TRYAGAIN the key kept changing during a read-modify-write; nothing was changed")

// commands is the command table, by lower-case name.
var commands = map[string]*command{}

// txControl commands are executed, not queued, inside MULTI.
var txControl = map[string]bool{"exec": true, "discard": true, "multi": true, "watch": true, "quit": true, "reset": true}

func init() {
	for _, c := range []*command{
		// Reads.
		{name: "get", arity: 2, kind: kindRead, flags: []string{"readonly", "fast"}, keys: [3]int{1, 1, 1}, plan: planGet},
		{name: "mget", arity: -2, kind: kindRead, flags: []string{"readonly", "fast"}, keys: [3]int{1, -1, 1}, plan: planMGet},
		{name: "exists", arity: -2, kind: kindRead, flags: []string{"readonly", "fast"}, keys: [3]int{1, -1, 1}, plan: planExists},
		{name: "ttl", arity: 2, kind: kindRead, flags: []string{"readonly", "fast"}, keys: [3]int{1, 1, 1}, plan: planTTL(false)},
		{name: "pttl", arity: 2, kind: kindRead, flags: []string{"readonly", "fast"}, keys: [3]int{1, 1, 1}, plan: planTTL(true)},
		{name: "type", arity: 2, kind: kindRead, flags: []string{"readonly", "fast"}, keys: [3]int{1, 1, 1}, plan: planType},
		{name: "strlen", arity: 2, kind: kindRead, flags: []string{"readonly", "fast"}, keys: [3]int{1, 1, 1}, plan: planStrlen},
		{name: "keys", arity: 2, kind: kindRead, flags: []string{"readonly"}, plan: planKeys},
		{name: "scan", arity: -2, kind: kindRead, flags: []string{"readonly"}, plan: planScan},
		{name: "dbsize", arity: 1, kind: kindRead, flags: []string{"readonly", "fast"}, plan: planDBSize},
		// Writes.
		{name: "set", arity: -3, kind: kindWrite, flags: []string{"write", "denyoom"}, keys: [3]int{1, 1, 1}, plan: planSet},
		{name: "setnx", arity: 3, kind: kindWrite, flags: []string{"write", "denyoom", "fast"}, keys: [3]int{1, 1, 1}, plan: planSetNX},
		{name: "setex", arity: 4, kind: kindWrite, flags: []string{"write", "denyoom"}, keys: [3]int{1, 1, 1}, plan: planSetEX(time.Second, "setex")},
		{name: "psetex", arity: 4, kind: kindWrite, flags: []string{"write", "denyoom"}, keys: [3]int{1, 1, 1}, plan: planSetEX(time.Millisecond, "psetex")},
		{name: "getset", arity: 3, kind: kindWrite, flags: []string{"write", "denyoom", "fast"}, keys: [3]int{1, 1, 1}, plan: planGetSet},
		{name: "getdel", arity: 2, kind: kindWrite, flags: []string{"write", "fast"}, keys: [3]int{1, 1, 1}, plan: planGetDel},
		{name: "mset", arity: -3, kind: kindWrite, flags: []string{"write", "denyoom"}, keys: [3]int{1, -1, 2}, plan: planMSet(false)},
		{name: "msetnx", arity: -3, kind: kindWrite, flags: []string{"write", "denyoom"}, keys: [3]int{1, -1, 2}, plan: planMSet(true)},
		{name: "del", arity: -2, kind: kindWrite, flags: []string{"write"}, keys: [3]int{1, -1, 1}, plan: planDel},
		{name: "unlink", arity: -2, kind: kindWrite, flags: []string{"write", "fast"}, keys: [3]int{1, -1, 1}, plan: planDel},
		{name: "incr", arity: 2, kind: kindWrite, flags: []string{"write", "denyoom", "fast"}, keys: [3]int{1, 1, 1}, plan: planIncr(1, false)},
		{name: "decr", arity: 2, kind: kindWrite, flags: []string{"write", "denyoom", "fast"}, keys: [3]int{1, 1, 1}, plan: planIncr(-1, false)},
		{name: "incrby", arity: 3, kind: kindWrite, flags: []string{"write", "denyoom", "fast"}, keys: [3]int{1, 1, 1}, plan: planIncr(1, true)},
		{name: "decrby", arity: 3, kind: kindWrite, flags: []string{"write", "denyoom", "fast"}, keys: [3]int{1, 1, 1}, plan: planIncr(-1, true)},
		{name: "expire", arity: -3, kind: kindWrite, flags: []string{"write", "fast"}, keys: [3]int{1, 1, 1}, plan: planExpire("expire", time.Second, false)},
		{name: "pexpire", arity: -3, kind: kindWrite, flags: []string{"write", "fast"}, keys: [3]int{1, 1, 1}, plan: planExpire("pexpire", time.Millisecond, false)},
		{name: "expireat", arity: -3, kind: kindWrite, flags: []string{"write", "fast"}, keys: [3]int{1, 1, 1}, plan: planExpire("expireat", time.Second, true)},
		{name: "pexpireat", arity: -3, kind: kindWrite, flags: []string{"write", "fast"}, keys: [3]int{1, 1, 1}, plan: planExpire("pexpireat", time.Millisecond, true)},
		{name: "persist", arity: 2, kind: kindWrite, flags: []string{"write", "fast"}, keys: [3]int{1, 1, 1}, plan: planPersist},
		{name: "flushdb", arity: -1, kind: kindWrite, flags: []string{"write"}, plan: planFlush},
		{name: "flushall", arity: -1, kind: kindWrite, flags: []string{"write"}, plan: planFlush},
	} {
		commands[c.name] = c
	}
	initConnCommands()
}

// --- argument checks -------------------------------------------------------

func (s *Server) checkKey(key []byte) error {
	if len(key) > MaxKeySize {
		return replyError("ERR key is longer than " + strconv.Itoa(MaxKeySize) + " bytes")
	}
	return nil
}

func (s *Server) checkValue(key, value []byte) error {
	if err := s.checkKey(key); err != nil {
		return err
	}
	if int64(len(value)) > s.cfg.MaxValueSize {
		return replyError("ERR value is larger than the limit of " + strconv.FormatInt(s.cfg.MaxValueSize, 10) + " bytes")
	}
	if mm := s.node.MaxMemory(); mm > 0 && int64(len(key)+len(value))+fsm.EntryOverhead > mm {
		return replyError("OOM value can never fit under --max-memory " + strconv.FormatInt(mm, 10))
	}
	return nil
}

func (s *Server) checkKeys(keys [][]byte) error {
	for _, k := range keys {
		if err := s.checkKey(k); err != nil {
			return err
		}
	}
	return nil
}

// parseInt reads a decimal int64 as Redis does: no sign but '-', no
// spaces, no leading zeros.
func parseInt(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 20 || b[0] == '+' || (len(b) > 1 && b[0] == '0') || (len(b) > 1 && b[0] == '-' && b[1] == '0') {
		return 0, replyError(msgNotInteger)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, replyError(msgNotInteger)
	}
	return n, nil
}

// expiry turns an EX/PX/EXAT/PXAT argument into a relative TTL or an
// absolute time (Unix ns), refusing what Redis refuses.
func expiry(arg []byte, unit time.Duration, absolute bool, name string) (ttl time.Duration, at int64, err error) {
	n, err := parseInt(arg)
	if err != nil {
		return 0, 0, err
	}
	if n <= 0 || n > math.MaxInt64/int64(unit) {
		return 0, 0, invalidExpire(name)
	}
	if absolute {
		at = n * int64(unit)
		if time.Duration(at-time.Now().UnixNano()) > maxTTL {
			return 0, 0, invalidExpire(name)
		}
		return 0, at, nil
	}
	if time.Duration(n)*unit > maxTTL {
		return 0, 0, invalidExpire(name)
	}
	return time.Duration(n) * unit, 0, nil
}

func lower(b []byte) string { return strings.ToLower(string(b)) }

// --- reads -----------------------------------------------------------------

func planGet(s *Server, args [][]byte) (*plan, error) {
	key := args[1]
	return &plan{read: func(s *Server, w *writer, now int64) {
		e, err := s.node.FSM().Get(key, now)
		w.value(e.Value, err == nil)
	}}, s.checkKey(key)
}

func planMGet(s *Server, args [][]byte) (*plan, error) {
	keys := args[1:]
	return &plan{read: func(s *Server, w *writer, now int64) {
		w.array(len(keys))
		for _, k := range keys {
			e, err := s.node.FSM().Get(k, now)
			w.value(e.Value, err == nil)
		}
	}}, s.checkKeys(keys)
}

func planExists(s *Server, args [][]byte) (*plan, error) {
	keys := args[1:]
	return &plan{read: func(s *Server, w *writer, now int64) {
		n := 0
		for _, k := range keys {
			if _, err := s.node.FSM().Get(k, now); err == nil {
				n++
			}
		}
		w.int(int64(n))
	}}, s.checkKeys(keys)
}

func planTTL(ms bool) func(*Server, [][]byte) (*plan, error) {
	return func(s *Server, args [][]byte) (*plan, error) {
		key := args[1]
		return &plan{read: func(s *Server, w *writer, now int64) {
			e, err := s.node.FSM().Get(key, now)
			switch {
			case err != nil:
				w.int(-2)
			case e.ExpireAt == 0:
				w.int(-1)
			default:
				left := (e.ExpireAt - now + int64(time.Millisecond) - 1) / int64(time.Millisecond) // ms, rounded up
				if !ms {
					left = (left + 500) / 1000 // as Redis rounds
				}
				w.int(left)
			}
		}}, s.checkKey(key)
	}
}

func planType(s *Server, args [][]byte) (*plan, error) {
	key := args[1]
	return &plan{read: func(s *Server, w *writer, now int64) {
		if _, err := s.node.FSM().Get(key, now); err != nil {
			w.status("none")
			return
		}
		w.status("string")
	}}, s.checkKey(key)
}

func planStrlen(s *Server, args [][]byte) (*plan, error) {
	key := args[1]
	return &plan{read: func(s *Server, w *writer, now int64) {
		e, _ := s.node.FSM().Get(key, now)
		w.int(int64(len(e.Value)))
	}}, s.checkKey(key)
}

func planDBSize(s *Server, args [][]byte) (*plan, error) {
	return &plan{read: func(s *Server, w *writer, now int64) {
		w.int(int64(s.node.FSM().Stats().Keys))
	}}, nil
}

// keysPage is how many keys KEYS reads from the cache at a time.
const keysPage = 10000

func planKeys(s *Server, args [][]byte) (*plan, error) {
	pattern := args[1]
	prefix := literalPrefix(pattern)
	return &plan{read: func(s *Server, w *writer, now int64) {
		var out [][]byte
		var after []byte
		for {
			keys, more := s.node.FSM().Keys(prefix, after, keysPage, now)
			for _, k := range keys {
				if globMatch(pattern, k) {
					out = append(out, k)
				}
			}
			if !more || len(keys) == 0 {
				break
			}
			after = keys[len(keys)-1]
		}
		w.array(len(out))
		for _, k := range out {
			w.bulk(k)
		}
	}}, nil
}

// maxScanCount bounds the keys one SCAN call examines.
const maxScanCount = 100000

func planScan(s *Server, args [][]byte) (*plan, error) {
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		return nil, replyError("ERR invalid cursor")
	}
	var pattern []byte
	count := int64(10)
	stringsOnly := true
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return nil, replyError(msgSyntax)
		}
		switch lower(args[i]) {
		case "match":
			pattern = args[i+1]
		case "count":
			if count, err = parseInt(args[i+1]); err != nil {
				return nil, err
			}
			if count < 1 {
				return nil, replyError(msgSyntax)
			}
		case "type":
			stringsOnly = lower(args[i+1]) == "string"
		default:
			return nil, replyError(msgSyntax)
		}
	}
	count = min(count, maxScanCount)
	prefix := literalPrefix(pattern)
	return &plan{read: func(s *Server, w *writer, now int64) {
		var after []byte
		if cursor != 0 {
			var ok bool
			if after, ok = s.cursors.get(cursor); !ok {
				w.error("ERR invalid cursor: unknown or expired on this node (cursors live " + cursorTTL.String() + " on the node that issued them)")
				return
			}
		}
		keys, more := s.node.FSM().Keys(prefix, after, int(count), now)
		next := uint64(0)
		if more && len(keys) > 0 {
			next = s.cursors.put(keys[len(keys)-1])
		}
		var out [][]byte
		for _, k := range keys {
			if stringsOnly && (pattern == nil || globMatch(pattern, k)) {
				out = append(out, k)
			}
		}
		w.array(2)
		w.bulkString(strconv.FormatUint(next, 10))
		w.array(len(out))
		for _, k := range out {
			w.bulk(k)
		}
	}}, nil
}

// --- writes ----------------------------------------------------------------

// conditionFailed reports whether a result failed its condition.
func conditionFailed(r fsm.Result) bool { return errors.Is(r.Err, fsm.ErrConditionFailed) }

// planSet parses SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL].
func planSet(s *Server, args [][]byte) (*plan, error) {
	key, value := args[1], args[2]
	if err := s.checkValue(key, value); err != nil {
		return nil, err
	}
	op := node.Op{Kind: fsm.OpSet, Key: key, Value: value}
	var at int64
	get, expireSet := false, false
	for i := 3; i < len(args); i++ {
		opt := lower(args[i])
		switch opt {
		case "nx", "xx":
			if op.Cond != fsm.CondNone {
				return nil, replyError(msgSyntax)
			}
			op.Cond = fsm.CondAbsent
			if opt == "xx" {
				op.Cond = fsm.CondExists
			}
		case "get":
			get = true
		case "keepttl":
			if expireSet {
				return nil, replyError(msgSyntax)
			}
			op.Flags |= fsm.FlagKeepTTL
			expireSet = true
		case "ex", "px", "exat", "pxat":
			if expireSet || i+1 >= len(args) {
				return nil, replyError(msgSyntax)
			}
			unit := time.Second
			if opt[0] == 'p' {
				unit = time.Millisecond
			}
			var err error
			if op.TTL, at, err = expiry(args[i+1], unit, strings.HasSuffix(opt, "at"), "set"); err != nil {
				return nil, err
			}
			expireSet = true
			i++
		default:
			return nil, replyError(msgSyntax)
		}
	}
	if get {
		op.Flags |= fsm.FlagReturnPrev
	}
	p := &plan{ops: []node.Op{op}, done: func(w *writer, res []fsm.Result) {
		r := res[0]
		switch {
		case conditionFailed(r):
			w.null()
		case r.Err != nil:
			w.fail(r.Err)
		case get:
			w.value(r.Prev, r.PrevFound)
		default:
			w.ok()
		}
	}}
	if at != 0 {
		p.at = []int64{at}
	}
	if get && op.Cond == fsm.CondAbsent {
		// NX GET answers the current value when the key exists: a read,
		// then a conditional set if it was absent.
		op.Flags &^= fsm.FlagReturnPrev
		return &plan{custom: func(ctx context.Context, s *Server) (func(*writer), error) {
			for range casAttempts {
				e, err := s.node.Get(ctx, key, node.ReadOptions{})
				if err == nil {
					v := append([]byte(nil), e.Value...)
					return func(w *writer) { w.bulk(v) }, nil
				}
				if !errors.Is(err, fsm.ErrNotFound) {
					return nil, err
				}
				ops := (&plan{ops: []node.Op{op}, at: p.at}).finalOps(s.node.Now())
				if _, err = s.node.Write(ctx, ops[0]); err == nil {
					return func(w *writer) { w.null() }, nil
				}
				if !errors.Is(err, fsm.ErrConditionFailed) {
					return nil, err
				}
			}
			return nil, errBusyKey
		}}, nil
	}
	return p, nil
}

func planSetNX(s *Server, args [][]byte) (*plan, error) {
	op := node.Op{Kind: fsm.OpSet, Key: args[1], Value: args[2], Cond: fsm.CondAbsent}
	return &plan{ops: []node.Op{op}, done: func(w *writer, res []fsm.Result) {
		if r := res[0]; r.Err != nil && !conditionFailed(r) {
			w.fail(r.Err)
			return
		}
		w.bool(res[0].Err == nil)
	}}, s.checkValue(args[1], args[2])
}

func planSetEX(unit time.Duration, name string) func(*Server, [][]byte) (*plan, error) {
	return func(s *Server, args [][]byte) (*plan, error) {
		key, value := args[1], args[3]
		if err := s.checkValue(key, value); err != nil {
			return nil, err
		}
		ttl, _, err := expiry(args[2], unit, false, name)
		if err != nil {
			return nil, err
		}
		return &plan{ops: []node.Op{{Kind: fsm.OpSet, Key: key, Value: value, TTL: ttl}}, done: replyOK}, nil
	}
}

func replyOK(w *writer, res []fsm.Result) {
	for _, r := range res {
		if r.Err != nil {
			w.fail(r.Err)
			return
		}
	}
	w.ok()
}

func planGetSet(s *Server, args [][]byte) (*plan, error) {
	op := node.Op{Kind: fsm.OpSet, Key: args[1], Value: args[2], Flags: fsm.FlagReturnPrev}
	return &plan{ops: []node.Op{op}, done: func(w *writer, res []fsm.Result) {
		if r := res[0]; r.Err != nil {
			w.fail(r.Err)
			return
		}
		w.value(res[0].Prev, res[0].PrevFound)
	}}, s.checkValue(args[1], args[2])
}

// planGetDel reads the value and deletes the key only if it still has
// the version read: one conditional delete entry, retried if the key
// changed in between, so the value returned is the one removed.
func planGetDel(s *Server, args [][]byte) (*plan, error) {
	key := args[1]
	return &plan{custom: func(ctx context.Context, s *Server) (func(*writer), error) {
		for range casAttempts {
			e, err := s.node.Get(ctx, key, node.ReadOptions{})
			if errors.Is(err, fsm.ErrNotFound) {
				return func(w *writer) { w.null() }, nil
			}
			if err != nil {
				return nil, err
			}
			v := append([]byte(nil), e.Value...)
			_, err = s.node.Write(ctx, node.Op{Kind: fsm.OpDelete, Key: key, Cond: fsm.CondVersion, Version: e.Version})
			if err == nil {
				return func(w *writer) { w.bulk(v) }, nil
			}
			if !errors.Is(err, fsm.ErrConditionFailed) {
				return nil, err
			}
		}
		return nil, errBusyKey
	}}, s.checkKey(key)
}

func planMSet(nx bool) func(*Server, [][]byte) (*plan, error) {
	return func(s *Server, args [][]byte) (*plan, error) {
		name := "mset"
		if nx {
			name = "msetnx"
		}
		if len(args)%2 != 1 {
			return nil, wrongArgs(name)
		}
		p := &plan{atomic: nx}
		for i := 1; i < len(args); i += 2 {
			if err := s.checkValue(args[i], args[i+1]); err != nil {
				return nil, err
			}
			op := node.Op{Kind: fsm.OpSet, Key: args[i], Value: args[i+1]}
			if nx {
				op.Cond = fsm.CondAbsent
			}
			p.ops = append(p.ops, op)
		}
		if len(p.ops) > fsm.MaxBatch {
			return nil, replyError("ERR too many keys: at most " + strconv.Itoa(fsm.MaxBatch) + " in one command")
		}
		p.done = replyOK
		if nx {
			p.done = func(w *writer, res []fsm.Result) {
				for _, r := range res {
					if r.Err != nil && !conditionFailed(r) {
						w.fail(r.Err)
						return
					}
					if r.Err != nil {
						w.int(0)
						return
					}
				}
				w.int(1)
			}
		}
		return p, nil
	}
}

func planDel(s *Server, args [][]byte) (*plan, error) {
	keys := args[1:]
	if len(keys) > fsm.MaxBatch {
		return nil, replyError("ERR too many keys: at most " + strconv.Itoa(fsm.MaxBatch) + " in one command")
	}
	p := &plan{done: func(w *writer, res []fsm.Result) {
		n := 0
		for _, r := range res {
			if r.Deleted {
				n++
			}
		}
		w.int(int64(n))
	}}
	for _, k := range keys {
		p.ops = append(p.ops, node.Op{Kind: fsm.OpDelete, Key: k})
	}
	return p, s.checkKeys(keys)
}

func planIncr(sign int64, withArg bool) func(*Server, [][]byte) (*plan, error) {
	return func(s *Server, args [][]byte) (*plan, error) {
		by := sign
		if withArg {
			n, err := parseInt(args[2])
			if err != nil {
				return nil, err
			}
			if sign < 0 {
				if n == math.MinInt64 {
					return nil, replyError("ERR decrement would overflow")
				}
				n = -n
			}
			by = n
		}
		return &plan{ops: []node.Op{{Kind: fsm.OpIncr, Key: args[1], By: by}}, done: func(w *writer, res []fsm.Result) {
			if r := res[0]; r.Err != nil {
				w.fail(r.Err)
				return
			}
			w.int(res[0].Value)
		}}, s.checkKey(args[1])
	}
}

// expireCond is EXPIRE's NX|XX|GT|LT (every flag given must hold), or
// PERSIST's "has an expiry".
type expireCond uint8

const (
	expNX expireCond = 1 << iota // only if the key has no expiry
	expXX                        // only if it has one
	expGT                        // only if the new expiry is later (no expiry counts as infinite)
	expLT                        // only if the new expiry is earlier
)

var expireOptions = map[string]expireCond{"nx": expNX, "xx": expXX, "gt": expGT, "lt": expLT}

// planExpire parses EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT key t [NX|XX|GT|LT].
// Without a condition it is one OpTouch (or a delete when the time is not
// in the future, as in Redis); with one, a read and a conditional write.
func planExpire(name string, unit time.Duration, absolute bool) func(*Server, [][]byte) (*plan, error) {
	return func(s *Server, args [][]byte) (*plan, error) {
		key := args[1]
		if err := s.checkKey(key); err != nil {
			return nil, err
		}
		n, err := parseInt(args[2])
		if err != nil {
			return nil, err
		}
		if n > math.MaxInt64/int64(unit) || n < math.MinInt64/int64(unit) {
			return nil, invalidExpire(name)
		}
		var cond expireCond
		for _, a := range args[3:] {
			c, ok := expireOptions[lower(a)]
			if !ok {
				return nil, replyError("ERR Unsupported option " + printable(a))
			}
			cond |= c
		}
		if cond&expNX != 0 && cond&^expNX != 0 {
			return nil, replyError("ERR NX and XX, GT or LT options at the same time are not compatible")
		}
		if cond&expGT != 0 && cond&expLT != 0 {
			return nil, replyError("ERR GT and LT options at the same time are not compatible")
		}
		// at is the new absolute expiry (Unix ns), fixed when executed.
		at := func(now int64) int64 {
			if absolute {
				return n * int64(unit)
			}
			return now + n*int64(unit)
		}
		if !absolute && time.Duration(n)*unit > maxTTL || absolute && time.Duration(n*int64(unit)-time.Now().UnixNano()) > maxTTL {
			return nil, invalidExpire(name)
		}
		if cond != 0 {
			return &plan{custom: func(ctx context.Context, s *Server) (func(*writer), error) {
				return s.conditionalExpire(ctx, key, cond, at, false)
			}}, nil
		}
		op := node.Op{Kind: fsm.OpTouch, Key: key}
		p := &plan{ops: []node.Op{op}, done: func(w *writer, res []fsm.Result) {
			r := res[0]
			if r.Err != nil && !errors.Is(r.Err, fsm.ErrNotFound) {
				w.fail(r.Err)
				return
			}
			w.bool(r.Err == nil && r.Deleted) // touch: the key existed; delete: a live key was removed
		}}
		if absolute {
			p.at = []int64{at(0)}
			if p.at[0] <= 0 {
				p.at = nil
				p.ops[0] = node.Op{Kind: fsm.OpDelete, Key: key}
			}
		} else if n <= 0 {
			p.ops[0] = node.Op{Kind: fsm.OpDelete, Key: key}
		} else {
			p.ops[0].TTL = time.Duration(n) * unit
		}
		return p, nil
	}
}

// planPersist removes a key's expiry: 1 if it had one.
func planPersist(s *Server, args [][]byte) (*plan, error) {
	key := args[1]
	return &plan{custom: func(ctx context.Context, s *Server) (func(*writer), error) {
		return s.conditionalExpire(ctx, key, expXX, nil, true)
	}}, s.checkKey(key)
}

// conditionalExpire reads the key, checks cond against its expiry, and
// rewrites it with the new expiry only if it still has the version read
// (a conditional set of the same value), retrying if it changed. persist
// clears the expiry; a new expiry not in the future deletes the key.
func (s *Server) conditionalExpire(ctx context.Context, key []byte, cond expireCond, at func(now int64) int64, persist bool) (func(*writer), error) {
	zero := func(w *writer) { w.int(0) }
	for range casAttempts {
		e, err := s.node.Get(ctx, key, node.ReadOptions{})
		if errors.Is(err, fsm.ErrNotFound) {
			return zero, nil
		}
		if err != nil {
			return nil, err
		}
		now := s.node.Now()
		var newAt int64
		if !persist {
			newAt = at(now)
		}
		ok := (cond&expNX == 0 || e.ExpireAt == 0) &&
			(cond&expXX == 0 || e.ExpireAt != 0) &&
			(cond&expGT == 0 || e.ExpireAt != 0 && newAt > e.ExpireAt) &&
			(cond&expLT == 0 || e.ExpireAt == 0 || newAt < e.ExpireAt)
		if !ok {
			return zero, nil
		}
		op := node.Op{Kind: fsm.OpSet, Key: key, Value: e.Value, Cond: fsm.CondVersion, Version: e.Version}
		switch {
		case persist:
		case newAt <= now:
			op = node.Op{Kind: fsm.OpDelete, Key: key, Cond: fsm.CondVersion, Version: e.Version}
		default:
			op.TTL = time.Duration(newAt - now)
		}
		_, err = s.node.Write(ctx, op)
		if err == nil {
			return func(w *writer) { w.int(1) }, nil
		}
		if !errors.Is(err, fsm.ErrConditionFailed) {
			return nil, err
		}
	}
	return nil, errBusyKey
}

// planFlush is FLUSHDB/FLUSHALL [ASYNC|SYNC]: every key, in one entry.
func planFlush(s *Server, args [][]byte) (*plan, error) {
	if len(args) > 2 || (len(args) == 2 && lower(args[1]) != "async" && lower(args[1]) != "sync") {
		return nil, replyError(msgSyntax)
	}
	return &plan{custom: func(ctx context.Context, s *Server) (func(*writer), error) {
		if _, err := s.node.DeletePrefix(ctx, nil); err != nil {
			return nil, err
		}
		return func(w *writer) { w.ok() }, nil
	}}, nil
}
