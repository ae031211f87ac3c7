package resp

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

type kind uint8

const (
	kindConn  kind = iota // connection state and server information: answered by the node asked
	kindRead              // reads the cache: strong on the leader, or local after READONLY
	kindWrite             // changes the cache through Raft on the leader
)

// command is one entry of the command table.
type command struct {
	name  string
	arity int // as Redis: n > 0 exactly n arguments with the name, n < 0 at least -n
	kind  kind
	flags []string // for COMMAND
	keys  [3]int   // first key, last key, step, for COMMAND
	// conn answers a kindConn command.
	conn func(s *Server, cl *client, args [][]byte)
	// plan parses a kindRead or kindWrite command.
	plan func(s *Server, args [][]byte) (*plan, error)
	// multi, if set, is how a kindConn command is queued inside MULTI.
	multi func(s *Server, args [][]byte) (*plan, error)
}

func (c *command) arityOK(n int) bool {
	if c.arity >= 0 {
		return n == c.arity
	}
	return n >= -c.arity
}

// plan is how a parsed read or write is executed. Exactly one of ops,
// custom, read and reply is set.
type plan struct {
	// ops are applied in one entry; done writes the reply from their
	// results (each may carry a result error such as a failed condition).
	ops  []node.Op
	done func(w *writer, res []fsm.Result)
	// at, if set, holds for each op an absolute expiry (Unix ns; 0: the
	// op's TTL stands), turned into a TTL just before proposing, so a
	// command queued in MULTI does not drift. An OpTouch whose time has
	// passed becomes a delete, as EXPIREAT in the past does in Redis.
	at []int64
	// atomic: all ops apply or none (MSETNX); such a plan has an entry
	// of its own and cannot be queued in MULTI.
	atomic bool
	// custom is a read-modify-write loop (GETDEL, SET NX GET, EXPIRE
	// NX|XX|GT|LT, PERSIST) or a whole-cache operation (FLUSHDB), run
	// alone on the leader. It returns the reply, or a node error; it
	// returns ErrNotLeader only when nothing was written.
	custom func(ctx context.Context, s *Server) (func(w *writer), error)
	// read answers from the local state once it may be read.
	read func(s *Server, w *writer, now int64)
	// reply is a constant answer (PING and ECHO inside MULTI).
	reply func(w *writer)
}

// simple plans can share an entry with other commands' writes.
func (p *plan) simple() bool { return p.ops != nil && !p.atomic }

// queueable plans may be part of a MULTI transaction: one entry applies
// every queued write.
func (p *plan) queueable() bool { return p.read != nil || p.reply != nil || p.simple() }

// finalOps returns the ops with absolute expiries turned into TTLs at now.
func (p *plan) finalOps(now int64) []node.Op {
	if p.at == nil {
		return p.ops
	}
	ops := append([]node.Op(nil), p.ops...)
	for i, at := range p.at {
		if at == 0 {
			continue
		}
		ttl := at - now
		switch {
		case ttl > 0:
			ops[i].TTL = time.Duration(ttl)
		case ops[i].Kind == fsm.OpTouch:
			ops[i] = node.Op{Kind: fsm.OpDelete, Key: ops[i].Key}
		default:
			ops[i].TTL = 1 // already past: expires at once, as Redis does
		}
	}
	return ops
}

// unknownCommand is Redis' reply for a command it does not know.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.WriteString(printable(args[0]))
	b.WriteString("', with args beginning with: ")
	for i, a := range args[1:] {
		if i == 8 || b.Len() > 128 {
			break
		}
		b.WriteString("'" + printable(a) + "' ")
	}
	return b.String()
}

// printable keeps an argument quoted in an error reply to one line.
func printable(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	q := strconv.Quote(string(b))
	return q[1 : len(q)-1]
}
