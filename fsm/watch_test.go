package fsm

import (
	"testing"
)

// EXEC applies nothing when a watched key was written, deleted (even if
// re-created... or created and deleted again), expired or flushed after
// WATCH; it applies when only other keys changed.
func TestWatch(t *testing.T) {
	for _, c := range []struct {
		name    string
		between []string
		broken  bool
	}{
		{"untouched", nil, false},
		{"other key", []string{"SET other 1"}, false},
		{"written", []string{"SET w 2"}, true},
		{"same value", []string{"SET w 1"}, true},
		{"deleted", []string{"DEL w"}, true},
		{"created and deleted", []string{"SET new 1", "DEL new"}, true},
		{"flushed", []string{"FLUSHALL"}, true},
		{"expiry set", []string{"EXPIRE w 100"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := New(nil)
			var b logBuilder
			execEntry(t, f, &b, t0, unit(UnitPlain, "SET w 1"))
			w := f.View(t0).Watch(argv("w new"))
			for _, l := range c.between {
				execEntry(t, f, &b, t0, unit(UnitPlain, l))
			}
			u := unit(UnitPlain, "SET out 1")
			u.Watch = w
			res := execEntry(t, f, &b, t0, u)
			got := res.Results[0].Err == ErrWatch
			if got != c.broken {
				t.Fatalf("broken = %v, want %v (%v)", got, c.broken, res.Results[0])
			}
			_, wrote := f.View(t0).t.lookup([]byte("out"))
			if wrote == c.broken {
				t.Fatalf("the unit applied = %v with broken = %v", wrote, c.broken)
			}
			if f.View(t0).WatchBroken(w) != c.broken {
				t.Fatal("the view disagrees with the entry")
			}
		})
	}
}

// A key that expires between WATCH and EXEC counts as changed.
func TestWatchExpiry(t *testing.T) {
	f := New(nil)
	var b logBuilder
	execEntry(t, f, &b, t0, unit(UnitPlain, "SET w 1 PX 1000"))
	w := f.View(t0).Watch(argv("w"))
	u := unit(UnitPlain, "SET out 1")
	u.Watch = w
	if res := execEntry(t, f, &b, t0+2e9, u); res.Results[0].Err != ErrWatch {
		t.Fatal("an expired watched key did not abort EXEC")
	}
}

// Tombstones are bounded; beyond the bound a watch older than the
// dropped ones aborts.
func TestWatchTombstoneBound(t *testing.T) {
	f := New(nil)
	var b logBuilder
	execEntry(t, f, &b, t0, unit(UnitPlain, "SET a 1"))
	w := f.View(t0).Watch(argv("a"))
	s := f.root.Load().clone()
	for i := 0; i <= maxTombs; i++ {
		s.changes.applying = s.index + 1 + uint64(i)
		s.changes.removed(string(num(int64(i))))
	}
	if s.changes.tombs.Len() != maxTombs || s.changes.tombFloor <= w.Index {
		t.Fatalf("%d tombs, floor %d", s.changes.tombs.Len(), s.changes.tombFloor)
	}
	if !s.watchBroken(w, t0) {
		t.Fatal("a watch older than the dropped tombstones held")
	}
}

func TestWatchEncoding(t *testing.T) {
	u := unit(UnitPlain, "SET a 1")
	u.Watch = &Watch{Index: 7, Version: 9, Now: -3, Keys: argv("a b")}
	c := Command{Op: OpExec, Now: t0, Units: []Unit{u, unit(UnitAtomic, "GET a")}}
	d, err := Decode(c.Encode(nil))
	if err != nil {
		t.Fatal(err)
	}
	w := d.Units[0].Watch
	if w == nil || w.Index != 7 || w.Version != 9 || w.Now != -3 || len(w.Keys) != 2 || string(w.Keys[1]) != "b" || d.Units[1].Watch != nil {
		t.Fatalf("%+v", d.Units)
	}
}
