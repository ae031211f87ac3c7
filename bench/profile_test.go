package bench

import (
	"context"
	"testing"
	"time"
)

// BenchmarkCluster runs each workload against a 3-node cluster in this
// process, with Raft's default timeouts, so a CPU profile covers the
// servers (node, transport, raft, bolt) as well as the load:
//
//	go test ./bench -run '^$' -bench 'Cluster/set' -benchtime 20000x -cpuprofile cpu.out
//	go tool pprof -top -nodecount 40 bench.test cpu.out
//
// The load client's share shows up under net/http's client side and
// bench.(*runner).one. Figures here are not comparable with compare.sh's:
// client and servers share one process and its scheduler.
func BenchmarkCluster(b *testing.B) {
	urls := startCluster(b, 3, true)
	for _, w := range Workloads {
		b.Run(w, func(b *testing.B) {
			res, err := Run(context.Background(), Config{
				Endpoints: urls,
				Workload:  w,
				Clients:   64,
				Requests:  int64(b.N),
				Duration:  5 * time.Minute, // a bound, not the length
			})
			if err != nil {
				b.Fatal(err)
			}
			if res.Errors > 0 {
				b.Errorf("%d errors: %v", res.Errors, res.ErrorKinds)
			}
			b.ReportMetric(res.OpsPerSec, "ops/s")
			b.ReportMetric(res.LatencyMS.P50, "p50-ms")
			b.ReportMetric(res.LatencyMS.P99, "p99-ms")
		})
	}
}
