package client_test

import (
	"testing"

	"github.com/raftcache/raftcache/client"
)

// The client reads its own acknowledged write back, also through a
// Session (whose writes once skipped the near cache): a write through a
// Session of a client with a near cache, acknowledged,
// then a plain Get of the same client.
func TestSessionWriteDropsNearCache(t *testing.T) {
	tc := newTestCluster(t, 3)
	leader := tc.leader()
	follower := tc.followers(leader)[0]
	near := newClient(t, client.Config{Endpoints: []string{follower.url}, RefreshInterval: -1,
		NearCache: &client.NearCache{MaxBytes: 1 << 20}})
	waitFor(t, "the near cache's stream", func() bool { return near.NearCacheStats().Connected })
	s := near.Session()
	stale := 0
	for i := 0; i < 20; i++ {
		v := string(rune('a' + i))
		if _, err := near.Get(callCtx(t), "k"); err != nil && i > 0 {
			t.Fatal(err)
		}
		if _, err := s.Set(callCtx(t), "k", []byte(v)); err != nil {
			t.Fatal(err)
		}
		it, err := near.Get(callCtx(t), "k")
		if err != nil {
			if i == 0 {
				continue
			}
			t.Fatal(err)
		}
		if string(it.Value) != v {
			stale++
			t.Logf("acknowledged Session.Set(%q), then Get answered %q (index %d)", v, it.Value, it.Index)
		}
	}
	if stale > 0 {
		t.Fatalf("%d of 20 reads of the client's own acknowledged write came back stale", stale)
	}
}
