package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/raftcache/raftcache/fsm"
)

func TestStrongReads(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitForLeader(t, nodes...)
	set := mustSet(t, leader, "k", "v1")
	ctx := ctxTimeout(t, 30*time.Second)

	res, err := leader.Get(ctx, []byte("k"), ReadOptions{Consistency: Strong})
	if err != nil || string(res.Value) != "v1" || res.Version != set.Version || res.Index < set.Index || res.LastContact != 0 {
		t.Fatalf("strong read on the leader: %+v, %v", res, err)
	}
	if _, err := leader.Get(ctx, []byte("nope"), ReadOptions{}); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("strong read of a missing key: %v, want fsm.ErrNotFound", err)
	}
	f := follower(t, nodes)
	if _, err := f.Get(ctx, []byte("k"), ReadOptions{Consistency: Strong}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("strong read on a follower: %v, want ErrNotLeader", err)
	}
	if _, err := f.View(ctx, ReadOptions{Consistency: Strong}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("strong View on a follower: %v, want ErrNotLeader", err)
	}

	// Reads that arrive while a leadership round runs share the next one.
	before := leader.ReadStats()
	const readers = 200
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	start := make(chan struct{})
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := leader.Get(ctx, []byte("k"), ReadOptions{Consistency: Strong})
			if err == nil && string(res.Value) != "v1" {
				err = fmt.Errorf("read %q", res.Value)
			}
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent strong read: %v", err)
		}
	}
	// The counters move just after the answers go out.
	var st ReadStats
	waitFor(t, "read counters", func() bool { st = leader.ReadStats(); return st.Reads-before.Reads >= readers })
	rounds, reads := st.Rounds-before.Rounds, st.Reads-before.Reads
	t.Logf("%d strong reads in %d leadership rounds", reads, rounds)
	if reads != readers || rounds >= reads {
		t.Fatalf("%d reads took %d rounds: want %d reads in fewer rounds", reads, rounds, readers)
	}
	// Every round here was confirmed: each one is in the histograms, with
	// its reads (raftcache_strong_read_round_*).
	if got := uint64(st.RoundReads.Sum - before.RoundReads.Sum); got != reads ||
		st.RoundReads.Count-before.RoundReads.Count != rounds || st.RoundTimes.Count-before.RoundTimes.Count != rounds ||
		st.RoundTimes.Sum <= before.RoundTimes.Sum {
		t.Fatalf("round histograms: %d rounds timed (%v s), %d sized with %d reads; want %d rounds with %d reads",
			st.RoundTimes.Count-before.RoundTimes.Count, st.RoundTimes.Sum-before.RoundTimes.Sum,
			st.RoundReads.Count-before.RoundReads.Count, got, rounds, reads)
	}
}

// TestStrongReadsWaitForOwnTermEntry: a leader serves strong reads only
// once it has applied an entry of its own term (readyTerm).
func TestStrongReadsWaitForOwnTermEntry(t *testing.T) {
	leader := newCluster(t, 1, nil)[0]
	ctx := ctxTimeout(t, 10*time.Second)
	term := leader.readyTerm.Load()
	leader.readyTerm.Store(term - 1) // as if the barrier of this term had not applied yet
	_, err := leader.Get(ctx, []byte("k"), ReadOptions{Consistency: Strong})
	if !errors.Is(err, ErrNoLeader) {
		t.Fatalf("strong read before the term's barrier applied: %v, want ErrNoLeader", err)
	}
	if err := leader.Backup(ctx, &nopWriter{}); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("backup before the term's barrier applied: %v, want ErrNoLeader", err)
	}
	leader.readyTerm.Store(term)
	if _, err := leader.Get(ctx, []byte("k"), ReadOptions{Consistency: Strong}); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("strong read once ready: %v, want fsm.ErrNotFound", err)
	}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// TestStrongReadsAfterFailover: once the new leader serves strong reads,
// it returns every write acknowledged before the old leader went away.
func TestStrongReadsAfterFailover(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	old := waitForLeader(t, nodes...)
	const keys = 50
	for i := range keys {
		mustSet(t, old, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	// No wait for the followers to apply: acknowledged is enough.
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	rest := others(nodes, old)
	for i := range keys {
		res, err := strongGet(t, rest, fmt.Sprintf("k%02d", i))
		if err != nil || string(res.Value) != fmt.Sprint(i) {
			t.Fatalf("k%02d after failover: %q, %v; want %d", i, res.Value, err, i)
		}
	}
	leader := waitForLeader(t, rest...)
	if leader.raft.CurrentTerm() == old.raft.CurrentTerm() {
		t.Fatal("no new term after the leader closed")
	}
}

func TestStaleReads(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitForLeader(t, nodes...)
	f := follower(t, nodes)
	set := mustSet(t, leader, "k", "v")
	ctx := ctxTimeout(t, 30*time.Second)

	res, err := f.Get(ctx, []byte("k"), ReadOptions{Consistency: Stale, MinIndex: set.Index})
	if err != nil || string(res.Value) != "v" || res.Index < set.Index {
		t.Fatalf("stale read on a follower: %+v, %v", res, err)
	}
	if res.LastContact <= 0 || res.LastContact > 5*time.Second {
		t.Fatalf("follower LastContact %v, want a recent contact", res.LastContact)
	}
	if res, err := leader.Get(ctx, []byte("k"), ReadOptions{Consistency: Stale}); err != nil || res.LastContact != 0 {
		t.Fatalf("stale read on the leader: %+v, %v; want LastContact 0", res, err)
	}
	if res, err := f.Get(ctx, []byte("k"), ReadOptions{Consistency: Stale, MaxStale: 10 * time.Second}); err != nil || string(res.Value) != "v" {
		t.Fatalf("stale read within MaxStale: %+v, %v", res, err)
	}

	// MinIndex beyond anything written: wait until the context ends.
	far := leader.raft.LastIndex() + 1000
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err = f.Get(short, []byte("k"), ReadOptions{Consistency: Stale, MinIndex: far})
	if !errors.Is(err, ErrIndexTimeout) || time.Since(began) < 150*time.Millisecond {
		t.Fatalf("MinIndex %d after %v: %v, want ErrIndexTimeout at the deadline", far, time.Since(began), err)
	}
	if _, err := f.View(short, ReadOptions{Consistency: Stale, MinIndex: far}); !errors.Is(err, ErrIndexTimeout) {
		t.Fatalf("View with an unreachable MinIndex: %v, want ErrIndexTimeout", err)
	}

	// Read your writes on a follower: MinIndex = the write's index. A
	// follower learns the commit index only with the next append (up to
	// Raft's 50ms commit timeout), so 8 writers take turns to keep it short.
	fs := others(nodes, leader)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []byte(fmt.Sprintf("ryw%d", w))
			for i := range 25 {
				val := []byte(fmt.Sprint(i))
				set, err := leader.Set(ctx, key, val, 0)
				if err != nil {
					errs <- err
					return
				}
				n := fs[i%len(fs)]
				res, err := n.Get(ctx, key, ReadOptions{Consistency: Stale, MinIndex: set.Index})
				if err != nil || string(res.Value) != string(val) || res.Version != set.Version {
					errs <- fmt.Errorf("%s round %d on %s: %q version %d, %v; want %q version %d",
						key, i, n.ID(), res.Value, res.Version, err, val, set.Version)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestTooStale: a follower cut off from any leader refuses reads bounded
// by MaxStale, and still serves unbounded stale reads.
func TestTooStale(t *testing.T) {
	nodes := newCluster(t, 2, nil)
	leader := waitForLeader(t, nodes...)
	f := others(nodes, leader)[0]
	set := mustSet(t, leader, "k", "v")
	waitForIndex(t, set.Index, f)
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := f.Get(ctx, []byte("k"), ReadOptions{Consistency: Stale, MaxStale: 5 * time.Second}); err != nil {
		t.Fatalf("bounded stale read with a live leader: %v", err)
	}
	// With one of two voters gone no leader can be elected.
	if err := leader.Close(); err != nil {
		t.Fatal(err)
	}
	var err error
	waitFor(t, "ErrTooStale", func() bool {
		_, err = f.Get(ctx, []byte("k"), ReadOptions{Consistency: Stale, MaxStale: 100 * time.Millisecond})
		return errors.Is(err, ErrTooStale)
	})
	res, err := f.Get(ctx, []byte("k"), ReadOptions{Consistency: Stale})
	if err != nil || string(res.Value) != "v" || res.LastContact < 100*time.Millisecond {
		t.Fatalf("unbounded stale read without a leader: %+v, %v", res, err)
	}
}

// A bounded stale read on the leader: the leader knows it leads only as
// of its last confirmed leadership round (a paused and resumed leader
// still believes it leads), so past MaxStale since that round it confirms
// again before serving; within it, it serves at once.
func TestMaxStaleOnLeaderConfirms(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitForLeader(t, nodes...)
	mustSet(t, leader, "k", "v")
	opt := ReadOptions{Consistency: Stale, MaxStale: time.Minute}
	leader.reads.confirmed.Store(0) // no round since forever
	before := leader.ReadStats().Rounds
	if _, err := leader.Get(ctxTimeout(t, 10*time.Second), []byte("k"), opt); err != nil {
		t.Fatal(err)
	}
	after := leader.ReadStats().Rounds
	if after == before {
		t.Fatalf("a max_stale read on a leader with no round for longer than the bound ran none")
	}
	if _, err := leader.Get(ctxTimeout(t, 10*time.Second), []byte("k"), opt); err != nil {
		t.Fatal(err)
	}
	if got := leader.ReadStats().Rounds; got != after {
		t.Fatalf("a max_stale read within the bound of the last round ran one (%d rounds, was %d)", got, after)
	}
}

// A leader that loses its quorum steps down, and Raft then resets its
// last-contact time to "now": a max_stale read there must still be judged
// by what it last knew (its last confirmed round), not served as fresh.
// (A leader paused while another was elected and took writes steps down
// when it resumes; its state is as old as the pause.) Once a leader
// contacts it, its contact is Raft's again.
func TestMaxStaleAfterStepDown(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitForLeader(t, nodes...)
	mustSet(t, leader, "k", "v1")
	if _, err := leader.Get(ctxTimeout(t, 10*time.Second), []byte("k"), ReadOptions{Consistency: Strong}); err != nil {
		t.Fatal(err)
	}
	known := time.Now() // its last confirmed round started before this
	for _, f := range others(nodes, leader) {
		f.Close()
	}
	waitFor(t, "the leader to step down without its quorum", func() bool { return !leader.IsLeader() })
	// Raft's reset says it heard from a leader just now; it last knew its
	// state current before known, at least a leader lease ago.
	bound := time.Since(known) / 2
	res, err := leader.Get(ctxTimeout(t, 10*time.Second), []byte("k"), ReadOptions{Consistency: Stale, MaxStale: bound})
	if !errors.Is(err, ErrTooStale) {
		t.Fatalf("max_stale %v on a former leader that last knew its state %v ago: %v (last contact %v), want ErrTooStale",
			bound, time.Since(known), err, res.LastContact)
	}
	since := time.Since(known)
	if c := leader.LastContact(); c < since {
		t.Fatalf("a former leader reports contact %v ago; it last knew its state %v ago", c, since)
	}
}

// A former leader's contact is Raft's again once the new leader contacts
// it: after a leadership transfer it serves bounded stale reads as any
// follower, though it ran no strong read as leader.
func TestContactAfterStepDownIsTheNewLeaders(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	old := waitForLeader(t, nodes...)
	mustSet(t, old, "k", "v1")
	target := others(nodes, old)[0]
	waitForCaughtUp(t, old, target)
	if err := old.TransferLeadership(target.cfg.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the former leader to hear from the new one", func() bool {
		m, ok := old.Leader()
		return ok && m.ID == target.cfg.ID && !old.IsLeader() && old.LastContact() < time.Second
	})
	if _, err := old.Get(ctxTimeout(t, 10*time.Second), []byte("k"), ReadOptions{Consistency: Stale, MaxStale: 5 * time.Second}); err != nil {
		t.Fatalf("a bounded stale read on the former leader after the transfer: %v", err)
	}
}
