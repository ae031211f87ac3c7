package node

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestTransferStreak: the mark counts as stuck only when every probe for
// longer than the limit found it; one probe without it (or off the
// leader) starts the count again.
func TestTransferStreak(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	limit := 100 * time.Millisecond
	var s transferStreak
	steps := []struct {
		ms     int
		marked bool
		stuck  bool
	}{
		{0, true, false},
		{60, true, false},
		{90, false, false}, // cleared: a transfer that ended
		{100, true, false},
		{180, true, false}, // 80 ms into the new run
		{200, true, false}, // exactly the limit is not beyond it
		{201, true, true},
	}
	for _, st := range steps {
		if got := s.observe(at(st.ms), st.marked, limit); got != st.stuck {
			t.Fatalf("at %d ms (marked %v): stuck %v, want %v", st.ms, st.marked, got, st.stuck)
		}
	}
}

// TestStuckTransferWedges: on a real three-node cluster, a leadership
// transfer to a stopped member holds raft's "transfer in progress" mark
// (writes refused) until the transfer times out, one election timeout.
// With StuckTransferAfter far below that, the leader's probe must find
// the mark and report the node wedged, and only the leader. hashicorp/raft#696
// itself (a mark that is never cleared) cannot be produced on demand; this
// is the same mark held long enough to be seen.
func TestStuckTransferWedges(t *testing.T) {
	nodes := newCluster(t, 3, func(c *Config) {
		c.StuckTransferAfter = 100 * time.Millisecond
		c.ElectionTimeout = 5 * time.Second // how long the transfer holds the mark
	})
	leader := waitForLeader(t, nodes...)
	target, other := others(nodes, leader)[0], others(nodes, leader)[1]
	if err := target.Close(); err != nil {
		t.Fatal(err)
	}
	// Behind by an entry, the target keeps the transfer waiting on its
	// replication.
	mustSet(t, leader, "k", "v")
	if leader.WedgedReason() != nil {
		t.Fatal("wedged before any transfer")
	}
	done := make(chan error, 1)
	go func() { done <- leader.TransferLeadership(target.ID()) }()
	// Writes are refused while the transfer runs; a refusal is what makes
	// the leader probe.
	refused := 0
	waitFor(t, "the leader to report itself wedged", func() bool {
		select {
		case <-leader.Wedged():
			return true
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := leader.Set(ctx, []byte("during"), []byte("transfer"), 0); errors.Is(err, ErrNotLeader) {
			refused++
		}
		return false
	})
	t.Logf("%d writes refused before the leader counted as wedged", refused)
	if err := leader.WedgedReason(); !errors.Is(err, ErrWedged) {
		t.Fatalf("WedgedReason = %v, want ErrWedged", err)
	}
	select {
	case err := <-done:
		t.Logf("the transfer ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the transfer to a stopped member did not end")
	}
	if err := other.WedgedReason(); err != nil {
		t.Fatalf("a follower reported itself wedged: %v", err)
	}
}
