package fsm

import (
	"encoding/binary"
	"sort"
	"strings"
)

// OpExec entries: the command engine's log entry. One entry carries units
// from many clients (group commit); a unit is one client's command, a
// MULTI/EXEC transaction, or an HTTP batch. Its commands run in order on
// the state as the previous ones left it, so a transaction sees its own
// writes; an atomic unit keeps its writes only if no command failed.

// LevelExec is the cluster feature level from which OpExec entries may be
// proposed: below it, a member may run a binary that cannot apply them.
const LevelExec = 2

// unitResendBit marks Unit.Resend in the encoded mode byte, and
// unitAfterBit a Unit.After that follows it (cluster level 5 on).
const (
	unitResendBit = 0x80
	unitAfterBit  = 0x40
)

// UnitMode says how a unit's failures are handled.
type UnitMode uint8

// Unit modes.
const (
	// UnitPlain runs every command; an error fails that command only
	// (Redis's MULTI/EXEC, and a lone command).
	UnitPlain UnitMode = 0
	// UnitAtomic is all or nothing: the first error reply undoes the
	// unit's writes and stops it (the HTTP API's atomic batch, MSETNX-like
	// contracts).
	UnitAtomic UnitMode = 1
)

// Unit is one client's commands, run together inside one entry.
type Unit struct {
	// ReqID, if set, makes a retry safe: the state machine answers a
	// repeated id with the first result instead of running it again.
	ReqID []byte
	Mode  UnitMode
	// Resend marks a unit sent again under its ReqID after the first
	// attempt's reply was lost (a follower's relay, resp/once.go): if the
	// id is unknown while an id as young as this one's may have been
	// forgotten (dedupTable.mayHaveForgotten: from level 5 by After, below
	// by the clock), it is refused with ErrResendForgotten rather than
	// applied a second time. Cluster level 4 on (LevelReplyBudget);
	// encoded as a bit of the mode byte.
	Resend bool
	// After, from cluster level 5 (LevelStoredBudget), says that the
	// unit's first attempt can only have been applied above this log
	// index (the relaying follower's applied index when it made the id):
	// a resend is then refused only if an id applied above it was
	// forgotten (dedupTable.forgot), which judges by the log, not by
	// clocks, and refuses far less under load. 0: not known.
	After uint64
	Cmds  [][][]byte // argument vectors, the command name first
	// Watch, if set, makes the unit conditional (WATCH ... EXEC): if a
	// watched key changed after it, the unit applies nothing and its
	// result's Err is ErrWatch.
	Watch *Watch
}

// Size is the bytes of arguments the unit carries.
func (u *Unit) Size() int {
	n := len(u.ReqID)
	for _, c := range u.Cmds {
		for _, a := range c {
			n += len(a)
		}
	}
	return n
}

// Limits are the node limits that depend on a command's result (a value
// grown by APPEND, a transaction's writes): the leader stamps them into
// each entry, as it stamps the time, so every node decides alike.
type Limits struct {
	MaxValueSize int64 // 0 = none
}

// maxArgs bounds the arguments of one decoded command (MSET of many keys).
const maxArgs = 1 << 20

func (c *Command) encodeExec(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(c.Limits.MaxValueSize))
	dst = binary.AppendUvarint(dst, uint64(len(c.Units)))
	for i := range c.Units {
		u := &c.Units[i]
		dst = appendBytes(dst, u.ReqID)
		mode := byte(u.Mode)
		if u.Resend {
			mode |= unitResendBit
		}
		if u.After != 0 {
			mode |= unitAfterBit
		}
		dst = append(dst, mode)
		if u.After != 0 {
			dst = binary.AppendUvarint(dst, u.After)
		}
		dst = binary.AppendUvarint(dst, uint64(len(u.Cmds)))
		for _, args := range u.Cmds {
			dst = binary.AppendUvarint(dst, uint64(len(args)))
			for _, a := range args {
				dst = appendBytes(dst, a)
			}
		}
		dst = appendWatch(dst, u.Watch)
	}
	return dst
}

// appendWatch encodes a unit's watch: nkeys(uvarint), then, if any,
// index version(uvarint) now(varint) keys.
func appendWatch(dst []byte, w *Watch) []byte {
	if w == nil || len(w.Keys) == 0 {
		return binary.AppendUvarint(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(w.Keys)))
	dst = binary.AppendUvarint(dst, w.Index)
	dst = binary.AppendUvarint(dst, w.Version)
	dst = binary.AppendVarint(dst, w.Now)
	for _, k := range w.Keys {
		dst = appendBytes(dst, k)
	}
	return dst
}

func (d *decoder) watch(u *Unit) {
	n := d.countN(maxArgs)
	if n == 0 || d.err != nil {
		return
	}
	w := &Watch{Index: d.uvarint(), Version: d.uvarint(), Now: d.varint()}
	for i := 0; i < n && d.err == nil; i++ {
		w.Keys = append(w.Keys, d.bytes())
	}
	u.Watch = w
}

func (d *decoder) exec(c *Command) {
	c.Limits.MaxValueSize = int64(d.uvarint())
	n := d.countN(MaxBatch)
	c.Units = make([]Unit, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		var u Unit
		if u.ReqID = d.bytes(); len(u.ReqID) == 0 {
			u.ReqID = nil
		}
		mode := d.byte()
		u.Resend = mode&unitResendBit != 0
		if mode&unitAfterBit != 0 {
			if u.After = d.uvarint(); u.After == 0 && d.err == nil {
				d.failf("unit: After flagged but 0")
				return
			}
		}
		if u.Mode = UnitMode(mode &^ (unitResendBit | unitAfterBit)); u.Mode > UnitAtomic {
			d.failf("unknown unit mode %d", u.Mode)
			return
		}
		ncmds := d.countN(maxArgs)
		for j := 0; j < ncmds && d.err == nil; j++ {
			nargs := d.countN(maxArgs)
			if nargs == 0 && d.err == nil {
				d.failf("empty command")
				return
			}
			args := make([][]byte, 0, nargs)
			for k := 0; k < nargs && d.err == nil; k++ {
				args = append(args, d.bytes())
			}
			u.Cmds = append(u.Cmds, args)
		}
		d.watch(&u)
		c.Units = append(c.Units, u)
	}
}

// applyExec runs an OpExec entry's units in order on s. Each unit's
// result is in Results, its replies in Replies.
func (f *FSM) applyExec(s *state, index uint64, c *Command, ch *changeSet) Result {
	r := Result{Index: index, Results: make([]Result, len(c.Units))}
	s.changes.startExec(index)
	for i := range c.Units {
		u := &c.Units[i]
		seed := index<<20 ^ uint64(i)<<8
		if u.Resend && u.ReqID != nil && !s.dedup.known(u.ReqID, s.clusterLevel()) && s.dedup.mayHaveForgotten(c.Now, u.After, s.clusterLevel()) {
			r.Results[i] = Result{Index: index, Err: ErrResendForgotten}
			continue
		}
		r.Results[i] = s.once(u.ReqID, index, c.Now, func() Result { return f.runUnit(s, index, c, u, ch, seed) })
	}
	return r
}

// runUnit runs one unit. An atomic unit runs on a copy-on-write clone of
// the state and records its changes aside; both are kept only if every
// command succeeded.
func (f *FSM) runUnit(s *state, index uint64, c *Command, u *Unit, ch *changeSet, seed uint64) Result {
	if u.Watch != nil && s.watchBroken(u.Watch, c.Now) {
		return Result{Index: index, Err: ErrWatch}
	}
	t := Tx{f: f, s: s, now: c.Now, index: index, write: true, limits: c.Limits, ch: ch}
	var unitCh changeSet
	if u.Mode == UnitAtomic {
		t.s, t.ch = s.clone(), &unitCh
	}
	res := Result{Index: index, Replies: make([]Reply, 0, len(u.Cmds))}
	for j, args := range u.Cmds {
		t.seed = seed ^ uint64(j)
		rep := t.exec(args)
		res.Replies = append(res.Replies, rep)
		if u.Mode == UnitAtomic && rep.IsError() {
			res.Err = rep.Err
			return res
		}
	}
	if u.Mode == UnitAtomic {
		*s = *t.s
		ch.merge(&unitCh)
	}
	res.forget = blockedNothing(u, &res)
	return res
}

// changeSet gathers what one entry changed.
type changeSet struct {
	keys     []string
	prefixes []string
	all      bool
	events   []KeyEvent // keyspace events, in order (Tx.event)
	messages []Message  // published messages, in order (PUBLISH)
}

func (c *changeSet) key(k string) {
	if !c.all {
		c.keys = append(c.keys, k)
	}
}

func (c *changeSet) prefix(p []byte) {
	if len(p) == 0 {
		c.all, c.keys, c.prefixes = true, nil, nil
		return
	}
	if !c.all {
		c.prefixes = append(c.prefixes, string(p))
	}
}

func (c *changeSet) merge(o *changeSet) {
	c.events = append(c.events, o.events...)
	c.messages = append(c.messages, o.messages...)
	if o.all {
		c.prefix(nil)
		return
	}
	for _, k := range o.keys {
		c.key(k)
	}
	for _, p := range o.prefixes {
		c.prefix([]byte(p))
	}
}

// legacy records what an entry of the first command format may change:
// its keys, whether or not a condition let it apply (saying a key changed
// when it did not costs a reader a refetch; the reverse would be wrong).
func (c *changeSet) legacy(cmd *Command) {
	switch cmd.Op {
	case OpSet, OpDelete, OpIncr, OpTouch:
		c.key(string(cmd.Key))
	case OpExpire, OpEvict:
		for _, k := range cmd.Keys {
			c.key(string(k))
		}
	case OpDeletePrefix, OpDeletePrefixChunk:
		c.prefix(cmd.Key)
	case OpBatch:
		for _, sub := range cmd.Cmds {
			c.legacy(sub)
		}
	}
}

// Change is what one applied entry changed, for change streams (pub/sub
// keyspace events, client tracking, watches). It is never a list as long
// as the cache: a flush says All, a prefix delete names the prefix.
type Change struct {
	Index    uint64
	Keys     []string // sorted, distinct
	Prefixes []string // every key under these may have changed
	All      bool     // every key may have changed
	// Events are the keyspace events the entry's commands recorded, in
	// order (keyspace notifications); a command records none unless it
	// calls Tx.event.
	Events []KeyEvent
	// Versions, beside Keys, is each key's version once the entry was
	// applied; 0 if the entry left it absent (deleted, expired).
	Versions []uint64
	// Restored: a snapshot replaced the state (Index is its index, All
	// is set). Changes between the previous state and the snapshot are
	// never reported; a change stream starts over.
	Restored bool
	// Messages are the entry's published messages, in order (PUBLISH,
	// SPUBLISH, also inside MULTI and scripts).
	Messages []Message
	// Notify is notify-keyspace-events after the entry (Notifications).
	Notify uint32
}

func (c *changeSet) change(index uint64) Change {
	keys := c.keys
	if len(keys) > 1 {
		sort.Strings(keys)
		j := 1
		for i := 1; i < len(keys); i++ {
			if keys[i] != keys[j-1] {
				keys[j] = keys[i]
				j++
			}
		}
		keys = keys[:j]
	}
	return Change{Index: index, Keys: keys, Prefixes: c.prefixes, All: c.all, Events: c.events, Messages: c.messages}
}

// Empty says whether nothing changed.
func (c Change) Empty() bool {
	return !c.All && len(c.Keys) == 0 && len(c.Prefixes) == 0 && len(c.Events) == 0 && len(c.Messages) == 0
}

// Covers says whether key may have changed.
func (c Change) Covers(key string) bool {
	if c.All {
		return true
	}
	i := sort.SearchStrings(c.Keys, key)
	if i < len(c.Keys) && c.Keys[i] == key {
		return true
	}
	for _, p := range c.Prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// OnChange adds a function told, on the FSM goroutine and after the new
// state is published, what each applied entry changed (a restored
// snapshot is a change with All set). It must not block (hand the change
// to a queue). Add them before Raft starts.
func (f *FSM) OnChange(fn func(Change)) { f.onChange = append(f.onChange, fn) }

func (f *FSM) tellChange(c Change) {
	for _, fn := range f.onChange {
		fn(c)
	}
}
