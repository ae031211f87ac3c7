package transport

import (
	"net"
	"testing"
	"time"
)

// After a flood of connections closes, memory is handed back once; a
// small peak does not trigger it.
func TestMemoryIsReleasedAfterAFlood(t *testing.T) {
	released := make(chan struct{}, 10)
	old := releaseMemory
	releaseMemory = func() { released <- struct{}{} }
	defer func() { releaseMemory = old }()

	l := newConnLimiter(2 * releasePeak)
	open := func(n int) []*trackedConn {
		var out []*trackedConn
		for range n {
			a, b := net.Pipe()
			b.Close()
			tc := l.admit(a)
			if tc == nil {
				t.Fatal("refused under the cap")
			}
			out = append(out, tc)
		}
		return out
	}
	small := open(releasePeak / 2)
	for _, c := range small {
		c.Close()
	}
	select {
	case <-released:
		t.Fatal("released after a peak under releasePeak")
	case <-time.After(2 * releaseQuiet):
	}

	flood := open(releasePeak)
	start := time.Now()
	for _, c := range flood {
		c.Close()
	}
	select {
	case <-released:
	case <-time.After(releaseMaxWait + 5*time.Second):
		t.Fatal("memory not released after the flood closed")
	}
	if took := time.Since(start); took > releaseMaxWait {
		t.Errorf("released %v after the flood began closing", took)
	}
	select {
	case <-released:
		t.Fatal("released twice")
	case <-time.After(2 * releaseQuiet):
	}
	if st := l.stats(); st.Open != 0 {
		t.Errorf("stats %+v after closing everything", st)
	}
}
