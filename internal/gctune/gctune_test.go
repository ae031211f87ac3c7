package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, maxPercent},
		{mib, maxPercent}, // 6300% capped
		{8 * mib, 700},    // 8 MiB live -> goal 64 MiB
		{32 * mib, 100},   // goal exactly 64 MiB
		{60 * mib, 100},   // base wins
		{200 * mib, 100},  // past the minimum goal: Go's default
		{16 * mib, 300},   // 16 -> 64: +300%
	} {
		if got := percentFor(c.live, 64*mib, 100); got != c.want {
			t.Errorf("percentFor(%d MiB) = %d, want %d", c.live/mib, got, c.want)
		}
	}
}

// TestTunerFollowsCollections: each collection re-tunes GOGC from the
// live heap it found (the finalizer hook re-arms), and Stop puts the base
// back.
func TestTunerFollowsCollections(t *testing.T) {
	t.Setenv("GOGC", "")
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	const goal = 64 << 20
	runtime.GC()
	tu := Start(goal, 100)
	if tu == nil {
		t.Fatal("Start returned nil without GOGC in the environment")
	}
	defer tu.Stop()
	small := tu.Percent()
	if small <= 100 {
		t.Fatalf("Percent with a small live heap = %d, want more than 100", small)
	}
	waitPercent := func(what string, ok func(int) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok(tu.Percent()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: Percent = %d", what, tu.Percent())
			}
			runtime.GC()
			time.Sleep(10 * time.Millisecond) // finalizers run on their own goroutine
		}
	}
	// A live heap past the goal: back to the base.
	big := make([][]byte, 80)
	for i := range big {
		big[i] = make([]byte, 1<<20)
	}
	waitPercent("with 80 MiB live", func(p int) bool { return p == 100 })
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC in effect = %d, want 100", got)
	}
	runtime.KeepAlive(big)
	big = nil
	waitPercent("after the 80 MiB became garbage", func(p int) bool { return p > 100 })

	tu.Stop()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC after Stop = %d, want 100", got)
	}
}

func TestGOGCFromEnvironmentWins(t *testing.T) {
	t.Setenv("GOGC", "50")
	if tu := Start(64<<20, 100); tu != nil {
		tu.Stop()
		t.Fatal("Start tuned although GOGC is set in the environment")
	}
}
