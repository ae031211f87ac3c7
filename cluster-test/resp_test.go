package clustertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Redis protocol front against real processes: redis-cli, a redis-py
// script and redis-benchmark (each skipped when the tool cannot be
// installed), then go-redis clients writing through a kill -9 of the
// leader, with every acknowledged write read back afterwards.

// respCluster starts three nodes that also serve the Redis protocol and
// returns each node's Redis address by id.
func respCluster(t *testing.T) (*Cluster, map[string]string) {
	t.Helper()
	return respClusterWith(t, nil)
}

// respClusterWith is respCluster with each node adjusted by setup before
// it starts (nil: none).
func respClusterWith(t *testing.T, setup func(*Node)) (*Cluster, map[string]string) {
	t.Helper()
	c := &Cluster{t: t, dir: t.TempDir()}
	t.Cleanup(c.cleanup)
	addrs := map[string]string{}
	for i := 0; i < 3; i++ {
		c.AddNode(Options{}, i)
	}
	for _, n := range c.Nodes {
		a := freeAddr(t, "127.0.0.1") // never a port handed out before
		addrs[n.ID] = a
		n.Args = append(append([]string(nil), n.Args...), "--resp-addr", a)
		if setup != nil {
			setup(n)
		}
	}
	c.Nodes[0].Start()
	c.WaitReady(c.Nodes[0])
	for _, n := range c.Nodes[1:] {
		n.Start(c.Nodes[0].URL())
	}
	c.WaitMembers(3)
	for _, n := range c.Nodes {
		c.WaitReady(n)
	}
	for id, addr := range addrs {
		respWaitWritable(t, addr, id)
	}
	return c, addrs
}

// respWaitWritable waits until a write through addr succeeds: the node
// knows a leader and that leader's Redis address.
func respWaitWritable(t testing.TB, addr, what string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	Eventually(t, "a write through "+what, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return rdb.Set(ctx, "resp-probe:"+what, "1", 0).Err()
	})
}

// respTool finds a command, installing its Debian package once if it is
// missing; it skips the test when that is impossible.
func respTool(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	respInstallOnce.Do(func() {
		if os.Geteuid() != 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", "-c", "apt-get install -y -qq redis-tools python3-redis || (apt-get update -qq && apt-get install -y -qq redis-tools python3-redis)")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("installing redis-tools and python3-redis: %v\n%s", err, out)
		}
	})
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed and could not be installed (Debian package %s)", name, pkg)
	}
	return p
}

var respInstallOnce sync.Once

// respRun runs a tool with a deadline and returns its combined output.
func respRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func respHostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

func TestRespCluster(t *testing.T) {
	c, addrs := respCluster(t)
	leader := c.WaitForLeader()
	follower := c.Followers(leader)[0]

	t.Run("redis-cli", func(t *testing.T) {
		cli := respTool(t, "redis-cli", "redis-tools")
		host, port := respHostPort(t, addrs[follower.ID])
		rc := func(args ...string) string {
			t.Helper()
			return strings.TrimSpace(respRun(t, cli, append([]string{"-h", host, "-p", port}, args...)...))
		}
		for _, step := range []struct {
			args []string
			want string
		}{
			{[]string{"PING"}, "PONG"},
			{[]string{"SET", "cli:a", "hello world"}, "OK"},
			{[]string{"GET", "cli:a"}, "hello world"},
			{[]string{"SET", "cli:a", "x", "NX"}, ""},
			{[]string{"INCR", "cli:n"}, "1"},
			{[]string{"INCRBY", "cli:n", "41"}, "42"},
			{[]string{"EXPIRE", "cli:n", "100"}, "1"},
			{[]string{"EXISTS", "cli:a", "cli:n", "cli:none"}, "2"},
			{[]string{"MSET", "cli:m1", "1", "cli:m2", "2"}, "OK"},
			{[]string{"MGET", "cli:m1", "cli:m2"}, "1\n2"},
			{[]string{"DEL", "cli:m1", "cli:m2"}, "2"},
			{[]string{"TYPE", "cli:a"}, "string"},
			{[]string{"KEYS", "cli:*"}, ""}, // checked below: order is not fixed
			{[]string{"SELECT", "0"}, "OK"},
		} {
			got := rc(step.args...)
			if step.args[0] == "KEYS" {
				if !strings.Contains(got, "cli:a") || !strings.Contains(got, "cli:n") {
					t.Errorf("KEYS cli:*: %q", got)
				}
				continue
			}
			if got != step.want {
				t.Errorf("redis-cli %s: %q, want %q", strings.Join(step.args, " "), got, step.want)
			}
		}
		if ttl := rc("TTL", "cli:n"); ttl != "100" && ttl != "99" {
			t.Errorf("TTL: %q", ttl)
		}
		if got := rc("--scan", "--pattern", "cli:*"); !strings.Contains(got, "cli:a") {
			t.Errorf("redis-cli --scan: %q", got)
		}
		if got := rc("INFO", "replication"); !strings.Contains(got, "role:slave") {
			t.Errorf("INFO replication on a follower: %q", got)
		}
		if got := rc("FOO"); !strings.Contains(got, "ERR unknown command 'FOO'") {
			t.Errorf("unknown command: %q", got)
		}
		if got := rc("-3", "HELLO", "3"); !strings.Contains(got, "proto") || !strings.Contains(got, "3") {
			t.Errorf("HELLO 3: %q", got)
		}
	})

	t.Run("redis-py", func(t *testing.T) {
		const python = "/usr/bin/python3" // the first python3 on PATH may be another one, without the package
		if _, err := os.Stat(python); err != nil {
			t.Skip("no /usr/bin/python3")
		}
		respTool(t, "redis-cli", "redis-tools") // installs python3-redis too, if missing
		if err := exec.Command(python, "-c", "import redis").Run(); err != nil {
			t.Skip("python3-redis is not installed")
		}
		script := filepath.Join(t.TempDir(), "smoke.py")
		if err := os.WriteFile(script, []byte(respPyScript), 0o644); err != nil {
			t.Fatal(err)
		}
		host, port := respHostPort(t, addrs[follower.ID])
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, python, script)
		cmd.Env = append(os.Environ(), "RESP_HOST="+host, "RESP_PORT="+port)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Fatalf("redis-py script: %v\n%s", err, out)
		}
	})

	t.Run("redis-benchmark", func(t *testing.T) {
		bench := respTool(t, "redis-benchmark", "redis-tools")
		for _, n := range []*Node{leader, follower} {
			host, port := respHostPort(t, addrs[n.ID])
			out := respRun(t, bench, "-h", host, "-p", port, "-t", "set,get,incr,mset", "-n", "2000", "-q")
			lines := 0
			for _, l := range strings.Split(strings.ReplaceAll(out, "\r", "\n"), "\n") {
				if strings.Contains(l, "requests per second") && !strings.Contains(l, "rps=") {
					lines++
				}
			}
			if lines != 4 || strings.Contains(strings.ToLower(out), "error") {
				t.Errorf("redis-benchmark against %s: %d result lines\n%s", n.ID, lines, out)
			}
			t.Logf("redis-benchmark against %s:%s", n.ID, respSummary(out))
		}
	})

	t.Run("go-redis-leader-kill", func(t *testing.T) {
		respLeaderKill(t, c, addrs)
	})
}

// respSummary keeps the final line of each redis-benchmark test.
func respSummary(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.ReplaceAll(out, "\r", "\n"), "\n") {
		if strings.Contains(l, "requests per second") && !strings.Contains(l, "rps=") {
			b.WriteString("\n  " + strings.TrimSpace(l))
		}
	}
	return b.String()
}

// respFailoverClient is a go-redis client that, when a connection cannot
// be made, tries the next node: a plain Redis client knows addresses,
// not leaders; every node serves every command.
func respFailoverClient(addrs []string, first int) *redis.Client {
	var next atomic.Int64
	next.Store(int64(first))
	return redis.NewClient(&redis.Options{
		Addr: addrs[first],
		Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var err error
			for range addrs {
				a := addrs[int(next.Load())%len(addrs)]
				d := net.Dialer{Timeout: time.Second}
				conn, derr := d.DialContext(ctx, network, a)
				if derr == nil {
					return conn, nil
				}
				err = derr
				next.Add(1)
			}
			return nil, err
		},
		DialTimeout:  time.Second,
		ReadTimeout:  15 * time.Second,
		WriteTimeout: 5 * time.Second,
		PoolSize:     2,
	})
}

// respLeaderKill writes unique keys through go-redis clients spread over
// the nodes, kills the leader with SIGKILL, keeps writing until writes
// are acknowledged again, then reads every acknowledged write back.
func respLeaderKill(t *testing.T, c *Cluster, addrs map[string]string) {
	leader := c.WaitForLeader()
	var list []string
	for _, n := range c.Nodes {
		list = append(list, addrs[n.ID])
	}
	const writers = 6
	var (
		mu          sync.Mutex
		acked       = map[string]string{}
		killed      atomic.Bool
		ackedAfter  atomic.Int64
		transient   atomic.Int64
		ctx, cancel = context.WithCancel(context.Background())
		wg          sync.WaitGroup
	)
	defer cancel()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rdb := respFailoverClient(list, w%len(list))
			defer rdb.Close()
			for i := 0; ctx.Err() == nil; i++ {
				key, value := fmt.Sprintf("kill:%d:%d", w, i), fmt.Sprintf("v%d-%d", w, i)
				// A SET of a fixed value is idempotent: retry it until it
				// is acknowledged (or the test ends, leaving it unknown).
				for ctx.Err() == nil {
					octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
					err := rdb.Set(octx, key, value, 0).Err()
					ocancel()
					if err == nil {
						mu.Lock()
						acked[key] = value
						mu.Unlock()
						if killed.Load() {
							ackedAfter.Add(1)
						}
						break
					}
					transient.Add(1)
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		}(w)
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	Eventually(t, "writes before the kill", func() error {
		if n := count(); n < 200 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	before := count()
	leader.Kill()
	killed.Store(true)
	t.Logf("killed the leader %s after %d acknowledged writes", leader.ID, before)
	Eventually(t, "writes acknowledged after the kill", func() error {
		if n := ackedAfter.Load(); n < 200 {
			return fmt.Errorf("%d acknowledged since the kill", n)
		}
		return nil
	})
	cancel()
	wg.Wait()
	t.Logf("%d writes acknowledged (%d after the kill), %d transient errors retried", count(), ackedAfter.Load(), transient.Load())

	// Every acknowledged write is there, read through each survivor.
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		rdb := redis.NewClient(&redis.Options{Addr: addrs[n.ID], ReadTimeout: 15 * time.Second})
		keys := make([]string, 0, len(acked))
		for k := range acked {
			keys = append(keys, k)
		}
		var missing []string
		for len(keys) > 0 {
			page := keys[:min(500, len(keys))]
			keys = keys[len(page):]
			var vals []any
			Eventually(t, "MGET through "+n.ID, func() error {
				octx, ocancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer ocancel()
				var err error
				vals, err = rdb.MGet(octx, page...).Result()
				return err
			})
			for i, v := range vals {
				if s, ok := v.(string); !ok || s != acked[page[i]] {
					missing = append(missing, fmt.Sprintf("%s=%v", page[i], v))
				}
			}
		}
		rdb.Close()
		if len(missing) > 0 {
			t.Errorf("%d acknowledged writes not read back through %s, e.g. %v", len(missing), n.ID, missing[:min(5, len(missing))])
		}
	}
}

// respPyScript is run with Debian's python3 and python3-redis (redis-py
// 4.x), against a follower.
const respPyScript = `
import os, redis
r = redis.Redis(host=os.environ["RESP_HOST"], port=int(os.environ["RESP_PORT"]), socket_timeout=15)
assert r.ping()
assert r.set("py:a", "1")
assert r.get("py:a") == b"1"
assert r.get("py:none") is None
assert r.set("py:a", "2", nx=True) is None
assert r.set("py:a", "2", xx=True, get=True) == b"1"
assert r.incr("py:n") == 1
assert r.incrby("py:n", 5) == 6
assert r.decr("py:n") == 5
r.setex("py:t", 60, "v")
assert 0 < r.ttl("py:t") <= 60
assert r.expire("py:a", 100)
assert r.persist("py:a")
assert r.ttl("py:a") == -1
assert r.ttl("py:none") == -2
r.mset({"py:m1": "1", "py:m2": "2"})
assert r.mget("py:m1", "py:m2", "py:none") == [b"1", b"2", None]
with r.pipeline(transaction=True) as p:
    p.set("py:rate", 0, ex=60, nx=True)
    p.incr("py:rate")
    res = p.execute()
assert res[1] == 1, res
with r.pipeline(transaction=False) as p:
    for i in range(100):
        p.set("py:pipe:%d" % i, i)
    assert all(p.execute())
assert sorted(r.scan_iter("py:m*", count=1)) == [b"py:m1", b"py:m2"]
assert len(r.keys("py:pipe:*")) == 100
assert r.delete("py:m1", "py:m2") == 2
assert r.exists("py:a", "py:none") == 1
assert r.getdel("py:a") == b"2"
r.set("py:s", "abc")
try:
    r.incr("py:s")
    raise SystemExit("INCR on text did not fail")
except redis.ResponseError as e:
    assert "not an integer" in str(e), e
info = r.info()
assert "keyspace_hits" in info and info["role"] == "slave", info
assert r.dbsize() > 0
print("ok")
`
