package node

import (
	"errors"
	"fmt"
	"sync"
)

// The cluster's memory bound. Each member has its own (Config.MaxMemory:
// --max-memory, or by default a share of its container's or machine's
// memory), and members may differ: a smaller pod, a machine with less
// RAM. Every member holds the whole cache, so the cluster must keep to
// the smallest. Members report their bound when the leader probes them
// (GET /v1/node, every few seconds and at once when it takes over); the
// leader evicts down to, and refuses writes above, the smallest bound any
// current member reported, its own included. A member's report is kept
// while it is a member, so a member that does not answer for a while does
// not raise the bound. A new leader probes every member at once when it
// takes over; until that round ends it enforces its own bound lowered by
// what it heard when it last led, which can only be larger than the
// cluster's (it admits a little more, it never evicts more).
//
// Eviction (housekeeping.go) is approximate LRU, run by the leader every
// evictInterval; between two rounds writes can overshoot. Writes that may
// grow memory (Redis's denyoom commands) are refused with ErrOutOfMemory
// once the cache is past the bound plus memorySlack, so a burst of large
// writes cannot outrun eviction by more than that.

// ErrOutOfMemory: a write that may grow memory, refused because the cache
// is past the memory bound plus its slack while eviction catches up.
// Nothing was done; retry after a moment, or write less.
var ErrOutOfMemory = errors.New("out of memory")

// memorySlack is how far past bound the cache may grow before writes are
// refused: an eighth of the bound, at least 1 MiB.
func memorySlack(bound int64) int64 { return max(bound/8, 1<<20) }

// memBounds is the leader's record of the bounds members reported.
type memBounds struct {
	mu  sync.Mutex
	got map[string]int64 // member id -> reported bound (> 0)
}

// record keeps the bounds of the members that answered a probe round and
// forgets members no longer in the configuration.
func (b *memBounds) record(results []probeResult) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.got == nil {
		b.got = map[string]int64{}
	}
	in := map[string]bool{}
	for _, r := range results {
		in[r.m.ID] = true
		if r.err == nil && r.info.MaxMemory > 0 {
			b.got[r.m.ID] = r.info.MaxMemory
		}
	}
	for id := range b.got {
		if !in[id] {
			delete(b.got, id)
		}
	}
}

func (b *memBounds) min(own int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := own
	for _, v := range b.got {
		if m <= 0 || v < m {
			m = v
		}
	}
	return m
}

// MaxMemory is the memory bound this node enforces: its own
// (Config.MaxMemory), lowered to the smallest any member reported when it
// leads; 0 if none is bounded.
func (n *Node) MaxMemory() int64 { return n.memBounds.min(n.cfg.MaxMemory) }

// OwnMaxMemory is this member's own bound (Config.MaxMemory), which it
// reports to the leader.
func (n *Node) OwnMaxMemory() int64 { return n.cfg.MaxMemory }

// checkMemory refuses a write that may grow memory while the cache is
// past the bound plus slack.
func (n *Node) checkMemory() error {
	bound := n.MaxMemory()
	if bound <= 0 {
		return nil
	}
	if used, slack := n.fsm.Bytes(), memorySlack(bound); used > bound+slack {
		return fmt.Errorf("%w: the cache holds %d bytes, past its bound of %d plus %d while eviction catches up; retry shortly", ErrOutOfMemory, used, bound, slack)
	}
	return nil
}
