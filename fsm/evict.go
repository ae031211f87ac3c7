package fsm

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Eviction policies, with Redis's names. The leader alone picks victims
// (node/housekeeping.go), from its local read recency and a random
// source of its own; OpEvict makes every replica remove the same keys,
// so nothing here runs inside Apply.
//
// The default is noeviction, as in Redis: a key may be a queue (a list,
// a stream) or a job's state (a hash, a set), and evicting one silently
// loses work. Under noeviction (and under a volatile policy when no key
// with an expiry is left) writes that may grow memory past --max-memory
// are refused with OOM instead. A pure cache chooses allkeys-lru.

// EvictPolicy is a maxmemory-policy.
type EvictPolicy uint8

// Policies (Redis's LFU policies are not offered).
const (
	EvictNone           EvictPolicy = iota // noeviction
	EvictAllLRU                            // allkeys-lru
	EvictVolatileLRU                       // volatile-lru
	EvictVolatileTTL                       // volatile-ttl
	EvictAllRandom                         // allkeys-random
	EvictVolatileRandom                    // volatile-random
)

var evictNames = [...]string{"noeviction", "allkeys-lru", "volatile-lru", "volatile-ttl", "allkeys-random", "volatile-random"}

func (p EvictPolicy) String() string {
	if int(p) < len(evictNames) {
		return evictNames[p]
	}
	return "policy" + strconv.Itoa(int(p))
}

// Volatile says whether the policy evicts only keys with an expiry.
func (p EvictPolicy) Volatile() bool {
	return p == EvictVolatileLRU || p == EvictVolatileTTL || p == EvictVolatileRandom
}

// ParseEvictPolicy reads a policy by its Redis name ("" is noeviction).
func ParseEvictPolicy(name string) (EvictPolicy, error) {
	if name == "" {
		return EvictNone, nil
	}
	for i, n := range evictNames {
		if strings.EqualFold(name, n) {
			return EvictPolicy(i), nil
		}
	}
	return 0, fmt.Errorf("unknown maxmemory policy %q (one of %s; the LFU policies are not supported)", name, strings.Join(evictNames[:], ", "))
}

// EvictionCandidatesFor samples victims for policy p: up to scan keys
// of a moving window starting after cursor (the key space for allkeys
// policies, the expiry index for volatile ones), of which it returns
// pick: the least recently used (LRU), the soonest to expire (volatile-
// ttl, which reads the expiry index from its start: exact, not
// sampled), or random ones. next is the cursor for the next call.
func (f *FSM) EvictionCandidatesFor(p EvictPolicy, cursor string, scan, pick int) (victims []Victim, next string) {
	switch p {
	case EvictNone:
		return nil, cursor
	case EvictAllLRU:
		return f.EvictionCandidates(cursor, scan, pick)
	}
	s := f.root.Load()
	var sample []*item
	if !p.Volatile() { // allkeys-random
		collect := func(it *item) bool {
			if it.key == cursor && len(sample) == 0 && cursor != "" {
				return true
			}
			sample = append(sample, it)
			return len(sample) < scan
		}
		s.tree.AscendGreaterOrEqual(&item{key: cursor}, collect)
		if len(sample) < scan && cursor != "" {
			s.tree.AscendLessThan(&item{key: cursor}, collect)
		}
		if len(sample) > 0 {
			next = sample[len(sample)-1].key
		}
	} else {
		// The expiry index, ordered by time: volatile-ttl always starts
		// at the soonest; the others move a window (cursor "at key").
		var from ttlKey
		if p != EvictVolatileTTL {
			if at, key, ok := strings.Cut(cursor, " "); ok {
				from.at, _ = strconv.ParseInt(at, 10, 64)
				from.key = key
			}
		}
		var last ttlKey
		collect := func(k ttlKey) bool {
			if k == from && len(sample) == 0 {
				return true
			}
			if it, ok := s.get([]byte(k.key)); ok && it.expireAt == k.at {
				sample = append(sample, it)
				last = k
			}
			return len(sample) < scan
		}
		s.ttl.AscendGreaterOrEqual(from, collect)
		if len(sample) < scan && from != (ttlKey{}) {
			s.ttl.AscendLessThan(from, collect)
		}
		if len(sample) > 0 {
			next = strconv.FormatInt(last.at, 10) + " " + last.key
		}
	}
	switch p {
	case EvictVolatileLRU:
		for i := 0; i < pick && i < len(sample); i++ { // partial selection sort: pick is small
			oldest := i
			for j := i + 1; j < len(sample); j++ {
				if sample[j].access.Load() < sample[oldest].access.Load() {
					oldest = j
				}
			}
			sample[i], sample[oldest] = sample[oldest], sample[i]
		}
	case EvictAllRandom, EvictVolatileRandom:
		rand.Shuffle(len(sample), func(i, j int) { sample[i], sample[j] = sample[j], sample[i] })
	}
	for i := 0; i < pick && i < len(sample); i++ {
		it := sample[i]
		victims = append(victims, Victim{Key: []byte(it.key), Version: it.version, Size: it.size()})
	}
	return victims, next
}

// HasVolatile says whether any key has an expiry (a volatile policy has
// something to evict).
func (f *FSM) HasVolatile() bool { return f.root.Load().ttl.Len() > 0 }
