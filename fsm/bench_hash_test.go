package fsm

import (
	"strconv"
	"testing"
)

// Big-collection benchmarks (docs/benchmarks.md): single commands on a
// hash and a set of 1M elements stay O(log n), and an entry that writes
// one copies the published collection in O(1).
//
//	go test ./fsm -run '^$' -bench 'Big(Hash|Set)' -benchtime 20000x

const bigN = 1 << 20

// bigFSM holds key "big" with bigN elements, written by cmd (HSET or
// SADD) 1024 elements per command.
func bigFSM(b *testing.B, cmd string) (*FSM, *logBuilder) {
	b.Helper()
	f := New(nil)
	lb := &logBuilder{}
	raiseLevel(&testing.T{}, f, lb, LevelTypes)
	for i := 0; i < bigN; {
		args := [][]byte{[]byte(cmd), []byte("big")}
		for j := 0; j < 1024; j, i = j+1, i+1 {
			m := []byte("member:" + strconv.Itoa(i))
			args = append(args, m)
			if cmd == "HSET" {
				args = append(args, []byte("value"))
			}
		}
		applyOne(b, f, lb.cmd(Command{Op: OpExec, Now: t0, Units: []Unit{{Cmds: [][][]byte{args}}}}))
	}
	if n := f.View(t0).Exec(argv("EXISTS big")); n.Int != 1 {
		b.Fatal("not populated")
	}
	return f, lb
}

// benchWrite applies one entry per iteration with one command.
func benchWrite(b *testing.B, f *FSM, lb *logBuilder, cmd func(i int) [][]byte) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		applyOne(b, f, lb.cmd(Command{Op: OpExec, Now: t0, Units: []Unit{{Cmds: [][][]byte{cmd(i)}}}}))
	}
}

func benchRead(b *testing.B, f *FSM, cmd func(i int) [][]byte) {
	v := f.View(t0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := v.Exec(cmd(i)); r.IsError() {
			b.Fatal(r)
		}
	}
}

func member(i int) []byte { return []byte("member:" + strconv.Itoa((i*7919)%bigN)) }

func BenchmarkBigHash(b *testing.B) {
	f, lb := bigFSM(b, "HSET")
	b.Run("HSET", func(b *testing.B) {
		benchWrite(b, f, lb, func(i int) [][]byte { return [][]byte{[]byte("HSET"), []byte("big"), member(i), []byte("new")} })
	})
	b.Run("HGET", func(b *testing.B) {
		benchRead(b, f, func(i int) [][]byte { return [][]byte{[]byte("HGET"), []byte("big"), member(i)} })
	})
	b.Run("HRANDFIELD", func(b *testing.B) {
		benchRead(b, f, func(i int) [][]byte { return [][]byte{[]byte("HRANDFIELD"), []byte("big")} })
	})
}

func BenchmarkBigSet(b *testing.B) {
	f, lb := bigFSM(b, "SADD")
	b.Run("SADD", func(b *testing.B) {
		benchWrite(b, f, lb, func(i int) [][]byte { return [][]byte{[]byte("SADD"), []byte("big"), []byte("new:" + strconv.Itoa(i))} })
	})
	b.Run("SISMEMBER", func(b *testing.B) {
		benchRead(b, f, func(i int) [][]byte { return [][]byte{[]byte("SISMEMBER"), []byte("big"), member(i)} })
	})
	b.Run("SPOP", func(b *testing.B) {
		benchWrite(b, f, lb, func(i int) [][]byte { return [][]byte{[]byte("SPOP"), []byte("big")} })
	})
}
