package fsm

import (
	"hash/fnv"
	"sync"
	"time"
)

// SCAN cursors. Redis clients parse the cursor as an unsigned 64-bit
// number (go-redis, redis-cli) or a Python int, so the position (the last
// key examined, up to the key size limit) cannot travel in it. Each node
// keeps a table from cursor numbers to positions instead; it is local,
// like the hit counters, not replicated state. The number is a hash of
// the position, so every node that runs the same SCAN inside an entry
// (a SCAN queued in MULTI) hands out the same cursor. A cursor is valid on
// the node that issued it for cursorTTL; SCAN with a cursor the node does
// not know (expired, or issued by a leader that has since changed) is
// refused with an error rather than silently restarted.
const (
	maxCursors = 1 << 16
	cursorTTL  = int64(10 * time.Minute)
)

type cursorTable struct {
	mu    sync.Mutex
	pos   map[uint64]cursorPos
	order []uint64 // issue order, oldest first, for eviction
}

type cursorPos struct {
	after   string
	created int64 // the issuing command's time, Unix ns
}

// put stores a position and returns its cursor (never 0: 0 ends a scan).
func (t *cursorTable) put(after string, now int64) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pos == nil {
		t.pos = make(map[uint64]cursorPos)
	}
	h := fnv.New64a()
	h.Write([]byte(after))
	id := h.Sum64() >> 1 // below 2^63: also fits a signed 64-bit parser
	for id == 0 || t.pos[id].created != 0 && t.pos[id].after != after {
		id = (id + 1) & (1<<63 - 1)
	}
	if _, ok := t.pos[id]; !ok {
		t.order = append(t.order, id)
	}
	t.pos[id] = cursorPos{after: after, created: now}
	for len(t.order) > 0 && (len(t.order) > maxCursors || now-t.pos[t.order[0]].created > cursorTTL) {
		delete(t.pos, t.order[0])
		t.order = t.order[1:]
	}
	return id
}

// get returns the position of a cursor.
func (t *cursorTable) get(id uint64, now int64) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.pos[id]
	if !ok || now-p.created > cursorTTL {
		return "", false
	}
	return p.after, true
}
