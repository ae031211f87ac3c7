package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/resp"
	"github.com/raftcache/raftcache/transport"
)

// TestTrackingDelay measures how long after a write is acknowledged the
// Redis port pushes its invalidation to a tracking client (CLIENT TRACKING
// ON BCAST, RESP3), on the leader and on a follower: p50, p99. A
// measurement, not a check: RAFTCACHE_BENCH_WATCH=1 (bench/watch-delay.sh).
func TestTrackingDelay(t *testing.T) {
	if os.Getenv("RAFTCACHE_BENCH_WATCH") == "" {
		t.Skip("a measurement: RAFTCACHE_BENCH_WATCH=1 (bench/watch-delay.sh)")
	}
	c := testcluster.Start(t, 3, testcluster.Options{HTTP: &transport.Config{}, RESP: &resp.Config{},
		Configure: func(_ string, nc *testcluster.NodeConfig) {
			nc.Node.HeartbeatTimeout, nc.Node.ElectionTimeout = 0, 0
		}})
	l := c.WaitAgreed(t)
	nodes := map[string]*testcluster.Node{"leader": l, "follower": c.Followers(l)[0]}
	var mu sync.Mutex
	arrived := map[string]map[string]time.Time{}
	for name, n := range nodes {
		conn, err := net.Dial("tcp", n.RESPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "HELLO 3\r\nCLIENT TRACKING ON BCAST PREFIX d:\r\n")
		arrived[name] = map[string]time.Time{}
		go func() {
			r := bufio.NewReader(conn)
			// Invalidation pushes: >2 $10 invalidate *1 $N key
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if !strings.HasPrefix(line, "$") || !strings.HasPrefix(strings.TrimSpace(line), "$") {
					continue
				}
				v, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if k := strings.TrimSpace(v); strings.HasPrefix(k, "d:") {
					now := time.Now()
					mu.Lock()
					if _, seen := arrived[name][k]; !seen {
						arrived[name][k] = now
					}
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // the subscriptions are on
	cl, err := client.New(client.Config{Endpoints: []string{l.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 2000
	acked := map[string]time.Time{}
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("d:%d", i)
		if _, err := cl.Set(context.Background(), k, []byte("v")); err != nil {
			t.Fatal(err)
		}
		acked[k] = time.Now()
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	for _, name := range []string{"leader", "follower"} {
		var d []time.Duration
		for k, at := range acked {
			if got, ok := arrived[name][k]; ok {
				d = append(d, max(0, got.Sub(at)))
			}
		}
		if len(d) == 0 {
			t.Fatalf("no invalidations on the %s", name)
		}
		t.Logf("tracking invalidation delay on the %s: %d pushes of %d writes, %s", name, len(d), n, percentiles(d))
	}
}
