package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/fsm"
)

// Op is one key operation as a front expresses it: like fsm.Command, but
// with a relative TTL that the leader turns into an absolute expiry.
type Op struct {
	Kind    fsm.Op // fsm.OpSet, OpDelete, OpIncr or OpTouch
	Key     []byte
	Value   []byte        // OpSet
	TTL     time.Duration // OpSet, OpIncr (on create), OpTouch (0 = no expiry)
	Cond    fsm.Cond      // OpSet, OpDelete
	Version uint64        // with fsm.CondVersion
	Flags   uint8         // OpSet: fsm.FlagKeepTTL, fsm.FlagReturnPrev
	By      int64         // OpIncr
	// ReqID, if set, makes a retry safe: the state machine answers a
	// repeated id with the first result instead of applying it again.
	ReqID []byte
}

// grows says whether the operation may grow memory (see checkOOM).
func (o *Op) grows() bool { return o.Kind == fsm.OpSet || o.Kind == fsm.OpIncr }

func (o *Op) command(now int64) *fsm.Command {
	c := &fsm.Command{Op: o.Kind, Now: now, Key: o.Key, Value: o.Value, Cond: o.Cond,
		Version: o.Version, Flags: o.Flags, By: o.By, ReqID: o.ReqID}
	if o.TTL > 0 {
		c.ExpireAt = now + int64(o.TTL)
	}
	return c
}

// Write applies one operation. A result error (condition failed, not an
// integer, overflow, not found for touch) is returned both in the Result
// and as the error, so errors.Is works and Result.Current is at hand.
func (n *Node) Write(ctx context.Context, op Op) (*fsm.Result, error) {
	if err := n.checkOOM(op.grows()); err != nil {
		return nil, err
	}
	res, err := n.propose(ctx, op.command(n.now()))
	if err != nil {
		return nil, err
	}
	return res, res.Err
}

// Set writes key = value with an optional TTL.
func (n *Node) Set(ctx context.Context, key, value []byte, ttl time.Duration) (*fsm.Result, error) {
	return n.Write(ctx, Op{Kind: fsm.OpSet, Key: key, Value: value, TTL: ttl})
}

// Delete removes key.
func (n *Node) Delete(ctx context.Context, key []byte) (*fsm.Result, error) {
	return n.Write(ctx, Op{Kind: fsm.OpDelete, Key: key})
}

// WriteBatch applies ops in one Raft entry. Atomic: every condition must
// hold or nothing is applied (the Result's Err says which failed). reqID
// deduplicates retries of the whole batch, as Op.ReqID does.
func (n *Node) WriteBatch(ctx context.Context, ops []Op, atomic bool, reqID []byte) (*fsm.Result, error) {
	if len(ops) > fsm.MaxBatch {
		return nil, fmt.Errorf("%w: %d operations, at most %d", ErrTooMany, len(ops), fsm.MaxBatch)
	}
	for i := range ops {
		if err := n.checkOOM(ops[i].grows()); err != nil {
			return nil, err
		}
	}
	now := n.now()
	cmd := &fsm.Command{Op: fsm.OpBatch, Now: now, Atomic: atomic, ReqID: reqID}
	for i := range ops {
		sub := ops[i].command(now)
		sub.ReqID = nil
		cmd.Cmds = append(cmd.Cmds, sub)
	}
	res, err := n.propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return res, res.Err
}

// DeletePrefix removes every key starting with prefix in one entry.
func (n *Node) DeletePrefix(ctx context.Context, prefix []byte) (*fsm.Result, error) {
	return n.propose(ctx, &fsm.Command{Op: fsm.OpDeletePrefix, Key: prefix})
}

// propose stamps cmd with the leader's time (unless the caller already did,
// to derive other fields from the same instant), replicates it, and waits
// until it is committed and applied locally.
func (n *Node) propose(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	if err := n.Poisoned(); err != nil {
		return nil, err
	}
	if !n.IsLeader() {
		return nil, ErrNotLeader
	}
	if cmd.Now == 0 {
		cmd.Now = n.now()
	}
	if coalescable(cmd) {
		return n.proposer.submit(ctx, cmd)
	}
	ops, _ := measure(cmd)
	start := time.Now()
	f := n.raft.Apply(cmd.Encode(nil), n.timeout(ctx))
	// Recorded when Raft answers, even after the caller stopped waiting:
	// the slowest entries are the ones the histogram is for.
	answered, err := n.await(ctx, f, func() { n.wstats.entry(start, ops) })
	switch {
	case !answered:
		// Proposed already: it may commit after we stop waiting.
		return nil, fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
	case err != nil:
		return nil, n.classify(err, true)
	}
	return resultOf(f)
}

// await waits for Raft's answer to f (answered, and f's error), or until
// ctx ends or the node closes (not answered; ctx's error or ErrClosed).
// Raft may never answer a future left in its apply buffer at shutdown
// (see proposer.submit), so no wait on one may outlast the node. applied,
// if not nil, runs when f succeeds, whether or not the caller still waits.
func (n *Node) await(ctx context.Context, f raft.Future, applied func()) (answered bool, err error) {
	done := make(chan error, 1)
	go func() {
		err := f.Error()
		if err == nil && applied != nil {
			applied()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return true, err
	case <-ctx.Done():
		return false, ctx.Err()
	case <-n.closing:
		return false, fmt.Errorf("%w while the request was in flight", ErrClosed)
	}
}

// resultOf is the result of an applied entry. An entry answered by a
// poisoned FSM was committed (so the other members apply it) but this node
// cannot tell its result: its outcome is unknown.
func resultOf(f raft.ApplyFuture) (*fsm.Result, error) {
	res, _ := f.Response().(*fsm.Result)
	if res == nil {
		return nil, fmt.Errorf("%w: no result for index %d", ErrUnknownOutcome, f.Index())
	}
	if errors.Is(res.Err, fsm.ErrPoisoned) {
		return nil, fmt.Errorf("%w: %w", ErrUnknownOutcome, res.Err)
	}
	return res, nil
}

// classify turns a Raft error into one of ours. proposed says whether the
// operation may have reached the log; if it may have, losing leadership or
// shutting down leaves its outcome unknown rather than failed.
func (n *Node) classify(err error, proposed bool) error {
	if errors.Is(err, raft.ErrLeadershipTransferInProgress) {
		n.noteTransferRefusal() // transferguard.go
	}
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
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
