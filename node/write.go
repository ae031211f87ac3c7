package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/fsm"
)

// Set writes key = value. A ttl > 0 becomes an absolute expiry stamped
// with this leader's clock before the command enters the log, so every
// replica expires the key at the same instant of leader time.
func (n *Node) Set(ctx context.Context, key, value []byte, ttl time.Duration) (*fsm.Result, error) {
	cmd := &fsm.Command{Op: fsm.OpSet, Now: n.now(), Key: key, Value: value}
	if ttl > 0 {
		cmd.ExpireAt = cmd.Now + int64(ttl)
	}
	return n.propose(ctx, cmd)
}

// Delete removes key.
func (n *Node) Delete(ctx context.Context, key []byte) (*fsm.Result, error) {
	return n.propose(ctx, &fsm.Command{Op: fsm.OpDelete, Key: key})
}

// propose stamps cmd with the leader's time (unless the caller already did,
// to derive other fields from the same instant), replicates it, and waits
// until it is committed and applied locally.
func (n *Node) propose(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	if !n.IsLeader() {
		return nil, ErrNotLeader
	}
	if cmd.Now == 0 {
		cmd.Now = n.now()
	}
	f := n.raft.Apply(cmd.Encode(nil), n.timeout(ctx))
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return nil, n.classify(err, true)
		}
	case <-ctx.Done():
		// Proposed already: it may commit after we stop waiting.
		return nil, fmt.Errorf("%w: %v", ErrUnknownOutcome, ctx.Err())
	}
	res, _ := f.Response().(*fsm.Result)
	if res == nil {
		return nil, fmt.Errorf("%w: no result for index %d", ErrUnknownOutcome, f.Index())
	}
	return res, nil
}

// classify turns a Raft error into one of ours. proposed says whether the
// operation may have reached the log; if it may have, losing leadership or
// shutting down leaves its outcome unknown rather than failed.
func (n *Node) classify(err error, proposed bool) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown),
		errors.Is(err, raft.ErrAbortedByRestore):
		if proposed {
			return fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
		}
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if proposed {
		return fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// timeout is how long Raft may take to accept a request: the context's
// remaining time, or ApplyTimeout if it has no deadline.
func (n *Node) timeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		if t := time.Until(d); t > 0 {
			return t
		}
		return time.Millisecond
	}
	return n.cfg.ApplyTimeout
}
