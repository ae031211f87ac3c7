package resp

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlineStep is the granularity of shared deadlines: a command's
// timeout is Config.Timeout plus up to this much.
const deadlineStep = 100 * time.Millisecond

// deadlines hands out contexts that end at a deadline rounded up to the
// next deadlineStep, one shared context per step, so a busy front creates
// ten timers a second instead of one per command. Nothing cancels them
// early: a command that finishes just stops watching.
type deadlines struct {
	cur  atomic.Pointer[deadlineCtx]
	mu   sync.Mutex
	once sync.Once
	base time.Time // steps count from here, on the monotonic clock: a wall-clock jump does not move them
}

type deadlineCtx struct {
	step   int64 // deadline = base + step × deadlineStep
	ctx    context.Context
	cancel context.CancelFunc // never needed: the context ends itself at its deadline, and its parent is Background
}

func (d *deadlines) get(timeout time.Duration) context.Context {
	d.once.Do(func() { d.base = time.Now() })
	step := (int64(time.Since(d.base)+timeout) + int64(deadlineStep) - 1) / int64(deadlineStep)
	if c := d.cur.Load(); c != nil && c.step == step {
		return c.ctx
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.cur.Load(); c != nil && c.step >= step && c.ctx.Err() == nil {
		return c.ctx // another goroutine moved on; a later deadline is fine
	}
	ctx, cancel := context.WithDeadline(context.Background(), d.base.Add(time.Duration(step)*deadlineStep))
	d.cur.Store(&deadlineCtx{step: step, ctx: ctx, cancel: cancel})
	return ctx
}
