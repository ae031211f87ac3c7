package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/raftcache/raftcache/fsm"
)

func TestDeleteKeysWithPrefixIsChunked(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	ctx := ctxTimeout(t, 60*time.Second)
	const under = 2*fsm.MaxBatch + 10
	var ops []Op
	flush := func() {
		if _, err := n.WriteBatch(ctx, ops, false, nil); err != nil {
			t.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range under {
		ops = append(ops, Op{Kind: fsm.OpSet, Key: []byte(fmt.Sprintf("p/%05d", i)), Value: []byte("v")})
		if len(ops) == fsm.MaxBatch {
			flush()
		}
	}
	ops = append(ops, Op{Kind: fsm.OpSet, Key: []byte("p"), Value: []byte("kept")}, Op{Kind: fsm.OpSet, Key: []byte("q/1"), Value: []byte("kept")})
	flush()

	res, err := n.DeleteKeysWithPrefix(ctx, []byte("p/"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != under || res.Entries != 3 {
		t.Errorf("deleted %d keys in %d entries, want %d in 3 (at most %d a entry)", res.Deleted, res.Entries, under, fsm.MaxBatch)
	}
	if keys, _ := n.FSM().Keys([]byte("p/"), nil, 10, n.Now()); len(keys) != 0 {
		t.Errorf("keys left under p/: %q", keys)
	}
	for _, k := range []string{"p", "q/1"} {
		if _, ok := localGet(t, n, k); !ok {
			t.Errorf("%s was deleted with the prefix p/", k)
		}
	}

	// A small prefix is one entry; an absent one too, deleting nothing.
	mustSet(t, n, "s/1", "v")
	if res, err := n.DeleteKeysWithPrefix(ctx, []byte("s/")); err != nil || res.Deleted != 1 || res.Entries != 1 {
		t.Errorf("small prefix: %+v, %v", res, err)
	}
	if res, err := n.DeleteKeysWithPrefix(ctx, []byte("nothing/")); err != nil || res.Deleted != 0 || res.Entries != 1 {
		t.Errorf("absent prefix: %+v, %v", res, err)
	}
	// The empty prefix flushes everything in one entry.
	if res, err := n.DeleteKeysWithPrefix(ctx, nil); err != nil || res.Deleted != 2 || res.Entries != 1 {
		t.Errorf("flush: %+v, %v", res, err)
	}
	if st := n.FSM().Stats(); st.Keys != 0 || st.Bytes != 0 {
		t.Errorf("after the flush: %+v", st)
	}

	// A context that ends between chunks reports how far it got.
	for i := range fsm.MaxBatch + 1 {
		ops = append(ops, Op{Kind: fsm.OpSet, Key: []byte(fmt.Sprintf("r/%05d", i)), Value: []byte("v")})
		if len(ops) == fsm.MaxBatch {
			flush()
		}
	}
	flush()
	res, err = n.DeleteKeysWithPrefix(endedBetweenChunks{ctx}, []byte("r/"))
	if !errors.Is(err, ErrUnknownOutcome) || res == nil || res.Deleted != fsm.MaxBatch || res.Entries != 1 {
		t.Errorf("cut after one chunk: %+v, %v; want ErrUnknownOutcome after %d keys", res, err, fsm.MaxBatch)
	}
}

// endedBetweenChunks is a context that says it has ended, but whose Done
// never fires: the first chunk goes through, the check before the next
// one stops.
type endedBetweenChunks struct{ context.Context }

func (endedBetweenChunks) Err() error { return context.DeadlineExceeded }
