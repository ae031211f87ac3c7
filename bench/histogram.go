package bench

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: every power-of-two range of
// latencies is split into 2^subBits buckets, so a recorded value is known
// to within 1/64 (1.6%) of itself.
const subBits = 6

const (
	subCount   = 1 << subBits
	numBuckets = (64 - subBits + 1) * subCount
)

// Histogram records latencies in nanoseconds in log-linear buckets: exact
// below 64ns, within 1.6% above. It takes any value from 0 to the largest
// time.Duration in constant memory. The zero value is empty and ready to
// use; it is not safe for concurrent use (give each worker its own and
// Merge them).
type Histogram struct {
	counts [numBuckets]uint64
	n      uint64
	sum    float64 // nanoseconds
	min    time.Duration
	max    time.Duration
}

// bucketOf maps a non-negative value to its bucket: values below 64 have
// their own bucket, larger ones share one with values of the same bit
// length and the same top 7 bits.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - subBits // >= 1
	m := v >> (e - 1)            // in [subCount, 2*subCount)
	return e*subCount + int(m-subCount)
}

// bucketUpper is the largest value that falls in bucket b.
func bucketUpper(b int) uint64 {
	if b < subCount {
		return uint64(b)
	}
	e := b / subCount
	m := uint64(b%subCount + subCount)
	return (m+1)<<(e-1) - 1
}

// Record adds one latency; negative ones count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += float64(d)
}

// Merge adds o's records to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of recorded latencies.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest recorded latency (exact).
func (h *Histogram) Max() time.Duration { return h.max }

// Min is the smallest recorded latency (exact).
func (h *Histogram) Min() time.Duration { return h.min }

// Mean is the average recorded latency (exact up to float rounding).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the latency below or at which a fraction q (0 to 1) of
// the records lie: the upper bound of the bucket holding the record of
// rank ceil(q*n), clamped to [Min, Max]. It overstates the true value by
// at most 1/64 of it. An empty histogram gives 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q*float64(h.n) - 1e-9)) // 0.999*n may round up
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			v := time.Duration(bucketUpper(b))
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}
