package clustertest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pub/sub across a cluster of real processes, with redis-py subscribers:
// publishers on the leader and through followers, subscribers on the
// followers (channels and patterns); PUBLISH inside MULTI delivered once
// per subscriber; no message delivered again by a node replaying its log
// after a restart; no acknowledged message lost for subscribers that stay
// connected while the leader is killed.

// pySubScript subscribes to the channels in argv ("p:" marks a pattern),
// retrying the connection until it is subscribed, prints "ready", then
// prints every message's payload, one a line, until the payload "END".
const pySubScript = `
import os, sys, time, redis
host, port = os.environ["RESP_HOST"], int(os.environ["RESP_PORT"])
names = sys.argv[1:]
deadline = time.time() + 60
while True:
    try:
        r = redis.Redis(host=host, port=port, socket_timeout=120, socket_connect_timeout=2)
        p = r.pubsub()
        for n in names:
            if n.startswith("p:"):
                p.psubscribe(n[2:])
            else:
                p.subscribe(n)
        got = 0
        while got < len(names):
            m = p.get_message(timeout=10)
            if m is None:
                raise redis.TimeoutError("no confirmation")
            if m["type"] in ("subscribe", "psubscribe"):
                got += 1
        break
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as e:
        if time.time() > deadline:
            raise
        time.sleep(0.05)
print("ready", flush=True)
for m in p.listen():
    if m["type"] not in ("message", "pmessage"):
        continue
    d = m["data"].decode()
    print(d, flush=True)
    if d == "END":
        break
`

// pySub is one redis-py subscriber process.
type pySub struct {
	t     *testing.T
	name  string
	lines chan string
	cmd   *exec.Cmd
}

func startPySub(t *testing.T, python, script, addr string, names ...string) *pySub {
	t.Helper()
	host, port := respHostPort(t, addr)
	cmd := exec.Command(python, append([]string{script}, names...)...)
	cmd.Env = append(os.Environ(), "RESP_HOST="+host, "RESP_PORT="+port)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &pySub{t: t, name: addr + " " + strings.Join(names, ","), lines: make(chan string, 1<<16), cmd: cmd}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return s
}

// next returns the next line, failing after a deadline.
func (s *pySub) next() string {
	s.t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			s.t.Fatalf("subscriber %s exited", s.name)
		}
		return l
	case <-time.After(60 * time.Second):
		s.t.Fatalf("subscriber %s: nothing for 60s", s.name)
	}
	return ""
}

func (s *pySub) waitReady() {
	s.t.Helper()
	if l := s.next(); l != "ready" {
		s.t.Fatalf("subscriber %s: %q before ready", s.name, l)
	}
}

// untilEnd returns every payload received before END.
func (s *pySub) untilEnd() []string {
	s.t.Helper()
	var got []string
	for {
		l := s.next()
		if l == "END" {
			return got
		}
		got = append(got, l)
	}
}

func needRedisPy(t *testing.T) (python, script string) {
	t.Helper()
	python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	respTool(t, "redis-cli", "redis-tools") // installs python3-redis too, if missing
	if err := exec.Command(python, "-c", "import redis").Run(); err != nil {
		t.Skip("python3-redis is not installed")
	}
	script = filepath.Join(t.TempDir(), "sub.py")
	if err := os.WriteFile(script, []byte(pySubScript), 0o644); err != nil {
		t.Fatal(err)
	}
	return python, script
}

func TestPubSubRedisPy(t *testing.T) {
	python, script := needRedisPy(t)
	c, addrs := respCluster(t)
	leader := c.WaitForLeader()
	fs := c.Followers(leader)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rdb := func(addr string) *redis.Client {
		r := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ReadTimeout: 15 * time.Second})
		t.Cleanup(func() { r.Close() })
		return r
	}

	t.Run("across nodes", func(t *testing.T) {
		subs := []*pySub{startPySub(t, python, script, addrs[fs[0].ID], "chat"), startPySub(t, python, script, addrs[fs[1].ID], "p:ch*")}
		for _, s := range subs {
			s.waitReady()
		}
		onLeader, onFollower := rdb(addrs[leader.ID]), rdb(addrs[fs[0].ID])
		var want []string
		for i := 0; i < 20; i++ {
			p := onLeader
			if i%2 == 1 {
				p = onFollower // relayed to the leader
			}
			m := "m" + strconv.Itoa(i)
			if err := p.Publish(ctx, "chat", m).Err(); err != nil {
				t.Fatal(err)
			}
			want = append(want, m)
		}
		// Inside MULTI: once per subscriber, not once per replica.
		tx := onFollower.TxPipeline()
		tx.Publish(ctx, "chat", "tx1")
		tx.Incr(ctx, "counter")
		tx.Publish(ctx, "chat", "tx2")
		if _, err := tx.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		want = append(want, "tx1", "tx2")
		onLeader.Publish(ctx, "other", "not for them")
		onLeader.Publish(ctx, "chat", "END")
		for _, s := range subs {
			if got := s.untilEnd(); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("%s received\n%v\nwant\n%v", s.name, got, want)
			}
		}
	})

	t.Run("no duplicate after a restart", func(t *testing.T) {
		// Messages in the log that the restarted node replays.
		pub := rdb(addrs[leader.ID])
		for i := 0; i < 100; i++ {
			if err := pub.Publish(ctx, "chat", "old"+strconv.Itoa(i)).Err(); err != nil {
				t.Fatal(err)
			}
		}
		st, err := leader.Stats()
		if err != nil {
			t.Fatal(err)
		}
		f := fs[0]
		c.WaitForIndex(f, st.AppliedIndex) // they are all in its log
		// The others paused: the restarted node cannot replay its log
		// until the subscriber below is subscribed.
		others := []*Node{leader, fs[1]}
		for _, o := range others {
			o.Pause()
		}
		f.Kill()
		clientRestart(c, f)
		s := startPySub(t, python, script, addrs[f.ID], "chat")
		s.waitReady()
		for _, o := range others {
			o.Resume()
		}
		clientWaitRestarted(t, c, f)
		respWaitWritable(t, addrs[f.ID], f.ID)
		pub = rdb(addrs[c.WaitForLeader().ID])
		pub.Publish(ctx, "chat", "new")
		pub.Publish(ctx, "chat", "END")
		if got := s.untilEnd(); len(got) != 1 || got[0] != "new" {
			t.Fatalf("after the restart the subscriber received %d messages %.200v, want [new]", len(got), got)
		}
	})

	t.Run("leader kill", func(t *testing.T) {
		leader := c.WaitForLeader()
		fs := c.Followers(leader)
		subs := []*pySub{startPySub(t, python, script, addrs[fs[0].ID], "k"), startPySub(t, python, script, addrs[fs[1].ID], "p:k*")}
		for _, s := range subs {
			s.waitReady()
		}
		// One publisher per follower, each numbering its messages; the
		// acknowledged ones must all arrive, none twice.
		var mu sync.Mutex
		acked := map[string]bool{}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for p, f := range fs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := redis.NewClient(&redis.Options{Addr: addrs[f.ID], MaxRetries: -1, ReadTimeout: 20 * time.Second})
				defer r.Close()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					m := fmt.Sprintf("p%d-%d", p, i)
					if r.Publish(ctx, "k", m).Err() == nil {
						mu.Lock()
						acked[m] = true
						mu.Unlock()
					} else {
						time.Sleep(20 * time.Millisecond)
					}
				}
			}()
		}
		time.Sleep(time.Second)
		leader.Kill()
		t.Logf("killed the leader %s", leader.ID)
		Eventually(t, "publishes acknowledged after the kill", func() error {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			pub := rdb(addrs[fs[0].ID])
			if err := pub.Publish(ctx, "probe", "x").Err(); err != nil {
				return err
			}
			if n < 50 {
				return fmt.Errorf("%d acknowledged", n)
			}
			return nil
		})
		time.Sleep(time.Second)
		close(stop)
		wg.Wait()
		if err := rdb(addrs[fs[0].ID]).Publish(ctx, "k", "END").Err(); err != nil {
			t.Fatal(err)
		}
		for _, s := range subs {
			got := s.untilEnd()
			seen := map[string]int{}
			for _, m := range got {
				seen[m]++
			}
			for m, n := range seen {
				if n > 1 {
					t.Errorf("%s received %s %d times", s.name, m, n)
				}
			}
			missing := 0
			for m := range acked {
				if seen[m] == 0 {
					missing++
				}
			}
			if missing > 0 {
				t.Errorf("%s lost %d of %d acknowledged messages", s.name, missing, len(acked))
			}
			t.Logf("%s: %d received, %d acknowledged", s.name, len(got), len(acked))
		}
		clientRestart(c, leader)
		clientWaitRestarted(t, c, leader)
	})
}
