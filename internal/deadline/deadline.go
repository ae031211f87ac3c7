// Package deadline hands out request deadlines without a timer per
// request. A busy front bounds every command or request by a timeout; a
// context.WithTimeout each time costs a timer, a context and a channel,
// about 5% of a node's CPU under a read load. Shared rounds deadlines up
// to a step and keeps one context per step, so a front creates ten timers
// a second however many requests it serves; Within adds the request's own
// context (a client that hung up) and builds the expensive merged context
// only when someone actually waits on it. Conn (conn.go) does the same
// for connection deadlines: it re-arms a connection's timer only when a
// deadline moves earlier. Both fronts use all three: resp for commands
// and client connections, transport for HTTP requests and connections.
package deadline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Step is the granularity of shared deadlines: a timeout of d ends
// between d and d+Step from now.
const Step = 100 * time.Millisecond

// Shared hands out contexts that end at a deadline rounded up to the next
// Step, one shared context per step. Nothing cancels them early: a caller
// that finishes just stops watching. The zero value is ready to use.
//
// It keeps only the latest step, so it is for one timeout: a caller with
// a much shorter timeout than the others still gets its own deadline,
// but through a context of its own each time. Use one Shared per timeout.
type Shared struct {
	cur  atomic.Pointer[bucket]
	mu   sync.Mutex
	once sync.Once
	base time.Time // steps count from here, on the monotonic clock: a wall-clock jump does not move them
}

type bucket struct {
	step   int64 // deadline = base + step × Step
	ctx    context.Context
	cancel context.CancelFunc // never needed: the context ends itself at its deadline, and its parent is Background
}

// Context returns a context that ends timeout from now, rounded up to the
// next Step (or a little later, if another caller moved on already).
func (s *Shared) Context(timeout time.Duration) context.Context {
	s.once.Do(func() { s.base = time.Now() })
	step := (int64(time.Since(s.base)+timeout) + int64(Step) - 1) / int64(Step)
	if b := s.cur.Load(); b != nil && b.step == step {
		return b.ctx
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.cur.Load()
	if b != nil && b.step >= step && b.step <= step+1 && b.ctx.Err() == nil {
		return b.ctx // another goroutine moved on; a step later is fine
	}
	ctx, cancel := context.WithDeadline(context.Background(), s.base.Add(time.Duration(step)*Step))
	if b != nil && b.step > step {
		// A shorter timeout than the current step's: a context of its
		// own, ended by its timer, rather than moving the shared step
		// back for everyone.
		_ = cancel
		return ctx
	}
	s.cur.Store(&bucket{step: step, ctx: ctx, cancel: cancel})
	return ctx
}

// Within returns a context that ends when parent does or at a shared
// deadline timeout from now, whichever comes first, and carries parent's
// values. Call Release when done with it.
//
// It costs one small allocation until something calls Done: a caller
// that never waits (a read served from memory at once) never makes a
// timer. The first Done merges the two with context.WithDeadline, as
// context.WithTimeout would have from the start.
func (s *Shared) Within(parent context.Context, timeout time.Duration) *Ctx {
	return &Ctx{parent: parent, shared: s.Context(timeout)}
}

// Ctx is a context from Within.
type Ctx struct {
	parent, shared context.Context

	mu     sync.Mutex
	merged context.Context // once Done was called on a parent that can end
	cancel context.CancelFunc
}

// Deadline is the earlier of the shared deadline and parent's.
func (c *Ctx) Deadline() (time.Time, bool) {
	d, _ := c.shared.Deadline()
	if pd, ok := c.parent.Deadline(); ok && pd.Before(d) {
		return pd, true
	}
	return d, true
}

// Done is closed when parent ends or the deadline passes.
func (c *Ctx) Done() <-chan struct{} {
	if c.parent.Done() == nil {
		return c.shared.Done() // parent never ends: the deadline is all
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.merged == nil {
		d, _ := c.Deadline()
		c.merged, c.cancel = context.WithDeadline(c.parent, d)
	}
	return c.merged.Done()
}

// Err says why the context ended, nil while it has not.
func (c *Ctx) Err() error {
	c.mu.Lock()
	merged := c.merged
	c.mu.Unlock()
	if merged != nil {
		return merged.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	return c.shared.Err()
}

// Value is parent's.
func (c *Ctx) Value(key any) any { return c.parent.Value(key) }

// Release frees the merged context's timer, if Done made one.
func (c *Ctx) Release() {
	c.mu.Lock()
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// String names the context in panics and logs.
func (c *Ctx) String() string { return "deadline.Within" }
