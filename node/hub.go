package node

import (
	"errors"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/raftcache/raftcache/fsm"
)

// The hub fans this node's applied changes out to its local subscribers:
// pub/sub messages and keyspace notifications, client-tracking
// invalidations. (Watch streams and the Go near cache are fed by the
// change feed, feed.go, which keeps resumable positions.) It is fed by the FSM's OnChange on the FSM goroutine, which only
// appends to a list and wakes the dispatcher, so Apply never waits for a
// subscriber. The dispatcher hands each change, in log order, to the
// bounded queue of every subscriber it concerns; a subscriber whose queue
// passes its bound is dropped (its Done channel closes), as Redis closes a
// pub/sub client past client-output-buffer-limit, rather than making the
// others or Apply wait.
//
// Exactly once, in log order, for a subscriber that stays: a change is
// delivered to a subscription if its index is above the subscription's
// start (the FSM's applied index when it subscribed: every later entry is
// told to OnChange after it subscribed) and above the last log index this
// node had when it started (entries replayed from the log after a restart
// were delivered before the restart).

// ErrSlowSubscriber: a subscriber's queue passed its bound and it was
// dropped.
var ErrSlowSubscriber = errors.New("subscriber dropped: its queue passed its bound")

// Hub limits.
const (
	// DefaultSubQueueBytes bounds one subscriber's queue (Redis's hard
	// client-output-buffer-limit for pub/sub clients).
	DefaultSubQueueBytes = 32 << 20
	// eventOverhead is what one queued event counts beyond its bytes.
	eventOverhead = 64
	// ringEntries and ringKeys bound the recent changes the hub keeps
	// (for tracking registrations that arrive after the changes that
	// invalidate them).
	ringEntries = 4096
	ringKeys    = 1 << 16
)

// EventKind says what an Event carries.
type EventKind uint8

// Event kinds.
const (
	// EventMessage: a published message or keyspace notification
	// (Channel, Data; Pattern when it matched a pattern subscription).
	EventMessage EventKind = iota
	// EventInvalidate: tracked keys may have changed (Keys; nil Keys:
	// every key, after a flush or a snapshot install).
	EventInvalidate
	// EventRedirBroken: the subscriber's tracking REDIRECT target is gone.
	EventRedirBroken
)

// Event is one item of a subscriber's queue.
type Event struct {
	Kind    EventKind
	Index   uint64 // the log index of the entry it comes from
	Channel string
	Pattern string
	Shard   bool // a message of SPUBLISH, to an SSUBSCRIBE subscription
	Data    []byte
	Keys    []string
}

func (e *Event) size() int {
	n := eventOverhead + len(e.Channel) + len(e.Pattern) + len(e.Data)
	for _, k := range e.Keys {
		n += len(k) + 16
	}
	return n
}

// HubStats are the hub's figures (metrics, INFO).
type HubStats struct {
	Subscribers     int    // subscribers with at least one subscription
	Channels        int    // distinct channels subscribed (shard channels too)
	Patterns        int    // distinct patterns subscribed
	Published       uint64 // messages (and notifications) applied above the start floor
	Delivered       uint64 // messages queued to subscribers
	Dropped         uint64 // subscribers dropped for a full queue
	TrackingClients int    // subscribers with tracking on
	Invalidations   uint64 // invalidation events queued
}

// Hub is the node's change fan-out (see above).
type Hub struct {
	applied func() uint64

	// inMu guards pending alone, so that feeding the hub never waits
	// for a dispatch in progress.
	inMu    sync.Mutex
	pending []fsm.Change
	kick    chan struct{}

	mu    sync.Mutex
	floor uint64 // the last log index when the node started
	subs  map[*Sub]struct{}
	byID  map[int64]*Sub
	// by kind: channel (pattern) -> subscriber -> start index
	named    [numKinds]map[string]map[*Sub]uint64
	tracked  map[string]map[*Sub]uint64 // key -> subscriber -> index it was read at
	tracking map[*Sub]struct{}
	// ring holds recent changes (without their messages), in order;
	// ringFrom is the index below which changes may be missing from it.
	ring       []fsm.Change
	ringKeys   int
	ringFrom   uint64
	dispatched uint64 // the last change index dispatched

	published, delivered, dropped, invalidations atomic.Uint64
}

func newHub(applied func() uint64) *Hub {
	h := &Hub{applied: applied, kick: make(chan struct{}, 1), subs: map[*Sub]struct{}{}, byID: map[int64]*Sub{},
		tracked: map[string]map[*Sub]uint64{}, tracking: map[*Sub]struct{}{}}
	for k := range h.named {
		h.named[k] = map[string]map[*Sub]uint64{}
	}
	return h
}

// SubKind is what a subscription names.
type SubKind uint8

// Subscription kinds.
const (
	Channel SubKind = iota // SUBSCRIBE: one channel
	Pattern                // PSUBSCRIBE: a glob pattern of channels
	Shard                  // SSUBSCRIBE: one channel of SPUBLISH's
	numKinds
)

// NewHub returns a hub fed by f's changes, for tests and tools that run
// an FSM without a node; run the dispatcher with Run.
func NewHub(f *fsm.FSM) *Hub {
	h := newHub(f.AppliedIndex)
	f.OnChange(h.feed)
	return h
}

// Hub is this node's change fan-out.
func (n *Node) Hub() *Hub { return n.hub }

// feed is the FSM's OnChange: it never blocks.
func (h *Hub) feed(c fsm.Change) {
	h.inMu.Lock()
	h.pending = append(h.pending, c)
	h.inMu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// Run dispatches changes until stop closes.
func (h *Hub) Run(stop <-chan struct{}) {
	for {
		select {
		case <-h.kick:
		case <-stop:
			return
		}
		h.drain()
	}
}

// drain dispatches the pending changes.
func (h *Hub) drain() {
	h.inMu.Lock()
	batch := h.pending
	h.pending = nil
	h.inMu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range batch {
		h.dispatch(&batch[i])
	}
}

// Sub is one subscriber: a connection, a watch stream, a near cache. Its
// methods are safe for concurrent use.
type Sub struct {
	h     *Hub
	id    int64
	limit int

	// guarded by h.mu
	q       []Event
	qBytes  int
	closed  bool
	err     error
	mine    [numKinds]map[string]bool
	track   *TrackOptions
	trackAt uint64 // index at which tracking was turned on (BCAST)
	wake    func() // called when the queue stops being empty (SetWake)

	ready chan struct{} // capacity 1: the queue is not empty
	done  chan struct{} // closed when dropped or closed

	// Read without the hub's lock on every command of a connection.
	nsubs   atomic.Int32 // subscriptions of every kind
	pending atomic.Bool  // the queue is not empty
	// readBcast: a BCAST tracker read (it registers no keys) since its
	// last flush-everything invalidation (FlushTracking).
	readBcast atomic.Bool
}

// NoteBroadcastRead records a read of a BCAST tracker: while this node
// cannot vouch for its state, it is flushed again after such reads, as
// other trackers are after theirs (FlushTracking).
func (s *Sub) NoteBroadcastRead() { s.readBcast.Store(true) }

// NewSub registers a subscriber. id names it for REDIRECT (a connection
// id; 0: none); limit bounds its queue in bytes (0: DefaultSubQueueBytes).
func (h *Hub) NewSub(id int64, limit int) *Sub {
	if limit <= 0 {
		limit = DefaultSubQueueBytes
	}
	s := &Sub{h: h, id: id, limit: limit, ready: make(chan struct{}, 1), done: make(chan struct{})}
	for k := range s.mine {
		s.mine[k] = map[string]bool{}
	}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	if id != 0 {
		h.byID[id] = s
	}
	h.mu.Unlock()
	return s
}

// SetWake sets f to be called, with the hub's lock held, each time the
// queue stops being empty. It is for a subscriber whose owner does not
// wait on Ready: the Redis front's connection that is another's REDIRECT
// target and still in redcon's loop, which must be woken to leave it
// and write its pushes (resp/limits.go). f must not block.
func (s *Sub) SetWake(f func()) {
	s.h.mu.Lock()
	s.wake = f
	s.h.mu.Unlock()
}

// Lookup finds the open subscriber registered with id.
func (h *Hub) Lookup(id int64) (*Sub, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.byID[id]
	return s, ok
}

// ID is the id the subscriber was registered with.
func (s *Sub) ID() int64 { return s.id }

// Ready is signalled when events are queued.
func (s *Sub) Ready() <-chan struct{} { return s.ready }

// Done is closed when the subscriber is dropped (Err says why) or closed.
func (s *Sub) Done() <-chan struct{} { return s.done }

// Err is ErrSlowSubscriber after a drop, nil otherwise.
func (s *Sub) Err() error {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return s.err
}

// Take moves the queued events to buf and returns it.
func (s *Sub) Take(buf []Event) []Event {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	buf = append(buf, s.q...)
	s.pending.Store(false)
	clear(s.q)
	s.q, s.qBytes = s.q[:0], 0
	if cap(s.q) > 1024 {
		s.q = nil
	}
	return buf
}

// Close unregisters the subscriber from everything.
func (s *Sub) Close() {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	s.closeLocked(nil)
	for k := range s.mine {
		for name := range s.mine[k] {
			h.unsub(h.named[k], name, s)
		}
		s.mine[k] = map[string]bool{}
	}
	s.nsubs.Store(0)
	h.untrack(s)
	delete(h.subs, s)
	if h.byID[s.id] == s {
		delete(h.byID, s.id)
	}
}

func (s *Sub) closeLocked(err error) {
	if s.closed {
		return
	}
	s.closed, s.err, s.q, s.qBytes = true, err, nil, 0
	close(s.done)
}

func (h *Hub) unsub(m map[string]map[*Sub]uint64, name string, s *Sub) {
	if set := m[name]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(m, name)
		}
	}
}

// Subscribe adds a subscription and returns the subscriber's count
// (Count). Messages of entries applied after the call are delivered.
func (s *Sub) Subscribe(kind SubKind, name string) int {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	// Read under the lock: every change up to start is dispatched or
	// pending (and skipped), every later one is dispatched after this.
	start := h.applied()
	if !s.mine[kind][name] && !s.closed {
		s.mine[kind][name] = true
		s.nsubs.Add(1)
		m := h.named[kind]
		if m[name] == nil {
			m[name] = map[*Sub]uint64{}
		}
		m[name][s] = start
	}
	return s.countLocked(kind)
}

// Unsubscribe removes a subscription; it returns the remaining count.
func (s *Sub) Unsubscribe(kind SubKind, name string) int {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.mine[kind][name] {
		delete(s.mine[kind], name)
		s.nsubs.Add(-1)
		h.unsub(h.named[kind], name, s)
	}
	return s.countLocked(kind)
}

// Subscriptions lists the subscriber's subscriptions of a kind, sorted.
func (s *Sub) Subscriptions(kind SubKind) []string {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	out := make([]string, 0, len(s.mine[kind]))
	for n := range s.mine[kind] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Count is what Redis replies count: channels and patterns together, or
// shard channels alone.
func (s *Sub) Count(kind SubKind) int {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return s.countLocked(kind)
}

func (s *Sub) countLocked(kind SubKind) int {
	if kind == Shard {
		return len(s.mine[Shard])
	}
	return len(s.mine[Channel]) + len(s.mine[Pattern])
}

// Subscribed says whether the subscriber has any subscription (RESP2's
// subscribed mode). It takes no lock.
func (s *Sub) Subscribed() bool { return s.nsubs.Load() > 0 }

func (s *Sub) subscribedLocked() bool {
	return len(s.mine[Channel])+len(s.mine[Pattern])+len(s.mine[Shard]) > 0
}

// Receivers is how many local subscriptions a message on channel reaches
// (PUBLISH's reply, as Redis Cluster counts: this node's only).
func (h *Hub) Receivers(channel string, shard bool) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if shard {
		return len(h.named[Shard][channel])
	}
	n := len(h.named[Channel][channel])
	for p, set := range h.named[Pattern] {
		if fsm.GlobMatch([]byte(p), []byte(channel)) {
			n += len(set)
		}
	}
	return n
}

// NumSub is the number of subscribers of a channel (PUBSUB NUMSUB,
// SHARDNUMSUB).
func (h *Hub) NumSub(kind SubKind, channel string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.named[kind][channel])
}

// NumPat is the number of patterns subscribed (PUBSUB NUMPAT counts
// distinct patterns, as Redis 7 does).
func (h *Hub) NumPat() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.named[Pattern])
}

// Channels lists the channels of a kind with subscribers, matching
// pattern (all if empty), sorted (PUBSUB CHANNELS, SHARDCHANNELS).
func (h *Hub) Channels(kind SubKind, pattern string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for ch := range h.named[kind] {
		if pattern == "" || fsm.GlobMatch([]byte(pattern), []byte(ch)) {
			out = append(out, ch)
		}
	}
	sort.Strings(out)
	return out
}

// Stats returns the hub's figures.
func (h *Hub) Stats() HubStats {
	h.mu.Lock()
	st := HubStats{Channels: len(h.named[Channel]) + len(h.named[Shard]), Patterns: len(h.named[Pattern]), TrackingClients: len(h.tracking)}
	for s := range h.subs {
		if s.subscribedLocked() {
			st.Subscribers++
		}
	}
	h.mu.Unlock()
	st.Published, st.Delivered = h.published.Load(), h.delivered.Load()
	st.Dropped, st.Invalidations = h.dropped.Load(), h.invalidations.Load()
	return st
}

// push queues e for s; past its bound s is dropped.
func (h *Hub) push(s *Sub, e Event) {
	if s.closed {
		return
	}
	s.q = append(s.q, e)
	s.pending.Store(true)
	s.qBytes += e.size()
	if s.qBytes > s.limit {
		s.closeLocked(ErrSlowSubscriber)
		h.dropped.Add(1)
		return
	}
	select {
	case s.ready <- struct{}{}:
	default:
	}
	if len(s.q) == 1 && s.wake != nil {
		s.wake()
	}
}

// dispatch hands one change to every subscriber it concerns; h.mu held.
func (h *Hub) dispatch(c *fsm.Change) {
	h.remember(c)
	if c.Index > h.floor {
		h.deliver(c, c.Messages)
		h.deliver(c, c.Notifications())
	}
	h.invalidate(c)
}

func (h *Hub) remember(c *fsm.Change) {
	h.dispatched = max(h.dispatched, c.Index)
	r := *c
	r.Messages = nil
	h.ring = append(h.ring, r)
	h.ringKeys += len(r.Keys) + len(r.Events)
	for len(h.ring) > ringEntries || h.ringKeys > ringKeys && len(h.ring) > 1 {
		h.ringFrom = h.ring[0].Index
		h.ringKeys -= len(h.ring[0].Keys) + len(h.ring[0].Events)
		h.ring[0] = fsm.Change{}
		h.ring = h.ring[1:]
	}
}

func (h *Hub) deliver(c *fsm.Change, msgs []fsm.Message) {
	for _, m := range msgs {
		h.published.Add(1)
		kind := Channel
		if m.Shard {
			kind = Shard
		}
		for s, start := range h.named[kind][m.Channel] {
			if c.Index > start {
				h.push(s, Event{Kind: EventMessage, Index: c.Index, Channel: m.Channel, Data: m.Data, Shard: m.Shard})
				h.delivered.Add(1)
			}
		}
		if m.Shard {
			continue
		}
		for p, set := range h.named[Pattern] {
			if !fsm.GlobMatch([]byte(p), []byte(m.Channel)) {
				continue
			}
			for s, start := range set {
				if c.Index > start {
					h.push(s, Event{Kind: EventMessage, Index: c.Index, Channel: m.Channel, Pattern: p, Data: m.Data})
					h.delivered.Add(1)
				}
			}
		}
	}
}

// --- client tracking -------------------------------------------------------

// TrackOptions is a subscriber's CLIENT TRACKING mode.
type TrackOptions struct {
	// BCAST: every change of a key under one of Prefixes (every key if
	// none) is reported, whether or not it was read.
	BCAST    bool
	Prefixes []string
	// There is no NOLOOP: every change of a tracked key is reported, the
	// subscriber's own included. A node cannot tell the subscriber's
	// write from another client's write of the same key applied in the
	// same window (or the same entry), and hiding that one would leave
	// the client's cache stale for good; an extra invalidation costs a
	// refetch.
	// Redirect, if set, receives the invalidations instead.
	Redirect *Sub
}

// Track turns tracking on with opts (nil: off, forgetting every tracked
// key). Turned on again in the same mode (BCAST or not), it keeps the
// keys already tracked and where its stream starts, as Redis keeps its
// tracking table: the client's cache still holds them.
func (s *Sub) Track(opts *TrackOptions) {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if opts != nil && !s.closed && s.track != nil && s.track.BCAST == opts.BCAST {
		o := *opts
		s.track = &o
		return
	}
	start := h.applied()
	h.untrack(s)
	if opts == nil || s.closed {
		return
	}
	o := *opts
	s.track, s.trackAt = &o, start
	h.tracking[s] = struct{}{}
}

// Tracking returns the subscriber's tracking options, nil when off.
func (s *Sub) Tracking() *TrackOptions {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if s.track == nil {
		return nil
	}
	o := *s.track
	return &o
}

func (h *Hub) untrack(s *Sub) {
	if s.track == nil {
		return
	}
	s.track = nil
	delete(h.tracking, s)
	for k, set := range h.tracked {
		if _, ok := set[s]; ok {
			h.unsub(h.tracked, k, s)
		}
	}
}

// TrackKeys registers keys read from a view at index for invalidation:
// any change applied with a higher index reports them. A change above
// index that was dispatched before the call reports them at once (the
// write landed between the read and its registration).
func (s *Sub) TrackKeys(keys [][]byte, index uint64) {
	s.perKey(keys, func(h *Hub, k string) bool {
		if s.track.BCAST {
			return false // BCAST registers nothing: every change under its prefixes is reported
		}
		if index < h.dispatched && h.changedSince(k, index) {
			return true
		}
		set := h.tracked[k]
		if set == nil {
			set = map[*Sub]uint64{}
			h.tracked[k] = set
		}
		if old, ok := set[s]; !ok || index < old {
			set[s] = index
		}
		return false
	})
}

// InvalidateOwn reports, at once, the keys among keys that the
// subscriber tracks: it has just been answered for a write of them. Redis
// sends a client the invalidation of its own write before the reply of
// its next command; the change itself is reported only when this node
// applies it, which on a follower that relayed the write comes later
// (its lag), and even on the leader after the reply. A client that
// caches could read its own write's key from its cache stale in between.
// The registrations are taken, so the change, when applied, is not
// reported again for them. In BCAST mode (no registrations) the keys
// under the client's prefixes are reported at once, as Redis does, and
// again when the change is applied: one refetch more, never a stale hit.
func (s *Sub) InvalidateOwn(keys [][]byte) {
	s.perKey(keys, func(h *Hub, k string) bool {
		if s.track.BCAST {
			return underAny(k, s.track.Prefixes)
		}
		if _, ok := h.tracked[k][s]; !ok {
			return false
		}
		h.unsub(h.tracked, k, s)
		return true
	})
}

// InvalidateOwnAll is InvalidateOwn for a flush of the subscriber's own
// (FLUSHDB, FLUSHALL): the flush-everything invalidation at once, and
// its registrations forgotten.
func (s *Sub) InvalidateOwnAll() {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.track == nil || s.closed {
		return
	}
	for k, set := range h.tracked {
		if _, ok := set[s]; ok {
			h.unsub(h.tracked, k, s)
		}
	}
	h.sendInvalidate(s, nil, h.dispatched)
}

// perKey runs f on each key under the hub's lock, if s tracks (in either
// mode), and sends s at once an invalidation of the keys f said to report.
func (s *Sub) perKey(keys [][]byte, f func(h *Hub, k string) (report bool)) {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.track == nil || s.closed {
		return
	}
	var now []string
	for _, kb := range keys {
		if k := string(kb); f(h, k) {
			now = append(now, k)
		}
	}
	if len(now) > 0 {
		h.sendInvalidate(s, now, h.dispatched)
	}
}

// changedSince says whether a dispatched change above index may have
// changed key (true when the ring no longer reaches back that far).
func (h *Hub) changedSince(key string, index uint64) bool {
	if index < h.ringFrom {
		return true
	}
	for i := len(h.ring) - 1; i >= 0 && h.ring[i].Index > index; i-- {
		if h.ring[i].Covers(key) {
			return true
		}
	}
	return false
}

// sendInvalidate queues an invalidation of keys (nil: all) for s, at its
// redirect target if it has one.
func (h *Hub) sendInvalidate(s *Sub, keys []string, index uint64) {
	to := s
	if s.track != nil && s.track.Redirect != nil {
		to = s.track.Redirect
		if to.closed {
			h.push(s, Event{Kind: EventRedirBroken, Index: index})
			return
		}
	}
	h.invalidations.Add(1)
	h.push(to, Event{Kind: EventInvalidate, Index: index, Keys: keys})
}

// invalidate reports c to the tracking subscribers it concerns.
func (h *Hub) invalidate(c *fsm.Change) {
	if len(h.tracking) == 0 {
		return
	}
	if c.All {
		clear(h.tracked)
		for s := range h.tracking {
			if c.Index > s.trackAt || !s.track.BCAST {
				h.sendInvalidate(s, nil, c.Index)
			}
		}
		return
	}
	per := map[*Sub][]string{}
	take := func(k string) {
		set := h.tracked[k]
		for s, at := range set {
			if c.Index > at {
				per[s] = append(per[s], k)
				delete(set, s)
			}
		}
		if len(set) == 0 {
			delete(h.tracked, k)
		}
	}
	for _, k := range c.Keys {
		if h.tracked[k] != nil {
			take(k)
		}
	}
	for _, p := range c.Prefixes {
		for k := range h.tracked {
			if strings.HasPrefix(k, p) {
				take(k)
			}
		}
	}
	flushAll := map[*Sub]bool{}
	for s := range h.tracking {
		o := s.track
		if !o.BCAST || c.Index <= s.trackAt {
			continue
		}
		for _, k := range c.Keys {
			if underAny(k, o.Prefixes) {
				per[s] = append(per[s], k)
			}
		}
		for _, p := range c.Prefixes { // a prefix delete: the keys are not named
			for _, q := range o.Prefixes {
				if strings.HasPrefix(p, q) || strings.HasPrefix(q, p) {
					flushAll[s] = true
				}
			}
			if len(o.Prefixes) == 0 {
				flushAll[s] = true
			}
		}
	}
	// Deterministic order of the pushes, for tests and readers alike.
	subs := make([]*Sub, 0, len(per)+len(flushAll))
	for s := range per {
		subs = append(subs, s)
	}
	for s := range flushAll {
		if per[s] == nil {
			subs = append(subs, s)
		}
	}
	sort.Slice(subs, func(i, j int) bool { return subs[i].id < subs[j].id })
	for _, s := range subs {
		if flushAll[s] {
			h.sendInvalidate(s, nil, c.Index)
		} else {
			sort.Strings(per[s])
			h.sendInvalidate(s, per[s], c.Index)
		}
	}
}

func underAny(k string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// Has says whether the subscriber has the subscription.
func (s *Sub) Has(kind SubKind, name string) bool {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return s.mine[kind][name]
}

// Pending says whether events wait in the subscriber's queue. It takes
// no lock.
func (s *Sub) Pending() bool { return s.pending.Load() }

// FlushTracking sends tracking clients the flush-everything invalidation
// and forgets what they read: this node can no longer vouch for its state
// (it stopped hearing from the leader; feed.go), so what they cached from
// it may be older than the staleness bound. With all, every tracking
// client gets it (the moment contact is lost); otherwise only those that
// read keys since the last flush (while contact stays lost).
func (h *Hub) FlushTracking(all bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.tracking) == 0 {
		return
	}
	read := map[*Sub]bool{}
	for _, set := range h.tracked {
		for s := range set {
			read[s] = true
		}
	}
	clear(h.tracked)
	for s := range h.tracking {
		if bcast := s.readBcast.Swap(false); all || read[s] || bcast {
			h.sendInvalidate(s, nil, h.dispatched)
		}
	}
}
