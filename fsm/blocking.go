package fsm

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Blocking pops: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN, BZPOPMAX.
//
// The engine never blocks. Each blocking command runs here as its
// non-blocking form through the engine, by name (LPOP, RPOP, LMOVE,
// ZPOPMIN, ZPOPMAX), and answers nil when every key is empty: exactly what
// Redis answers inside MULTI, where a command may not block. Scripts may
// not call them, as in Redis 7.0.
// Blocking itself is the leader's business (node/blocking.go): it keeps
// the waiters, and when a watched key may hold an element it proposes the
// blocking command as a unit under the waiter's request id, so the pop
// runs here on the state as the log orders it.
//
// A lone blocking command that found nothing is not remembered under its
// request id (Result.forget): the waiter stays blocked and proposes the
// same id again later, and only the attempt that popped an element is
// kept, so a retry after a leader change gets that element back.

// FlagBlocking marks a command that blocks a client outside MULTI and
// scripts (COMMAND's "blocking" flag). Beside FlagNoScript (1 << 8), out
// of the way of the engine's flag block.
const FlagBlocking Flags = 1 << 12

// Errors of the timeout argument, as Redis 7.0 words them.
const (
	msgTimeoutNotFloat = "ERR timeout is not a float or out of range"
	msgTimeoutNegative = "ERR timeout is negative"
	msgTimeoutRange    = "ERR timeout is out of range"
)

func init() {
	// FlagNoScript: Redis 7.0 refuses them in scripts ("This Redis command
	// is not allowed from script"); inside MULTI they do not block.
	bl := FlagWrite | FlagBlocking | FlagNoScript
	register(
		&Spec{Name: "blpop", Arity: -3, Flags: bl, FirstKey: 1, LastKey: -2, Step: 1, run: blockingPop("lpop", TypeList), Level: LevelTypes},
		&Spec{Name: "brpop", Arity: -3, Flags: bl, FirstKey: 1, LastKey: -2, Step: 1, run: blockingPop("rpop", TypeList), Level: LevelTypes},
		&Spec{Name: "bzpopmin", Arity: -3, Flags: bl | FlagFast, FirstKey: 1, LastKey: -2, Step: 1, run: blockingPop("zpopmin", TypeZSet), Level: LevelTypes},
		&Spec{Name: "bzpopmax", Arity: -3, Flags: bl | FlagFast, FirstKey: 1, LastKey: -2, Step: 1, run: blockingPop("zpopmax", TypeZSet), Level: LevelTypes},
		&Spec{Name: "blmove", Arity: 6, Flags: bl | FlagDenyOOM, FirstKey: 1, LastKey: 2, Step: 1, run: cmdBLMove, Level: LevelTypes},
		&Spec{Name: "brpoplpush", Arity: 4, Flags: bl | FlagDenyOOM, FirstKey: 1, LastKey: 2, Step: 1, run: cmdBRPopLPush, Level: LevelTypes},
	)
}

// BlockTimeout parses a blocking command's timeout argument (seconds) as
// Redis 7.0.8 and later do: read as a long double (strtold: hexadecimal
// forms, inf), times 1000, rounded up to whole milliseconds, so any
// positive timeout waits at least a millisecond; 0 (also a negative one
// that rounds to 0) is no timeout. A timeout past int64 milliseconds, or
// one strtold finds out of range, is refused.
func BlockTimeout(arg []byte) (time.Duration, error) {
	f, ok := parseLongDouble(arg)
	if !ok || ldOutOfRange(f) {
		return 0, &Error{Code: ErrSyntax, Msg: msgTimeoutNotFloat}
	}
	if f.IsInf() {
		if f.Sign() < 0 {
			return 0, &Error{Code: ErrSyntax, Msg: msgTimeoutNegative}
		}
		return 0, &Error{Code: ErrSyntax, Msg: msgTimeoutRange}
	}
	ms := new(big.Float).SetPrec(ldPrec).SetMode(big.ToNearestEven).Mul(f, big.NewFloat(1000))
	n, acc := ms.Int(nil) // toward zero
	if acc == big.Below {
		n.Add(n, big.NewInt(1)) // ceil of a positive fraction
	}
	switch {
	case n.Sign() < 0:
		return 0, &Error{Code: ErrSyntax, Msg: msgTimeoutNegative}
	case !n.IsInt64():
		return 0, &Error{Code: ErrSyntax, Msg: msgTimeoutRange}
	case n.Int64() >= math.MaxInt64/int64(time.Millisecond):
		return math.MaxInt64, nil // centuries: as good as none
	}
	return time.Duration(n.Int64()) * time.Millisecond, nil
}

// ldOutOfRange says whether strtold would find f out of a long double's
// range (ERANGE): past its largest finite value, or a nonzero value
// below its smallest subnormal.
func ldOutOfRange(f *big.Float) bool {
	if f.IsInf() || f.Sign() == 0 {
		return false
	}
	exp := f.MantExp(nil) // |f| = mant × 2^exp, 0.5 <= mant < 1
	return exp > 16384 || exp < -16444
}

// blockTimeoutLevel5 is BlockTimeout as clusters below level 6 decide it
// inside MULTI (LevelRedisFixes): milliseconds rounded down, so a timeout
// under one is none, and Go's float syntax.
func blockTimeoutLevel5(arg []byte) (time.Duration, error) {
	s := string(arg)
	if s == "" || strings.TrimSpace(s) != s {
		return 0, &Error{Code: ErrSyntax, Msg: msgTimeoutNotFloat}
	}
	v, err := strconv.ParseFloat(s, 64)
	if (err != nil && !isRangeErr(err)) || math.IsNaN(v) {
		return 0, &Error{Code: ErrSyntax, Msg: msgTimeoutNotFloat}
	}
	ms := v * 1000
	if v < 0 || math.IsInf(v, 0) || ms >= math.MaxInt64 {
		return 0, &Error{Code: ErrSyntax, Msg: msgTimeoutNegative}
	}
	if ms >= float64(math.MaxInt64/int64(time.Millisecond)) {
		return math.MaxInt64, nil
	}
	return time.Duration(int64(ms)) * time.Millisecond, nil
}

// blockTimeout checks a timeout inside the engine (MULTI, where nothing
// blocks) by the rule of the cluster's level: replicas must agree on
// which timeouts are refused.
func (t *Tx) blockTimeout(arg []byte) error {
	if t.s.clusterLevel() >= LevelRedisFixes {
		_, err := BlockTimeout(arg)
		return err
	}
	_, err := blockTimeoutLevel5(arg)
	return err
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// BlockingInfo says how a blocking command waits: the keys whose changes
// may serve it (BLMOVE's source only), the kind of value that serves it,
// and its timeout (0: none). err is the reply Redis gives before blocking
// to a bad argument (timeout, BLMOVE's directions); ok is false for a
// command that does not block.
func BlockingInfo(args [][]byte) (keys [][]byte, kind ValueType, timeout time.Duration, ok bool, err error) {
	spec := Lookup(args[0])
	if spec == nil || spec.Flags&FlagBlocking == 0 || !spec.ArityOK(len(args)) {
		return nil, 0, 0, false, nil
	}
	kind = TypeList
	switch spec.Name {
	case "bzpopmin", "bzpopmax":
		kind = TypeZSet
	case testBlockName:
		kind = TypeString
	case "blmove":
		if !isDirection(args[3]) || !isDirection(args[4]) {
			return nil, 0, 0, true, ErrSyntax
		}
	}
	if timeout, err = BlockTimeout(args[len(args)-1]); err != nil {
		return nil, 0, 0, true, err
	}
	keys = spec.Keys(args)
	if spec.Name == "blmove" || spec.Name == "brpoplpush" {
		keys = keys[:1]
	}
	return keys, kind, timeout, true, nil
}

func isDirection(b []byte) bool {
	s := strings.ToLower(string(b))
	return s == "left" || s == "right"
}

// blockingPop is BLPOP, BRPOP, BZPOPMIN and BZPOPMAX without blocking:
// the first key (in argument order) that holds an element is popped with
// the non-blocking command pop, and the reply is the key followed by what
// pop answered (the element; or member and score). A key of another type
// met before that answers WRONGTYPE, as in Redis.
func blockingPop(pop string, k ValueType) func(t *Tx, args [][]byte) Reply {
	return func(t *Tx, args [][]byte) Reply {
		if err := t.blockTimeout(args[len(args)-1]); err != nil {
			return errReply(err)
		}
		for _, key := range args[1 : len(args)-1] {
			_, found, wrong := t.typed(key, k)
			if wrong {
				return replyWrongType
			}
			if !found {
				continue
			}
			rep := t.exec([][]byte{[]byte(pop), key})
			switch rep.Kind {
			case KindError:
				return rep
			case KindNull, KindNullArray:
				continue
			case KindArray:
				return arrayReply(append([]Reply{bulkReply(key)}, rep.Elems...))
			}
			return arrayReply([]Reply{bulkReply(key), rep})
		}
		return Reply{Kind: KindNullArray}
	}
}

// cmdBLMove is BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout
// without blocking: LMOVE if the source holds a list, else nil.
func cmdBLMove(t *Tx, args [][]byte) Reply {
	if !isDirection(args[3]) || !isDirection(args[4]) {
		return errReply(ErrSyntax)
	}
	return blockingMove(t, args[1], args[2], args[3], args[4], args[5])
}

// cmdBRPopLPush is BRPOPLPUSH source destination timeout: BLMOVE source
// destination RIGHT LEFT.
func cmdBRPopLPush(t *Tx, args [][]byte) Reply {
	return blockingMove(t, args[1], args[2], []byte("right"), []byte("left"), args[3])
}

func blockingMove(t *Tx, src, dst, from, to, timeout []byte) Reply {
	if err := t.blockTimeout(timeout); err != nil {
		return errReply(err)
	}
	_, found, wrong := t.typed(src, TypeList)
	if wrong {
		return replyWrongType
	}
	if !found {
		return replyNull
	}
	return t.exec([][]byte{[]byte("lmove"), src, dst, from, to})
}

// blockedNothing says whether a unit is one blocking command that found
// nothing to pop: it changed nothing, and its request id is not
// remembered, so the waiter can propose it again.
func blockedNothing(u *Unit, res *Result) bool {
	if len(u.Cmds) != 1 || len(res.Replies) != 1 {
		return false
	}
	if k := res.Replies[0].Kind; k != KindNull && k != KindNullArray {
		return false
	}
	spec := Lookup(u.Cmds[0][0])
	return spec != nil && spec.Flags&FlagBlocking != 0
}

// Collection is what key holds in the view, for the leader's waiters:
// its type and how many elements it has (1 for a string); ok is false
// when the key is absent or expired.
func (v *View) Collection(key []byte) (kind ValueType, n int, ok bool) {
	it, found := v.t.lookup(key)
	if !found {
		return 0, 0, false
	}
	if it.obj == nil {
		return TypeString, 1, true
	}
	return it.obj.kind(), it.obj.length(), true
}

// testBlockName is a blocking pop over strings (GETDEL as the pop), for
// the tests of the blocking machinery in node and resp, which run before
// (and independently of) lists: RAFTCACHE.TESTBPOP key [key ...] timeout.
// It exists only after RegisterTestCommands.
const testBlockName = "raftcache.testbpop"

var testOnce sync.Once

// RegisterTestCommands adds RAFTCACHE.TESTBPOP to the command table.
// Tests only: a production binary never calls it, so the command does not
// exist there. Call it before any node starts.
func RegisterTestCommands() {
	testOnce.Do(func() {
		register(&Spec{Name: testBlockName, Arity: -3, Flags: FlagWrite | FlagBlocking, FirstKey: 1, LastKey: -2, Step: 1,
			run: blockingPop("getdel", TypeString)})
	})
}
