package bench

import (
	"context"
	"testing"
	"time"

	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/transport"
)

// startCluster runs a real cluster of size nodes in process
// (internal/testcluster) and returns their URLs, the leader's first, once
// they agree on a leader that serves. defaults keeps the node's own Raft
// timings and snapshot settings (a profile of production settings)
// instead of the tests' short ones.
func startCluster(tb testing.TB, size int, defaults bool) []string {
	tb.Helper()
	opt := testcluster.Options{HTTP: &transport.Config{}}
	if defaults {
		opt.Configure = func(_ string, c *testcluster.NodeConfig) {
			c.Node.HeartbeatTimeout, c.Node.ElectionTimeout = 0, 0
			c.Node.SnapshotThreshold, c.Node.SnapshotInterval, c.Node.TrailingLogs = 0, 0, 0
		}
	}
	c := testcluster.Start(tb, size, opt)
	l := c.WaitAgreed(tb)
	urls := []string{l.URL}
	for _, f := range c.Followers(l) {
		urls = append(urls, f.URL)
	}
	return urls
}

func TestRunAgainstOneNode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real node")
	}
	url := startCluster(t, 1, false)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, w := range Workloads {
		t.Run(w, func(t *testing.T) {
			res, err := Run(ctx, Config{
				// An unreachable endpoint first: discovery moves on.
				Endpoints: []string{"http://127.0.0.1:1", url},
				Workload:  w,
				Clients:   8,
				ValueSize: 100,
				Keys:      50,
				Duration:  200 * time.Millisecond,
				Timeout:   5 * time.Second,
				MixReads:  map[bool]string{true: "stale", false: "strong"}[w == Mix],
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %.0f ops/s, p50 %.2fms p99 %.2fms max %.2fms, %d errors %v",
				w, res.OpsPerSec, res.LatencyMS.P50, res.LatencyMS.P99, res.LatencyMS.Max, res.Errors, res.ErrorKinds)
			if res.Errors != 0 {
				t.Errorf("errors: %v", res.ErrorKinds)
			}
			if res.Ops == 0 || res.OpsPerSec <= 0 {
				t.Errorf("no successful requests: %+v", res)
			}
			l := res.LatencyMS
			if !(l.Min <= l.P50 && l.P50 <= l.P95 && l.P95 <= l.P99 && l.P99 <= l.Max) {
				t.Errorf("latencies out of order: %+v", l)
			}
			// Bounded by the duration plus the requests in flight.
			if res.Elapsed < 0.2 || res.Elapsed > 5 {
				t.Errorf("elapsed %.2fs for a 200ms run", res.Elapsed)
			}
			if res.Leader != url || len(res.Targets) != 1 || res.Targets[0] != url {
				t.Errorf("leader %q targets %v, want %q", res.Leader, res.Targets, url)
			}
		})
	}

	// A request budget bounds the run too.
	res, err := Run(ctx, Config{Endpoints: []string{url}, Workload: Incr, Clients: 4, Requests: 100, Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops+res.Errors != 100 {
		t.Errorf("requests=100 gave %d ops and %d errors", res.Ops, res.Errors)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Workload: Set},
		{Endpoints: []string{"http://x"}, Workload: "nope"},
		{Endpoints: []string{"http://x"}, Workload: Mix, ReadRatio: 2},
		{Endpoints: []string{"http://x"}, Workload: Mix, MixReads: "weak"},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}
