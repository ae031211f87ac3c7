package clustertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
)

// The libraries people share locks and rate limits through, unchanged,
// across processes and nodes of a real cluster: redis-py's Lock and
// transaction() (WATCH), python3-limits' fixed window, go-redis's
// redis_rate and redsync; then scripts through a leader kill, and
// scripts that must be stopped alike on every node.

// scriptsPy is run by Debian's python3 with python3-redis and
// python3-limits, one process per worker: MODE is lock, tx or limits,
// ADDR the node it talks to (a leader or a follower).
const scriptsPy = `
import os, sys, time
import redis
host, port = os.environ["ADDR"].rsplit(":", 1)
mode, n = os.environ["MODE"], int(os.environ["N"])
r = redis.Redis(host=host, port=int(port), socket_timeout=20)
if mode == "lock":
    # mutual exclusion: a read-modify-write of a counter under the lock
    # loses no update, and no two holders are ever inside at once
    for i in range(n):
        lock = r.lock("plock", timeout=15, sleep=0.02, blocking_timeout=60)
        if not lock.acquire():
            sys.exit("lock not acquired")
        try:
            if r.incr("plock:inside") != 1:
                sys.exit("two holders inside the lock")
            v = int(r.get("plock:counter") or 0)
            if i == 0:
                if not lock.extend(5):
                    sys.exit("extend failed")
                if not lock.reacquire():
                    sys.exit("reacquire failed")
            r.set("plock:counter", v + 1)
            r.decr("plock:inside")
        finally:
            lock.release()
    try:
        lock.release()
        sys.exit("released a lock twice")
    except redis.exceptions.LockError:
        pass
    print("ok")
elif mode == "tx":
    def incr(pipe):
        v = int(pipe.get("tx:counter") or 0)
        pipe.multi()
        pipe.set("tx:counter", v + 1)
    for i in range(n):
        r.transaction(incr, "tx:counter")
    print("ok")
elif mode == "lockkill":
    # the lock through a leader kill: a command may fail (TRYAGAIN, or an
    # unknown outcome); the worker gives up that round and goes on, as an
    # app would. Mutual exclusion must hold throughout.
    ok = unknown = 0
    deadline = time.time() + 120
    while ok < n and time.time() < deadline:
        lock = r.lock("klock", timeout=8, sleep=0.02, blocking_timeout=30)
        try:
            if not lock.acquire():
                continue
        except redis.exceptions.RedisError:
            time.sleep(0.05)
            continue
        try:
            if r.incr("klock:inside") != 1:
                sys.exit("two holders inside the lock")
            v = int(r.get("klock:counter") or 0)
            try:
                r.set("klock:counter", v + 1)
                ok += 1
            except redis.exceptions.RedisError:
                unknown += 1
            r.decr("klock:inside")
        except redis.exceptions.RedisError:
            unknown += 1
            r2 = redis.Redis(host=host, port=int(port), socket_timeout=20)
            try:
                r2.set("klock:inside", 0)  # this holder left; the lock still excludes the others
            except redis.exceptions.RedisError:
                pass
        finally:
            try:
                lock.release()
            except redis.exceptions.RedisError:
                pass
    print(ok, unknown)
elif mode == "limits":
    from limits import storage, strategies, parse
    s = storage.RedisStorage("redis://" + os.environ["ADDR"])
    if os.environ.get("STRATEGY") == "moving":
        lim = strategies.MovingWindowRateLimiter(s)  # a list per key and a Lua script
    else:
        lim = strategies.FixedWindowRateLimiter(s)
    item = parse(os.environ["LIMIT"])
    who = "user42-" + os.environ.get("STRATEGY", "fixed")  # each strategy's keys have their own type
    print(sum(1 for _ in range(n) if lim.hit(item, who)))
`

const python3 = "/usr/bin/python3" // the first python3 on PATH may be another one, without the packages

// pyWorkers runs n copies of scriptsPy in MODE mode, worker i against
// addrs[i % len(addrs)], and returns their outputs.
func pyWorkers(t *testing.T, mode string, workers int, addrs []string, env ...string) []string {
	t.Helper()
	if _, err := os.Stat(python3); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	mods := "redis"
	if mode == "limits" {
		mods = "redis, limits"
	}
	if err := exec.Command(python3, "-c", "import "+mods).Run(); err != nil {
		t.Skipf("python3 cannot import %s (Debian packages python3-redis, python3-limits)", mods)
	}
	script := filepath.Join(t.TempDir(), "scripts.py")
	if err := os.WriteFile(script, []byte(scriptsPy), 0o644); err != nil {
		t.Fatal(err)
	}
	out := make([]string, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, python3, script)
			cmd.Env = append(append(os.Environ(), "MODE="+mode, "ADDR="+addrs[i%len(addrs)]), env...)
			b, err := cmd.CombinedOutput()
			out[i], errs[i] = strings.TrimSpace(string(b)), err
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s worker %d on %s: %v\n%s", mode, i, addrs[i%len(addrs)], err, out[i])
		}
	}
	return out
}

func TestScriptLibraries(t *testing.T) {
	c, byID := respCluster(t)
	leader := c.WaitForLeader()
	addrs := []string{byID[leader.ID]}
	for _, f := range c.Followers(leader) {
		addrs = append(addrs, byID[f.ID])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: addrs[0]})
	defer rdb.Close()
	counter := func(key string) int {
		t.Helper()
		n, err := rdb.Get(ctx, key).Int()
		if err != nil {
			t.Fatalf("GET %s: %v", key, err)
		}
		return n
	}

	t.Run("redis-py Lock", func(t *testing.T) {
		pyWorkers(t, "lock", 4, addrs, "N=6")
		if n := counter("plock:counter"); n != 24 {
			t.Fatalf("counter %d after 4 x 6 increments under the lock", n)
		}
	})
	t.Run("redis-py transaction", func(t *testing.T) {
		pyWorkers(t, "tx", 4, addrs, "N=15")
		if n := counter("tx:counter"); n != 60 {
			t.Fatalf("counter %d after 4 x 15 optimistic increments: lost updates", n)
		}
	})
	// python3-limits' fixed window (INCR and EXPIRE) and moving window (a
	// list per key and a Lua script) admit exactly the limit across
	// processes on different nodes.
	for _, strategy := range []string{"fixed", "moving"} {
		t.Run("limits "+strategy+" window", func(t *testing.T) {
			out := pyWorkers(t, "limits", 4, addrs, "N=20", "LIMIT=25/hour", "STRATEGY="+strategy)
			total := 0
			for _, o := range out {
				n, err := strconv.Atoi(o)
				if err != nil {
					t.Fatalf("limits worker said %q", o)
				}
				total += n
			}
			if total != 25 {
				t.Fatalf("%d hits admitted across processes (%v), want exactly the limit 25", total, out)
			}
		})
	}
	t.Run("redis_rate", func(t *testing.T) {
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func(addr string) {
				defer wg.Done()
				cl := redis.NewClient(&redis.Options{Addr: addr})
				defer cl.Close()
				lim := redis_rate.NewLimiter(cl)
				for j := 0; j < 10; j++ {
					res, err := lim.Allow(ctx, "api:user42", redis_rate.PerHour(25))
					if err != nil {
						t.Error(err)
						return
					}
					allowed.Add(int64(res.Allowed))
				}
			}(addrs[i%len(addrs)])
		}
		wg.Wait()
		if n := allowed.Load(); n != 25 {
			t.Fatalf("redis_rate allowed %d of 40, want exactly 25", n)
		}
	})
	t.Run("redsync", func(t *testing.T) {
		redsyncWorkers(t, ctx, addrs, "rs", 4, 5)
		if n := counter("rs:counter"); n != 20 {
			t.Fatalf("counter %d after 4 x 5 increments under redsync mutexes", n)
		}
	})
}

// redsyncWorkers has workers each take a redsync mutex (one pool of its
// own node: they coordinate through the cluster) n times, incrementing a
// counter by GET and SET inside, extending the lock once.
func redsyncWorkers(t *testing.T, ctx context.Context, addrs []string, prefix string, workers, n int) {
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			cl := redis.NewClient(&redis.Options{Addr: addr})
			defer cl.Close()
			rs := redsync.New(goredis.NewPool(cl))
			for j := 0; j < n; j++ {
				m := rs.NewMutex(prefix+":mutex", redsync.WithExpiry(10*time.Second), redsync.WithTries(600), redsync.WithRetryDelay(20*time.Millisecond))
				if err := m.LockContext(ctx); err != nil {
					t.Error("redsync lock:", err)
					return
				}
				v, err := cl.Get(ctx, prefix+":counter").Int()
				if err != nil && err != redis.Nil {
					t.Error(err)
				}
				if j == 0 {
					if ok, err := m.ExtendContext(ctx); !ok || err != nil {
						t.Error("redsync extend:", ok, err)
					}
				}
				if err := cl.Set(ctx, prefix+":counter", v+1, 0).Err(); err != nil {
					t.Error(err)
				}
				if ok, err := m.UnlockContext(ctx); !ok || err != nil {
					t.Error("redsync unlock:", ok, err)
				}
			}
		}(addrs[i%len(addrs)])
	}
	wg.Wait()
}

// Scripts through a kill -9 of the leader: an INCR + EXPIRE script
// (EVALSHA, with go-redis's EVAL fallback) from clients of every node
// counts every acknowledged call and no more than were sent; the killed
// node, restarted, replays the scripts to the same digest; locks work
// after the election.
func TestScriptsLeaderKill(t *testing.T) {
	c, byID := respCluster(t)
	leader := c.WaitForLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	incr := redis.NewScript(`local v = redis.call("INCR", KEYS[1]) if v == 1 then redis.call("EXPIRE", KEYS[1], ARGV[1]) end return v`)
	var acked, unknown, after atomic.Int64
	var killed atomic.Bool
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
			defer cl.Close()
			for wctx.Err() == nil {
				octx, ocancel := context.WithTimeout(wctx, 10*time.Second)
				err := incr.Run(octx, cl, []string{"hits"}, 3600).Err()
				ocancel()
				switch {
				case err == nil:
					acked.Add(1)
					if killed.Load() {
						after.Add(1)
					}
				case strings.HasPrefix(err.Error(), "TRYAGAIN"):
					// not applied
				default:
					unknown.Add(1) // UNKNOWN, a dropped connection: maybe applied
					time.Sleep(20 * time.Millisecond)
				}
			}
		}(byID[n.ID])
	}
	Eventually(t, "scripts before the kill", func() error {
		if n := acked.Load(); n < 100 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	leader.Kill()
	killed.Store(true)
	Eventually(t, "scripts acknowledged after the kill", func() error {
		if n := after.Load(); n < 100 {
			return fmt.Errorf("%d acknowledged since the kill", n)
		}
		return nil
	})
	stop()
	wg.Wait()
	newLeader := c.WaitForLeader()
	rdb := redis.NewClient(&redis.Options{Addr: byID[newLeader.ID]})
	defer rdb.Close()
	got, err := rdb.Get(ctx, "hits").Int64()
	if err != nil {
		t.Fatal(err)
	}
	if got < acked.Load() || got > acked.Load()+unknown.Load() {
		t.Fatalf("counter %d; %d calls acknowledged, %d of unknown outcome", got, acked.Load(), unknown.Load())
	}
	t.Logf("counter %d: %d acknowledged (%d after the kill), %d unknown", got, acked.Load(), after.Load(), unknown.Load())
	if ttl, _ := rdb.TTL(ctx, "hits").Result(); ttl <= 0 {
		t.Fatalf("the script's EXPIRE was lost: TTL %v", ttl)
	}
	var addrs []string
	for _, n := range c.Nodes {
		if n.Running() {
			addrs = append(addrs, byID[n.ID])
		}
	}
	redsyncWorkers(t, ctx, addrs, "after", 2, 3)
	if n, _ := rdb.Get(ctx, "after:counter").Int(); n != 6 {
		t.Fatalf("redsync after the election: counter %d, want 6", n)
	}
	leader.Start(c.Nodes[0].URL())
	c.WaitReady(leader)
	c.WaitConverged()
}

// redis-py's Lock from processes on both followers while the leader is
// killed: mutual exclusion holds throughout, and the counter the holders
// increment counts every acknowledged increment.
func TestScriptLockLeaderKill(t *testing.T) {
	c, byID := respCluster(t)
	leader := c.WaitForLeader()
	var addrs []string
	for _, f := range c.Followers(leader) {
		addrs = append(addrs, byID[f.ID])
	}
	rdb := redis.NewClient(&redis.Options{Addr: addrs[0]})
	defer rdb.Close()
	// Kill the leader once the workers are well under way (polled here,
	// off the test goroutine, which runs the workers).
	killed := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			n, err := rdb.Get(ctx, "klock:counter").Int()
			cancel()
			if err == nil && n >= 20 {
				leader.Kill()
				killed <- nil
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		killed <- errors.New("the workers made no progress before the kill")
	}()
	out := pyWorkers(t, "lockkill", 4, addrs, "N=40")
	if err := <-killed; err != nil {
		t.Fatal(err)
	}
	okSum, unknownSum := 0, 0
	for _, o := range out {
		var ok, unknown int
		if _, err := fmt.Sscan(o, &ok, &unknown); err != nil {
			t.Fatalf("worker said %q", o)
		}
		okSum += ok
		unknownSum += unknown
	}
	var n int
	Eventually(t, "reading the counter", func() error {
		var err error
		n, err = rdb.Get(context.Background(), "klock:counter").Int()
		return err
	})
	if n < okSum || n > okSum+unknownSum {
		t.Fatalf("counter %d: %d increments acknowledged, %d of unknown outcome", n, okSum, unknownSum)
	}
	t.Logf("counter %d: %d acknowledged, %d unknown, across a leader kill", n, okSum, unknownSum)
}

// An endless script and a memory-hungry one are stopped with the same
// error however they reach the cluster, nothing they wrote remains on any
// node, and the cluster keeps serving; every node ends with one digest.
func TestScriptsStoppedAlike(t *testing.T) {
	c, byID := respCluster(t)
	leader := c.WaitForLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, sc := range []struct{ body, want string }{
		{`redis.call("SET", "stopped:endless", "1") while true do end`, "ERR script exceeded its instruction budget"},
		{`redis.call("SET", "stopped:hungry", "1") local t = {} local s = string.rep("x", 1e6) for i = 1, 1e9 do t[i] = s .. i end`, "ERR script exceeded its memory budget"},
		{`redis.call("SET", "stopped:hungry2", "1") local s = "x" while true do s = s .. s end`, "ERR script exceeded its memory budget"},
	} {
		var replies []string
		for _, n := range append([]*Node{leader}, c.Followers(leader)...) {
			cl := redis.NewClient(&redis.Options{Addr: byID[n.ID], MaxRetries: -1, ReadTimeout: 30 * time.Second})
			err := cl.Eval(ctx, sc.body, nil).Err()
			cl.Close()
			if err == nil || !strings.HasPrefix(err.Error(), sc.want) {
				t.Fatalf("through %s: %v, want %q", n.ID, err, sc.want)
			}
			replies = append(replies, err.Error())
		}
		if replies[0] != replies[1] || replies[1] != replies[2] {
			t.Fatalf("different errors: %q", replies)
		}
	}
	digest := c.WaitConverged()
	for _, n := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: byID[n.ID]})
		if err := cl.Do(ctx, "READONLY").Err(); err != nil {
			t.Fatal(err)
		}
		keys, err := cl.Keys(ctx, "stopped:*").Result()
		if err != nil || len(keys) != 0 {
			t.Fatalf("%s keeps %v (%v) from stopped scripts", n.ID, keys, err)
		}
		if err := cl.Set(ctx, "still-serving:"+n.ID, "1", 0).Err(); err != nil {
			t.Fatalf("%s after stopped scripts: %v", n.ID, err)
		}
		cl.Close()
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
	t.Logf("converged on %s", digest)
}
