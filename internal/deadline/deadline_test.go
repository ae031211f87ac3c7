package deadline

import (
	"context"
	"errors"
	"testing"
	"time"
)

// wait is the bound on anything that should happen at once.
const wait = 10 * time.Second

func TestSharedRoundsUpAndShares(t *testing.T) {
	var s Shared
	a, b := s.Context(time.Second), s.Context(time.Second)
	da, _ := a.Deadline()
	if w := time.Until(da); w < time.Second-Step || w > time.Second+Step {
		t.Fatalf("deadline in %v, want about 1s", w)
	}
	db, _ := b.Deadline()
	if db.Sub(da) > Step || db.Before(da) {
		t.Fatalf("two calls in a row got deadlines %v apart", db.Sub(da))
	}
	var s2 Shared
	short := s2.Context(time.Millisecond)
	select {
	case <-short.Done():
	case <-time.After(wait):
		t.Fatal("a 1ms deadline context never ended")
	}
	if !errors.Is(short.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err %v, want DeadlineExceeded", short.Err())
	}
	if a.Err() != nil {
		t.Fatal("a later deadline ended early")
	}
}

func TestSharedKeepsShorterTimeouts(t *testing.T) {
	var s Shared
	long := s.Context(time.Hour)
	short := s.Context(time.Millisecond)
	if d, _ := short.Deadline(); time.Until(d) > Step {
		t.Fatalf("a 1ms timeout after a 1h one ends in %v", time.Until(d))
	}
	if s.cur.Load().ctx != long {
		t.Fatal("the shorter timeout moved the shared step")
	}
	select {
	case <-short.Done():
	case <-time.After(wait):
		t.Fatal("the short deadline never ended")
	}
	if long.Err() != nil {
		t.Fatal("the long deadline ended with the short one")
	}
}

type key struct{}

func TestWithinEndsWithItsParent(t *testing.T) {
	var s Shared
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	c := s.Within(parent, time.Hour)
	defer c.Release()
	if c.Value(key{}) != "v" {
		t.Fatal("the parent's value is lost")
	}
	if d, ok := c.Deadline(); !ok || time.Until(d) < time.Hour-Step {
		t.Fatalf("deadline %v %v, want in an hour", d, ok)
	}
	done := c.Done()
	if c.Err() != nil {
		t.Fatalf("Err %v before anything ended", c.Err())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Done not closed after the parent was cancelled")
	}
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err %v, want Canceled", c.Err())
	}
}

func TestWithinEndsAtTheDeadline(t *testing.T) {
	var s Shared
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Waited on: the merged context ends at the deadline.
	c := s.Within(parent, time.Millisecond)
	defer c.Release()
	select {
	case <-c.Done():
	case <-time.After(wait):
		t.Fatal("Done not closed at the deadline")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err %v, want DeadlineExceeded", c.Err())
	}
	// Never waited on: Err still reports the deadline (once the shared
	// context's timer has fired, as with any context.WithDeadline).
	c2 := s.Within(parent, time.Millisecond)
	defer c2.Release()
	for end := time.Now().Add(wait); c2.Err() == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("Err still nil long past the deadline")
		}
	}
	if !errors.Is(c2.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err %v past the deadline, want DeadlineExceeded", c2.Err())
	}
	if c2.merged != nil {
		t.Fatal("Err alone made a merged context")
	}
	// A parent without Done: the shared context is the whole answer.
	c3 := s.Within(context.Background(), time.Millisecond)
	select {
	case <-c3.Done():
	case <-time.After(wait):
		t.Fatal("Done not closed at the deadline (parent Background)")
	}
	if parent.Err() != nil {
		t.Fatal("the parent ended with its child")
	}
}

func TestWithinKeepsAnEarlierParentDeadline(t *testing.T) {
	var s Shared
	parent, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	c := s.Within(parent, time.Hour)
	defer c.Release()
	pd, _ := parent.Deadline()
	if d, _ := c.Deadline(); !d.Equal(pd) {
		t.Fatalf("deadline %v, want the parent's %v", d, pd)
	}
	select {
	case <-c.Done():
	case <-time.After(wait):
		t.Fatal("Done not closed at the parent's deadline")
	}
}
