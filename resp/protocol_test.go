package resp_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftcache/raftcache/resp"
)

// TestWire checks replies byte for byte: RESP2 and RESP3 nulls and maps,
// inline commands, a pipeline sent in one write, transactions, QUIT.
func TestWire(t *testing.T) {
	c := startCluster(t, resp.Config{})
	for _, n := range []*testNode{c.leader(t), c.follower(t)} {
		t.Run(n.ID(), func(t *testing.T) {
			p := n.ID() + ":"
			r := dialRaw(t, n.RESPAddr())
			r.send("PING\r\n") // inline, as telnet or redis-cli -x would
			r.expect("+PONG\r\n")
			r.send(cmd("GET", p+"missing"))
			r.expect("$-1\r\n")
			r.send(cmd("MGET", p+"missing", p+"missing"))
			r.expect("*2\r\n$-1\r\n$-1\r\n")

			// One write carrying a whole pipeline: answered in order.
			r.send(cmd("SET", p+"a", "1") + cmd("GET", p+"a") + cmd("INCR", p+"a") + cmd("SET", p+"a", "x") +
				cmd("INCR", p+"a") + cmd("GET", p+"a") + cmd("DEL", p+"a", p+"b") + cmd("EXISTS", p+"a") + cmd("PING"))
			r.expect("+OK\r\n$1\r\n1\r\n:2\r\n+OK\r\n-ERR value is not an integer or out of range\r\n$1\r\nx\r\n:1\r\n:0\r\n+PONG\r\n")

			r.send(cmd("SET", p+"a", "x"))
			r.expect("+OK\r\n")
			// HELLO 3 switches to RESP3: a map reply, then _ for null.
			r.send(cmd("HELLO", "3"))
			r.expect("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n")
			line, _ := r.rd.ReadString('\n') // the id
			if !strings.HasPrefix(line, ":") {
				t.Fatalf("HELLO id: %q", line)
			}
			role := "master"
			if !n.IsLeader() {
				role = "replica"
			}
			r.expect(fmt.Sprintf("$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$%d\r\n%s\r\n$7\r\nmodules\r\n*0\r\n", len(role), role))
			r.send(cmd("GET", p+"missing") + cmd("MGET", p+"a", p+"missing"))
			r.expect("_\r\n*2\r\n$1\r\nx\r\n_\r\n")
			r.send(cmd("CONFIG", "GET", "databases"))
			r.expect("%1\r\n$9\r\ndatabases\r\n$1\r\n1\r\n")
			r.send(cmd("HELLO", "2") + cmd("GET", p+"missing"))
			r.expect("*14\r\n") // the same 7 pairs as a flat array
			drainUntil(t, r, "*0\r\n")
			r.expect("$-1\r\n")

			// Transactions.
			r.send(cmd("MULTI") + cmd("SET", p+"t", "1") + cmd("GET", p+"t") + cmd("INCR", p+"t") + cmd("PING") + cmd("EXEC"))
			r.expect("+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*4\r\n+OK\r\n$1\r\n1\r\n:2\r\n+PONG\r\n")
			r.send(cmd("MULTI") + cmd("NOPE") + cmd("SET", p+"t", "9") + cmd("EXEC") + cmd("GET", p+"t"))
			r.expect("+OK\r\n-ERR unknown command 'NOPE', with args beginning with: \r\n+QUEUED\r\n" +
				"-EXECABORT Transaction discarded because of previous errors.\r\n$1\r\n2\r\n")
			r.send(cmd("MULTI") + cmd("GETDEL", p+"t") + cmd("EXEC"))
			r.expect("+OK\r\n+QUEUED\r\n*1\r\n$1\r\n2\r\n")
			r.send(cmd("MULTI") + cmd("SET", p+"t", "8") + cmd("DISCARD") + cmd("GET", p+"t"))
			r.expect("+OK\r\n+QUEUED\r\n+OK\r\n$-1\r\n")
			r.send(cmd("MULTI") + cmd("MULTI") + cmd("SELECT", "0") + cmd("EXEC"))
			r.expect("+OK\r\n-ERR MULTI calls can not be nested\r\n+QUEUED\r\n*1\r\n+OK\r\n")
			r.send(cmd("EXEC") + cmd("DISCARD") + cmd("MULTI") + cmd("EXEC"))
			r.expect("-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n+OK\r\n*0\r\n")
			r.send(cmd("GET") + cmd("HELLO", "x"))
			r.expect("-ERR wrong number of arguments for 'get' command\r\n-ERR Protocol version is not an integer or out of range\r\n")

			// QUIT answers, then closes; commands after it are ignored.
			r.send(cmd("QUIT") + cmd("SET", p+"after-quit", "1"))
			r.expect("+OK\r\n")
			if b, err := r.rd.ReadByte(); err == nil {
				t.Fatalf("read %q after QUIT", b)
			}
			rdb := client(t, n.RESPAddr(), 2)
			if err := rdb.Get(ctxT(t), p+"after-quit").Err(); err != redis.Nil {
				t.Errorf("a command after QUIT ran: %v", err)
			}
		})
	}
}

func drainUntil(t *testing.T, r *rawConn, last string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		line, err := r.rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == last {
			return
		}
	}
	t.Fatalf("%q not seen", last)
}

// TestForwarding checks that a follower relays writes and strong reads
// to the leader (so reads through any node see every acknowledged write),
// and that READONLY reads are served by the follower itself.
func TestForwarding(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	var followers []*testNode
	for _, n := range c.nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	ctx := ctxT(t)
	f1, f2 := client(t, followers[0].RESPAddr(), 3), client(t, followers[1].RESPAddr(), 2)
	for i := 0; i < 100; i++ {
		v := fmt.Sprint(i)
		check(t, "SET via follower 1", f1.Set(ctx, "lin", v, 0).Err())
		got, err := f2.Get(ctx, "lin").Result()
		check(t, "GET via follower 2", err)
		if got != v {
			t.Fatalf("read %q through follower 2 after writing %q through follower 1", got, v)
		}
	}

	// Strong reads through a follower are served by the leader; after
	// READONLY, by the follower. The hit counters tell them apart.
	conn := f2.Conn()
	defer conn.Close()
	fHits, lHits := followers[1].FSM().Stats().Hits, leader.FSM().Stats().Hits
	for i := 0; i < 10; i++ {
		check(t, "GET", conn.Get(ctx, "lin").Err())
	}
	if followers[1].FSM().Stats().Hits != fHits || leader.FSM().Stats().Hits < lHits+10 {
		t.Errorf("strong GETs through a follower were not served by the leader")
	}
	check(t, "READONLY", conn.ReadOnly(ctx).Err())
	waitFor(t, "the follower to catch up", func() bool {
		return followers[1].Ready() && followers[1].Status().CommitIndex >= leader.Status().CommitIndex
	})
	fHits, lHits = followers[1].FSM().Stats().Hits, leader.FSM().Stats().Hits
	for i := 0; i < 10; i++ {
		v, err := conn.Get(ctx, "lin").Result()
		check(t, "READONLY GET", err)
		wantEq(t, "READONLY GET", v, "99")
	}
	if followers[1].FSM().Stats().Hits < fHits+10 || leader.FSM().Stats().Hits != lHits {
		t.Errorf("READONLY GETs were not served by the follower")
	}
	// Writes on a READONLY connection still go to the leader.
	check(t, "SET on a READONLY connection", conn.Set(ctx, "ro", "1", 0).Err())
	waitFor(t, "the write to reach the follower", func() bool { return conn.Get(ctx, "ro").Val() == "1" })
	check(t, "READWRITE", conn.ReadWrite(ctx).Err())
	fHits = followers[1].FSM().Stats().Hits
	check(t, "GET", conn.Get(ctx, "ro").Err())
	if followers[1].FSM().Stats().Hits != fHits {
		t.Errorf("after READWRITE a GET was served by the follower")
	}
	info, err := f1.Info(ctx, "replication").Result()
	check(t, "INFO", err)
	if !strings.Contains(info, "master_port:") || strings.Contains(info, "master_port:0") {
		t.Errorf("INFO replication on a follower does not name the leader: %q", info)
	}
}

// TestPipelining checks that a pipeline's writes share Raft entries, on
// the leader and through a follower, and that concurrent clients' single
// writes are committed together.
func TestPipelining(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	ctx := ctxT(t)
	for _, n := range []*testNode{leader, c.follower(t)} {
		rdb := client(t, n.RESPAddr(), 3)
		before := leader.Status().CommitIndex
		const writes = 2000
		cmds, err := rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for i := 0; i < writes; i++ {
				pipe.Set(ctx, fmt.Sprintf("%s:p%d", n.ID(), i), i, 0)
				if i%500 == 0 {
					pipe.Get(ctx, fmt.Sprintf("%s:p%d", n.ID(), i))
				}
			}
			return nil
		})
		check(t, "pipeline", err)
		for i, c := range cmds {
			if c.Err() != nil {
				t.Fatalf("command %d: %v", i, c.Err())
			}
			if g, ok := c.(*redis.StringCmd); ok && g.Val() != fmt.Sprint((i/501)*500) {
				t.Errorf("GET in the pipeline after its SET: %q", g.Val())
			}
		}
		entries := leader.Status().CommitIndex - before
		t.Logf("%s: %d pipelined writes in %d entries", n.ID(), writes, entries)
		if entries > writes/20 {
			t.Errorf("%d pipelined writes took %d entries", writes, entries)
		}
	}

	// Concurrent clients, one command at a time each.
	const clients, each = 32, 20
	before := leader.Status().CommitIndex
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rdb := redis.NewClient(&redis.Options{Addr: leader.RESPAddr(), PoolSize: 1})
			defer rdb.Close()
			for j := 0; j < each; j++ {
				if err := rdb.Set(ctx, fmt.Sprintf("gc%d:%d", i, j), j, 0).Err(); err != nil {
					errs <- err
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	entries := leader.Status().CommitIndex - before
	t.Logf("%d concurrent single writes in %d entries", clients*each, entries)
	if entries >= clients*each {
		t.Errorf("concurrent writes were not committed together: %d writes, %d entries", clients*each, entries)
	}
}

// TestLeaderChange moves leadership and stops the leader: clients of the
// other nodes keep working (TRYAGAIN while there is no leader, retried by
// go-redis), and every acknowledged write is readable afterwards.
func TestLeaderChange(t *testing.T) {
	c := startCluster(t, resp.Config{})
	ctx := ctxT(t)
	old := c.leader(t)
	clients := map[string]*redis.Client{}
	for _, n := range c.nodes {
		clients[n.ID()] = client(t, n.RESPAddr(), 3)
	}
	check(t, "SET", clients[old.ID()].Set(ctx, "before", "1", 0).Err())
	// A transfer times out after one election timeout, which a busy
	// machine can exceed: try again until another node leads.
	var next *testNode
	waitFor(t, "leadership to move", func() bool {
		if err := old.TransferLeadership(""); err != nil {
			t.Logf("transfer: %v (retrying)", err)
		}
		next = c.leader(t)
		return next != old
	})
	for id, rdb := range clients {
		key := "after-transfer:" + id
		check(t, "SET via "+id, rdb.Set(ctx, key, id, 0).Err())
		for _, other := range clients {
			v, err := other.Get(ctx, key).Result()
			check(t, "GET", err)
			wantEq(t, "GET "+key, v, id)
		}
	}

	// Stop the leader: the two others elect a new one and go on.
	next.Stop()
	var rest []*redis.Client
	for id, rdb := range clients {
		if id != next.ID() {
			rest = append(rest, rdb)
		}
	}
	waitFor(t, "a write after the leader stopped", func() bool {
		return rest[0].Set(ctx, "after-stop", "1", 0).Err() == nil
	})
	for _, rdb := range rest {
		for _, key := range []string{"before", "after-stop"} {
			v, err := rdb.Get(ctx, key).Result()
			check(t, "GET "+key, err)
			wantEq(t, "GET "+key, v, "1")
		}
	}
}

// TestNoLeader checks the answer when no leader can be found: TRYAGAIN,
// after waiting LeaderWait.
func TestNoLeader(t *testing.T) {
	n := startNode(t, "lonely", false, resp.Config{LeaderWait: 100 * time.Millisecond})
	r := dialRaw(t, n.RESPAddr())
	r.send(cmd("SET", "k", "v") + cmd("GET", "k") + cmd("PING"))
	r.expect("-TRYAGAIN no leader available, retry shortly\r\n-TRYAGAIN no leader available, retry shortly\r\n+PONG\r\n")
	r.send(cmd("READONLY") + cmd("GET", "k"))
	r.expect("+OK\r\n$-1\r\n") // a stale read needs no leader
}

// TestShutdown checks the graceful stop: the listener closes, open
// connections are closed between replies, Serve returns nil.
func TestShutdown(t *testing.T) {
	c := startCluster(t, resp.Config{})
	n := c.leader(t)
	rdb := client(t, n.RESPAddr(), 3)
	ctx := ctxT(t)
	check(t, "SET", rdb.Set(ctx, "k", "v", 0).Err())
	r := dialRaw(t, n.RESPAddr())
	r.send(cmd("PING"))
	r.expect("+PONG\r\n")
	if err := n.RESP.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if b, err := r.rd.ReadByte(); err == nil {
		t.Fatalf("read %q from a connection after shutdown", b)
	}
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Error("PING succeeded after shutdown")
	}
}
