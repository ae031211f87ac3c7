package resp

import (
	"errors"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

// Error replies. The first word is the code clients switch on, as with
// Redis: TRYAGAIN means "certainly not applied, retry" (go-redis retries it
// by itself), UNKNOWN means a write may or may not have been applied, and
// OOM is a value that can never fit under --max-memory, or a write refused
// while the cache is past its bound (as Redis's denyoom commands are).
const (
	msgNoLeader = "TRYAGAIN no leader available, retry shortly"
	msgUnknown  = "UNKNOWN write outcome unknown: it may or may not have been applied; read before retrying a non-idempotent write"
)

// errorReplies is the one table that turns node and fsm errors into RESP
// error replies, the counterpart of transport's errorStatus.
var errorReplies = []struct {
	err    error
	prefix string // the code; the error's text follows it
}{
	{node.ErrNotLeader, "TRYAGAIN"},
	{node.ErrNoLeader, "TRYAGAIN"},
	{node.ErrUnavailable, "TRYAGAIN"},
	{node.ErrTooStale, "TRYAGAIN"},
	{node.ErrClosed, "TRYAGAIN"},
	{node.ErrIndexTimeout, "TRYAGAIN"},
	{node.ErrUnknownOutcome, "UNKNOWN"},
	{node.ErrPoisoned, "TRYAGAIN"},
	{node.ErrTooMany, "ERR"},
	{node.ErrTooLarge, "OOM"},
	{node.ErrOOM, "OOM"}, // "OOM command not allowed when used memory > 'maxmemory'.", as Redis
	{node.ErrOutOfMemory, "OOM"},
	{node.ErrKeyTooLarge, "ERR"},
	{node.ErrValueTooLarge, "ERR"},
	{node.ErrFeatureLevel, "ERR"},
	{node.ErrReplyLost, "ERR"},
	{fsm.ErrResendForgotten, "UNKNOWN"},
	{fsm.ErrRequestMismatch, "ERR"},
}

// replyError is a problem found by the front itself; its text is the
// whole error reply.
type replyError string

func (e replyError) Error() string { return string(e) }

// errorReply is the RESP error text for err.
func errorReply(err error) string {
	var re replyError
	if errors.As(err, &re) {
		return string(re)
	}
	var fe *fsm.Error
	if errors.As(err, &fe) {
		return fe.Msg
	}
	for _, e := range errorReplies {
		if errors.Is(err, e.err) {
			return e.prefix + " " + err.Error()
		}
	}
	return fsm.ErrorText(err)
}

func wrongArgs(name string) replyError {
	return replyError("ERR wrong number of arguments for '" + name + "' command")
}
