package resp_test

import (
	"context"
	"errors"
	"fmt"
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
	// From level 5 a resend names the index its first attempt applies
	// above: one whose first attempt never arrived, made after the raise,
	// runs now; one without the index (made before the raise) may have
	// run and been forgotten, and is refused.
	waitFor(t, "the node at feature level 5", func() bool { return n.ClusterLevel() >= fsm.LevelStoredBudget })
	c.send(cmd("RAFTCACHE.ONCE", "c0", "3", "INCR", "k"))
	if got := c.line(); !strings.HasPrefix(got, "-UNKNOWN") {
		t.Fatalf("a resend without its index at level 5: %q, want UNKNOWN", got)
	}
	c.send(cmd("RAFTCACHE.ONCE", "c", fmt.Sprintf("3:%d", n.LocalView().Index()), "INCR", "k"))
	c.expect(":2\r\n")
	for i := 0; i < 2; i++ { // a relayed transaction, sent twice
		c.send(cmd("MULTI") + cmd("RAFTCACHE.TXID", "t", "1") + cmd("INCR", "k") + cmd("LPOP", "l") + cmd("EXEC"))
		c.expect("+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:3\r\n$1\r\nx\r\n")
	}
	for _, attempt := range []string{"1", "2"} { // PUBLISH's own relay, with its count
		c.send(cmd("RAFTCACHE.PUBLISH", "p", "publish", "ch", "m", attempt))
		c.expect(":0\r\n")
	}
	c.send(cmd("RAFTCACHE.PUBLISH", "q", "publish", "ch", "m")) // the frame without a count
	c.expect(":0\r\n")
	c.send(cmd("GET", "k") + cmd("LRANGE", "l", "0", "-1"))
	c.expect("$1\r\n3\r\n*1\r\n$1\r\ny\r\n")
	for _, bad := range []struct{ cmd, want string }{
		{cmd("RAFTCACHE.ONCE", "d", "1", "BLPOP", "l", "0"), "-ERR RAFTCACHE.ONCE relays writes only"},
		{cmd("RAFTCACHE.ONCE", "d", "1", "MULTI"), "-ERR RAFTCACHE.ONCE relays writes only"},
		{cmd("RAFTCACHE.ONCE", "", "1", "INCR", "k"), "-ERR syntax error"},
		{cmd("RAFTCACHE.ONCE", "d", "0", "INCR", "k"), "-ERR syntax error"},
		{cmd("RAFTCACHE.ONCE", "d", "1:0", "INCR", "k"), "-ERR syntax error"},
		{cmd("RAFTCACHE.ONCE", "d", "1:x", "INCR", "k"), "-ERR syntax error"},
		{cmd("RAFTCACHE.PUBLISH", "p", "publish", "ch", "m", "0"), "-ERR syntax error"},
		{cmd("RAFTCACHE.PUBLISH", "p", "publish", "ch", "m", "1", "x"), "-ERR syntax error"},
		{cmd("RAFTCACHE.TXID", "t2", "1"), "-ERR RAFTCACHE.TXID is for relays between members, inside MULTI"},
		// A NUL marks a key's digest from level 6 (fsm.TagRequestID):
		// no relay id holds one.
		{cmd("RAFTCACHE.ONCE", "a\x000123456789abcdef", "1", "INCR", "k"), "-ERR syntax error"},
		{cmd("RAFTCACHE.PUBLISH", "p\x000123456789abcdef", "publish", "ch", "m", "1"), "-ERR syntax error"},
	} {
		c.send(bad.cmd)
		if got := c.line(); got != bad.want {
			t.Fatalf("%q: %q, want %q", bad.cmd, got, bad.want)
		}
	}
	c.send(cmd("MULTI") + cmd("RAFTCACHE.TXID", "t\x000123456789abcdef", "1") + cmd("DISCARD"))
	c.expect("+OK\r\n-ERR syntax error\r\n+OK\r\n")
	c.send(cmd("MULTI") + cmd("RAFTCACHE.ONCE", "e", "1", "INCR", "k"))
	c.expect("+OK\r\n")
	if got := c.line(); !strings.HasPrefix(got, "-ERR RAFTCACHE.ONCE inside MULTI is not allowed") {
		t.Fatalf("ONCE inside MULTI: %q", got)
	}
	c.send(cmd("EXEC"))
	c.expect("-EXECABORT Transaction discarded because of previous errors.\r\n")
}

// relayLoad runs writers through addr (INCRs, and transactions of an
// INCR and an RPUSH) until stop closes, counting what was acknowledged;
// the first error ends a writer and is kept.
type relayLoad struct {
	incrs, txs atomic.Int64
	mu         sync.Mutex
	errs       []error
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startRelayLoad(rdb *redis.Client, writers int) *relayLoad {
	l := &relayLoad{stop: make(chan struct{})}
	for w := 0; w < writers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			ctx := context.Background()
			for i := 0; i < 100_000; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				if err := rdb.Incr(ctx, "ctr").Err(); err != nil {
					l.fail(err)
					return
				}
				l.incrs.Add(1)
				if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Incr(ctx, "txc")
					p.RPush(ctx, "txl", "x")
					return nil
				}); err != nil {
					l.fail(err)
					return
				}
				l.txs.Add(1)
			}
		}()
	}
	return l
}

func (l *relayLoad) fail(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

// progress waits for 200 more acknowledged INCRs, failing on an error.
func (l *relayLoad) progress(t *testing.T, what string) {
	t.Helper()
	from := l.incrs.Load()
	waitFor(t, what, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.errs) > 0 {
			t.Fatalf("a relayed write failed: %v", l.errs[0])
		}
		return l.incrs.Load() >= from+200
	})
}

// check stops the writers and compares what they were told with the keys.
func (l *relayLoad) check(t *testing.T, rdb *redis.Client) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if len(l.errs) > 0 {
		t.Fatalf("%d relayed writes failed, the first: %v", len(l.errs), l.errs[0])
	}
	ctx := ctxT(t)
	got, err := rdb.Get(ctx, "ctr").Int64()
	if err != nil || got != l.incrs.Load() {
		t.Fatalf("ctr = %d (%v) after %d acknowledged INCRs", got, err, l.incrs.Load())
	}
	txc, err1 := rdb.Get(ctx, "txc").Int64()
	txl, err2 := rdb.LLen(ctx, "txl").Result()
	if err := errors.Join(err1, err2); err != nil || txc != l.txs.Load() || txl != l.txs.Load() {
		t.Fatalf("txc = %d, len(txl) = %d (%v) after %d acknowledged transactions", txc, txl, err, l.txs.Load())
	}
	t.Logf("%d INCRs and %d transactions, each applied once", l.incrs.Load(), l.txs.Load())
}

func relayClient(t *testing.T, addr string) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, PoolSize: 16,
		DialTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Leadership moves between the other two members while a follower's
// client writes: the old leader answers the writes it had in flight
// UNKNOWN or TRYAGAIN, and the follower sends them again under their ids
// to the new one. Every write is answered and applied exactly once.
func TestRelayedWritesOnceAcrossTransfers(t *testing.T) {
	c := startCluster(t, resp.Config{})
	f := c.follower(t)
	waitFor(t, "the follower at feature level 4", func() bool { return f.ClusterLevel() >= fsm.LevelReplyBudget })
	var others []string
	for _, n := range c.nodes {
		if n != f {
			others = append(others, n.ID())
		}
	}
	rdb := relayClient(t, f.RESPAddr())
	l := startRelayLoad(rdb, 8)
	l.progress(t, "writes through the follower")
	for i := 0; i < 4; i++ {
		leader := c.leader(t)
		to := others[0]
		if leader.ID() == to {
			to = others[1]
		}
		if err := leader.TransferLeadership(to); err != nil {
			t.Fatalf("transfer %d to %s: %v", i, to, err)
		}
		l.progress(t, "writes through the follower after a transfer")
	}
	l.check(t, rdb)
	// The follower counts what it sent again (INFO stats), so an operator
	// sees exactly-once at work; with eight writers and four transfers
	// some write was in flight at each.
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, "raftcache_relayed_writes_resent:") || strings.Contains(info, "raftcache_relayed_writes_resent:0\r") {
		t.Fatalf("INFO stats after four transfers under relayed writes shows no resend:\n%s", info)
	}
}

// A client of a follower keeps writing while the leader stops: the
// follower relays its writes and transactions under request ids and sends
// the ones whose replies were lost again, to the new leader. Every write
// is answered (no UNKNOWN, no TRYAGAIN) and applied exactly once.
//
// LeaderWait is cut to 10 ms, so that the election outlasts it: writes
// under ids wait for the new leader up to the command timeout instead.
func TestRelayedWritesOnceAcrossLeaderLoss(t *testing.T) {
	c := startCluster(t, resp.Config{LeaderWait: 10 * time.Millisecond})
	old := c.leader(t)
	f := c.Followers(old)[0]
	waitFor(t, "the follower at feature level 4", func() bool { return f.ClusterLevel() >= fsm.LevelReplyBudget })
	rdb := relayClient(t, f.RESPAddr())
	l := startRelayLoad(rdb, 8)
	l.progress(t, "writes through the follower")
	old.Stop()
	l.progress(t, "writes through the follower after the leader stopped")
	l.check(t, rdb)
}
