package node

import (
	"errors"
	"testing"

	"github.com/raftcache/raftcache/fsm"
)

// A watcher that saw 10.1 of an entry with three events on one node
// resumes on another whose state came from a snapshot at index 10: that
// node never recorded 10.2 and 10.3, so the resume is refused (410) and
// the watcher relists, rather than going on from 11 without them. 10.0,
// the position that node's own notices carry after the restore, resumes.
func TestResumeInsideRestoredEntry(t *testing.T) {
	n := &Node{feed: newFeed(16, 8), fsm: fsm.New(nil)}
	n.feed.apply(fsm.Change{Index: 10, All: true, Restored: true})
	n.feed.apply(fsm.Change{Index: 11, Keys: []string{"z"}, Versions: []uint64{11}})
	if w, err := n.Watch("", &EventID{Index: 10, Pos: 1}); !errors.Is(err, ErrCompacted) {
		var got []WatchEvent
		for w != nil && len(w.C()) > 0 {
			got = append(got, <-w.C())
		}
		t.Fatalf("resume from 10.1 after a restore at 10: err %v, replayed %v; want ErrCompacted", err, got)
	}
	w, err := n.Watch("", &EventID{Index: 10})
	if err != nil {
		t.Fatalf("resume from 10.0, the restore's own position: %v", err)
	}
	if len(w.C()) != 1 {
		t.Fatalf("resume from 10.0 replayed %d events, want 1 (11.1)", len(w.C()))
	}
	if e := <-w.C(); e.ID != (EventID{Index: 11, Pos: 1}) || e.Key != "z" {
		t.Fatalf("resume from 10.0 replayed %+v, want 11.1 of z", e)
	}
	w.Close()
}
