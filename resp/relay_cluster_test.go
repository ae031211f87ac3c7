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

// TestRelayWrappedCommandAtTheBounds: a command at the argument bound,
// accepted by the follower, still passes the leader once the relay wraps
// it under a request id (3 arguments more); it once drew the leader's
// protocol error, which cut the relay connection and answered another
// client sharing it.
func TestRelayWrappedCommandAtTheBounds(t *testing.T) {
	c := startCluster(t, resp.Config{RelayConns: 1})
	f := c.follower(t)
	args := []any{"SADD", "bounds"}
	for i := 0; len(args) < 1<<16; i++ {
		args = append(args, "m"+strconv.Itoa(i))
	}
	rdb := client(t, f.RESPAddr(), 2)
	n, err := rdb.Do(ctxT(t), args...).Int()
	if err != nil || n != len(args)-2 {
		t.Fatalf("SADD of %d members through the follower: %d %v", len(args)-2, n, err)
	}
	if got, err := rdb.SCard(ctxT(t), "bounds").Result(); err != nil || got != int64(len(args)-2) {
		t.Fatalf("SCARD = %d %v, want %d", got, err, len(args)-2)
	}
}

// TestRelayInternalCommandsRefusedInMulti: the relay's own commands
// cannot be queued by a client: a relayed EXEC would run a RAFTCACHE.BLOCK
// on the connection the follower shares among its clients, blocking
// them all.
func TestRelayInternalCommandsRefusedInMulti(t *testing.T) {
	c := startCluster(t, resp.Config{RelayConns: 1})
	for _, n := range []*testNode{c.leader(t), c.follower(t)} {
		r := dialRaw(t, n.RESPAddr())
		r.send(cmd("MULTI") + cmd("GET", "x") + cmd("RAFTCACHE.BLOCK", "someid", "BLPOP", "q", "0") + cmd("EXEC"))
		r.expect("+OK\r\n+QUEUED\r\n-ERR RAFTCACHE.BLOCK inside MULTI is not allowed\r\n")
		r.expectPrefix("-EXECABORT")
	}
}

// TestRelayRoomIsForRelaysOnly: the room the leader's bounds leave for
// the relay's wrapper is given to relay connections only: a client of a
// follower is held to the plain bound there (given the room, its command
// would pass the follower and, wrapped, not the leader, whose protocol
// error cut the relay connection other clients share).
func TestRelayRoomIsForRelaysOnly(t *testing.T) {
	c := startCluster(t, resp.Config{RelayConns: 1})
	f := c.follower(t)
	// The header is refused as soon as it is read: send no more than it
	// (the rest of a 700 KB command met a closed connection, and the
	// write failed now and then).
	r := dialRaw(t, f.RESPAddr())
	r.send("*" + strconv.Itoa(1<<16+1) + "\r\n$5\r\nRPUSH\r\n")
	r.expectPrefix("-ERR Protocol error: invalid multibulk length")
	other := client(t, f.RESPAddr(), 2)
	if err := other.Set(ctxT(t), "room:other", "1", 0).Err(); err != nil {
		t.Fatalf("another client's SET through the follower: %v", err)
	}
}
