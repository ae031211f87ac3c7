package resp

import (
	"strconv"
	"strings"

	"github.com/raftcache/raftcache/fsm"
)

type kind uint8

const (
	kindConn  kind = iota // connection state and server information: answered by the node asked
	kindLocal             // an engine command that reads no keys (PING, ECHO, TIME): answered at once
	kindRead              // reads keys: strong on the leader, or local after READONLY
	kindWrite             // changes keys through Raft on the leader
)

// command is one entry of the command table: a connection command of
// this front, or a command of the engine (fsm), which this front only
// parses and encodes.
type command struct {
	name  string
	arity int // as Redis: n > 0 exactly n arguments with the name, n < 0 at least -n
	kind  kind
	flags []string // for COMMAND
	keys  [3]int   // first key, last key, step, for COMMAND
	// blocking: outside MULTI the client waits for an element (blocking.go).
	blocking bool
	// conn answers a kindConn command.
	conn func(s *Server, cl *client, args [][]byte)
}

func (c *command) arityOK(n int) bool {
	if c.arity >= 0 {
		return n == c.arity
	}
	return n >= -c.arity
}

// commands is the command table, by lower-case name.
var commands = map[string]*command{}

// txControl commands are executed, not queued, inside MULTI.
var txControl = map[string]bool{"exec": true, "discard": true, "multi": true, "watch": true, "quit": true, "reset": true, "raftcache.watchat": true, "raftcache.txid": true}

func init() {
	for _, spec := range fsm.Specs() {
		if spec.Flags&fsm.FlagInternal != 0 {
			continue // the HTTP API's own
		}
		commands[spec.Name] = engineCommand(spec)
	}
	initConnCommands()
}

// engineCommand is the entry of an engine command.
func engineCommand(spec *fsm.Spec) *command {
	c := &command{name: spec.Name, arity: spec.Arity, keys: [3]int{spec.FirstKey, spec.LastKey, spec.Step}}
	switch {
	case spec.Write():
		c.kind = kindWrite
		c.flags = append(c.flags, "write")
	case spec.Flags&fsm.FlagReadOnly != 0:
		c.kind = kindRead
		c.flags = append(c.flags, "readonly")
	default:
		c.kind = kindLocal
		c.flags = append(c.flags, "stale")
	}
	if spec.Flags&fsm.FlagDenyOOM != 0 {
		c.flags = append(c.flags, "denyoom")
	}
	if spec.Flags&fsm.FlagBlocking != 0 { // noscript too, as Redis 7.0 (scripts get theirs in conn.go)
		c.blocking = true
		c.flags = append(c.flags, "noscript", "blocking")
	}
	if spec.Flags&fsm.FlagFast != 0 {
		c.flags = append(c.flags, "fast")
	}
	return c
}

func lower(b []byte) string { return strings.ToLower(string(b)) }

// commandName is the lower-case name of a command: the table's own string
// for a known command, so the common case allocates nothing (a map lookup
// keyed by string(bytes) does not copy).
func commandName(b []byte) string {
	var buf [24]byte
	if len(b) > len(buf) {
		return lower(b)
	}
	l := buf[:len(b)]
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		l[i] = c
	}
	if c := commands[string(l)]; c != nil {
		return c.name
	}
	return lower(b)
}

// printable keeps an argument quoted in an error reply to one line.
func printable(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	q := strconv.Quote(string(b))
	return q[1 : len(q)-1]
}
