package resp

import (
	"context"
	"time"

	"github.com/raftcache/raftcache/internal/deadline"
)

// deadlineStep is the granularity of shared deadlines: a command's
// timeout is Config.Timeout plus up to this much.
const deadlineStep = deadline.Step

// deadlines hands out contexts that end at a deadline rounded up to the
// next deadlineStep, one shared context per step (internal/deadline), so
// a busy front creates ten timers a second instead of one per command.
type deadlines struct{ deadline.Shared }

func (d *deadlines) get(timeout time.Duration) context.Context { return d.Context(timeout) }
