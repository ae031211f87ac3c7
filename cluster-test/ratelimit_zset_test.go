package clustertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRateLimitSlidingWindow is issue 17's sliding-window limiter on
// sorted sets, as the usual Python and Go limiters write it: in one
// MULTI, ZREMRANGEBYSCORE drops the requests older than the window, ZADD
// records this request, ZCARD counts the window, EXPIRE keeps the key
// from outliving it; the request is admitted when the count is within the
// limit. Clients in separate processes (redis-py) and goroutines
// (go-redis), each on its own connection to a different node of a real
// three-node cluster, race on one key: exactly the limit must be
// admitted, however their transactions interleave, because every
// transaction is applied atomically in one order on every node.
func TestRateLimitSlidingWindow(t *testing.T) {
	c, addrs := respCluster(t)
	c.WaitForLeader()
	var nodes []string
	for _, n := range c.Nodes {
		nodes = append(nodes, addrs[n.ID])
	}
	const (
		limit    = 25
		perProc  = 15
		windowMS = 600000 // nothing leaves the window while the test runs
	)

	check := func(t *testing.T, key string, admitted, attempts int) {
		t.Helper()
		if admitted != limit {
			t.Errorf("%d requests admitted of %d, want exactly the limit %d", admitted, attempts, limit)
		}
		rdb := redis.NewClient(&redis.Options{Addr: nodes[0]})
		defer rdb.Close()
		ctx := context.Background()
		// Every attempt was recorded once, on every node (a strong read
		// through each).
		for _, addr := range nodes {
			r := redis.NewClient(&redis.Options{Addr: addr})
			n, err := r.ZCard(ctx, key).Result()
			r.Close()
			if err != nil || n != int64(attempts) {
				t.Errorf("ZCARD through %s: %d %v, want %d", addr, n, err, attempts)
			}
		}
		if ttl, err := rdb.TTL(ctx, key).Result(); err != nil || ttl <= 0 {
			t.Errorf("TTL %v %v: EXPIRE did not apply", ttl, err)
		}
	}

	t.Run("redis-py", func(t *testing.T) {
		const python = "/usr/bin/python3"
		if _, err := os.Stat(python); err != nil {
			t.Skip("no /usr/bin/python3")
		}
		respTool(t, "redis-cli", "redis-tools") // installs python3-redis too, if missing
		if err := exec.Command(python, "-c", "import redis").Run(); err != nil {
			t.Skip("python3-redis is not installed")
		}
		script := filepath.Join(t.TempDir(), "limiter.py")
		if err := os.WriteFile(script, []byte(rateLimitPy), 0o644); err != nil {
			t.Fatal(err)
		}
		const procs = 6 // two per node
		outs := make([]string, procs)
		errs := make([]error, procs)
		var wg sync.WaitGroup
		for p := 0; p < procs; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				host, port := respHostPort(t, nodes[p%len(nodes)])
				ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, python, script)
				cmd.Env = append(os.Environ(), "RESP_HOST="+host, "RESP_PORT="+port, "KEY=rate:py", "CLIENT="+strconv.Itoa(p),
					"N="+strconv.Itoa(perProc), "LIMIT="+strconv.Itoa(limit), "WINDOW_MS="+strconv.Itoa(windowMS))
				out, err := cmd.CombinedOutput()
				outs[p], errs[p] = strings.TrimSpace(string(out)), err
			}()
		}
		wg.Wait()
		admitted := 0
		for p := range outs {
			n, err := strconv.Atoi(outs[p])
			if errs[p] != nil || err != nil {
				t.Fatalf("limiter process %d: %v\n%s", p, errs[p], outs[p])
			}
			admitted += n
		}
		check(t, "rate:py", admitted, procs*perProc)
	})

	t.Run("go-redis", func(t *testing.T) {
		const clients = 9 // three per node
		var mu sync.Mutex
		admitted := 0
		var failures []string
		var wg sync.WaitGroup
		for cl := 0; cl < clients; cl++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rdb := redis.NewClient(&redis.Options{Addr: nodes[cl%len(nodes)], PoolSize: 1, MaxRetries: -1})
				defer rdb.Close()
				for i := 0; i < perProc; i++ {
					ok, err := slidingWindowAllow(rdb, "rate:go", fmt.Sprintf("go-%d-%d", cl, i), limit, windowMS)
					mu.Lock()
					if err != nil {
						failures = append(failures, err.Error())
					} else if ok {
						admitted++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(failures) > 0 {
			t.Fatalf("%d limiter calls failed: %v", len(failures), failures[:min(3, len(failures))])
		}
		check(t, "rate:go", admitted, clients*perProc)
	})

	// The window slides: requests older than the window stop counting.
	t.Run("window-slides", func(t *testing.T) {
		rdb := redis.NewClient(&redis.Options{Addr: nodes[1]})
		defer rdb.Close()
		ctx := context.Background()
		old := time.Now().Add(-time.Hour).UnixMilli()
		var zs []redis.Z
		for i := 0; i < limit; i++ {
			zs = append(zs, redis.Z{Score: float64(old + int64(i)), Member: "old" + strconv.Itoa(i)})
		}
		if err := rdb.ZAdd(ctx, "rate:slide", zs...).Err(); err != nil {
			t.Fatal(err)
		}
		ok, err := slidingWindowAllow(rdb, "rate:slide", "new", limit, 60000)
		if err != nil || !ok {
			t.Fatalf("a request after the window emptied: allowed %v %v", ok, err)
		}
		members, err := rdb.ZRange(ctx, "rate:slide", 0, -1).Result()
		if err != nil || !slices.Equal(members, []string{"new"}) {
			t.Fatalf("window holds %v %v, want only the new request", members, err)
		}
	})
}

// slidingWindowAllow is the usual Go limiter (one transaction, pipelined).
func slidingWindowAllow(rdb *redis.Client, key, member string, limit, windowMS int) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now().UnixMilli()
	var card *redis.IntCmd
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRemRangeByScore(ctx, key, "0", strconv.FormatInt(now-int64(windowMS), 10))
		p.ZAdd(ctx, key, redis.Z{Score: float64(now), Member: member})
		card = p.ZCard(ctx, key)
		p.Expire(ctx, key, time.Duration(windowMS)*time.Millisecond)
		return nil
	})
	if err != nil {
		return false, err
	}
	return card.Val() <= int64(limit), nil
}

// rateLimitPy is the usual redis-py sliding-window limiter: it makes N
// requests and prints how many were admitted.
const rateLimitPy = `
import os, time, uuid
import redis

r = redis.Redis(host=os.environ["RESP_HOST"], port=int(os.environ["RESP_PORT"]), socket_timeout=30)
key, limit, window = os.environ["KEY"], int(os.environ["LIMIT"]), int(os.environ["WINDOW_MS"])

def allow():
    now = int(time.time() * 1000)
    pipe = r.pipeline(transaction=True)
    pipe.zremrangebyscore(key, 0, now - window)
    pipe.zadd(key, {"%s-%s" % (os.environ["CLIENT"], uuid.uuid4().hex): now})
    pipe.zcard(key)
    pipe.expire(key, window // 1000)
    _, _, count, _ = pipe.execute()
    return count <= limit

print(sum(1 for _ in range(int(os.environ["N"])) if allow()))
`
