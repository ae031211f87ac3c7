package bench

import (
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

func TestBucketsAreContiguous(t *testing.T) {
	// Every value maps to a bucket whose upper bound is at or above it,
	// and the previous bucket's upper bound is below it.
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1 << 20, 1<<20 + 1, 123456789, 1<<40 - 1, 1 << 62} {
		b := bucketOf(v)
		if up := bucketUpper(b); up < v {
			t.Errorf("value %d: bucket %d ends at %d", v, b, up)
		}
		if b > 0 && bucketUpper(b-1) >= v {
			t.Errorf("value %d: previous bucket %d ends at %d", v, b-1, bucketUpper(b-1))
		}
		if up := bucketUpper(b); v >= subCount && float64(up-v) > float64(v)/subCount {
			t.Errorf("value %d: bucket upper bound %d is more than 1/%d above", v, up, subCount)
		}
	}
	for b := 1; b < numBuckets-1; b++ {
		if bucketOf(bucketUpper(b-1)+1) != b {
			t.Fatalf("bucket %d does not start right after bucket %d", b, b-1)
		}
	}
}

func TestQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should give zeros")
	}
	// 1ms, 2ms, ..., 1000ms in random order.
	for _, i := range rand.Perm(1000) {
		h.Record(time.Duration(i+1) * time.Millisecond)
	}
	if h.Count() != 1000 {
		t.Fatalf("count %d", h.Count())
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.95, 950 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {0.001, time.Millisecond}} {
		got := h.Quantile(tc.q)
		if got < tc.want || float64(got-tc.want) > float64(tc.want)/subCount {
			t.Errorf("q%.3f = %v, want %v (within 1/%d above)", tc.q, got, tc.want, subCount)
		}
	}
	if h.Max() != time.Second || h.Min() != time.Millisecond || h.Quantile(1) != time.Second {
		t.Errorf("min %v max %v q1 %v", h.Min(), h.Max(), h.Quantile(1))
	}
	if h.Mean() != 500500*time.Microsecond {
		t.Errorf("mean %v", h.Mean())
	}
}

func TestMergeMatchesOneHistogram(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var all, a, b Histogram
	var vals []time.Duration
	for i := range 10000 {
		// Log-normal-ish latencies from 10µs to seconds.
		d := time.Duration(10e3 * (1 + rng.ExpFloat64()*rng.ExpFloat64()*100))
		vals = append(vals, d)
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("q%v: merged %v, single %v", q, a.Quantile(q), all.Quantile(q))
		}
		exact := vals[int(q*float64(len(vals)))-1]
		got := all.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/subCount {
			t.Errorf("q%v = %v, exact %v", q, got, exact)
		}
	}
	if a.Max() != vals[len(vals)-1] || a.Min() != vals[0] || a.Count() != 10000 {
		t.Errorf("merged min %v max %v count %d", a.Min(), a.Max(), a.Count())
	}
}
