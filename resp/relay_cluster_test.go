package resp_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/raftcache/raftcache/resp"
)

// TestRelayConcurrentClientsShareConnection: many clients of one
// follower, whose relayed commands share one connection to the leader
// (RelayConns 1), each see their own writes and reads: SET and GET of
// distinct keys, an INCR, and a MULTI ... EXEC that must stay whole on
// the shared connection, over RESP2 and RESP3.
func TestRelayConcurrentClientsShareConnection(t *testing.T) {
	c := startCluster(t, resp.Config{RelayConns: 1})
	f := c.follower(t)
	ctx := ctxT(t)
	const clients, rounds = 24, 30
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		rdb := client(t, f.RESPAddr(), 2+i%2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				k, v := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d-%d", i, r)
				if err := rdb.Set(ctx, k, v, 0).Err(); err != nil {
					errs <- fmt.Errorf("client %d SET: %v", i, err)
					return
				}
				if got, err := rdb.Get(ctx, k).Result(); err != nil || got != v {
					errs <- fmt.Errorf("client %d: GET %s = %q %v, want %q", i, k, got, err, v)
					return
				}
				var incr *redis.IntCmd
				var get *redis.StringCmd
				_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
					incr = p.Incr(ctx, "n"+strconv.Itoa(i))
					get = p.Get(ctx, k)
					return nil
				})
				if err != nil || incr.Val() != int64(r+1) || get.Val() != v {
					errs <- fmt.Errorf("client %d MULTI: INCR %d GET %q %v, want %d %q", i, incr.Val(), get.Val(), err, r+1, v)
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
