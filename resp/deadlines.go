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
	cur atomic.Pointer[deadlineCtx]
	mu  sync.Mutex
}

type deadlineCtx struct {
	step   int64 // deadline / deadlineStep
	ctx    context.Context
	cancel context.CancelFunc // never needed: the context ends itself at its deadline, and its parent is Background
}

func (d *deadlines) get(timeout time.Duration) context.Context {
	step := (time.Now().Add(timeout).UnixNano() + int64(deadlineStep) - 1) / int64(deadlineStep)
	if c := d.cur.Load(); c != nil && c.step == step {
		return c.ctx
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.cur.Load(); c != nil && c.step >= step {
		return c.ctx // another goroutine moved on; a later deadline is fine
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, step*int64(deadlineStep)))
	d.cur.Store(&deadlineCtx{step: step, ctx: ctx, cancel: cancel})
	return ctx
}
