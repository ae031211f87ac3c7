package client_test

import (
	"testing"

	"github.com/raftcache/raftcache/client"
)

// TestNearCache: hits cost no request; a write through another client (to
// another node) invalidates the key through the watch stream; the client
// never reads its own write back stale; a stream that breaks drops
// everything.
func TestNearCache(t *testing.T) {
	tc := newTestCluster(t, 3)
	leader := tc.leader()
	follower := tc.followers(leader)[0]
	other := newClient(t, client.Config{Endpoints: []string{leader.url}})
	near := newClient(t, client.Config{Endpoints: []string{follower.url}, RefreshInterval: -1,
		NearCache: &client.NearCache{MaxBytes: 1 << 20}})

	waitFor(t, "the near cache's stream", func() bool { return near.NearCacheStats().Connected })
	if _, err := other.Set(callCtx(t), "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	get := func() string {
		it, err := near.Get(callCtx(t), "k")
		if err != nil {
			t.Fatal(err)
		}
		return string(it.Value)
	}
	if got := get(); got != "v1" {
		t.Fatalf("first read %q", got)
	}
	follower.forget()
	leader.forget()
	for i := 0; i < 10; i++ {
		if got := get(); got != "v1" {
			t.Fatalf("cached read %q", got)
		}
	}
	if st := near.NearCacheStats(); st.Hits < 10 || st.Entries != 1 {
		t.Fatalf("stats after hits: %+v", st)
	}
	if n := len(follower.requests(nil)) + len(leader.requests(nil)); n != 0 {
		t.Fatalf("%d requests for cached reads", n)
	}

	// Another client's write, through the leader, invalidates it.
	if _, err := other.Set(callCtx(t), "k", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the invalidation", func() bool { return get() == "v2" })
	if st := near.NearCacheStats(); st.Invalidations == 0 {
		t.Fatalf("no invalidation counted: %+v", st)
	}

	// Own writes are never read back stale, with no wait.
	for i := 0; i < 20; i++ {
		v := string(rune('a' + i))
		if _, err := near.Set(callCtx(t), "k", []byte(v)); err != nil {
			t.Fatal(err)
		}
		if got := get(); got != v {
			t.Fatalf("read own write %q back as %q", v, got)
		}
	}

	// The stream's node stops: everything is dropped.
	flushes := near.NearCacheStats().Flushes
	follower.Stop()
	waitFor(t, "the cache to drop everything", func() bool {
		st := near.NearCacheStats()
		return st.Flushes > flushes && st.Entries == 0
	})
}
