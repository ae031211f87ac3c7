package resp_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/resp"
)

// The blocking machinery (node/blocking.go, resp/blocking.go) is tested
// with RAFTCACHE.TESTBPOP key... timeout, a blocking pop over strings
// (GETDEL as the pop), so it runs without lists; TestBlockingLists runs
// the real commands once lists are in the binary.

const bpop = "raftcache.testbpop"

// blockingClient has no read timeout: it waits as long as its command.
func blockingClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DialTimeout: 5 * time.Second,
		ReadTimeout: -1, WriteTimeout: 15 * time.Second, MaxRetries: -1, PoolSize: 1})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

type popped struct {
	who int
	val []interface{}
	err error
}

// blockedOn waits until the leader holds n waiters.
func blockedOn(t testing.TB, c *cluster, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d blocked waiters on the leader", n), func() bool {
		return c.leader(t).BlockingStats().Blocked == n
	})
}

// Clients blocked on one key, through the leader and both followers, are
// served first-blocked, first-served, each once an element arrives.
func TestBlockingFIFO(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	nodes := append([]*testNode{leader}, c.Followers(leader)...)
	out := make(chan popped, 6)
	for i := 0; i < 6; i++ {
		rdb := blockingClient(t, nodes[i%3].RESPAddr())
		go func(i int) {
			v, err := rdb.Do(context.Background(), bpop, "q", "0").Slice()
			out <- popped{i, v, err}
		}(i)
		blockedOn(t, c, i+1)
	}
	w := client(t, leader.RESPAddr(), 2)
	for i := 0; i < 6; i++ {
		if err := w.Set(ctxT(t), "q", fmt.Sprint("v", i), 0).Err(); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-out:
			if p.err != nil || p.who != i || len(p.val) != 2 || p.val[0] != "q" || p.val[1] != fmt.Sprint("v", i) {
				t.Fatalf("element %d: client %d got %v, %v; want client %d first-blocked-first-served", i, p.who, p.val, p.err, i)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("element %d: nobody was served", i)
		}
	}
	if got := leader.BlockingStats(); got.Blocked != 0 || got.Served != 6 {
		t.Fatalf("stats %+v", got)
	}
}

// A timeout is decided by the leader: a follower's client gets nil after
// about its timeout, and an element set later stays.
func TestBlockingTimeout(t *testing.T) {
	c := startCluster(t, resp.Config{})
	rdb := blockingClient(t, c.follower(t).RESPAddr())
	start := time.Now()
	err := rdb.Do(ctxT(t), bpop, "q", "0.5").Err()
	took := time.Since(start)
	if !errors.Is(err, redis.Nil) {
		t.Fatalf("after the timeout: %v, want nil", err)
	}
	if took < 500*time.Millisecond || took > 5*time.Second {
		t.Fatalf("timeout 0.5 s answered after %v", took)
	}
	if st := c.leader(t).BlockingStats(); st.TimedOut != 1 || st.Blocked != 0 {
		t.Fatalf("leader stats %+v", st)
	}
	// Syntax first, as Redis: a bad timeout is an error at once.
	if err := rdb.Do(ctxT(t), bpop, "q", "-1").Err(); err == nil || err.Error() != "ERR timeout is negative" {
		t.Fatalf("negative timeout: %v", err)
	}
}

// A client that goes away while blocked (through a follower) cancels its
// waiter on the leader: the element set afterwards stays in place.
func TestBlockingCancelOnDisconnect(t *testing.T) {
	c := startCluster(t, resp.Config{})
	for _, n := range []*testNode{c.follower(t), c.leader(t)} {
		nc, err := net.Dial("tcp", n.RESPAddr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write([]byte(cmd(bpop, "gone", "0"))); err != nil {
			t.Fatal(err)
		}
		blockedOn(t, c, 1)
		nc.Close()
		blockedOn(t, c, 0)
	}
	w := client(t, c.leader(t).RESPAddr(), 2)
	if err := w.Set(ctxT(t), "gone", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // a wrongly kept waiter would pop it now
	if v, err := w.Get(ctxT(t), "gone").Result(); err != nil || v != "v" {
		t.Fatalf("after the cancelled waiters: %q %v", v, err)
	}
	if st := c.leader(t).BlockingStats(); st.Lost != 0 || st.Served != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A follower's blocked client survives a leader change: the follower
// blocks it again on the new leader with the same request id, and the
// element set there reaches it once.
func TestBlockingAcrossLeaderChange(t *testing.T) {
	c := startCluster(t, resp.Config{})
	old := c.leader(t)
	f := c.Followers(old)[0]
	rdb := blockingClient(t, f.RESPAddr())
	out := make(chan popped, 1)
	go func() {
		v, err := rdb.Do(context.Background(), bpop, "q", "30").Slice()
		out <- popped{0, v, err}
	}()
	blockedOn(t, c, 1)
	old.Stop()
	var leader *testNode
	waitFor(t, "a new leader holding the re-blocked client", func() bool {
		l := c.Leader(t)
		if l == nil || l == old || !l.ServesStrongReads() {
			return false
		}
		leader = l
		return l.BlockingStats().Blocked == 1
	})
	w := client(t, leader.RESPAddr(), 2)
	if err := w.Set(ctxT(t), "q", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-out:
		if p.err != nil || len(p.val) != 2 || p.val[1] != "x" {
			t.Fatalf("after the leader change: %v %v", p.val, p.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the blocked client was not served after the leader change")
	}
	if n, err := w.Exists(ctxT(t), "q").Result(); err != nil || n != 0 {
		t.Fatalf("q exists=%d %v after the pop", n, err)
	}
}

// Inside MULTI a blocking command answers at once, nil when empty.
func TestBlockingInsideMulti(t *testing.T) {
	c := startCluster(t, resp.Config{})
	rdb := client(t, c.follower(t).RESPAddr(), 2)
	cmds, err := rdb.TxPipelined(ctxT(t), func(p redis.Pipeliner) error {
		p.Do(ctxT(t), bpop, "m", "0")
		p.Set(ctxT(t), "m", "1", 0)
		p.Do(ctxT(t), bpop, "m", "0")
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cmds[0].(*redis.Cmd).Val(), cmds[2].(*redis.Cmd).Val()); got != "<nil> [m 1]" {
		t.Fatalf("in MULTI: %s", got)
	}
}

// TestBlockingLists runs the real blocking commands once lists are in the
// binary (branch types-list): BLMOVE to a processing list, BRPOP.
func TestBlockingLists(t *testing.T) {
	if fsm.Lookup([]byte("lpush")) == nil || fsm.Lookup([]byte("lmove")) == nil {
		t.Skip("needs lists (LPUSH, LMOVE, RPOP)")
	}
	c := startCluster(t, resp.Config{})
	f := c.follower(t)
	rdb := blockingClient(t, f.RESPAddr())
	out := make(chan string, 2)
	go func() {
		v, err := rdb.BLMove(context.Background(), "jobs", "processing", "RIGHT", "LEFT", 0).Result()
		out <- fmt.Sprintf("%v %v", v, err)
		kv, err := rdb.BRPop(context.Background(), 0, "jobs").Result()
		out <- fmt.Sprintf("%v %v", kv, err)
	}()
	blockedOn(t, c, 1)
	w := client(t, c.leader(t).RESPAddr(), 2)
	w.LPush(ctxT(t), "jobs", "a")
	if got := <-out; got != "a <nil>" {
		t.Fatalf("BLMOVE: %s", got)
	}
	blockedOn(t, c, 1)
	w.LPush(ctxT(t), "jobs", "b")
	if got := <-out; got != "[jobs b] <nil>" {
		t.Fatalf("BRPOP: %s", got)
	}
	if got := w.LRange(ctxT(t), "processing", 0, -1).Val(); fmt.Sprint(got) != "[a]" {
		t.Fatalf("processing list %v", got)
	}
}

var _ = testcluster.Ctx

// An element popped for a request id whose answer never reached the
// client (the leader died after the pop committed) is answered again to
// the retry with that id, and nothing else is popped for it.
func TestBlockingRetryGetsTheElementPoppedForIt(t *testing.T) {
	c := startCluster(t, resp.Config{})
	leader := c.leader(t)
	ctx := ctxT(t)
	args := [][]byte{[]byte(bpop), []byte("r"), []byte("0")}
	if _, err := leader.Exec(ctx, fsm.Unit{Cmds: [][][]byte{{[]byte("set"), []byte("r"), []byte("first")}}}); err != nil {
		t.Fatal(err)
	}
	res, err := leader.Exec(ctx, fsm.Unit{ReqID: []byte("req-1"), Cmds: [][][]byte{args}})
	if err != nil || res[0].Replies[0].String() != `["r" "first"]` {
		t.Fatalf("first attempt: %v %v", res, err)
	}
	if _, err := leader.Exec(ctx, fsm.Unit{Cmds: [][][]byte{{[]byte("set"), []byte("r"), []byte("second")}}}); err != nil {
		t.Fatal(err)
	}
	rep, err := leader.Block(ctx, []byte("req-1"), args)
	if err != nil || rep.String() != `["r" "first"]` {
		t.Fatalf("retry: %v %v, want the element popped for it", rep, err)
	}
	if v := client(t, leader.RESPAddr(), 2).Get(ctx, "r").Val(); v != "second" {
		t.Fatalf("r = %q: the retry popped again", v)
	}
}

// Many clients blocked through a follower hold relay connections of their
// own: the follower's pool (two idle connections here) still relays
// other commands at once, and every blocked client is served.
func TestBlockingManyClientsLeaveTheRelayPool(t *testing.T) {
	c := startCluster(t, resp.Config{ForwardIdle: 2})
	f := c.follower(t)
	const n = 40
	out := make(chan popped, n)
	for i := 0; i < n; i++ {
		rdb := blockingClient(t, f.RESPAddr())
		go func(i int) {
			v, err := rdb.Do(context.Background(), bpop, fmt.Sprint("many", i), "0").Slice()
			out <- popped{i, v, err}
		}(i)
	}
	blockedOn(t, c, n)
	w := client(t, f.RESPAddr(), 2)
	start := time.Now()
	if err := w.Set(ctxT(t), "other", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a write through the follower took %v with %d clients blocked", d, n)
	}
	for i := 0; i < n; i++ {
		if err := w.Set(ctxT(t), fmt.Sprint("many", i), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		select {
		case p := <-out:
			if p.err != nil || len(p.val) != 2 || p.val[0] != fmt.Sprint("many", p.who) {
				t.Fatalf("client %d: %v %v", p.who, p.val, p.err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%d of %d blocked clients served", i, n)
		}
	}
}

// Blocked pops through a follower reuse its pooled relay connections one
// after another: each client gets the element popped for it, every
// element reaches exactly one client. (A blocked pop's reply was once
// taken from the connection's buffer after the connection went back to
// the pool, where the next blocked command's reply could overwrite it:
// -race reports that, and without it an element came out twice.)
func TestBlockingRepliesAreTheirOwn(t *testing.T) {
	c := startCluster(t, resp.Config{ForwardIdle: 2})
	leader := c.leader(t)
	f := c.Followers(leader)[0]
	ctx := ctxT(t)
	w := client(t, leader.RESPAddr(), 2)
	const clients, rounds = 16, 40
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[string]int{}
		errs []error
	)
	for i := 0; i < clients; i++ {
		rdb := blockingClient(t, f.RESPAddr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				v, err := rdb.BLPop(ctx, 30*time.Second, "own").Result()
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					seen[v[1]]++
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	for i := 0; i < clients*rounds; i++ {
		if err := w.RPush(ctx, "own", fmt.Sprintf("v%04d", i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	left, _ := w.LRange(ctx, "own", 0, -1).Result()
	if len(errs) > 0 {
		t.Errorf("%d blocked pops failed, first: %v; left in the list: %q", len(errs), errs[0], left)
	}
	for i := 0; i < clients*rounds; i++ {
		if k := fmt.Sprintf("v%04d", i); seen[k] != 1 && !slices.Contains(left, k) {
			t.Errorf("%s delivered %d times", k, seen[k])
		}
	}
}
