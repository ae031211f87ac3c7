// Package fsm is raftcache's replicated state machine: the cache itself.
//
// Every node applies the same Raft log to its own FSM and must end in the
// same state, so Apply is deterministic: it never reads a clock (time comes
// from the leader inside each command), draws no random numbers and lets no
// map iteration order decide anything. Reads take no lock: the state is
// immutable and copy-on-write (B-trees of keys and of keys by expiry, the
// member records, the cluster's feature level), and each applied batch
// publishes a new root with one atomic store. Snapshots and backups
// therefore read one root, cost O(1) to take, and stream a consistent
// view while writes continue.
//
// An entry this binary cannot apply (a newer binary's; see FeatureLevel)
// poisons the FSM instead of crashing the process: it stops applying and
// reports ErrPoisoned, and whoever runs Raft stops it from another
// goroutine (PoisonedCh).
//
// The package imports nothing else of raftcache and knows nothing about
// HTTP; node proposes commands and transport maps the errors below.
package fsm

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/google/btree"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Errors returned by this package. Callers test them with errors.Is.
// Those marked "result" come back in Result.Err: the command was applied
// and deterministically changed nothing.
var (
	// ErrNotFound: the key does not exist or has expired.
	ErrNotFound = errors.New("key not found")
	// ErrBadCommand: bytes that are not a command this version understands.
	ErrBadCommand = errors.New("malformed command")
	// ErrBadSnapshot: a snapshot stream that cannot be restored.
	ErrBadSnapshot = errors.New("malformed snapshot")
	// ErrConditionFailed (result): a CAS or existence condition did not
	// hold; Result.Current has the key's current version (0 = absent).
	ErrConditionFailed = errors.New("condition failed")
	// ErrNotInteger (result): incr on a value that is not a decimal int64.
	ErrNotInteger = errors.New("value is not a decimal integer")
	// ErrOverflow (result): incr would overflow int64.
	ErrOverflow = errors.New("increment would overflow")
	// ErrSyntax (reply): arguments the command does not accept.
	ErrSyntax = errors.New("syntax error")
	// ErrArity (reply): the wrong number of arguments for the command.
	ErrArity = errors.New("wrong number of arguments")
	// ErrUnknownCommand (reply): no command has that name.
	ErrUnknownCommand = errors.New("unknown command")
	// ErrWrongType (reply): the key holds another type of value.
	ErrWrongType = errors.New("wrong type")
	// ErrExecAbort (reply): a transaction refused because a command
	// was refused while it was queued.
	ErrExecAbort = errors.New("transaction discarded")
	// ErrReadOnly (reply): a write command run on a read-only view.
	ErrReadOnly = errors.New("write command in a read-only context")
	// ErrValueTooLarge (reply): a command would grow a value past the
	// limit the leader stamped into the entry.
	ErrValueTooLarge = errors.New("value too large")
	// ErrPoisoned: this FSM met a log entry it cannot apply (an entry
	// type or cluster level of a newer binary) and stopped: it applies
	// nothing more, answers every later entry with this result error, and
	// refuses snapshots. The state it holds is the last one it could
	// apply; only a newer binary, replaying the log, gets past the entry.
	ErrPoisoned = errors.New("state machine stopped at an entry it cannot apply")
	// ErrNewerLevel: an entry this binary can parse but whose feature
	// level is beyond its own (see FeatureLevel).
	ErrNewerLevel = errors.New("entry of a newer feature level")
	// ErrCommandFailed (reply): a command's implementation panicked (a
	// bug). What it changed before that stays changed, alike on every
	// replica (Tx.run).
	ErrCommandFailed = errors.New("internal error in a command")
)

// EntryOverhead approximates the memory one cached key costs beyond its key
// and value bytes (item struct, B-tree slots, expiry index, headers). It is
// part of the replicated byte count, so it must never change meaning
// between versions without a new command format.
const EntryOverhead = 64

// item is one cached key. Items are immutable once published (a write
// replaces the item, so a reader holding an old root sees old items
// intact), except access: the last time the key was read or written, a
// local hint for eviction that is not replicated state.
type item struct {
	key      string
	value    []byte // a string's value; nil for a collection
	obj      object // a collection (types.go); nil for a string
	version  uint64
	expireAt int64 // Unix ns, 0 = never
	access   atomic.Int64
	// gen is the private state that made this item (state.gen): only
	// that state may change obj in place (Tx.mutable).
	gen uint64
	// acct is the size accounted when the item was stored: a collection
	// changed in place has a new size by the time its old one is dropped.
	acct int64
}

func (it *item) size() int64 {
	if it.obj != nil {
		return int64(len(it.key)+EntryOverhead) + it.obj.size()
	}
	return int64(len(it.key) + len(it.value) + EntryOverhead)
}

func (it *item) expired(now int64) bool { return it.expireAt != 0 && now >= it.expireAt }

func itemLess(a, b *item) bool { return a.key < b.key }

// ttlKey orders the expiry index by time, then key.
type ttlKey struct {
	at  int64
	key string
}

func ttlLess(a, b ttlKey) bool { return a.at < b.at || (a.at == b.at && a.key < b.key) }

// Entry is what a read returns. Value aliases the cache's copy: read only.
type Entry struct {
	Value []byte
	// Version is unique and increasing per key: the Raft index of the
	// write, unless several writes shared one entry.
	Version  uint64
	ExpireAt int64 // Unix ns, 0 = never
}

// Result is what applying one command returns to the proposer.
type Result struct {
	Index     uint64   // Raft index of the entry
	Version   uint64   // set, incr, touch: the key's version afterwards
	Deleted   bool     // delete: a live key was removed; touch: the key existed
	Value     int64    // incr: the new value
	Count     int      // expire, evict, delete-prefix(-chunk): live keys removed
	More      bool     // delete-prefix-chunk: keys with the prefix remain
	Prev      []byte   // set with FlagReturnPrev: the previous value
	PrevFound bool     // set with FlagReturnPrev: there was a previous value
	Current   uint64   // with ErrConditionFailed: the current version, 0 if absent
	Err       error    // a result error (see the error block); nil on success
	Results   []Result // batch: one per sub-command
	Duplicate bool     // the request id was seen: this is the first attempt's result
	Replies   []Reply  // an OpExec unit: one reply per command run
	// forget: not remembered under its request id (a blocking command
	// that found nothing; blocking.go).
	forget bool
}

// Counters are replicated totals: equal on every node at the same index.
type Counters struct {
	Sets, Deletes, Expirations, Evictions uint64
}

// state is one immutable published view of the cache.
type state struct {
	tree        *btree.BTreeG[*item]
	ttl         *btree.BTreeG[ttlKey] // keys with an expiry, by expiry time
	bytes       int64                 // sum of item sizes, expired items included until removed
	lastVersion uint64                // the largest version handed out
	counters    Counters
	index       uint64      // the last Raft index applied to this view
	dedup       dedupTable  // recent request ids and their results
	scripts     scriptCache // the replicated script cache (script.go)
	changes     changeLog   // per-key change record for WATCH (watch.go)
	// members is the member records by id. The map and the records in it
	// are never modified once published: a change copies the map.
	members map[string]*Member
	level   uint32 // the cluster's feature level; 0 = never raised (level 1)
	notify  uint32 // notify-keyspace-events (pubsub.go)
	// gen identifies this private copy (see Tx.mutable); every clone
	// gets a new one. Not replicated: it only decides when to copy.
	gen uint64
}

// gens hands out state generations.
var gens atomic.Uint64

func newState() *state {
	return &state{tree: btree.NewG(32, itemLess), ttl: btree.NewG(32, ttlLess), dedup: newDedup(),
		members: map[string]*Member{}, scripts: newScriptCache(), changes: newChangeLog(), gen: gens.Add(1)}
}

// clone returns a private copy for the writer; the copy-on-write trees
// make it O(1).
func (s *state) clone() *state {
	c := *s
	c.tree, c.ttl, c.dedup = s.tree.Clone(), s.ttl.Clone(), s.dedup.clone()
	c.scripts, c.changes = s.scripts.clone(), s.changes.clone()
	c.gen = gens.Add(1)
	return &c
}

// FSM is the cache. Reads are safe from any goroutine; Apply, ApplyBatch,
// Snapshot and Restore are called by Raft from its single FSM goroutine.
type FSM struct {
	logger hclog.Logger
	// level is the highest feature level this FSM applies: FeatureLevel,
	// or lower for an FSM that plays an older binary (NewAtLevel).
	level uint32

	root  atomic.Pointer[state]
	clock atomic.Int64 // the largest leader time seen in the log, Unix ns

	mu      sync.Mutex
	changed chan struct{} // closed after every applied batch

	poison   atomic.Pointer[error] // set once, when an entry cannot be applied
	poisoned chan struct{}         // closed when poison is set

	hits, misses atomic.Uint64 // local read statistics, not replicated

	onChange []func(Change) // told what each applied entry changed; set before start
	cursors  cursorTable    // SCAN positions handed out by this node
}

// New returns an empty cache. A nil logger discards logs.
func New(logger hclog.Logger) *FSM {
	return NewAtLevel(logger, FeatureLevel)
}

// NewAtLevel returns an empty cache that behaves as a binary of feature
// level level (at most FeatureLevel) would: entries introduced later are
// unknown to it, and it writes and reads only the snapshot formats of
// its level. It is how tests run an old member beside new ones.
func NewAtLevel(logger hclog.Logger, level uint32) *FSM {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	f := &FSM{
		logger:   logger,
		level:    min(max(level, 1), FeatureLevel),
		changed:  make(chan struct{}),
		poisoned: make(chan struct{}),
	}
	f.root.Store(newState())
	return f
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM: a whole commit batch is applied to
// one private clone of the state and published at once, so readers see the
// batch appear atomically and pay no lock.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	if len(logs) == 0 {
		return nil
	}
	out := make([]interface{}, len(logs))
	if f.Poisoned() != nil {
		f.refuse(logs, out)
		return out
	}
	cur := f.root.Load()
	next := cur.clone()
	last := cur.index
	var changes []Change
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			last = l.Index
			continue // configuration entries carry no cache state
		}
		cmd, err := f.decode(l)
		if err != nil {
			// A replica that cannot read the log must stop rather than
			// diverge from the others (Consul does the same); it keeps
			// what it applied before the entry.
			f.poisonAt(l, err)
			f.refuse(logs[i:], out[i:])
			break
		}
		if cmd.Now > f.clock.Load() {
			f.clock.Store(cmd.Now)
		}
		var ch changeSet
		next.changes.applying = l.Index
		out[i] = f.applyOnce(next, l.Index, &cmd, &ch)
		last = l.Index
		if len(f.onChange) > 0 {
			c := ch.change(l.Index)
			c.Notify = next.notify
			if len(c.Keys) > 0 {
				c.Versions = make([]uint64, len(c.Keys))
				for j, k := range c.Keys {
					if it, ok := next.get([]byte(k)); ok && !it.expired(cmd.Now) {
						c.Versions[j] = it.version
					}
				}
			}
			changes = append(changes, c)
		}
	}
	next.index = last
	f.root.Store(next)
	f.notify()
	for _, c := range changes {
		if !c.Empty() {
			f.tellChange(c)
		}
	}
	return out
}

// applyOnce applies cmd unless its request id was already applied, in
// which case the first result is returned again.
func (f *FSM) applyOnce(s *state, index uint64, cmd *Command, ch *changeSet) *Result {
	if cmd.Op == OpExec {
		res := f.applyExec(s, index, cmd, ch)
		return &res
	}
	ch.legacy(cmd)
	res := s.once(cmd.ReqID, index, cmd.Now, func() Result { return f.apply(s, index, cmd, ch) })
	return &res
}

// notify wakes everyone waiting for the applied index to move.
func (f *FSM) notify() {
	f.mu.Lock()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// Changed returns a channel that is closed the next time the FSM applies a
// batch or restores a snapshot; waiters re-check AppliedIndex then.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// AppliedIndex is the last Raft index this FSM has processed. It can lag
// raft.AppliedIndex, which advances when entries are handed to the FSM
// goroutine rather than when they are applied.
func (f *FSM) AppliedIndex() uint64 { return f.root.Load().index }

// Clock is the largest leader timestamp this FSM has applied.
func (f *FSM) Clock() int64 { return f.clock.Load() }

// Get returns the live entry for key. now is the caller's wall clock; the
// FSM uses the later of it and the leader time it has seen, so a node whose
// clock runs slow still never serves a key its leader already expired.
func (f *FSM) Get(key []byte, now int64) (Entry, error) {
	if c := f.clock.Load(); c > now {
		now = c
	}
	it, ok := getIn(f.root.Load().tree, key)
	if !ok || it.expired(now) {
		f.misses.Add(1)
		return Entry{}, ErrNotFound
	}
	f.hits.Add(1)
	it.access.Store(now)
	return Entry{Value: it.value, Version: it.version, ExpireAt: it.expireAt}, nil
}
