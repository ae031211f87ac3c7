package node

import (
	"context"
	"fmt"

	"github.com/raftcache/raftcache/fsm"
)

// PrefixDeleteResult is the outcome of DeleteKeysWithPrefix.
type PrefixDeleteResult struct {
	Deleted int    // live keys removed
	Index   uint64 // Raft index of the last entry
	Entries int    // entries proposed
}

// DeleteKeysWithPrefix removes every key starting with prefix, with a
// bound on the work of each Raft entry:
//
//   - the empty prefix (a flush) is one entry, whose apply replaces the
//     cache's trees instead of walking them, so it is atomic and cheap
//     whatever the cache's size;
//   - any other prefix is deleted fsm.MaxBatch keys per entry, in key
//     order, entry after entry until one finds no key left. A prefix with
//     at most fsm.MaxBatch keys is therefore one atomic entry; a bigger
//     one is not atomic (a reader may see it partly deleted), but no
//     entry stalls the state machine, and writes and reads interleave
//     with the chunks.
//
// When it returns nil, the prefix was empty at Index (keys written under
// it concurrently may or may not have been removed, as with any
// concurrent delete). If ctx ends or leadership is lost between chunks,
// the error says how far it got; deleting a prefix is idempotent, so the
// caller can simply repeat it.
func (n *Node) DeleteKeysWithPrefix(ctx context.Context, prefix []byte) (*PrefixDeleteResult, error) {
	out := &PrefixDeleteResult{}
	if len(prefix) == 0 {
		res, err := n.propose(ctx, &fsm.Command{Op: fsm.OpDeletePrefix})
		if err != nil {
			return nil, err
		}
		out.Deleted, out.Index, out.Entries = res.Count, res.Index, 1
		return out, nil
	}
	for {
		if out.Entries > 0 && ctx.Err() != nil {
			return out, fmt.Errorf("%w: deleted %d keys in %d entries, then %v with more left; repeat the delete to finish",
				ErrUnknownOutcome, out.Deleted, out.Entries, ctx.Err())
		}
		res, err := n.propose(ctx, &fsm.Command{Op: fsm.OpDeletePrefixChunk, Key: prefix, Limit: fsm.MaxBatch})
		if err != nil {
			if out.Entries > 0 {
				err = fmt.Errorf("%w (after deleting %d keys in %d entries; repeat the delete to finish)", err, out.Deleted, out.Entries)
			}
			return out, err
		}
		out.Deleted += res.Count
		out.Index = res.Index
		out.Entries++
		if !res.More {
			return out, nil
		}
	}
}
