package fsm

import (
	"fmt"
	"math/rand"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkZSet shows sorted set commands staying O(log n): the same
// command on sets of 10k, 100k and 1M elements (members m%09d with score
// 2i). Writes go through Apply, one entry per operation (the set is
// copied once per entry, its touched paths lazily); reads run on a view.
//
// Besides ns/op (wall time), each reports cpu-ns/op, the process's CPU
// time per operation (user + system, the garbage collector included),
// which a machine shared with other work distorts less.
//
//	go test ./fsm -run '^$' -bench BenchmarkZSet -benchtime 20000x
func BenchmarkZSet(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		f, lb := zsetBenchFSM(b, n)
		rng := rand.New(rand.NewSource(1))
		member := func() string { return fmt.Sprintf("m%09d", rng.Intn(n)) }
		entry := func(cmds ...[][]byte) *raft.Log {
			return lb.cmd(Command{Op: OpExec, Now: t0, Units: []Unit{{Mode: UnitPlain, Cmds: cmds}}})
		}
		b.Run(fmt.Sprintf("SET-baseline/n=%d", n), func(b *testing.B) {
			// The cost of an entry itself at this heap size (decoding,
			// publishing, the garbage collector's share), for comparison.
			logs := make([]*raft.Log, b.N)
			for i := range logs {
				logs[i] = entry([][]byte{[]byte("SET"), []byte("other"), []byte(strconv.Itoa(i))})
			}
			b.ResetTimer()
			c0 := cpuTime()
			for _, l := range logs {
				f.Apply(l)
			}
			reportCPU(b, c0)
		})
		b.Run(fmt.Sprintf("ZADD/n=%d", n), func(b *testing.B) {
			// A new score for an existing member: a removal and an
			// insertion in the tree, the size unchanged.
			logs := make([]*raft.Log, b.N)
			for i := range logs {
				logs[i] = entry([][]byte{[]byte("ZADD"), []byte("big"), []byte(strconv.Itoa(rng.Intn(2 * n))), []byte(member())})
			}
			b.ResetTimer()
			c0 := cpuTime()
			for _, l := range logs {
				f.Apply(l)
			}
			reportCPU(b, c0)
		})
		b.Run(fmt.Sprintf("ZRANGEBYSCORE/n=%d", n), func(b *testing.B) {
			v := f.View(t0)
			c0 := cpuTime()
			for i := 0; i < b.N; i++ {
				lo := rng.Intn(2 * n)
				v.Exec([][]byte{[]byte("ZRANGEBYSCORE"), []byte("big"), []byte(strconv.Itoa(lo)), []byte("+inf"), []byte("LIMIT"), []byte("0"), []byte("10")})
			}
			reportCPU(b, c0)
		})
		b.Run(fmt.Sprintf("ZRANK/n=%d", n), func(b *testing.B) {
			v := f.View(t0)
			c0 := cpuTime()
			for i := 0; i < b.N; i++ {
				v.Exec([][]byte{[]byte("ZRANK"), []byte("big"), []byte(member())})
			}
			reportCPU(b, c0)
		})
		b.Run(fmt.Sprintf("ZREMRANGEBYRANK+ZADD/n=%d", n), func(b *testing.B) {
			// One entry removes the element at a random rank and adds a
			// new one, so the size stays n.
			logs := make([]*raft.Log, b.N)
			for i := range logs {
				r := []byte(strconv.Itoa(rng.Intn(n - 1)))
				logs[i] = entry([][]byte{[]byte("ZREMRANGEBYRANK"), []byte("big"), r, r},
					[][]byte{[]byte("ZADD"), []byte("big"), []byte(strconv.Itoa(rng.Intn(2 * n))), []byte(fmt.Sprintf("n%d-%d", n, i))})
			}
			b.ResetTimer()
			c0 := cpuTime()
			for _, l := range logs {
				f.Apply(l)
			}
			reportCPU(b, c0)
		})
	}
}

// zsetBenchFSM returns an FSM at level 3 whose key "big" holds n elements.
func zsetBenchFSM(b *testing.B, n int) (*FSM, *logBuilder) {
	f, lb := zsetFSM(b)
	for i := 0; i < n; i += 1000 {
		cmd := [][]byte{[]byte("ZADD"), []byte("big")}
		for j := i; j < min(n, i+1000); j++ {
			cmd = append(cmd, []byte(strconv.Itoa(2*j)), []byte(fmt.Sprintf("m%09d", j)))
		}
		f.Apply(lb.cmd(Command{Op: OpExec, Now: t0, Units: []Unit{{Mode: UnitPlain, Cmds: [][][]byte{cmd}}}}))
	}
	if got := f.View(t0).Exec(argv("ZCARD big")).Int; got != int64(n) {
		b.Fatalf("ZCARD %d, want %d", got, n)
	}
	return f, lb
}

// cpuTime is the process's CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(cpuTime()-since)/float64(b.N), "cpu-ns/op")
}
