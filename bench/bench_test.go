package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/raftcache/raftcache/node"
	"github.com/raftcache/raftcache/transport"
)

// startCluster runs a real cluster of size nodes in process (the first
// bootstraps, the others are added by it) and returns their URLs, the
// leader's first, once every node is ready. A zero timeout keeps Raft's
// defaults.
func startCluster(tb testing.TB, size int, timeout time.Duration) []string {
	tb.Helper()
	var urls []string
	var nodes []*node.Node
	for i := range size {
		srv := httptest.NewUnstartedServer(nil)
		n, err := node.New(node.Config{
			ID:               "n" + strconv.Itoa(i+1),
			RaftAddr:         "127.0.0.1:0",
			HTTPAddr:         srv.Listener.Addr().String(),
			DataDir:          tb.TempDir(),
			Bootstrap:        i == 0,
			HeartbeatTimeout: timeout,
			ElectionTimeout:  timeout,
		})
		if err != nil {
			tb.Fatal(err)
		}
		srv.Config.Handler = transport.New(n, transport.Config{})
		srv.Start()
		tb.Cleanup(func() {
			srv.Close()
			if err := n.Close(); err != nil {
				tb.Errorf("close node: %v", err)
			}
		})
		urls = append(urls, srv.URL)
		nodes = append(nodes, n)
		if i == 0 {
			waitReady(tb, srv.URL, true)
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := nodes[0].AddMember(ctx, node.Member{ID: n.ID(), RaftAddr: n.RaftAddr(), HTTPAddr: n.HTTPAddr(), Voter: true})
			cancel()
			if err != nil {
				tb.Fatalf("add %s: %v", n.ID(), err)
			}
			waitReady(tb, srv.URL, true)
		}
	}
	return urls
}

// waitReady polls url's /readyz (and, when leader is true, /v1/cluster
// until it names the leader's HTTP address) for up to 10s.
func waitReady(tb testing.TB, url string, leader bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok := false
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK
		}
		if ok && leader {
			var cj clusterJSON
			ok = getJSON(context.Background(), http.DefaultClient, url+"/v1/cluster", &cj) == nil &&
				cj.Leader != nil && cj.Leader.HTTPAddr != ""
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not ready after 10s (last error: %v)", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunAgainstOneNode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real node")
	}
	url := startCluster(t, 1, 50*time.Millisecond)[0]
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
