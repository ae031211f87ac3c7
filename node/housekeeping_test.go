package node

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftcache/raftcache/fsm"
)

// TestEvictionUnderMaxMemory: writing far more than MaxMemory ends with
// every replica under the bound, holding exactly the same keys.
func TestEvictionUnderMaxMemory(t *testing.T) {
	const maxMemory = 64 << 10
	nodes := newCluster(t, 3, func(c *Config) { c.MaxMemory, c.MaxMemoryPolicy = maxMemory, fsm.EvictAllLRU })
	leader := waitForLeader(t, nodes...)
	ctx := ctxTimeout(t, 60*time.Second)

	value := []byte(strings.Repeat("x", 1000))
	const writers, perWriter = 8, 60 // about 500 KB in all, 8x the bound
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				if _, err := leader.Set(ctx, []byte(fmt.Sprintf("evict/%d/%03d", w, i)), value, 0); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("write: %v", err)
	}

	waitFor(t, "every replica under MaxMemory with the same state", func() bool {
		for _, n := range nodes {
			if n.FSM().Bytes() > maxMemory {
				return false
			}
		}
		return sameState(nodes...)
	})
	st := leader.FSM().Stats()
	t.Logf("after %d writes: %d keys, %d bytes, %d evictions", writers*perWriter, st.Keys, st.Bytes, st.Evictions)
	if st.Evictions == 0 || st.Keys == 0 || st.Keys >= writers*perWriter {
		t.Fatalf("stats %+v: want some keys evicted and some kept", st)
	}
	for _, n := range nodes {
		if s := n.FSM().Stats(); s.Evictions != st.Evictions || s.Keys != st.Keys {
			t.Fatalf("%s stats %+v, leader %+v: replicas disagree", n.ID(), s, st)
		}
	}
}

// TestExpiredKeysAreReaped: the leader removes expired keys through the
// log, so every replica removes them and counts them.
func TestExpiredKeysAreReaped(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitForLeader(t, nodes...)
	ctx := ctxTimeout(t, 30*time.Second)
	const short = 20
	for i := range short {
		if _, err := leader.Set(ctx, []byte(fmt.Sprintf("ttl/%02d", i)), []byte("v"), 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	mustSet(t, leader, "forever", "v")
	if _, err := leader.Set(ctx, []byte("later"), []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}

	waitFor(t, "expired keys reaped on every node", func() bool {
		for _, n := range nodes {
			if st := n.FSM().Stats(); st.Expirations < short || st.Keys != 2 {
				return false
			}
		}
		return true
	})
	for _, n := range nodes {
		st := n.FSM().Stats()
		if st.Expirations != short {
			t.Fatalf("%s counted %d expirations, want %d", n.ID(), st.Expirations, short)
		}
		for _, k := range []string{"forever", "later"} {
			if _, err := n.FSM().Get([]byte(k), n.Now()); err != nil {
				t.Fatalf("%s lost %s: %v", n.ID(), k, err)
			}
		}
		if _, err := n.FSM().Get([]byte("ttl/00"), n.Now()); err != fsm.ErrNotFound {
			t.Fatalf("%s still serves an expired key: %v", n.ID(), err)
		}
	}
	waitForCaughtUp(t, leader, nodes...)
	if !sameState(nodes...) {
		t.Fatal("replicas differ after reaping")
	}
}
