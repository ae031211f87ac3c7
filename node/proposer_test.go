package node

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftcache/raftcache/fsm"
)

// TestGroupCommit: concurrent single-key writes share Raft entries, and
// every caller gets its own result back.
func TestGroupCommit(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitForLeader(t, nodes...)
	ctx := ctxTimeout(t, 60*time.Second)

	const writers, rounds = 200, 5
	type outcome struct {
		res *fsm.Result
		err error
	}
	out := make([][]outcome, writers)
	startIndex := leader.raft.LastIndex()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			key := []byte(fmt.Sprintf("gc/%03d", w))
			for r := range rounds {
				// FlagReturnPrev makes routing visible: a result handed to
				// the wrong caller would carry someone else's value.
				res, err := leader.Write(ctx, Op{Kind: fsm.OpSet, Key: key,
					Value: []byte(fmt.Sprintf("%d-%d", w, r)), Flags: fsm.FlagReturnPrev})
				out[w] = append(out[w], outcome{res, err})
				if err != nil {
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	endIndex := leader.raft.LastIndex()

	versions := map[uint64]string{}
	indexes := map[uint64]int{}
	for w := range writers {
		var last uint64
		for r, o := range out[w] {
			if o.err != nil {
				t.Fatalf("writer %d round %d: %v", w, r, o.err)
			}
			want := fmt.Sprintf("%d-%d", w, r-1)
			if r == 0 && o.res.PrevFound || r > 0 && (!o.res.PrevFound || string(o.res.Prev) != want) {
				t.Fatalf("writer %d round %d got previous value %q (found %v), want %q: result routed to the wrong caller",
					w, r, o.res.Prev, o.res.PrevFound, want)
			}
			if o.res.Version <= last {
				t.Fatalf("writer %d: version %d after %d, want increasing", w, o.res.Version, last)
			}
			last = o.res.Version
			if other, dup := versions[o.res.Version]; dup {
				t.Fatalf("version %d handed to writer %d round %d and to %s", o.res.Version, w, r, other)
			}
			versions[o.res.Version] = fmt.Sprintf("writer %d round %d", w, r)
			indexes[o.res.Index]++
		}
		e, err := leader.FSM().Get([]byte(fmt.Sprintf("gc/%03d", w)), leader.Now())
		if err != nil || string(e.Value) != fmt.Sprintf("%d-%d", w, rounds-1) || e.Version != last {
			t.Fatalf("writer %d reads back %q version %d (%v), want its last write at version %d", w, e.Value, e.Version, err, last)
		}
	}
	writes := writers * rounds
	shared := 0
	for _, c := range indexes {
		if c > 1 {
			shared++
		}
	}
	t.Logf("%d writes in %d entries (%d raft indexes used), %d entries shared", writes, len(indexes), endIndex-startIndex, shared)
	if len(indexes) >= writes || shared == 0 {
		t.Fatalf("%d writes used %d distinct entries: no group commit", writes, len(indexes))
	}
	if used := endIndex - startIndex; used >= uint64(writes) {
		t.Fatalf("%d writes grew the log by %d entries: no group commit", writes, used)
	}
	waitForCaughtUp(t, leader, nodes...)
	if !sameState(nodes...) {
		t.Fatal("replicas differ after the coalesced writes")
	}
}

// TestGroupCommitCounter: concurrent increments of one key each get a
// distinct value, in version order, and the total is exact.
func TestGroupCommitCounter(t *testing.T) {
	leader := newCluster(t, 1, nil)[0]
	ctx := ctxTimeout(t, 60*time.Second)
	const callers = 200
	results := make([]*fsm.Result, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = leader.Write(ctx, Op{Kind: fsm.OpIncr, Key: []byte("counter"), By: 1})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("incr %d: %v", i, err)
		}
	}
	sort.Slice(results, func(i, j int) bool { return results[i].Version < results[j].Version })
	for i, r := range results {
		if r.Value != int64(i+1) {
			t.Fatalf("the incr with the %d-th smallest version got value %d, want %d", i+1, r.Value, i+1)
		}
	}
	if e, _ := localGet(t, leader, "counter"); string(e.Value) != fmt.Sprint(callers) {
		t.Fatalf("counter = %q, want %d", e.Value, callers)
	}
}

// TestSubmitRacingClose: a write that passed its leader check just before
// the node closed must not hang. Once the proposer has stopped, nothing
// drains its queue, so submit must notice the close by itself; a context
// without a deadline would otherwise wait forever.
func TestSubmitRacingClose(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	const calls = 32
	done := make(chan error, calls)
	for i := range calls {
		go func() {
			_, err := n.proposer.submit(t.Context(), &fsm.Command{Op: fsm.OpSet, Now: 1, Key: []byte(fmt.Sprint(i))})
			done <- err
		}()
	}
	timeout := time.After(5 * time.Second)
	for i := range calls {
		select {
		case err := <-done:
			if err == nil || !errors.Is(err, ErrClosed) {
				t.Fatalf("submit on a closed node: %v, want an error wrapping ErrClosed", err)
			}
		case <-timeout:
			t.Fatalf("%d of %d submits on a closed node still blocked after 5s", calls-i, calls)
		}
	}
}

// TestWritesRacingClose: writers without a deadline that are in flight
// when the node closes all return. Raft never answers entries left in its
// buffered apply channel at shutdown (hashicorp/raft#498), so a wait on
// the future alone hung forever.
func TestWritesRacingClose(t *testing.T) {
	for iter := 0; iter < 8; iter++ {
		n := newCluster(t, 1, nil)[0]
		var ok atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for w := range 48 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := []byte(fmt.Sprint(w))
				for {
					var err error
					if w%3 == 0 { // not coalesced: its own entry
						_, err = n.WriteBatch(context.Background(), []Op{{Kind: fsm.OpSet, Key: key, Value: key}}, true, nil)
					} else {
						_, err = n.Set(context.Background(), key, key, 0)
					}
					if err != nil {
						errs <- err
						return
					}
					ok.Add(1)
				}
			}()
		}
		waitFor(t, "writes under way", func() bool { return ok.Load() >= 200 })
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("iteration %d: writers still blocked 10s after Close", iter)
		}
		close(errs)
		for err := range errs {
			if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrUnknownOutcome) {
				t.Fatalf("write racing Close: %v", err)
			}
		}
	}
}

// TestGroupCommitBatches: non-atomic batches share entries with other
// callers' writes, their writes stay together and in order (consecutive
// versions), and each caller gets its own results.
func TestGroupCommitBatches(t *testing.T) {
	leader := newCluster(t, 1, nil)[0]
	ctx := ctxTimeout(t, 60*time.Second)
	const callers, rounds, width = 60, 4, 3
	errs := make(chan error, callers)
	var mu sync.Mutex
	indexes := map[uint64]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- batchCaller(ctx, leader, c, rounds, width, func(idx uint64) {
				mu.Lock()
				indexes[idx]++
				mu.Unlock()
			})
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	shared := 0
	for _, n := range indexes {
		if n > 1 {
			shared++
		}
	}
	if shared == 0 {
		t.Fatalf("%d callers' writes never shared an entry", callers)
	}
}

// batchCaller writes rounds times: an odd caller a non-atomic batch of
// width keys, an even one a single key; each write returns the previous
// value, which shows whether results reached the right caller.
func batchCaller(ctx context.Context, n *Node, c, rounds, width int, seen func(uint64)) error {
	for r := range rounds {
		val := []byte(fmt.Sprintf("%d-%d", c, r))
		prev := fmt.Sprintf("%d-%d", c, r-1)
		if c%2 == 0 {
			res, err := n.Write(ctx, Op{Kind: fsm.OpSet, Key: []byte(fmt.Sprintf("b/%d", c)), Value: val, Flags: fsm.FlagReturnPrev})
			if err != nil {
				return err
			}
			if r > 0 && string(res.Prev) != prev {
				return fmt.Errorf("caller %d round %d: previous %q, want %q", c, r, res.Prev, prev)
			}
			seen(res.Index)
			continue
		}
		ops := make([]Op, width)
		for i := range ops {
			ops[i] = Op{Kind: fsm.OpSet, Key: []byte(fmt.Sprintf("b/%d/%d", c, i)), Value: val, Flags: fsm.FlagReturnPrev}
		}
		res, err := n.WriteBatch(ctx, ops, false, nil)
		if err != nil {
			return err
		}
		if len(res.Results) != width {
			return fmt.Errorf("caller %d: %d results for %d writes", c, len(res.Results), width)
		}
		for i, sub := range res.Results {
			if r > 0 && string(sub.Prev) != prev {
				return fmt.Errorf("caller %d round %d write %d: previous %q, want %q", c, r, i, sub.Prev, prev)
			}
			if sub.Version != res.Results[0].Version+uint64(i) {
				return fmt.Errorf("caller %d: batch versions %d then %d at %d: not contiguous", c, res.Results[0].Version, sub.Version, i)
			}
		}
		seen(res.Index)
	}
	return nil
}

// TestReturnsLearnt: the next entry waits for the writers the last one
// answered only while at least half of them came back within the window.
func TestReturnsLearnt(t *testing.T) {
	r := returns{likely: true}
	t0 := time.Unix(1000, 0)
	entry := func(at time.Time, answered int) int {
		c := completion{answered: answered, at: at, took: time.Millisecond}
		return r.completed(c, gatherWait(c.took, 0), gatherGap(c.took, 0))
	}
	if got := entry(t0, 10); got != 10 {
		t.Fatalf("first entry: expect %d back, want 10", got)
	}
	for i := range 6 {
		r.arrived(t0.Add(time.Duration(i) * 100 * time.Microsecond))
	}
	r.arrived(t0.Add(3 * time.Millisecond)) // after the 2 ms window: not counted
	t1 := t0.Add(10 * time.Millisecond)
	if got := entry(t1, 10); got != 10 {
		t.Fatalf("6 of 10 came back: expect %d, want 10", got)
	}
	r.arrived(t1.Add(time.Millisecond))
	r.arrived(t1.Add(5 * time.Millisecond))
	t2 := t1.Add(10 * time.Millisecond)
	if got := entry(t2, 10); got != 0 {
		t.Fatalf("1 of 10 came back within the window: expect %d, want 0 (do not wait)", got)
	}
	if w := gatherWait(time.Second, 0); w != maxGather {
		t.Fatalf("gatherWait(1s) = %v, want the cap %v", w, maxGather)
	}
}

// TestReturnsGap: once writers are coming back, a gap without another
// ends the wait before the window does.
func TestReturnsGap(t *testing.T) {
	r := returns{likely: true}
	t0 := time.Unix(1000, 0)
	r.completed(completion{answered: 10, at: t0, took: 2 * time.Millisecond}, gatherWait(2*time.Millisecond, 0), gatherGap(2*time.Millisecond, 0))
	if d := r.deadline(); !d.Equal(t0.Add(4 * time.Millisecond)) {
		t.Fatalf("deadline before any came back = %v, want the window's end t0+4ms", d.Sub(t0))
	}
	r.arrived(t0.Add(time.Millisecond))
	if d := r.deadline(); !d.Equal(t0.Add(1500 * time.Microsecond)) {
		t.Fatalf("deadline after one came back at 1ms = %v, want 1ms + gap 500us", d.Sub(t0))
	}
	r.arrived(t0.Add(3900 * time.Microsecond))
	if d := r.deadline(); !d.Equal(t0.Add(4 * time.Millisecond)) {
		t.Fatalf("deadline near the window's end = %v, want the window's end", d.Sub(t0))
	}
	r.completed(completion{answered: 10, at: t0.Add(10 * time.Millisecond), took: 2 * time.Millisecond}, gatherWait(2*time.Millisecond, 0), gatherGap(2*time.Millisecond, 0))
	if d := r.deadline(); !d.Equal(t0.Add(14 * time.Millisecond)) {
		t.Fatalf("a new entry forgets the last arrival: deadline %v, want t0+14ms", d.Sub(t0))
	}
}

// No unit leaves with a field its cluster's level cannot carry (Resend
// below level 4, After below 5: a previous release's decoder refuses
// their bits), and the caller's units are not changed.
func TestForLevel(t *testing.T) {
	in := []fsm.Unit{{ReqID: []byte("a")}, {ReqID: []byte("b"), Resend: true, After: 7}}
	out := forLevel(in, fsm.LevelTypes)
	if out[1].Resend || out[1].After != 0 || !in[1].Resend || in[1].After != 7 {
		t.Fatalf("level 3: out %+v, in %+v", out, in)
	}
	out = forLevel(in, fsm.LevelReplyBudget)
	if !out[1].Resend || out[1].After != 0 || in[1].After != 7 {
		t.Fatalf("level 4: out %+v, in %+v", out, in)
	}
	if got := forLevel(in, fsm.LevelStoredBudget); &got[0] != &in[0] {
		t.Fatal("units the level carries were copied")
	}
	plain := []fsm.Unit{{ReqID: []byte("a")}}
	if got := forLevel(plain, fsm.LevelTypes); &got[0] != &plain[0] {
		t.Fatal("units without the fields were copied")
	}
}
