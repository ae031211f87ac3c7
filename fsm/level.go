package fsm

import (
	"fmt"
	"sort"

	"github.com/hashicorp/raft"
)

// Feature levels let binaries of different versions share a cluster
// during a rolling upgrade, as etcd's cluster version does. Every binary
// knows the highest level it can apply (FeatureLevel); the cluster's level
// is replicated state, raised by the leader (OpClusterLevel) only once
// every member reports at least that level, and never lowered. Entry types
// and snapshot formats of a level are written only once the cluster has
// reached it, so an older member never meets one while it is a member.
//
// Level 1 is the first binary: ops 1 to 11 and snapshot format 1.
// Level 2 adds OpClusterLevel, OpMember (member records with named
// addresses, incarnation and level) and snapshot format 2.
// Level 3 adds typed values (hashes, sets, sorted sets, lists, streams;
// types.go), snapshot format 3, and every command whose Spec.Level is 3.
// Level 4 bounds the replies kept for request ids (dedup.go), adds
// Unit.Resend, snapshot format 4 (format 3 under a number level-3
// binaries refuse), and tells the members' fronts that every member
// relays a write with a request id and runs one relayed so (resp:
// RAFTCACHE.ONCE).
// Level 5 counts error texts in that bound (a script's error can be as
// long as a value), judges a resent unit by the log (Unit.After, carried
// by the relays as n:after; dedupTable.forgot) instead of the clock, and
// adds snapshot format 5 (format 4 with dedupTable.forgot, under a
// number level-4 binaries refuse).
// Level 6 ties an HTTP Idempotency-Key to its request: the HTTP front
// sends the key with a digest of the unit (TagRequestID), and a key
// reused on a different request is refused (ErrRequestMismatch) instead
// of answered with the first request's result; snapshot format 6 is
// format 5 under a number level-5 binaries refuse. It also corrects what
// replicas must agree on to match Redis (LevelRedisFixes): expiries set
// by Redis commands are stored at millisecond resolution, EXPIRETIME
// rounds, HRANDFIELD refuses a count out of range.
const FeatureLevel uint32 = 6

// LevelTypes is the level of typed values and snapshot format 3.
const LevelTypes uint32 = 3

// LevelReplyBudget is the level from which kept replies are bounded
// (DedupMaxReplyBytes) and relayed writes carry request ids.
const LevelReplyBudget uint32 = 4

// LevelStoredBudget is the level from which the bound on kept replies
// counts error texts too (dedup.go, keptSize).
const LevelStoredBudget uint32 = 5

// LevelRequestDigest is the level from which a tagged request id
// (TagRequestID) names one request: the same key with another tag is
// refused (dedup.go, dedupTable.find).
const LevelRequestDigest uint32 = 6

// LevelRedisFixes is the level from which command results that replicas
// must agree on (stored expiries, replies a script may act on) follow
// Redis where earlier levels did not (see FeatureLevel).
const LevelRedisFixes uint32 = 6

// Names of a member's addresses. A new front registers its address under
// a new name; no new entry type is needed.
const (
	AddrHTTP  = "http"  // the HTTP API
	AddrRedis = "redis" // the Redis-protocol front
)

// Member is one member's record, as replicated through the log.
type Member struct {
	ID string
	// Addrs maps an address name (AddrHTTP, AddrRedis, ...) to host:port.
	Addrs map[string]string
	// Incarnation is the random id of the member's data directory; ""
	// when it was registered by a level-1 entry.
	Incarnation string
	// Level is the feature level the member reported; 0 when unknown
	// (registered by a level-1 entry).
	Level uint32
}

func (m *Member) clone() Member {
	c := *m
	c.Addrs = make(map[string]string, len(m.Addrs))
	for k, v := range m.Addrs {
		c.Addrs[k] = v
	}
	return c
}

// setMember publishes rec as id's record, copying the table: a published
// table is never modified.
func (s *state) setMember(rec *Member) {
	next := make(map[string]*Member, len(s.members)+1)
	for k, v := range s.members {
		next[k] = v
	}
	next[rec.ID] = rec
	s.members = next
}

func (s *state) removeMember(id string) {
	if _, ok := s.members[id]; !ok {
		return
	}
	next := make(map[string]*Member, len(s.members))
	for k, v := range s.members {
		if k != id {
			next[k] = v
		}
	}
	s.members = next
}

// setLegacyMember applies OpSetMember: it knows only the HTTP and Redis
// addresses, so it replaces those two and keeps the rest of the record.
func (s *state) setLegacyMember(id, http, redis string) {
	rec := &Member{ID: id}
	if old, ok := s.members[id]; ok {
		c := old.clone()
		rec = &c
	} else {
		rec.Addrs = map[string]string{}
	}
	rec.Addrs[AddrHTTP] = http
	if redis != "" {
		rec.Addrs[AddrRedis] = redis
	} else {
		delete(rec.Addrs, AddrRedis)
	}
	s.setMember(rec)
}

// sortedMembers lists the records by id.
func (s *state) sortedMembers() []*Member {
	out := make([]*Member, 0, len(s.members))
	for _, m := range s.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// clusterLevel is the effective level: a state never raised is level 1.
func (s *state) clusterLevel() uint32 { return max(s.level, 1) }

// ClusterLevel is the cluster's feature level as of the applied state:
// 1 until an OpClusterLevel raised it.
func (f *FSM) ClusterLevel() uint32 { return f.root.Load().clusterLevel() }

// Level is the highest feature level this FSM applies (FeatureLevel
// unless it was made by NewAtLevel).
func (f *FSM) Level() uint32 { return f.level }

// MemberRecords returns copies of every member record, by id.
func (f *FSM) MemberRecords() []Member {
	ms := f.root.Load().sortedMembers()
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = m.clone()
	}
	return out
}

// Member returns a copy of id's record.
func (f *FSM) Member(id string) (Member, bool) {
	m, ok := f.root.Load().members[id]
	if !ok {
		return Member{}, false
	}
	return m.clone(), true
}

// Members returns a copy of the member id -> HTTP address table.
func (f *FSM) Members() map[string]string {
	ms := f.root.Load().members
	out := make(map[string]string, len(ms))
	for id, m := range ms {
		out[id] = m.Addrs[AddrHTTP]
	}
	return out
}

// MemberAddr returns the HTTP address a member registered, or "".
func (f *FSM) MemberAddr(id string) string { return f.memberAddr(id, AddrHTTP) }

// MemberRESPAddr returns the Redis-protocol address a member registered,
// or "".
func (f *FSM) MemberRESPAddr(id string) string { return f.memberAddr(id, AddrRedis) }

func (f *FSM) memberAddr(id, name string) string {
	if m, ok := f.root.Load().members[id]; ok {
		return m.Addrs[name]
	}
	return ""
}

// decode reads one command entry and checks that this FSM may apply it:
// an op or a cluster level beyond this FSM's level is refused like bytes
// it cannot parse.
func (f *FSM) decode(l *raft.Log) (Command, error) {
	cmd, err := Decode(l.Data)
	if err != nil {
		return cmd, err
	}
	if need := opLevel[cmd.Op]; need > f.level {
		return cmd, fmt.Errorf("%w: %v needs level %d; this binary applies up to %d", ErrNewerLevel, cmd.Op, need, f.level)
	}
	if cmd.Op == OpClusterLevel && cmd.Level > f.level {
		return cmd, fmt.Errorf("%w: the cluster moved to level %d; this binary applies up to %d", ErrNewerLevel, cmd.Level, f.level)
	}
	return cmd, nil
}

// poisonAt stops the FSM at l. Raft must then be stopped by someone else:
// Apply runs on Raft's FSM goroutine, which raft.Shutdown waits for.
func (f *FSM) poisonAt(l *raft.Log, cause error) {
	op := "none"
	if len(l.Data) >= 2 {
		op = Op(l.Data[1]).String()
	}
	err := fmt.Errorf("%w: entry %d (op %s): %w", ErrPoisoned, l.Index, op, cause)
	if !f.poison.CompareAndSwap(nil, &err) {
		return
	}
	f.logger.Error("cannot apply a log entry: this node stops applying and serving; run a binary that knows it",
		"index", l.Index, "op", op, "error", cause)
	close(f.poisoned)
}

// Stop stops the FSM before the entry at index, as an entry it cannot
// apply does: the node that runs it can no longer vouch for that entry
// (its log failed to sync, or it is closing while waiting for that).
// Raft must then be stopped by someone else, as after poisonAt.
func (f *FSM) Stop(index uint64, cause error) {
	err := fmt.Errorf("%w: stopped before entry %d: %w", ErrPoisoned, index, cause)
	if f.poison.CompareAndSwap(nil, &err) {
		close(f.poisoned)
	}
}

// refuse answers every command entry of logs with the poison error.
func (f *FSM) refuse(logs []*raft.Log, out []interface{}) {
	err := f.Poisoned()
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			out[i] = &Result{Index: l.Index, Err: err}
		}
	}
}

// Poisoned returns nil, or the error (wrapping ErrPoisoned, naming the
// entry's index and op) that stopped this FSM.
func (f *FSM) Poisoned() error {
	if p := f.poison.Load(); p != nil {
		return *p
	}
	return nil
}

// PoisonedCh is closed when the FSM stops at an entry it cannot apply.
func (f *FSM) PoisonedCh() <-chan struct{} { return f.poisoned }
