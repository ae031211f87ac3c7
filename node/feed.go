package node

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/fsm"
)

// The change feed: what watch streams (GET /v1/watch) and the Go client's
// near cache are fed from. The Raft log holds commands, not the keys they
// changed, so each node keeps a bounded ring of the change events of the
// entries it applied (fsm.FSM.OnChange), and a stream resumes from any
// event still in the ring. Past the ring the answer is ErrCompacted (410
// Gone over HTTP): the client relists, as a Kubernetes informer does.
//
// Between events the feed sends progress notices: this node's applied
// index, sent only while the node can vouch for it (it is the leader, or
// it heard from the leader within ContactBound, and its applying keeps up
// with the commits it knows of). A node cut off from its leader goes
// silent instead of wrong, and a watcher that hears nothing for longer
// than its bound drops what it cached; a node that loses contact also
// ends its streams at once. docs/consistency.md states the bound.

// Feed errors.
var (
	// ErrCompacted: a watch resumed from an event this node no longer
	// holds (or never held: before its last snapshot restore).
	ErrCompacted = errors.New("the change events asked for are no longer kept")
	// ErrBadEventID: a resume position that is not an event id.
	ErrBadEventID = errors.New("malformed event id")
	// ErrWatchLimit: the node serves as many watch streams as it allows.
	ErrWatchLimit = errors.New("too many watch streams")
)

// Feed defaults.
const (
	DefaultFeedRing         = 65536                  // events kept for resuming
	DefaultProgressInterval = 100 * time.Millisecond // between progress notices
	DefaultMaxWatches       = 1024                   // streams per node
	// DefaultCommitTimeout bounds how long a follower waits to learn of a
	// commit when writes pause: hashicorp/raft's 50 ms. 10 ms cut a
	// follower's invalidation delay under load (docs/benchmarks.md), and
	// once left a two-node cluster without a leader after a run of
	// leadership transfers (node's TestAppliedAfterElections). That was
	// a transfer to a voter not yet registered, which, deposed, refused
	// the vote the other needed and never campaigned itself; such a voter
	// now refuses transfers (votegate.go), and the test passes at 10 ms. The default stays at 50 ms: the
	// leader sends every follower an AppendEntries each CommitTimeout
	// even when idle, and the follower delay goals are met at 50 ms.
	DefaultCommitTimeout = 50 * time.Millisecond
	watchQueue           = 4096 // events queued per stream before it is ended as slow
)

// EventID is a position in the feed: the entry's index and the event's
// place (from 1) among the entry's events. A progress notice carries the
// newest event's id, so resuming from it loses nothing.
type EventID struct {
	Index uint64
	Pos   uint32
}

// String is the id as watch streams send it: "index.pos".
func (id EventID) String() string {
	return strconv.FormatUint(id.Index, 10) + "." + strconv.FormatUint(uint64(id.Pos), 10)
}

// Less orders ids.
func (id EventID) Less(o EventID) bool {
	return id.Index < o.Index || id.Index == o.Index && id.Pos < o.Pos
}

// ParseEventID reads an id written by String (or a bare index).
func ParseEventID(s string) (EventID, error) {
	idx, pos, dotted := strings.Cut(s, ".")
	i, err := strconv.ParseUint(idx, 10, 64)
	if err != nil {
		return EventID{}, fmt.Errorf("%w: %q", ErrBadEventID, s)
	}
	id := EventID{Index: i}
	if dotted {
		p, err := strconv.ParseUint(pos, 10, 32)
		if err != nil {
			return EventID{}, fmt.Errorf("%w: %q", ErrBadEventID, s)
		}
		id.Pos = uint32(p)
	}
	return id, nil
}

// Event ops.
const (
	OpPut          = "put"           // Key has a new value at Version
	OpDelete       = "delete"        // Key is gone (deleted, expired, evicted)
	OpDeletePrefix = "delete_prefix" // every key under Key (a prefix) is gone
	OpFlush        = "flush"         // every key may have changed: drop everything
)

// WatchEvent is one change event, or (Op "") a progress notice.
type WatchEvent struct {
	ID      EventID
	Key     string
	Op      string
	Version uint64 // OpPut: the key's version after the entry
	// Applied, on a progress notice, is the node's applied index: the
	// node vouched for its state when it sent the notice.
	Applied uint64
}

// Progress says whether the event is a progress notice.
func (e WatchEvent) Progress() bool { return e.Op == "" }

// feed is the node's ring and its watchers.
type feed struct {
	mu    sync.Mutex
	ring  []WatchEvent // circular
	head  int          // index of the oldest event in ring
	n     int          // events in ring
	floor EventID      // every event after floor is in the ring
	last  EventID      // the newest event or restore position
	// restored is the index of the last snapshot restore: its entry's
	// own events were never recorded here, so a resume from inside it
	// (S.1 and up, seen on another node) cannot be served; S.0, the
	// position this node's own notices carry after it, can.
	restored uint64
	watchers map[*Watch]struct{}
	max      int
}

func newFeed(size, maxWatches int) *feed {
	return &feed{ring: make([]WatchEvent, size), watchers: map[*Watch]struct{}{}, max: maxWatches}
}

// apply records an applied entry's changes; on the FSM goroutine, so it
// never blocks: a watcher whose queue is full is ended as slow.
func (f *feed) apply(c fsm.Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.Restored {
		// The entries between the old state and the snapshot are unknown.
		f.head, f.n = 0, 0
		f.floor = EventID{Index: c.Index}
		f.last = f.floor
		f.restored = c.Index
		for w := range f.watchers {
			f.end(w, ErrCompacted)
		}
		return
	}
	pos := uint32(0)
	add := func(e WatchEvent) {
		pos++
		e.ID = EventID{Index: c.Index, Pos: pos}
		f.push(e)
	}
	if c.All {
		add(WatchEvent{Op: OpFlush})
	}
	for _, p := range c.Prefixes {
		add(WatchEvent{Key: p, Op: OpDeletePrefix})
	}
	for i, k := range c.Keys {
		e := WatchEvent{Key: k, Op: OpDelete}
		if i < len(c.Versions) && c.Versions[i] != 0 {
			e.Op, e.Version = OpPut, c.Versions[i]
		}
		add(e)
	}
}

// push appends e to the ring (dropping the oldest) and hands it to the
// watchers it concerns. Called with mu held.
func (f *feed) push(e WatchEvent) {
	if f.n == len(f.ring) {
		f.floor = f.ring[f.head].ID
		f.head = (f.head + 1) % len(f.ring)
		f.n--
	}
	f.ring[(f.head+f.n)%len(f.ring)] = e
	f.n++
	f.last = e.ID
	for w := range f.watchers {
		if w.matches(e) {
			f.send(w, e)
		}
	}
}

// send queues e for w, ending w if it cannot keep up. Called with mu held.
func (f *feed) send(w *Watch, e WatchEvent) {
	select {
	case w.ch <- e:
	default:
		f.end(w, ErrSlowWatcher)
	}
}

// ErrSlowWatcher ends a watch whose reader fell watchQueue events behind;
// it resumes from its last event id.
var ErrSlowWatcher = errors.New("the watcher fell too far behind; resume from the last event id")

// ErrLostContact ends the watches of a node that no longer hears from a
// leader: it cannot vouch for what it would send.
var ErrLostContact = errors.New("this node lost contact with the leader")

// end closes w with err. Called with mu held.
func (f *feed) end(w *Watch, err error) {
	if _, ok := f.watchers[w]; !ok {
		return
	}
	delete(f.watchers, w)
	w.err = err
	close(w.ch)
}

// Watch is one subscription to the feed. Read C until it is closed, then
// Err says why.
type Watch struct {
	f      *feed
	prefix string
	ch     chan WatchEvent
	err    error
}

// C delivers events in order, progress notices between them.
func (w *Watch) C() <-chan WatchEvent { return w.ch }

// Err is why C was closed (nil after Close).
func (w *Watch) Err() error {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	return w.err
}

// Close ends the watch.
func (w *Watch) Close() {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	w.f.end(w, nil)
}

func (w *Watch) matches(e WatchEvent) bool {
	switch {
	case w.prefix == "" || e.Op == OpFlush:
		return true
	case e.Op == OpDeletePrefix:
		// Either prefix may contain the other.
		return strings.HasPrefix(e.Key, w.prefix) || strings.HasPrefix(w.prefix, e.Key)
	}
	return strings.HasPrefix(e.Key, w.prefix)
}

// Watch subscribes to the changes of keys under prefix ("" for all).
// With after set, the events after it that the ring still holds are
// delivered first, or ErrCompacted if some are gone; without, the watch
// starts at the newest event. The first thing delivered is a progress
// notice (or the replayed events), so a watcher knows where it starts.
func (n *Node) Watch(prefix string, after *EventID) (*Watch, error) {
	f := n.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.watchers) >= f.max {
		return nil, ErrWatchLimit
	}
	w := &Watch{f: f, prefix: prefix, ch: make(chan WatchEvent, watchQueue)}
	if after != nil {
		if after.Less(f.floor) {
			return nil, fmt.Errorf("%w: resume from %s, this node keeps events after %s", ErrCompacted, after, f.floor)
		}
		if after.Index == f.restored && after.Pos > 0 {
			return nil, fmt.Errorf("%w: resume from %s, inside the entry this node's state was restored at from a snapshot", ErrCompacted, after)
		}
		if f.last.Less(*after) && after.Index > n.fsm.AppliedIndex() {
			// A position this node has not reached (another node's
			// stream ran ahead): resuming here could skip events.
			return nil, fmt.Errorf("%w: resume from %s, this node has applied only up to %d", ErrCompacted, after, n.fsm.AppliedIndex())
		}
		for i := 0; i < f.n; i++ {
			e := f.ring[(f.head+i)%len(f.ring)]
			if after.Less(e.ID) && w.matches(e) {
				if len(w.ch) == cap(w.ch) {
					return nil, fmt.Errorf("%w: more than %d events to replay; relist", ErrCompacted, cap(w.ch))
				}
				w.ch <- e
			}
		}
	}
	f.watchers[w] = struct{}{}
	return w, nil
}

// progressLoop sends progress notices to every watcher while this node
// can vouch for its state; when it cannot, it ends every watch and sends
// tracking clients the flush-everything invalidation.
func (n *Node) progressLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(n.cfg.ProgressInterval)
	defer tick.Stop()
	var lastCommit uint64
	vouched := true
	for {
		select {
		case <-n.closing:
			n.feed.mu.Lock()
			for w := range n.feed.watchers {
				n.feed.end(w, ErrClosed)
			}
			n.feed.mu.Unlock()
			return
		case <-tick.C:
		}
		applied := n.fsm.AppliedIndex()
		ok := n.vouches()
		// Applying keeps up: everything known committed one tick ago is
		// applied (a busy node is never judged at one instant).
		ok = ok && applied >= lastCommit
		lastCommit = n.commitIndex()
		if !ok {
			// Tracking clients drop what they cached from this node, at
			// once and then whatever they read while it stays cut off.
			n.hub.FlushTracking(vouched)
		}
		vouched = ok
		f := n.feed
		f.mu.Lock()
		if !ok {
			for w := range f.watchers {
				f.end(w, ErrLostContact)
			}
		} else {
			// The notice's id is the newest event's, the position to
			// resume from: the published index can run a moment ahead
			// of the events of its batch, which are recorded after it.
			for w := range f.watchers {
				f.send(w, WatchEvent{ID: f.last, Applied: applied})
			}
		}
		f.mu.Unlock()
	}
}

// ContactBound is how recently a follower must have heard from its leader
// to vouch for its state (progress notices, tracking): half the heartbeat
// timeout, five times the interval at which a leader sends heartbeats.
func (n *Node) ContactBound() time.Duration { return n.heartbeat / 2 }

// vouches says whether this node's applied state can be served as recent:
// it is the leader (which steps down when it cannot reach a quorum within
// the leader lease), or a follower that heard from one within
// ContactBound. A poisoned or removed node never vouches.
func (n *Node) vouches() bool {
	if n.fsm.Poisoned() != nil {
		return false
	}
	switch n.raft.State() {
	case raft.Leader:
		return true
	case raft.Follower:
		return n.lastContact() <= n.ContactBound()
	}
	return false
}

// FeedStats are the feed's counters for metrics.
type FeedStats struct {
	Watches int     // open watch streams
	Floor   EventID // the oldest position a watch can resume from
	Last    EventID
}

// FeedStats reports the feed's state.
func (n *Node) FeedStats() FeedStats {
	f := n.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	return FeedStats{Watches: len(f.watchers), Floor: f.floor, Last: f.last}
}
