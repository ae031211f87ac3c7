package node

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/raftcache/raftcache/fsm"
)

// localGet reads key from n's local cache (the caller has waited for the index).
func localGet(t testing.TB, n *Node, key string) (fsm.Entry, bool) {
	t.Helper()
	e, err := n.FSM().Get([]byte(key), n.Now())
	if errors.Is(err, fsm.ErrNotFound) {
		return fsm.Entry{}, false
	}
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return e, true
}

func TestWriteSetDeleteAndResults(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	ctx := ctxTimeout(t, 30*time.Second)

	set := mustSet(t, n, "a", "1")
	if set.Version == 0 || set.Index == 0 || set.Err != nil {
		t.Fatalf("set result %+v: want a version and an index", set)
	}
	if e, ok := localGet(t, n, "a"); !ok || string(e.Value) != "1" || e.Version != set.Version {
		t.Fatalf("after set: %+v %v, want value 1 version %d", e, ok, set.Version)
	}

	// A failed condition is a result error: in Result.Err and as the
	// error, with the current version at hand.
	res, err := n.Write(ctx, Op{Kind: fsm.OpSet, Key: []byte("a"), Value: []byte("2"), Cond: fsm.CondVersion, Version: set.Version + 100})
	if !errors.Is(err, fsm.ErrConditionFailed) || res == nil || !errors.Is(res.Err, fsm.ErrConditionFailed) {
		t.Fatalf("CAS on a wrong version: %+v, %v; want ErrConditionFailed in both", res, err)
	}
	if res.Current != set.Version {
		t.Fatalf("Result.Current = %d, want %d", res.Current, set.Version)
	}
	res, err = n.Write(ctx, Op{Kind: fsm.OpSet, Key: []byte("a"), Value: []byte("2"), Cond: fsm.CondAbsent})
	if !errors.Is(err, fsm.ErrConditionFailed) || res.Current != set.Version {
		t.Fatalf("set-if-absent on a live key: %+v, %v", res, err)
	}
	res, err = n.Write(ctx, Op{Kind: fsm.OpSet, Key: []byte("a"), Value: []byte("2"), Cond: fsm.CondVersion, Version: set.Version})
	if err != nil || res.Version <= set.Version {
		t.Fatalf("CAS on the right version: %+v, %v", res, err)
	}

	res, err = n.Write(ctx, Op{Kind: fsm.OpIncr, Key: []byte("a"), By: 5})
	if err != nil || res.Value != 7 {
		t.Fatalf("incr of 2 by 5: %+v, %v; want 7", res, err)
	}
	mustSet(t, n, "text", "hello")
	res, err = n.Write(ctx, Op{Kind: fsm.OpIncr, Key: []byte("text"), By: 1})
	if !errors.Is(err, fsm.ErrNotInteger) || res == nil || !errors.Is(res.Err, fsm.ErrNotInteger) {
		t.Fatalf("incr of a non-integer: %+v, %v; want ErrNotInteger in both", res, err)
	}
	res, err = n.Write(ctx, Op{Kind: fsm.OpTouch, Key: []byte("missing"), TTL: time.Minute})
	if !errors.Is(err, fsm.ErrNotFound) || res == nil {
		t.Fatalf("touch of a missing key: %+v, %v; want ErrNotFound", res, err)
	}

	res, err = n.Delete(ctx, []byte("a"))
	if err != nil || !res.Deleted {
		t.Fatalf("delete of a live key: %+v, %v", res, err)
	}
	if _, ok := localGet(t, n, "a"); ok {
		t.Fatal("a still present after delete")
	}
	res, err = n.Delete(ctx, []byte("a"))
	if err != nil || res.Deleted {
		t.Fatalf("delete of a missing key: %+v, %v; want Deleted false, no error", res, err)
	}

	// A TTL becomes an absolute expiry stamped by the leader.
	before := time.Now().UnixNano()
	res, err = n.Set(ctx, []byte("ttl"), []byte("v"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := localGet(t, n, "ttl")
	if e.ExpireAt < before+int64(time.Hour) || e.ExpireAt > time.Now().UnixNano()+int64(time.Hour) {
		t.Fatalf("expiry %d not one hour after the write", e.ExpireAt)
	}
}

func TestWriteBatchAtomicAndNot(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	ctx := ctxTimeout(t, 30*time.Second)
	v := mustSet(t, n, "x", "old").Version

	// Atomic: one failed condition, nothing applied.
	ops := []Op{
		{Kind: fsm.OpSet, Key: []byte("b1"), Value: []byte("1")},
		{Kind: fsm.OpSet, Key: []byte("x"), Value: []byte("new"), Cond: fsm.CondVersion, Version: v + 1},
		{Kind: fsm.OpSet, Key: []byte("b2"), Value: []byte("2")},
	}
	res, err := n.WriteBatch(ctx, ops, true, nil)
	if !errors.Is(err, fsm.ErrConditionFailed) || res == nil || !errors.Is(res.Err, fsm.ErrConditionFailed) {
		t.Fatalf("atomic batch with a failing condition: %+v, %v", res, err)
	}
	if len(res.Results) < 2 || res.Results[1].Current != v {
		t.Fatalf("atomic batch results %+v: want the failed op's current version %d", res.Results, v)
	}
	for _, k := range []string{"b1", "b2"} {
		if _, ok := localGet(t, n, k); ok {
			t.Fatalf("%s applied by a failed atomic batch", k)
		}
	}
	if e, _ := localGet(t, n, "x"); string(e.Value) != "old" {
		t.Fatalf("x = %q after a failed atomic batch", e.Value)
	}

	// Not atomic: the others apply, the failure is per operation.
	res, err = n.WriteBatch(ctx, ops, false, nil)
	if err != nil || res.Err != nil {
		t.Fatalf("non-atomic batch: %+v, %v; want no batch error", res, err)
	}
	if len(res.Results) != 3 || res.Results[0].Err != nil || !errors.Is(res.Results[1].Err, fsm.ErrConditionFailed) || res.Results[2].Err != nil {
		t.Fatalf("non-atomic batch results: %+v", res.Results)
	}
	for _, k := range []string{"b1", "b2"} {
		if _, ok := localGet(t, n, k); !ok {
			t.Fatalf("%s missing after a non-atomic batch", k)
		}
	}

	// Atomic and every condition holds: all applied in one entry.
	ops[1].Version = v
	res, err = n.WriteBatch(ctx, ops, true, nil)
	if err != nil {
		t.Fatalf("atomic batch: %v", err)
	}
	for _, r := range res.Results {
		if r.Index != res.Index {
			t.Fatalf("sub-result index %d, batch index %d: want one entry", r.Index, res.Index)
		}
	}
	if e, _ := localGet(t, n, "x"); string(e.Value) != "new" {
		t.Fatalf("x = %q after the atomic batch", e.Value)
	}

	// A retried batch with the same request id is answered, not re-applied.
	incr := []Op{{Kind: fsm.OpIncr, Key: []byte("bc"), By: 1}, {Kind: fsm.OpIncr, Key: []byte("bc"), By: 1}}
	first, err := n.WriteBatch(ctx, incr, true, []byte("batch-1"))
	if err != nil || first.Duplicate {
		t.Fatalf("first batch: %+v, %v", first, err)
	}
	again, err := n.WriteBatch(ctx, incr, true, []byte("batch-1"))
	if err != nil || !again.Duplicate || again.Index != first.Index {
		t.Fatalf("retried batch: %+v, %v; want the first result, Duplicate", again, err)
	}
	if e, _ := localGet(t, n, "bc"); string(e.Value) != "2" {
		t.Fatalf("bc = %q after a batch of two incrs and its retry, want 2", e.Value)
	}

	if _, err := n.WriteBatch(ctx, make([]Op, fsm.MaxBatch+1), false, nil); !errors.Is(err, ErrTooMany) {
		t.Fatalf("oversized batch: %v, want ErrTooMany", err)
	}
}

func TestDeletePrefix(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	for i := 0; i < 20; i++ {
		mustSet(t, n, fmt.Sprintf("user/%02d", i), "v")
	}
	mustSet(t, n, "users", "keep") // shares the prefix "user" but not "user/"
	mustSet(t, n, "other", "keep")
	res, err := n.DeletePrefix(ctxTimeout(t, 10*time.Second), []byte("user/"))
	if err != nil || res.Count != 20 {
		t.Fatalf("DeletePrefix: %+v, %v; want 20 removed", res, err)
	}
	keys, _ := n.FSM().Keys(nil, nil, 100, n.Now())
	if len(keys) != 2 || string(keys[0]) != "other" || string(keys[1]) != "users" {
		t.Fatalf("keys left: %q, want [other users]", keys)
	}
}

func TestReqIDDedup(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	ctx := ctxTimeout(t, 30*time.Second)
	op := Op{Kind: fsm.OpIncr, Key: []byte("ctr"), By: 1, ReqID: []byte("req-1")}
	first, err := n.Write(ctx, op)
	if err != nil || first.Value != 1 || first.Duplicate {
		t.Fatalf("first incr: %+v, %v", first, err)
	}
	second, err := n.Write(ctx, op)
	if err != nil || second.Value != 1 || !second.Duplicate || second.Index != first.Index {
		t.Fatalf("repeated incr: %+v, %v; want value 1, Duplicate, first index", second, err)
	}
	if e, _ := localGet(t, n, "ctr"); string(e.Value) != "1" {
		t.Fatalf("ctr = %q, want 1: the repeat was applied", e.Value)
	}
	op.ReqID = []byte("req-2")
	if res, err := n.Write(ctx, op); err != nil || res.Value != 2 || res.Duplicate {
		t.Fatalf("incr with a new id: %+v, %v; want 2", res, err)
	}

	// The same id sent concurrently (a client retrying while the first
	// attempt is in flight) lands in one coalesced entry or in several:
	// either way it counts once and everyone gets the first result.
	const tries = 16
	var wg sync.WaitGroup
	results := make([]*fsm.Result, tries)
	errs := make([]error, tries)
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = n.Write(ctx, Op{Kind: fsm.OpIncr, Key: []byte("ctr2"), By: 1, ReqID: []byte("same")})
		}()
	}
	wg.Wait()
	originals := 0
	for i := range tries {
		if errs[i] != nil || results[i].Value != 1 {
			t.Fatalf("concurrent retry %d: %+v, %v; want value 1", i, results[i], errs[i])
		}
		if !results[i].Duplicate {
			originals++
		}
	}
	if originals != 1 {
		t.Fatalf("%d results not marked Duplicate, want exactly 1", originals)
	}
	if e, _ := localGet(t, n, "ctr2"); string(e.Value) != "1" {
		t.Fatalf("ctr2 = %q, want 1", e.Value)
	}
}

func TestWritesOnFollowerAreRefused(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitForLeader(t, nodes...)
	f := follower(t, nodes)
	ctx := ctxTimeout(t, 10*time.Second)
	before, _ := f.FSM().Digest()

	checks := map[string]func() error{
		"Set":    func() error { _, err := f.Set(ctx, []byte("k"), []byte("v"), 0); return err },
		"Delete": func() error { _, err := f.Delete(ctx, []byte("k")); return err },
		"WriteBatch": func() error {
			_, err := f.WriteBatch(ctx, []Op{{Kind: fsm.OpSet, Key: []byte("k")}}, true, nil)
			return err
		},
		"DeletePrefix": func() error { _, err := f.DeletePrefix(ctx, nil); return err },
		"AddMember":    func() error { return f.AddMember(ctx, Member{ID: "x", RaftAddr: "127.0.0.1:1"}) },
		"RemoveMember": func() error { return f.RemoveMember(ctx, leader.ID(), false) },
		"SetVoter":     func() error { return f.SetVoter(ctx, leader.ID(), false, false) },
		"Transfer":     func() error { return f.TransferLeadership("") },
		"Restore": func() error {
			_, _, err := f.RestoreBackup(ctx, bytes.NewReader(nil))
			return err
		},
		"Backup": func() error { return f.Backup(ctx, &bytes.Buffer{}) },
	}
	for name, call := range checks {
		if err := call(); !errors.Is(err, ErrNotLeader) {
			t.Errorf("%s on a follower: %v, want ErrNotLeader", name, err)
		}
	}
	if after, _ := f.FSM().Digest(); after != before {
		t.Fatal("a refused write changed the follower's cache")
	}
}
