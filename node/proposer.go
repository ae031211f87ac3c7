package node

import (
	"context"
	"fmt"

	"github.com/raftcache/raftcache/fsm"
)

// Group commit. Single-key writes from concurrent clients are packed into
// one non-atomic OpBatch entry, so they share one log append, one fsync on
// each node and one trip through Raft's per-entry machinery. The proposer
// keeps at most maxInflight entries in flight; while they are, new writes
// queue and go out together in the next entry. Under light load an entry
// carries one write and adds no delay.
const (
	maxInflight  = 4
	maxCoalesce  = 256     // writes per entry
	coalesceSize = 1 << 20 // bytes of keys and values per entry, beyond the first write
)

type proposal struct {
	cmd  *fsm.Command
	done chan proposalResult
}

type proposalResult struct {
	res *fsm.Result
	err error
}

type proposer struct {
	n     *Node
	queue chan *proposal
	slots chan struct{}
}

func newProposer(n *Node) *proposer {
	return &proposer{n: n, queue: make(chan *proposal, 4096), slots: make(chan struct{}, maxInflight)}
}

// coalescable says whether cmd may share an entry with other clients'
// writes: single-key writes only.
func coalescable(cmd *fsm.Command) bool {
	switch cmd.Op {
	case fsm.OpSet, fsm.OpDelete, fsm.OpIncr, fsm.OpTouch:
		return true
	}
	return false
}

// submit queues cmd and waits for its result. After the queue accepted it,
// the outcome of a cancelled wait is unknown: it may still be applied.
//
// Closing the node ends the wait too: once run has stopped nothing answers
// a proposal queued after it drained the queue, and Raft never answers an
// entry still in its apply buffer (BatchApplyCh) when it shuts down, so a
// caller without a deadline would wait forever.
func (p *proposer) submit(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	pr := &proposal{cmd: cmd, done: make(chan proposalResult, 1)}
	select {
	case <-p.n.closing:
		return nil, ErrClosed
	default:
	}
	select {
	case p.queue <- pr:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	case <-p.n.closing:
		return nil, ErrClosed
	}
	select {
	case r := <-pr.done:
		return r.res, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrUnknownOutcome, ctx.Err())
	case <-p.n.closing:
		select {
		case r := <-pr.done:
			return r.res, r.err
		default:
		}
		// It may have been proposed: not ErrClosed, which says "not applied".
		return nil, fmt.Errorf("%w: node closed while the write was in flight", ErrUnknownOutcome)
	}
}

func (p *proposer) run() {
	defer p.n.wg.Done()
	for {
		var first *proposal
		select {
		case <-p.n.closing:
			p.failQueued()
			return
		case first = <-p.queue:
		}
		// Wait for a slot before gathering: writes that arrive meanwhile
		// join this entry.
		select {
		case p.slots <- struct{}{}:
		case <-p.n.closing:
			first.done <- proposalResult{err: ErrClosed}
			p.failQueued()
			return
		}
		batch := []*proposal{first}
		size := 0
	gather:
		for len(batch) < maxCoalesce && size < coalesceSize {
			select {
			case pr := <-p.queue:
				batch = append(batch, pr)
				size += len(pr.cmd.Key) + len(pr.cmd.Value)
			default:
				break gather
			}
		}
		p.propose(batch)
	}
}

// propose sends one entry for batch and answers each proposal when the
// entry is applied, without holding up the next entry.
func (p *proposer) propose(batch []*proposal) {
	n := p.n
	cmd := batch[0].cmd
	if len(batch) > 1 {
		cmd = &fsm.Command{Op: fsm.OpBatch, Now: n.now()}
		for _, pr := range batch {
			cmd.Cmds = append(cmd.Cmds, pr.cmd)
		}
	}
	f := n.raft.Apply(cmd.Encode(nil), n.cfg.ApplyTimeout)
	go func() {
		defer func() { <-p.slots }()
		err := f.Error()
		var res *fsm.Result
		if err == nil {
			res, _ = f.Response().(*fsm.Result)
			if res == nil {
				err = fmt.Errorf("%w: no result for index %d", ErrUnknownOutcome, f.Index())
			}
		} else {
			err = n.classify(err, true)
		}
		for i, pr := range batch {
			switch {
			case err != nil:
				pr.done <- proposalResult{err: err}
			case len(batch) == 1:
				pr.done <- proposalResult{res: res}
			default:
				pr.done <- proposalResult{res: &res.Results[i]}
			}
		}
	}()
}

// failQueued answers everything still queued at shutdown: none of it was
// proposed.
func (p *proposer) failQueued() {
	for {
		select {
		case pr := <-p.queue:
			pr.done <- proposalResult{err: ErrClosed}
		default:
			return
		}
	}
}
