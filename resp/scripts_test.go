package resp_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftcache/raftcache/internal/testtokens"
	"github.com/raftcache/raftcache/resp"
)

// Scripts through go-redis on the leader and through a follower:
// EVAL caches the body, EVALSHA finds it everywhere, SCRIPT LOAD through a
// follower is visible there when it answers, read-only scripts run on a
// READONLY follower's own state, and a failing script keeps nothing.
func TestScripts(t *testing.T) {
	c := startCluster(t, resp.Config{})
	ctx := ctxT(t)
	leader, follower := client(t, c.leader(t).RESPAddr(), 2), client(t, c.follower(t).RESPAddr(), 3)
	incr := redis.NewScript(`local v = redis.call("INCR", KEYS[1]) if v == 1 then redis.call("EXPIRE", KEYS[1], ARGV[1]) end return v`)
	for i, rdb := range []*redis.Client{leader, follower, leader, follower} {
		n, err := incr.Run(ctx, rdb, []string{"rl"}, 60).Int64()
		check(t, "script run", err)
		wantEq(t, "INCR script", n, int64(i+1))
	}
	if ttl, _ := leader.TTL(ctx, "rl").Result(); ttl <= 0 {
		t.Fatalf("TTL after the script: %v", ttl)
	}

	// SCRIPT LOAD through the follower, then EVALSHA_RO on it at once on
	// a READONLY connection: the follower applied the load before it
	// answered.
	conn := follower.Conn()
	defer conn.Close()
	check(t, "READONLY", conn.Do(ctx, "READONLY").Err())
	for i := 0; i < 20; i++ {
		body := `return redis.call("GET", KEYS[1]) or "none` + strings.Repeat("!", i) + `"`
		sha, err := conn.ScriptLoad(ctx, body).Result()
		check(t, "SCRIPT LOAD", err)
		v, err := conn.Do(ctx, "EVALSHA_RO", sha, 1, "rl").Text()
		check(t, "EVALSHA_RO after SCRIPT LOAD on a follower", err)
		wantEq(t, "EVALSHA_RO", v, "4")
	}
	wantErr(t, "write in EVAL_RO", conn.Do(ctx, "EVAL_RO", `return redis.call("SET", "x", "1")`, 0).Err(), "ERR Write commands are not allowed from read-only scripts.")
	wantErr(t, "NOSCRIPT", leader.EvalSha(ctx, strings.Repeat("a", 40), nil).Err(), "NOSCRIPT")

	// All or nothing.
	wantErr(t, "failing script", leader.Eval(ctx, `redis.call("SET", "partial", "1") return redis.call("INCR", "rl", "x")`, nil).Err(), "ERR")
	if n, _ := leader.Exists(ctx, "partial").Result(); n != 0 {
		t.Fatal("a failed script's write remains")
	}
	wantErr(t, "compile error", follower.Eval(ctx, `return +`, nil).Err(), "ERR Error compiling script")
	wantErr(t, "endless", leader.Eval(ctx, `redis.call("SET", "endless", "1") while true do end`, nil).Err(), "ERR script exceeded its instruction budget")
	if n, _ := leader.Exists(ctx, "endless").Result(); n != 0 {
		t.Fatal("a stopped script's write remains")
	}
	c.WaitAgreed(t)
	d := map[string]bool{}
	for _, n := range c.nodes {
		dg, _ := n.LocalView().Digest(), 0
		d[dg] = true
	}
	if len(d) != 1 {
		t.Fatalf("nodes diverged after scripts: %v", d)
	}
}

// WATCH: a transaction whose watched key another client changed answers
// nil and applies nothing; concurrent read-modify-write loops through the
// leader and followers lose no update.
func TestWatch(t *testing.T) {
	c := startCluster(t, resp.Config{})
	ctx := ctxT(t)
	for _, n := range []*testNode{c.leader(t), c.follower(t)} {
		rdb, other := client(t, n.RESPAddr(), 2), client(t, c.leader(t).RESPAddr(), 2)
		key := n.ID() + ":w"
		err := rdb.Watch(ctx, func(tx *redis.Tx) error {
			if _, err := tx.Get(ctx, key).Result(); err != nil && err != redis.Nil {
				return err
			}
			check(t, "SET by another client", other.Set(ctx, key, "theirs", 0).Err())
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, "mine", 0)
				return nil
			})
			return err
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			t.Fatalf("%s: EXEC after a conflicting write: %v, want a failed transaction", n.ID(), err)
		}
		if v, _ := other.Get(ctx, key).Result(); v != "theirs" {
			t.Fatalf("%s: the aborted transaction wrote: %q", n.ID(), v)
		}
	}
	// No lost update: 4 clients (2 on followers, one of them READONLY:
	// stale reads and a watch on the follower's own state) x 15
	// increments by GET + SET.
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		rdb := client(t, c.nodes[i%3].RESPAddr(), 2)
		if i == 3 {
			rdb = redis.NewClient(&redis.Options{Addr: c.follower(t).RESPAddr(),
				OnConnect: func(ctx context.Context, cn *redis.Conn) error { return cn.Do(ctx, "READONLY").Err() }})
			defer rdb.Close()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 15; j++ {
				for {
					err := rdb.Watch(ctx, func(tx *redis.Tx) error {
						n, err := tx.Get(ctx, "counter").Int()
						if err != nil && err != redis.Nil {
							return err
						}
						_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
							p.Set(ctx, "counter", n+1, 0)
							return nil
						})
						return err
					}, "counter")
					if err == nil {
						break
					}
					if !errors.Is(err, redis.TxFailedErr) {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if n, _ := client(t, c.leader(t).RESPAddr(), 2).Get(ctx, "counter").Int(); n != 60 {
		t.Fatalf("counter %d after 60 optimistic increments", n)
	}
	r := dialRaw(t, c.leader(t).RESPAddr())
	r.send(cmd("MULTI") + cmd("WATCH", "x") + cmd("DISCARD") + cmd("UNWATCH"))
	r.expect("+OK\r\n-ERR WATCH inside MULTI is not allowed\r\n+OK\r\n+OK\r\n")
}

// A read token runs read-only scripts only.
func TestScriptRoles(t *testing.T) {
	toks, _ := testtokens.File(t, "read "+readTok+" dash", "write "+writeTok+" app")
	c := startCluster(t, resp.Config{Auth: toks})
	ctx := context.Background()
	for _, n := range []*testNode{c.leader(t), c.follower(t)} {
		ro := redis.NewClient(&redis.Options{Addr: n.RESPAddr(), Password: readTok})
		defer ro.Close()
		if v, err := ro.Do(ctx, "EVAL_RO", "return 7", 0).Int(); err != nil || v != 7 {
			t.Fatalf("EVAL_RO with a read token: %v %v", v, err)
		}
		if v, err := ro.Do(ctx, "EVAL", "#!lua flags=no-writes\nreturn 8", 0).Int(); err != nil || v != 8 {
			t.Fatalf("no-writes EVAL with a read token: %v %v", v, err)
		}
		for _, args := range [][]any{{"EVAL", "return 1", 0}, {"SCRIPT", "LOAD", "return 1"}, {"SCRIPT", "FLUSH"}} {
			if err := ro.Do(ctx, args...).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
				t.Fatalf("%v with a read token: %v, want NOPERM", args, err)
			}
		}
		if err := ro.Do(ctx, "SCRIPT", "EXISTS", "abc").Err(); err != nil {
			t.Fatalf("SCRIPT EXISTS with a read token: %v", err)
		}
	}
}

// A transaction with a watch and no key command (MULTI; PING; EXEC) on a
// follower is judged by the leader, as any read: the follower's own state
// may not have applied a change of the watched key yet. With no leader to
// ask, EXEC fails rather than answer from that state.
func TestWatchOnlyTransactionOnFollower(t *testing.T) {
	c := startCluster(t, resp.Config{LeaderWait: time.Second})
	leader := c.leader(t)
	f := c.Followers(leader)[0]
	// Watches are judged from the first engine entry on (until then any
	// watch is taken as broken): write once, and let f apply it.
	ctx := ctxT(t)
	check(t, "SET", client(t, leader.RESPAddr(), 2).Set(ctx, "x", "1", 0).Err())
	waitFor(t, "the follower to apply the write", func() bool { return f.LocalView().Index() >= leader.LocalView().Index() })
	conn := dialRaw(t, f.RESPAddr())
	conn.send(cmd("WATCH", "k") + cmd("MULTI") + cmd("PING") + cmd("EXEC"))
	conn.expect("+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+PONG\r\n")
	for _, n := range c.Followers(f) { // the leader and the other follower
		n.Stop()
	}
	conn.send(cmd("WATCH", "k") + cmd("MULTI") + cmd("PING") + cmd("EXEC"))
	conn.expect("+OK\r\n+OK\r\n+QUEUED\r\n")
	if got := conn.line(); !strings.HasPrefix(got, "-") {
		t.Fatalf("EXEC of a watched transaction on a follower with no leader: %q, want an error", got)
	}
}
