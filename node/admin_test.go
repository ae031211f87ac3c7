package node

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/raftcache/raftcache/fsm"
)

// contents is a node's live keys and values.
func contents(t testing.TB, n *Node) map[string]string {
	t.Helper()
	keys, more := n.FSM().Keys(nil, nil, 1<<20, n.Now())
	if more {
		t.Fatal("too many keys")
	}
	out := map[string]string{}
	for _, k := range keys {
		e, err := n.FSM().Get(k, n.Now())
		if err != nil {
			t.Fatalf("Get(%q) of a listed key: %v", k, err)
		}
		out[string(k)] = string(e.Value)
	}
	return out
}

func TestBackupAndRestore(t *testing.T) {
	// Single-node clusters: 2.4 MB of values through a 3-node cluster
	// under -race on this loaded machine cost the leader its lease at
	// times, and the Raft side of Backup is covered elsewhere
	// (TestWritesOnFollowerAreRefused, TestStrongReadsWaitForOwnTermEntry).
	srcLeader := newCluster(t, 1, nil)[0]
	ctx := ctxTimeout(t, 60*time.Second)

	want := map[string]string{}
	var ops []Op
	for i := range 300 {
		k, v := fmt.Sprintf("key/%03d", i), fmt.Sprintf("value %d", i)
		ops = append(ops, Op{Kind: fsm.OpSet, Key: []byte(k), Value: []byte(v)})
		want[k] = v
	}
	if _, err := srcLeader.WriteBatch(ctx, ops, true, nil); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("b", 300<<10) // several restore entries of at most 1 MiB
	for i := range 8 {
		k := fmt.Sprintf("big/%d", i)
		mustSet(t, srcLeader, k, big)
		want[k] = big
	}
	longTTL, err := srcLeader.Set(ctx, []byte("ttl/long"), []byte("l"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want["ttl/long"] = "l"
	for i := range 5 {
		if _, err := srcLeader.Set(ctx, []byte(fmt.Sprintf("ttl/short/%d", i)), []byte("s"), time.Second); err != nil {
			t.Fatal(err)
		}
	}

	var backup bytes.Buffer
	if err := srcLeader.Backup(ctx, &backup); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	inBackup := 0
	if err := fsm.ReadBackup(bytes.NewReader(backup.Bytes()), func(fsm.BackupItem) error { inBackup++; return nil }); err != nil {
		t.Fatal(err)
	}
	if inBackup != len(want)+5 {
		t.Fatalf("backup holds %d keys, want %d (the short-TTL keys still live)", inBackup, len(want)+5)
	}
	// Let the short TTLs pass: the restore must skip them. (All five: the
	// last was set after the first, and expires after it.)
	waitFor(t, "short-TTL keys to expire", func() bool {
		_, err := srcLeader.FSM().Get([]byte("ttl/short/4"), srcLeader.Now())
		return errors.Is(err, fsm.ErrNotFound)
	})

	dst := newCluster(t, 1, nil)[0]
	mustSet(t, dst, "stale/key", "must go") // replaced by the restore
	n, index, err := dst.RestoreBackup(ctx, bytes.NewReader(backup.Bytes()))
	if err != nil {
		t.Fatalf("RestoreBackup: %v", err)
	}
	if n != len(want) || index == 0 {
		t.Fatalf("restored %d keys up to index %d, want %d keys", n, index, len(want))
	}
	waitForIndex(t, index, dst)
	got := contents(t, dst)
	if len(got) != len(want) {
		t.Fatalf("restored cluster holds %d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("restored %s = %.20q, want %.20q", k, got[k], v)
		}
	}
	e, _ := localGet(t, dst, "ttl/long")
	src0, _ := localGet(t, srcLeader, "ttl/long")
	if e.ExpireAt != src0.ExpireAt || longTTL.Version == 0 {
		t.Fatalf("restored expiry %d, original %d: want the same absolute time", e.ExpireAt, src0.ExpireAt)
	}

	// A garbage stream is refused before anything changes.
	digest, idx := dst.FSM().Digest()
	last := dst.raft.LastIndex()
	for _, garbage := range [][]byte{nil, []byte("not a backup at all"), backup.Bytes()[:backup.Len()/2]} {
		if _, _, err := dst.RestoreBackup(ctx, bytes.NewReader(garbage)); err == nil {
			t.Fatalf("RestoreBackup of %d garbage bytes succeeded", len(garbage))
		}
	}
	if d, i := dst.FSM().Digest(); d != digest || i != idx || dst.raft.LastIndex() != last {
		t.Fatal("a refused restore changed the cache or the log")
	}
}
