package resp_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/raftcache/raftcache/resp"
)

// rueidis with its client-side cache on (CLIENT TRACKING ON OPTIN, and
// CLIENT CACHING YES; MULTI; PTTL; GET; EXEC per cached read), against
// the leader and a follower: a cached key written through another node is
// invalidated; BCAST with a prefix; FLUSHDB drops everything.
func TestRueidisClientSideCache(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	fs := c.Followers(leader)
	ctx := ctxT(t)
	writer := client(t, fs[1].RESPAddr(), 2)

	open := func(t *testing.T, addr string, tracking ...string) rueidis.Client {
		rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true,
			ClientTrackingOptions: tracking, ConnWriteTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rc.Close)
		return rc
	}
	// cached reads k through rc's cache until it answers want; it says
	// whether the answer came from the cache.
	cached := func(t *testing.T, rc rueidis.Client, k, want string) bool {
		t.Helper()
		var hit bool
		waitFor(t, "cached "+k+" = "+want, func() bool {
			res := rc.DoCache(ctx, rc.B().Get().Key(k).Cache(), time.Minute)
			v, err := res.ToString()
			if rueidis.IsRedisNil(err) {
				v, err = "<nil>", nil
			}
			hit = res.IsCacheHit()
			return err == nil && v == want
		})
		return hit
	}
	// cachedAgain says whether a read of k answering want comes from the
	// cache soon: a follower that cannot vouch for its state for a moment
	// (catching up after formation, a late heartbeat on a busy machine)
	// flushes its tracking clients, so one miss proves nothing; a cache
	// that never hits fails.
	cachedAgain := func(t *testing.T, rc rueidis.Client, k, want string) bool {
		t.Helper()
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); {
			cached(t, rc, k, want)
			if cached(t, rc, k, want) {
				return true
			}
		}
		return false
	}

	for _, n := range []*testNode{leader, fs[0]} {
		t.Run(n.ID(), func(t *testing.T) {
			rc := open(t, n.RESPAddr())
			k := n.ID() + ":k"
			writer.Set(ctx, k, "1", 0)
			if !cachedAgain(t, rc, k, "1") {
				t.Fatal("the second read was not a cache hit")
			}
			if err := writer.Set(ctx, k, "2", 0).Err(); err != nil {
				t.Fatal(err)
			}
			cached(t, rc, k, "2") // the invalidation arrived
			if !cachedAgain(t, rc, k, "2") {
				t.Fatal("the read after the invalidation was not cached")
			}
			// A write through the client itself is seen too.
			if err := rc.Do(ctx, rc.B().Set().Key(k).Value("3").Build()).Error(); err != nil {
				t.Fatal(err)
			}
			cached(t, rc, k, "3")

			// FLUSHDB: everything goes.
			other := k + "2"
			writer.Set(ctx, other, "x", 0)
			cached(t, rc, other, "x")
			cached(t, rc, k, "3")
			writer.FlushDB(ctx)
			cached(t, rc, k, "<nil>")
			cached(t, rc, other, "<nil>")

			// BCAST with a prefix.
			bc := open(t, n.RESPAddr(), "BCAST", "PREFIX", n.ID()+":b:")
			bk := n.ID() + ":b:1"
			writer.Set(ctx, bk, "1", 0)
			cached(t, bc, bk, "1")
			writer.Set(ctx, bk, "2", 0)
			cached(t, bc, bk, "2")
		})
	}
}

// A cache that never hears of a write keeps serving the old value: the
// test above could fail. Here rueidis tracks in BCAST mode a prefix that
// does not cover the key, so no invalidation comes for it.
func TestRueidisNegativeControl(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	ctx := ctxT(t)
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{leader.RESPAddr()}, ForceSingleClient: true,
		ClientTrackingOptions: []string{"BCAST", "PREFIX", "elsewhere:"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	writer := client(t, leader.RESPAddr(), 2)
	writer.Set(ctx, "k", "1", 0)
	if v, _ := rc.DoCache(ctx, rc.B().Get().Key("k").Cache(), time.Minute).ToString(); v != "1" {
		t.Fatalf("first read %q", v)
	}
	writer.Set(ctx, "k", "2", 0)
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	for cctx.Err() == nil {
		if v, _ := rc.DoCache(ctx, rc.B().Get().Key("k").Cache(), time.Minute).ToString(); v != "1" {
			t.Fatalf("without invalidations the cache still changed: %q", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
