package resp

import (
	"bytes"
	"errors"
	"strconv"
	"strings"

	"github.com/tidwall/redcon"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

// Relayed writes survive a leader's failure exactly once. A follower
// gives every write it relays (and every transaction that writes) a
// request id of its own, from cluster feature level 4 on, when every
// member's front knows these commands:
//
//	RAFTCACHE.ONCE id n[:after] command args...  a write, outside MULTI
//	RAFTCACHE.TXID id n[:after]                  inside MULTI: the transaction's id
//
// n counts the attempts (1 the first); after (cluster level 5 on) is the
// follower's applied index when it made the id, which the first attempt
// can only apply above. A unit sent again (n > 1) whose id the state
// machine does not know, while an id as young may have been forgotten
// (from level 5: one applied above after), is refused with an UNKNOWN
// reply rather than applied twice (fsm.ErrResendForgotten).
//
// The leader runs the write (or the EXEC) as a unit under that id, and
// the state machine remembers the id with the replies (fsm/dedup.go). When
// the connection to the leader breaks with the write in flight, the
// follower sends it again, with the same id, to the leader it then knows,
// for up to the command timeout: the new leader answers the first
// attempt's replies if it was applied, or applies it now. The client sees
// one answer and the write applied once, where a client of the leader
// itself (or of Redis) sees its connection break and the outcome unknown.
//
// Reads, blocked commands (blocking.go, ids of their own) and PUBLISH
// (pubsub.go, likewise) are relayed as before. Below level 4, or while a
// member runs an older binary, writes are relayed without an id and a
// lost connection answers UNKNOWN.

const (
	onceCmd = "RAFTCACHE.ONCE"
	txIDCmd = "RAFTCACHE.TXID"
)

var (
	onceName = "raftcache.once"
	txIDName = "raftcache.txid"
)

// relayIDs says whether this node's relayed writes carry request ids.
func (s *Server) relayIDs() bool {
	return s.node.ClusterLevel() >= fsm.LevelReplyBudget
}

// relayAfter is what a relayed write's id carries from level 5: this
// node's applied index as the id is made (item.after); 0 below.
func (s *Server) relayAfter() uint64 {
	if s.node.ClusterLevel() < fsm.LevelStoredBudget {
		return 0
	}
	return s.node.AppliedIndex()
}

// stampRelay gives a write this follower relays its request id and the
// index its first attempt applies above.
func (s *Server) stampRelay(it *item) {
	it.reqID, it.after = s.relayReqIDs.next(), s.relayAfter()
}

// attemptField is a relay frame's attempt count, with ":after" from
// level 5 (after > 0) on a resend, the only attempt the leader judges by
// it: a first attempt's entry does not carry it.
func attemptField(attempt int, after uint64) string {
	if after == 0 || attempt < 2 {
		return strconv.Itoa(attempt)
	}
	return strconv.Itoa(attempt) + ":" + strconv.FormatUint(after, 10)
}

func onceFrame(id []byte, attempt int, after uint64, args [][]byte) []byte {
	b := redcon.AppendArray(nil, len(args)+3)
	b = redcon.AppendBulkString(b, onceCmd)
	b = redcon.AppendBulk(b, id)
	b = redcon.AppendBulkString(b, attemptField(attempt, after))
	for _, a := range args {
		b = redcon.AppendBulk(b, a)
	}
	return b
}

func txIDFrame(id []byte, attempt int, after uint64) []byte {
	b := redcon.AppendArray(nil, 3)
	b = redcon.AppendBulkString(b, txIDCmd)
	b = redcon.AppendBulk(b, id)
	return redcon.AppendBulkString(b, attemptField(attempt, after))
}

// parseAttempt reads a relay frame's attempt count (1 and up) and, from
// level 5, the index after it (attemptField; 0 when absent).
func parseAttempt(b []byte) (int, uint64, bool) {
	s, after := string(b), uint64(0)
	if i := strings.IndexByte(s, ':'); i >= 0 {
		a, err := strconv.ParseUint(s[i+1:], 10, 64)
		if err != nil || a == 0 {
			return 0, 0, false
		}
		s, after = s[:i], a
	}
	n, err := strconv.Atoi(s)
	return n, after, err == nil && n >= 1
}

// unwrapOnce turns a RAFTCACHE.ONCE item into the command it carries,
// with its request id; it returns the error to answer instead, or "".
// The inner command is authorized, checked and run as if sent alone.
func unwrapOnce(cl *client, it *item) string {
	switch {
	case !cl.forwarded:
		return "ERR " + onceCmd + " is for relays between members"
	case cl.tx != nil:
		return "ERR " + onceCmd + " inside MULTI is not allowed (" + txIDCmd + " names a transaction)"
	case len(it.args) < 4 || !fsm.ValidRequestID(it.args[1]):
		return "ERR syntax error"
	}
	n, after, ok := parseAttempt(it.args[2])
	if !ok {
		return "ERR syntax error"
	}
	it.reqID, it.sent, it.after, it.args = it.args[1], n-1, after, it.args[3:]
	it.name = commandName(it.args[0])
	it.cmd = commands[it.name]
	if it.cmd != nil && (it.cmd.kind == kindConn || it.cmd.blocking) {
		return "ERR " + onceCmd + " relays writes only"
	}
	return ""
}

// cmdTxID is RAFTCACHE.TXID id, sent by a follower inside the MULTI of a
// transaction it relays: EXEC then runs the transaction under that id.
func cmdTxID(s *Server, cl *client, args [][]byte) {
	if !cl.forwarded || cl.tx == nil {
		cl.w.error("ERR " + txIDCmd + " is for relays between members, inside MULTI")
		return
	}
	n, after, ok := parseAttempt(args[2])
	if !fsm.ValidRequestID(args[1]) || !ok {
		cl.tx.dirty = true
		cl.w.error("ERR syntax error")
		return
	}
	cl.tx.reqID, cl.tx.sent, cl.tx.after = args[1], n-1, after
	cl.w.ok()
}

// unitFailure is the error to answer instead of a unit's replies, or nil:
// a resend refused because its id may have been forgotten, or a retry
// whose first attempt ran but whose replies are no longer kept.
// ErrRequestMismatch needs an id no Redis-protocol input accepts
// (fsm.ValidRequestID); it is answered, should one slip through, rather
// than read as replies the unit never had.
func (s *Server) unitFailure(res *fsm.Result) error {
	switch {
	case errors.Is(res.Err, fsm.ErrResendForgotten):
		s.refusedResends.Add(1)
		return res.Err
	case errors.Is(res.Err, fsm.ErrRequestMismatch):
		return res.Err
	case res.RepliesDropped():
		return node.ErrReplyLost
	}
	return nil
}

// retryableReply says whether a leader's reply to a write relayed with a
// request id means "send it again": TRYAGAIN (nothing applied, or this
// node no longer leads) or UNKNOWN (leadership lost, or the deadline
// passed, with the write in flight). The same id makes either safe.
//
// A script's reply is its own: it can be any error it likes, so a
// relayed EVAL is never sent again for its reply.
func retryableReply(it *item, reply []byte) bool {
	if scriptCmds[it.name] || it.name == "fcall" || bytes.Contains(reply, []byte(fsm.ErrResendForgotten.Error())) {
		return false // a script's own error; or a refusal a resend would meet again
	}
	return leaderLost(reply)
}

// leaderLost says whether a leader's reply means it did not carry the
// command out to the end: TRYAGAIN (not applied) or UNKNOWN (lost in
// flight). A command under a request id is then sent again.
func leaderLost(reply []byte) bool {
	return refused(reply) || bytes.HasPrefix(reply, []byte("-UNKNOWN "))
}

// refused says whether a leader's reply is TRYAGAIN: certainly not applied.
func refused(reply []byte) bool { return bytes.HasPrefix(reply, []byte("-TRYAGAIN ")) }

// firstLine is an error reply's text, for a log or an error.
func firstLine(reply []byte) string {
	if i := bytes.IndexByte(reply, '\r'); i >= 0 {
		reply = reply[:i]
	}
	return string(bytes.TrimPrefix(reply, []byte("-")))
}
