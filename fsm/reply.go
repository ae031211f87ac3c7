package fsm

import (
	"errors"
	"strconv"
)

// Kind is the type of a Reply. The model is RESP3's, the richest of the
// encodings the fronts speak: the Redis front derives RESP2 from it (a
// map becomes a flat array, a double a bulk string) and the HTTP API its
// JSON, so a command is written once, whatever protocol asked for it.
type Kind uint8

// Reply kinds.
const (
	KindNull      Kind = iota // no value (RESP2 nil bulk or nil array)
	KindStatus                // a simple string, such as OK or QUEUED
	KindError                 // an error; Err says which
	KindInt                   // a signed 64-bit integer
	KindBulk                  // a byte string
	KindDouble                // a float64
	KindArray                 // ordered elements
	KindMap                   // key, value, key, value... in Elems
	KindSet                   // unordered distinct elements
	KindNullArray             // RESP2's nil array (EXEC after a failed WATCH)
	// KindPairs is an ordered list of pairs in Elems (member, score,
	// member, score...): RESP2 sends it flat, RESP3 as an array of
	// two-element arrays (ZRANGE WITHSCORES, ZPOPMIN with a count).
	KindPairs
)

// Reply is what a command returns: protocol-neutral, built by the engine,
// encoded by the fronts. Bulk aliases the cache (read only) or the command.
type Reply struct {
	Kind  Kind
	Int   int64   // KindInt
	Bulk  []byte  // KindBulk, KindStatus
	Float float64 // KindDouble
	Elems []Reply // KindArray, KindMap (key, value pairs), KindSet
	Err   error   // KindError: an *Error, or a sentinel of this package
}

// Reply constructors, so commands read as what they answer.
var (
	replyOK   = Reply{Kind: KindStatus, Bulk: []byte("OK")}
	replyNull = Reply{Kind: KindNull}
)

func intReply(n int64) Reply     { return Reply{Kind: KindInt, Int: n} }
func bulkReply(b []byte) Reply   { return Reply{Kind: KindBulk, Bulk: b} }
func statusReply(s string) Reply { return Reply{Kind: KindStatus, Bulk: []byte(s)} }
func arrayReply(e []Reply) Reply { return Reply{Kind: KindArray, Elems: e} }
func boolReply(b bool) Reply {
	if b {
		return intReply(1)
	}
	return intReply(0)
}

// errReply wraps a command error into a reply.
func errReply(err error) Reply { return Reply{Kind: KindError, Err: err} }

// IsError says whether r is an error reply.
func (r Reply) IsError() bool { return r.Kind == KindError }

// String renders a reply for logs and test failures.
func (r Reply) String() string {
	switch r.Kind {
	case KindNull, KindNullArray:
		return "(nil)"
	case KindStatus:
		return string(r.Bulk)
	case KindError:
		return "(error) " + ErrorText(r.Err)
	case KindInt:
		return "(integer) " + strconv.FormatInt(r.Int, 10)
	case KindBulk:
		return strconv.Quote(string(r.Bulk))
	case KindDouble:
		return FormatDouble(r.Float)
	}
	s := "["
	for i, e := range r.Elems {
		if i > 0 {
			s += " "
		}
		s += e.String()
	}
	return s + "]"
}

// Error is a command's error reply: Msg is the whole Redis error line
// (its first word is the code clients switch on), Code the sentinel the
// HTTP front maps to a status, Current (with ErrConditionFailed) the key's
// current version.
type Error struct {
	Code    error
	Msg     string
	Current uint64
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Code }

// ErrorText is the Redis error line for err: its own message when it is an
// *Error, else the message of the sentinel's Redis form.
func ErrorText(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	for _, m := range redisMessages {
		if errors.Is(err, m.err) {
			return m.msg
		}
	}
	return "ERR " + err.Error()
}

// redisMessages gives the sentinels that result errors carry their Redis
// error line, word for word as Redis 7.0 says it.
var redisMessages = []struct {
	err error
	msg string
}{
	{ErrNotInteger, "ERR value is not an integer or out of range"},
	{ErrOverflow, "ERR increment or decrement would overflow"},
	{ErrSyntax, "ERR syntax error"},
	{ErrWrongType, "WRONGTYPE Operation against a key holding the wrong kind of value"},
	{ErrConditionFailed, "ERR condition failed"},
	{ErrNotFound, "ERR no such key"},
	{ErrExecAbort, "EXECABORT Transaction discarded because of previous errors."},
	{ErrReadOnly, "ERR write commands are not allowed in a read-only context"},
	{ErrValueTooLarge, "ERR string exceeds maximum allowed size"},
}

func cmdErr(code error, msg string) Reply { return errReply(&Error{Code: code, Msg: msg}) }

// Common error replies.
var (
	replySyntax     = errReply(ErrSyntax)
	replyNotInteger = errReply(ErrNotInteger)
	replyOverflow   = errReply(ErrOverflow)
	replyWrongType  = errReply(ErrWrongType)
)

func replyArity(name string) Reply {
	return cmdErr(ErrArity, "ERR wrong number of arguments for '"+name+"' command")
}

func replyInvalidExpire(name string) Reply {
	return cmdErr(ErrSyntax, "ERR invalid expire time in '"+name+"' command")
}
