package resp_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/resp"
)

// line reads one reply line (an error or a status).
func (c *rawConn) line() string {
	c.t.Helper()
	s, err := c.rd.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading a line: %q %v", s, err)
	}
	return strings.TrimRight(s, "\r\n")
}

// The leader runs a write relayed under a request id once: the same id
// again (a follower's retry after losing the reply) is answered with the
// first attempt's reply, for a command and for a transaction. Only a
// member's relay connection may send the ids.
func TestRelayIDsRunOnce(t *testing.T) {
	n := startNode(t, "n1", true, resp.Config{})
	c := dialRaw(t, n.RESPAddr())
	c.send(cmd("RAFTCACHE.ONCE", "a", "1", "INCR", "k"))
	if got := c.line(); !strings.HasPrefix(got, "-ERR RAFTCACHE.ONCE is for relays between members") {
		t.Fatalf("ONCE from a client: %q", got)
	}
	c.send(cmd("RAFTCACHE.FORWARDED", "n9"))
	c.expect("+OK\r\n")
	for i := 0; i < 2; i++ {
		c.send(cmd("RAFTCACHE.ONCE", "a", "1", "INCR", "k"))
		c.expect(":1\r\n")
		c.send(cmd("RAFTCACHE.ONCE", "b", "1", "RPUSH", "l", "x", "y"))
		c.expect(":2\r\n")
	}
	c.send(cmd("RAFTCACHE.ONCE", "a", "2", "INCR", "k")) // a resend of a known id
	c.expect(":1\r\n")
	c.send(cmd("RAFTCACHE.ONCE", "c", "3", "INCR", "k")) // a resend whose first attempt never arrived
	c.expect(":2\r\n")
	for i := 0; i < 2; i++ { // a relayed transaction, sent twice
		c.send(cmd("MULTI") + cmd("RAFTCACHE.TXID", "t", "1") + cmd("INCR", "k") + cmd("LPOP", "l") + cmd("EXEC"))
		c.expect("+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:3\r\n$1\r\nx\r\n")
	}
	c.send(cmd("GET", "k") + cmd("LRANGE", "l", "0", "-1"))
	c.expect("$1\r\n3\r\n*1\r\n$1\r\ny\r\n")
	for _, bad := range []struct{ cmd, want string }{
		{cmd("RAFTCACHE.ONCE", "d", "1", "BLPOP", "l", "0"), "-ERR RAFTCACHE.ONCE relays writes only"},
		{cmd("RAFTCACHE.ONCE", "d", "1", "MULTI"), "-ERR RAFTCACHE.ONCE relays writes only"},
		{cmd("RAFTCACHE.ONCE", "", "1", "INCR", "k"), "-ERR syntax error"},
		{cmd("RAFTCACHE.ONCE", "d", "0", "INCR", "k"), "-ERR syntax error"},
		{cmd("RAFTCACHE.TXID", "t2", "1"), "-ERR RAFTCACHE.TXID is for relays between members, inside MULTI"},
	} {
		c.send(bad.cmd)
		if got := c.line(); got != bad.want {
			t.Fatalf("%q: %q, want %q", bad.cmd, got, bad.want)
		}
	}
	c.send(cmd("MULTI") + cmd("RAFTCACHE.ONCE", "e", "1", "INCR", "k"))
	c.expect("+OK\r\n")
	if got := c.line(); !strings.HasPrefix(got, "-ERR RAFTCACHE.ONCE inside MULTI is not allowed") {
		t.Fatalf("ONCE inside MULTI: %q", got)
	}
	c.send(cmd("EXEC"))
	c.expect("-EXECABORT Transaction discarded because of previous errors.\r\n")
}

// A client of a follower keeps writing while the leader stops: the
// follower relays its writes and transactions under request ids and sends
// the ones whose replies were lost again, to the new leader. Every write
// is answered (no UNKNOWN, no TRYAGAIN) and applied exactly once.
func TestRelayedWritesOnceAcrossLeaderLoss(t *testing.T) {
	c := startCluster(t, resp.Config{})
	old := c.leader(t)
	f := c.Followers(old)[0]
	waitFor(t, "the follower at feature level 4", func() bool { return f.ClusterLevel() >= fsm.LevelReplyBudget })
	rdb := redis.NewClient(&redis.Options{Addr: f.RESPAddr(), MaxRetries: -1, PoolSize: 16,
		DialTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	t.Cleanup(func() { rdb.Close() })
	var incrs, txs atomic.Int64
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := 0; i < 100_000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := rdb.Incr(ctx, "ctr").Err(); err != nil {
					fail(err)
					return
				}
				incrs.Add(1)
				if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Incr(ctx, "txc")
					p.RPush(ctx, "txl", "x")
					return nil
				}); err != nil {
					fail(err)
					return
				}
				txs.Add(1)
			}
		}()
	}
	progress := func(what string, from int64) {
		waitFor(t, what, func() bool {
			mu.Lock()
			defer mu.Unlock()
			if len(errs) > 0 {
				t.Fatalf("a relayed write failed: %v", errs[0])
			}
			return incrs.Load() >= from+200
		})
	}
	progress("writes through the follower", 0)
	old.Stop()
	progress("writes through the follower after the leader stopped", incrs.Load())
	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d relayed writes failed, the first: %v", len(errs), errs[0])
	}
	ctx := ctxT(t)
	got, err := rdb.Get(ctx, "ctr").Int64()
	if err != nil || got != incrs.Load() {
		t.Fatalf("ctr = %d (%v) after %d acknowledged INCRs", got, err, incrs.Load())
	}
	txc, err1 := rdb.Get(ctx, "txc").Int64()
	txl, err2 := rdb.LLen(ctx, "txl").Result()
	if err := errors.Join(err1, err2); err != nil || txc != txs.Load() || txl != txs.Load() {
		t.Fatalf("txc = %d, len(txl) = %d (%v) after %d acknowledged transactions", txc, txl, err, txs.Load())
	}
	t.Logf("%d INCRs and %d transactions, each applied once", incrs.Load(), txs.Load())
}
