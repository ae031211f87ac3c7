package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/raftcache/raftcache/fsm"
)

// TestEvictionPolicies: under noeviction nothing is evicted and writes
// that grow memory past the bound get ErrOOM (deletes still work);
// volatile-ttl and volatile-lru evict only keys with an expiry, then
// answer ErrOOM when none is left; allkeys-random evicts.
func TestEvictionPolicies(t *testing.T) {
	const maxMemory = 16 << 10
	value := []byte(strings.Repeat("x", 1000))
	for _, p := range []fsm.EvictPolicy{fsm.EvictNone, fsm.EvictVolatileTTL, fsm.EvictVolatileLRU, fsm.EvictAllRandom} {
		t.Run(p.String(), func(t *testing.T) {
			nodes := newCluster(t, 1, func(c *Config) { c.MaxMemory, c.MaxMemoryPolicy = maxMemory, p })
			leader := waitForLeader(t, nodes...)
			ctx := ctxTimeout(t, 60*time.Second)
			if leader.MaxMemoryPolicy() != p {
				t.Fatalf("policy %s", leader.MaxMemoryPolicy())
			}
			// Half the bound in keys without expiry (a queue's worth),
			// then keys with expiries far apart.
			for i := range 8 {
				if _, err := leader.Set(ctx, []byte(fmt.Sprintf("keep/%d", i)), value, 0); err != nil {
					t.Fatal(err)
				}
			}
			var oom error
			for i := 0; i < 40 && oom == nil; i++ {
				_, err := leader.Exec(ctx, fsm.Unit{Cmds: [][][]byte{{[]byte("SET"), []byte(fmt.Sprintf("ttl/%02d", i)), value,
					[]byte("EX"), []byte(fmt.Sprint(1000 + i))}}})
				if errors.Is(err, ErrOOM) {
					oom = err
				} else if err != nil {
					t.Fatal(err)
				}
				if p != fsm.EvictNone {
					time.Sleep(2 * evictInterval) // let the housekeeper keep up, as a cache's writers would not
				}
			}
			st := leader.FSM().Stats()
			kept := 0
			v := leader.FSM().View(time.Now().UnixNano())
			for i := range 8 {
				kept += int(v.Exec([][]byte{[]byte("EXISTS"), []byte(fmt.Sprintf("keep/%d", i))}).Int)
			}
			t.Logf("%s: %d keys, %d bytes, %d evictions, %d of 8 keys without expiry kept, oom=%v", p, st.Keys, st.Bytes, st.Evictions, kept, oom)
			switch p {
			case fsm.EvictNone:
				if oom == nil || st.Evictions != 0 || kept != 8 {
					t.Fatal("noeviction must refuse writes, evict nothing")
				}
				if _, err := leader.Exec(ctx, fsm.Unit{Cmds: [][][]byte{{[]byte("DEL"), []byte("keep/0")}}}); err != nil {
					t.Fatalf("a delete under OOM: %v", err)
				}
			case fsm.EvictVolatileTTL, fsm.EvictVolatileLRU:
				if st.Evictions == 0 || kept != 8 {
					t.Fatal("a volatile policy must evict keys with an expiry only")
				}
				if p == fsm.EvictVolatileTTL {
					// The soonest to expire went first: the last written survive.
					v := leader.FSM().View(time.Now().UnixNano())
					if v.Exec([][]byte{[]byte("EXISTS"), []byte("ttl/00")}).Int != 0 {
						t.Fatal("volatile-ttl kept the key expiring soonest")
					}
				}
			case fsm.EvictAllRandom:
				if oom != nil || st.Evictions == 0 {
					t.Fatal("allkeys-random must evict, never refuse")
				}
			}
		})
	}
}
