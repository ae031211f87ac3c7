package fsm

import (
	"bytes"
	"math"
	"strconv"
	"sync"
	"unsafe"

	"github.com/google/btree"
)

// apply executes one decoded command against the writer's private state.
// Everything it decides comes from s and c: c.Now is the leader's clock.
// Keys removed by the reaper and by eviction record their keyspace events
// in ch ('expired' and 'evicted' come from the entry that removes the key).
func (f *FSM) apply(s *state, index uint64, c *Command, ch *changeSet) Result {
	r := Result{Index: index}
	switch c.Op {
	case OpSetMember:
		s.setLegacyMember(c.MemberID, c.HTTPAddr, c.RESPAddr)
	case OpRemoveMember:
		s.removeMember(c.MemberID)
	case OpMember:
		rec := &Member{ID: c.MemberID, Addrs: c.Addrs, Incarnation: c.Incarnation, Level: c.Level}
		if rec.Addrs == nil {
			rec.Addrs = map[string]string{}
		}
		s.setMember(rec)
	case OpClusterLevel:
		was := s.level
		s.level = max(s.level, c.Level) // never down
		if was < LevelStoredBudget && s.level >= LevelStoredBudget {
			s.dedup.resize(s.level)
			s.dedup.forgot = index // what was forgotten before is not known
		}
	case OpBatch:
		return s.applyBatch(index, c)
	case OpExpire:
		for _, k := range c.Keys {
			if it, ok := s.get(k); ok && it.expireAt != 0 && it.expireAt <= c.Now {
				s.remove(it)
				r.Count++
				ch.events = append(ch.events, KeyEvent{Key: it.key, Event: "expired"})
			}
		}
		s.counters.Expirations += uint64(r.Count)
	case OpEvict:
		for i, k := range c.Keys {
			if it, ok := s.get(k); ok && it.version == c.Versions[i] {
				s.remove(it)
				r.Count++
				ch.events = append(ch.events, KeyEvent{Key: it.key, Event: "evicted"})
			}
		}
		s.counters.Evictions += uint64(r.Count)
	case OpDeletePrefix:
		if len(c.Key) == 0 {
			r.Count = s.clear(c.Now)
			s.counters.Deletes += uint64(r.Count)
			break
		}
		r.Count, _ = s.deletePrefix(c.Key, 0, c.Now)
	case OpDeletePrefixChunk:
		r.Count, r.More = s.deletePrefix(c.Key, c.Limit, c.Now)
	default:
		s.applyKey(&r, index, c)
	}
	return r
}

// deletePrefix removes the keys under prefix in key order, at most limit
// of them when limit > 0 (more then says keys remain), and returns how
// many unexpired keys it removed.
func (s *state) deletePrefix(prefix []byte, limit int, now int64) (count int, more bool) {
	var doomed []*item
	s.tree.AscendGreaterOrEqual(&item{key: string(prefix)}, func(it *item) bool {
		if !bytes.HasPrefix([]byte(it.key), prefix) {
			return false
		}
		if limit > 0 && len(doomed) == limit {
			more = true
			return false
		}
		doomed = append(doomed, it)
		return true
	})
	for _, it := range doomed {
		if !it.expired(now) {
			count++
		}
		s.remove(it)
	}
	s.counters.Deletes += uint64(count)
	return count, more
}

// applyBatch applies sub-commands in order. An atomic batch runs on a
// throw-away clone first and is kept only if every condition held. A
// non-atomic batch is how the leader packs concurrent clients' writes into
// one entry: each sub-command is independent, with its own request id.
func (s *state) applyBatch(index uint64, c *Command) Result {
	r := Result{Index: index, Results: make([]Result, len(c.Cmds))}
	target := s
	if c.Atomic {
		target = s.clone()
	}
	for i, sub := range c.Cmds {
		sub.Now = c.Now
		r.Results[i] = target.once(sub.ReqID, index, c.Now, func() Result {
			res := Result{Index: index}
			target.applyKey(&res, index, sub)
			return res
		})
		if c.Atomic && r.Results[i].Err != nil {
			r.Err = r.Results[i].Err
			return r
		}
	}
	if c.Atomic {
		*s = *target
	}
	return r
}

// applyKey runs the single-key commands.
func (s *state) applyKey(r *Result, index uint64, c *Command) {
	cur, ok := s.get(c.Key)
	live := ok && !cur.expired(c.Now)
	if !condHolds(c, cur, live) {
		r.Err = ErrConditionFailed
		if live {
			r.Current = cur.version
		}
		return
	}
	switch c.Op {
	case OpSet:
		// Copy the value at its exact size: the command's bytes alias the
		// whole log entry (on the leader, a grown buffer), which would keep
		// more memory alive than the accounting says.
		it := &item{key: string(c.Key), value: bytes.Clone(c.Value), expireAt: c.ExpireAt}
		if c.Flags&FlagKeepTTL != 0 && live {
			it.expireAt = cur.expireAt
		}
		if c.Flags&FlagReturnPrev != 0 && live {
			r.Prev, r.PrevFound = cur.value, true
		}
		r.Version = s.put(it, cur, index, c.Now)
		s.counters.Sets++
	case OpDelete:
		if ok {
			s.remove(cur)
		}
		r.Deleted = live
		if live {
			s.counters.Deletes++
		}
	case OpIncr:
		var v int64
		exp := c.ExpireAt // only the call that creates the counter sets its expiry
		if live {
			var err error
			if v, err = parseCounter(cur.value); err != nil {
				r.Err = err
				return
			}
			exp = cur.expireAt
		}
		if (c.By > 0 && v > math.MaxInt64-c.By) || (c.By < 0 && v < math.MinInt64-c.By) {
			r.Err = ErrOverflow
			return
		}
		v += c.By
		it := &item{key: string(c.Key), value: strconv.AppendInt(nil, v, 10), expireAt: exp}
		r.Version, r.Value = s.put(it, cur, index, c.Now), v
		s.counters.Sets++
	case OpTouch:
		if !live {
			r.Err = ErrNotFound
			return
		}
		it := &item{key: cur.key, value: cur.value, expireAt: c.ExpireAt}
		r.Version, r.Deleted = s.put(it, cur, index, c.Now), true
	}
}

func condHolds(c *Command, cur *item, live bool) bool {
	switch c.Cond {
	case CondVersion:
		return live && cur.version == c.Version
	case CondAbsent:
		return !live
	case CondExists:
		return live
	}
	return true
}

// parseCounter accepts exactly what incr writes: an optional '-' and
// decimal digits.
func parseCounter(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 20 || b[0] == '+' {
		return 0, ErrNotInteger
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, ErrNotInteger
	}
	return v, nil
}

func (s *state) get(key []byte) (*item, bool) {
	return getIn(s.tree, key)
}

// probes are the search keys of lookups. Building one per lookup
// (an item, and the key copied into a string) was two of the ten or so
// allocations of a GET; the tree only compares the probe, never keeps it,
// so a pooled probe may borrow the caller's key bytes.
var probes = sync.Pool{New: func() any { return new(item) }}

// getIn looks key up in tree without allocating.
func getIn(tree *btree.BTreeG[*item], key []byte) (*item, bool) {
	p := probes.Get().(*item)
	p.key = unsafe.String(unsafe.SliceData(key), len(key))
	it, ok := tree.Get(p)
	p.key = ""
	probes.Put(p)
	return it, ok
}

// put stores it in place of old (which may be nil), giving it the next
// version: the entry's index, or one past the last version handed out when
// an earlier write in the same entry already took it.
func (s *state) put(it, old *item, index uint64, now int64) uint64 {
	it.version = max(index, s.lastVersion+1)
	s.lastVersion = it.version
	it.access.Store(now)
	if old != nil {
		s.drop(old)
	}
	s.tree.ReplaceOrInsert(it)
	s.changes.written(it.key)
	it.acct = it.size()
	s.bytes += it.acct
	if it.expireAt != 0 {
		s.ttl.ReplaceOrInsert(ttlKey{it.expireAt, it.key})
	}
	return it.version
}

// remove deletes it from the tree and the expiry index.
func (s *state) remove(it *item) {
	s.tree.Delete(it)
	s.drop(it)
	s.changes.removed(it.key)
}

// clear removes every key at once, as deleting them one by one would, and
// returns how many were live at now. It costs the expired keys not yet
// reaped, not the whole cache, so flushing a big cache does not stall
// the log.
func (s *state) clear(now int64) int {
	expired := 0
	s.ttl.Ascend(func(t ttlKey) bool {
		if t.at > now {
			return false
		}
		expired++
		return true
	})
	live := s.tree.Len() - expired
	s.tree, s.ttl = btree.NewG(32, itemLess), btree.NewG(32, ttlLess)
	s.bytes = 0
	s.changes.flushed()
	return live
}

// drop forgets it's accounting and expiry entry (the tree slot is reused
// or deleted by the caller).
func (s *state) drop(it *item) {
	s.bytes -= it.acct
	if it.expireAt != 0 {
		s.ttl.Delete(ttlKey{it.expireAt, it.key})
	}
}
