package fsm

import (
	"fmt"
	"runtime/debug"
	"sort"
	"strings"
)

// The command engine. Every command (GET, SET, INCR, MGET, EXPIRE, the
// HTTP API's own operations...) has exactly one implementation here, run
// on a Tx: a read-only pinned view of one published state for reads
// served without the log, or the writer's private state inside Apply. The
// fronts only parse their protocol into argument vectors and encode the
// Reply; MULTI/EXEC (and later scripts) run the same functions.

// Flags describe a command, as Redis's COMMAND does.
type Flags uint16

// Command flags.
const (
	FlagWrite    Flags = 1 << iota // changes the keyspace: runs only inside Apply
	FlagReadOnly                   // reads the keyspace
	FlagDenyOOM                    // may grow memory
	FlagFast                       // O(1) or O(log n)
	FlagInternal                   // raftcache's own (the HTTP API's); not offered on the Redis port
	FlagAdmin                      // changes the whole keyspace (FLUSHDB)
)

// Spec is one entry of the command table.
type Spec struct {
	Name  string // lower case
	Arity int    // as Redis: n > 0 exactly n arguments with the name, n < 0 at least -n
	Flags Flags
	// FirstKey, LastKey, Step locate the keys in the arguments, as in
	// Redis's COMMAND (LastKey -1: the last argument).
	FirstKey, LastKey, Step int
	run                     func(t *Tx, args [][]byte) Reply
	// keys, if set, locates the keys instead (EVAL's numkeys).
	keys func(args [][]byte) [][]byte
	// check, if set, refuses arguments before they are proposed (a
	// script that does not compile).
	check func(args [][]byte) error
	// Level is the cluster feature level the command needs (0: any).
	// A command of a later level is refused, by node before it is
	// proposed and by the engine (deterministically) if it reaches a
	// state of a lower level, so no member of an older binary ever
	// meets the state it would create.
	Level uint32
}

// Check runs the command's own checks that need no state (a script that
// does not compile), before anything is proposed.
func (s *Spec) Check(args [][]byte) error {
	if s.check == nil {
		return nil
	}
	return s.check(args)
}

// Write says whether the command changes the keyspace.
func (s *Spec) Write() bool { return s.Flags&FlagWrite != 0 }

// ArityOK says whether n arguments (the name included) fit the arity.
func (s *Spec) ArityOK(n int) bool {
	if s.Arity >= 0 {
		return n == s.Arity
	}
	return n >= -s.Arity
}

// Keys returns the key arguments of args (the name included), for limit
// checks and, later, for tracking.
func (s *Spec) Keys(args [][]byte) [][]byte {
	return s.AppendKeys(nil, args)
}

// AppendKeys appends the keys of args to dst: a caller with a small
// buffer on its stack checks a command's keys without allocating.
func (s *Spec) AppendKeys(dst [][]byte, args [][]byte) [][]byte {
	if s.keys != nil {
		return append(dst, s.keys(args)...)
	}
	if s.FirstKey == 0 || s.FirstKey >= len(args) {
		return dst
	}
	last := s.LastKey
	if last < 0 {
		last = len(args) + last
	}
	last = min(last, len(args)-1)
	for i := s.FirstKey; i <= last; i += max(s.Step, 1) {
		dst = append(dst, args[i])
	}
	return dst
}

var table = map[string]*Spec{}

func register(specs ...*Spec) {
	for _, s := range specs {
		if table[s.Name] != nil {
			panic("fsm: command registered twice: " + s.Name)
		}
		table[s.Name] = s
	}
}

// Lookup finds a command by name, in any case; nil if there is none.
func Lookup(name []byte) *Spec {
	var buf [32]byte
	if len(name) > len(buf) {
		return nil
	}
	lower := buf[:len(name)]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	return table[string(lower)]
}

// Specs lists every command, by name.
func Specs() []*Spec {
	out := make([]*Spec, 0, len(table))
	for _, s := range table {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Tx is what a command runs on: one state at one time. In a View the state
// is a published, immutable root and writes are refused; inside Apply it
// is the writer's private state, and writes record what they changed.
type Tx struct {
	f      *FSM
	s      *state
	now    int64  // leader time of the entry, or the reader's clock
	index  uint64 // the entry's index inside Apply; 0 in a view
	write  bool
	limits Limits
	ch     *changeSet // inside Apply: the keys this entry changed
	seed   uint64     // a script's random seed: its entry and place in it
}

// exec runs one command, checking what a command table guarantees.
func (t *Tx) exec(args [][]byte) Reply {
	if len(args) == 0 {
		return cmdErr(ErrUnknownCommand, "ERR empty command")
	}
	spec := Lookup(args[0])
	if spec == nil {
		return cmdErr(ErrUnknownCommand, UnknownCommandText(args))
	}
	if !spec.ArityOK(len(args)) {
		return replyArity(spec.Name)
	}
	if spec.Level > 1 && spec.Level > t.s.clusterLevel() {
		return cmdErr(ErrNewerLevel, LevelText(spec, t.s.clusterLevel()))
	}
	if spec.Write() && !t.write && t.s.writes(args) {
		return errReply(ErrReadOnly)
	}
	return t.run(spec, args)
}

// run calls spec's handler. One that panics (a bug) answers an error
// instead of ending the process: inside Apply the same panic would stop
// every replica at the same entry, and again at every restart, for good.
// The answer is the same on every replica (the same binary on the same
// state), so they stay alike; what the handler changed before it panicked
// stays changed (an atomic unit's clone is dropped, as for any error).
func (t *Tx) run(spec *Spec, args [][]byte) (rep Reply) {
	defer func() {
		if p := recover(); p != nil {
			if t.f != nil {
				t.f.logger.Error("a command panicked (a bug): it was answered with an error", "command", spec.Name,
					"index", t.index, "panic", p, "stack", string(debug.Stack()))
			}
			rep = cmdErr(ErrCommandFailed, "ERR internal error in '"+spec.Name+"' (a bug; the node's log has the details)")
		}
	}()
	return spec.run(t, args)
}

// LevelText is the error for a command of a feature level the cluster
// has not reached.
func LevelText(spec *Spec, clusterLevel uint32) string {
	return fmt.Sprintf("ERR command '%s' needs cluster feature level %d; the cluster runs at level %d (every member must run a binary of level %d or later first)",
		spec.Name, spec.Level, clusterLevel, spec.Level)
}

// UnknownCommandText is Redis's reply for a command it does not know.
func UnknownCommandText(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	if len(args) > 0 {
		b.WriteString(printable(args[0]))
	}
	b.WriteString("', with args beginning with: ")
	for i := 1; i < len(args); i++ {
		if i == 9 || b.Len() > 128 {
			break
		}
		b.WriteString("'" + printable(args[i]) + "' ")
	}
	return b.String()
}

// printable keeps an argument quoted in an error reply to one line.
func printable(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	var sb strings.Builder
	for _, c := range b {
		switch {
		case c == '\\' || c == '\'' || c == '"':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			const hex = "0123456789abcdef"
			sb.WriteString("\\x")
			sb.WriteByte(hex[c>>4])
			sb.WriteByte(hex[c&15])
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// lookup returns the live item under key, counting a hit or miss when
// count is set (reads made on behalf of a client).
func (t *Tx) lookup(key []byte) (*item, bool) {
	it, ok := t.s.get(key)
	if !ok || it.expired(t.now) {
		return nil, false
	}
	return it, true
}

// read is lookup for a command that answers a client with the value: it
// counts a hit or a miss and refreshes the key's LRU hint.
func (t *Tx) read(key []byte) (*item, bool) {
	it, ok := t.lookup(key)
	if t.f != nil {
		if ok {
			t.f.hits.Add(1)
			it.access.Store(t.now)
		} else {
			t.f.misses.Add(1)
		}
	}
	return it, ok
}

// put stores key = value with an absolute expiry (0: none) and returns
// its new version.
func (t *Tx) put(key string, value []byte, expireAt int64) uint64 {
	old, _ := t.s.tree.Get(&item{key: key})
	it := &item{key: key, value: value, expireAt: expireAt}
	v := t.s.put(it, old, t.index, t.now)
	t.s.counters.Sets++
	t.changed(key)
	return v
}

// setExpiry gives the live item it a new expiry (0: none) and a new
// version; its value is kept.
func (t *Tx) setExpiry(it *item, expireAt int64) uint64 {
	n := &item{key: it.key, value: it.value, obj: it.obj, expireAt: expireAt}
	v := t.s.put(n, it, t.index, t.now)
	t.changed(it.key)
	return v
}

// del removes key if present and says whether a live key was removed.
func (t *Tx) del(key []byte) bool {
	it, ok := t.s.get(key)
	if !ok {
		return false
	}
	live := !it.expired(t.now)
	t.s.remove(it)
	if live {
		t.s.counters.Deletes++
	}
	t.changed(it.key)
	return live
}

func (t *Tx) changed(key string) {
	if t.ch != nil {
		t.ch.key(key)
	}
}

// View is a read-only, pinned view of one published state: every command
// run on it sees the same keys at the same index, however many entries
// are applied meanwhile.
type View struct{ t Tx }

// View pins the current state. now is the reader's clock; the view uses
// the latest leader time applied if that is later, so a node whose clock
// runs slow never serves a key its leader already expired.
func (f *FSM) View(now int64) *View {
	if c := f.clock.Load(); c > now {
		now = c
	}
	s := f.root.Load()
	return &View{t: Tx{f: f, s: s, now: now, seed: s.index}}
}

// Index is the last Raft index applied to the viewed state.
func (v *View) Index() uint64 { return v.t.s.index }

// Now is the time the view answers at (Unix ns).
func (v *View) Now() int64 { return v.t.now }

// Exec runs one read command on the view. A write command answers
// ErrReadOnly.
func (v *View) Exec(args [][]byte) Reply { return v.t.exec(args) }

// Stats are the view's replicated statistics and this node's hit counts.
func (v *View) Stats() Stats { return v.t.f.statsOf(v.t.s) }

// Digest hashes the view's items (see FSM.Digest).
func (v *View) Digest() string { return digest(v.t.s) }

// Expires counts the keys that have an expiry (INFO keyspace).
func (v *View) Expires() int { return v.t.s.ttl.Len() }
