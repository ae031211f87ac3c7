package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteText prints res for people, in the manner of redis-benchmark.
func WriteText(w io.Writer, res *Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "====== %s ======\n", res.Workload)
	what := map[string]string{
		Set:       "PUT /v1/kv/{key}",
		GetStrong: "GET /v1/kv/{key} (strong)",
		GetStale:  "GET /v1/kv/{key}?consistency=stale",
		Incr:      "POST /v1/incr/{key}",
		Mix:       fmt.Sprintf("%.0f%% GET (%s) / %.0f%% PUT", res.ReadRatio*100, res.MixReads, (1-res.ReadRatio)*100),
	}[res.Workload]
	fmt.Fprintf(&b, "  %s against %s\n", what, strings.Join(res.Targets, ", "))
	fmt.Fprintf(&b, "  %d clients, %d-byte values, %d keys\n", res.Clients, res.ValueSize, res.Keys)
	fmt.Fprintf(&b, "  %d requests completed in %.2f s, %d errors\n", res.Ops, res.Elapsed, res.Errors)
	kinds := make([]string, 0, len(res.ErrorKinds))
	for k := range res.ErrorKinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(&b, "    %8d  %s\n", res.ErrorKinds[k], k)
	}
	l := res.LatencyMS
	fmt.Fprintf(&b, "  throughput: %.0f ops/s\n", res.OpsPerSec)
	fmt.Fprintf(&b, "  latency ms: p50 %.3f  p95 %.3f  p99 %.3f  max %.3f  (min %.3f, mean %.3f)\n\n",
		l.P50, l.P95, l.P99, l.Max, l.Min, l.Mean)
	_, err := io.WriteString(w, b.String())
	return err
}
