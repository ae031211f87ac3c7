package resp

import (
	"math/rand/v2"
	"sync"
	"time"
)

// SCAN cursors. Redis clients parse the cursor as an unsigned 64-bit
// number (go-redis, redis-cli) or a Python int, so the position (the last
// key examined, up to 1024 bytes) cannot travel in it. The node keeps a
// table from random cursor numbers to positions instead. A cursor is valid
// on the node that issued it for cursorTTL; SCAN with a cursor the node
// does not know (expired, or issued by a leader that has since changed)
// is refused with an error rather than silently restarted.
const (
	maxCursors = 1 << 16
	cursorTTL  = 10 * time.Minute
)

type cursorTable struct {
	mu    sync.Mutex
	pos   map[uint64]cursorPos
	order []uint64 // issue order, oldest first, for eviction
}

type cursorPos struct {
	after   []byte
	created time.Time
}

func newCursorTable() *cursorTable {
	return &cursorTable{pos: make(map[uint64]cursorPos)}
}

// put stores a position and returns its cursor (never 0: 0 ends a scan).
func (t *cursorTable) put(after []byte) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var id uint64
	for id == 0 || t.pos[id].created != (time.Time{}) {
		id = rand.Uint64() >> 1 // below 2^63: also fits a signed 64-bit parser
	}
	t.pos[id] = cursorPos{after: append([]byte(nil), after...), created: time.Now()}
	t.order = append(t.order, id)
	for len(t.order) > 0 && (len(t.order) > maxCursors || time.Since(t.pos[t.order[0]].created) > cursorTTL) {
		delete(t.pos, t.order[0])
		t.order = t.order[1:]
	}
	return id
}

// get returns the position of a cursor.
func (t *cursorTable) get(id uint64) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.pos[id]
	if !ok || time.Since(p.created) > cursorTTL {
		return nil, false
	}
	return p.after, true
}
