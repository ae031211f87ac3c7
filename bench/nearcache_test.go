package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftcache/raftcache/client"
)

// BenchmarkNearCacheGet compares a near-cache hit with a plain GET of
// the same key, in one process, against a 3-node cluster in this process:
//
//	go test ./bench -run '^$' -bench NearCache -benchtime 3s
//
// The ratio of the two ns/op is the near cache's gain on hits
// (docs/benchmarks.md).
func BenchmarkNearCacheGet(b *testing.B) {
	urls := startCluster(b, 3, true)
	ctx := context.Background()
	plain, err := client.New(client.Config{Endpoints: urls})
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Set(ctx, "hot", []byte(strings.Repeat("v", 100))); err != nil {
		b.Fatal(err)
	}
	near, err := client.New(client.Config{Endpoints: urls[1:2], NearCache: &client.NearCache{MaxBytes: 1 << 20}})
	if err != nil {
		b.Fatal(err)
	}
	defer near.Close()
	deadline := time.Now().Add(30 * time.Second)
	for !near.NearCacheStats().Connected && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	b.Run("plain", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := plain.Get(ctx, "hot"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("near", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := near.Get(ctx, "hot"); err != nil {
				b.Fatal(err)
			}
		}
		st := near.NearCacheStats()
		b.ReportMetric(float64(st.Hits)/float64(st.Hits+st.Misses), "hit-ratio")
	})
}

// TestWatchDelay measures how long after a write is acknowledged its
// change event reaches a watch stream on the leader and on a follower
// (p50, p99). It is a measurement, not a check: it runs only with
// RAFTCACHE_BENCH_WATCH=1 (bench/watch-delay.sh).
func TestWatchDelay(t *testing.T) {
	if os.Getenv("RAFTCACHE_BENCH_WATCH") == "" {
		t.Skip("a measurement: RAFTCACHE_BENCH_WATCH=1 (bench/watch-delay.sh)")
	}
	urls := startCluster(t, 3, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type arrival struct {
		node string
		at   time.Time
	}
	var mu sync.Mutex
	arrived := map[string][]arrival{}
	for i, u := range urls[:2] {
		name := []string{"leader", "follower"}[i]
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/v1/watch?prefix=d:", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("watch on %s: %v", name, err)
		}
		go func() {
			defer res.Body.Close()
			sc := bufio.NewScanner(res.Body)
			for sc.Scan() {
				line := sc.Text()
				if !strings.HasPrefix(line, "data: {\"key\"") {
					continue
				}
				now := time.Now()
				var e struct{ Key string }
				if json.Unmarshal([]byte(line[6:]), &e) == nil {
					mu.Lock()
					arrived[e.Key] = append(arrived[e.Key], arrival{name, now})
					mu.Unlock()
				}
			}
		}()
	}
	cl, err := client.New(client.Config{Endpoints: urls})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	n := 2000
	acked := make(map[string]time.Time, n)
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("d:%d", i)
		if _, err := cl.Set(context.Background(), key, []byte("v")); err != nil {
			t.Fatal(err)
		}
		acked[key] = time.Now()
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	delays := map[string][]time.Duration{}
	for k, at := range acked {
		for _, a := range arrived[k] {
			delays[a.node] = append(delays[a.node], max(0, a.at.Sub(at)))
		}
	}
	for _, name := range []string{"leader", "follower"} {
		d := delays[name]
		if len(d) == 0 {
			t.Fatalf("no events on the %s", name)
		}
		t.Logf("watch delay on the %s: %d events of %d writes, %s", name, len(d), n, percentiles(d))
	}
}

// percentiles sorts d and formats its p50, p99 and maximum.
func percentiles(d []time.Duration) string {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	r := func(x time.Duration) time.Duration { return x.Round(10 * time.Microsecond) }
	return fmt.Sprintf("p50 %v, p99 %v, max %v", r(d[len(d)/2]), r(d[len(d)*99/100]), r(d[len(d)-1]))
}
