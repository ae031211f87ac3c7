package fsm

import (
	"bytes"
)

// Keys lists live keys with prefix in order, starting after the key after
// (exclusive; nil starts at the prefix), at most limit of them. more says
// whether keys remain. It walks only the range it returns.
func (f *FSM) Keys(prefix, after []byte, limit int, now int64) (keys [][]byte, more bool) {
	if c := f.clock.Load(); c > now {
		now = c
	}
	start := prefix
	if after != nil && bytes.Compare(after, prefix) >= 0 {
		start = after
	}
	f.root.Load().tree.AscendGreaterOrEqual(&item{key: string(start)}, func(it *item) bool {
		if !bytes.HasPrefix([]byte(it.key), prefix) {
			return false
		}
		if after != nil && it.key == string(after) || it.expired(now) {
			return true
		}
		if len(keys) == limit {
			more = true
			return false
		}
		keys = append(keys, []byte(it.key))
		return true
	})
	return keys, more
}

// Expired returns up to limit keys whose expiry is at or before now, oldest
// first, for the leader to remove with OpExpire.
func (f *FSM) Expired(now int64, limit int) [][]byte {
	var keys [][]byte
	f.root.Load().ttl.Ascend(func(t ttlKey) bool {
		if t.at > now || len(keys) == limit {
			return false
		}
		keys = append(keys, []byte(t.key))
		return true
	})
	return keys
}

// Bytes is the accounted memory of all stored items.
func (f *FSM) Bytes() int64 { s := f.root.Load(); return s.bytes + s.scripts.bytes }

// EvictionCandidates approximates least-recently-used eviction the way
// Redis does, by sampling: it scans up to scan keys in key order starting
// after cursor (wrapping around), and returns the pick least recently
// accessed (read or written) among them, with their versions so that OpEvict
// spares a key rewritten in the meantime. next is the cursor for the next
// call. Access times are local hints, so only the leader's choice matters:
// it proposes the victims and every node removes the same keys.
func (f *FSM) EvictionCandidates(cursor string, scan, pick int) (victims []Victim, next string) {
	t := f.root.Load().tree
	sample := make([]*item, 0, scan)
	collect := func(it *item) bool {
		if it.key == cursor && len(sample) == 0 && cursor != "" {
			return true
		}
		sample = append(sample, it)
		return len(sample) < scan
	}
	t.AscendGreaterOrEqual(&item{key: cursor}, collect)
	if len(sample) < scan && cursor != "" {
		t.AscendLessThan(&item{key: cursor}, collect) // wrap around
	}
	if len(sample) == 0 {
		return nil, ""
	}
	next = sample[len(sample)-1].key
	// Partial selection sort: pick is small.
	for i := 0; i < pick && i < len(sample); i++ {
		oldest := i
		for j := i + 1; j < len(sample); j++ {
			if sample[j].access.Load() < sample[oldest].access.Load() {
				oldest = j
			}
		}
		sample[i], sample[oldest] = sample[oldest], sample[i]
		it := sample[i]
		victims = append(victims, Victim{Key: []byte(it.key), Version: it.version, Size: it.size()})
	}
	return victims, next
}

// Victim is an eviction candidate.
type Victim struct {
	Key     []byte
	Version uint64
	Size    int64 // accounted bytes freed by removing it
}
