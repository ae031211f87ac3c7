package fsm

import (
	"bytes"
	"errors"
	"testing"
)

func TestPublishMessages(t *testing.T) {
	f := New(nil)
	var b logBuilder
	raiseLevel(t, f, &b, 2)
	// Below level 3 PUBLISH is refused, deterministically.
	res := execEntry(t, f, &b, t0, unit(UnitPlain, "PUBLISH c m"))
	if r := res.Results[0].Replies[0]; !errors.Is(r.Err, ErrNewerLevel) {
		t.Fatalf("below level 3: %s", r)
	}
	raiseLevel(t, f, &b, 3)
	var got []Change
	f.OnChange(func(c Change) { got = append(got, c) })
	// A failed atomic unit publishes nothing; the others publish in order.
	execEntry(t, f, &b, t0, unit(UnitPlain, "PUBLISH c one", "SET k v", "SPUBLISH c two"),
		unit(UnitAtomic, "PUBLISH c lost", "INCR k"), unit(UnitAtomic, "PUBLISH d three"))
	if len(got) != 1 {
		t.Fatalf("changes %+v", got)
	}
	var chans, data []string
	for _, m := range got[0].Messages {
		chans, data = append(chans, m.Channel), append(data, string(m.Data))
	}
	if want := "c c d"; join(chans) != want || join(data) != "one two three" {
		t.Fatalf("messages %v %v", chans, data)
	}
	// Only messages: still a change.
	execEntry(t, f, &b, t0, unit(UnitPlain, "PUBLISH x y"))
	if len(got) != 2 || len(got[1].Keys) != 0 || len(got[1].Messages) != 1 {
		t.Fatalf("publish-only change %+v", got)
	}
}

func join(s []string) string { return string(bytes.Join(toBytes(s), []byte(" "))) }

func toBytes(s []string) [][]byte {
	out := make([][]byte, len(s))
	for i := range s {
		out[i] = []byte(s[i])
	}
	return out
}

func TestNotifyFlags(t *testing.T) {
	for in, want := range map[string]string{"": "", "KEA": "AKE", "Kx": "xK", "gE": "gE", "AKEmn": "AKEm", "$lshz": "$lshz"} {
		f, ok := ParseNotifyFlags(in)
		if !ok || NotifyFlagsString(f) != want {
			t.Errorf("%q: %q %v, want %q", in, NotifyFlagsString(f), ok, want)
		}
	}
	if _, ok := ParseNotifyFlags("Q"); ok {
		t.Error("Q accepted")
	}
}

func TestKeyspaceNotifications(t *testing.T) {
	f := New(nil)
	var b logBuilder
	raiseLevel(t, f, &b, 3)
	var got []Change
	f.OnChange(func(c Change) { got = append(got, c) })
	execEntry(t, f, &b, t0, unit(UnitPlain, "rc.notify KEg$"))
	if f.View(t0).NotifyFlags() != NotifyKeyspace|NotifyKeyevent|NotifyGeneric|NotifyString {
		t.Fatalf("flags %b", f.View(t0).NotifyFlags())
	}
	execEntry(t, f, &b, t0, unit(UnitPlain, "SET k v EX 10", "INCR n", "DEL k n missing", "SET p v PXAT 1", "PERSIST n"))
	c := got[len(got)-1]
	var ms []string
	for _, m := range c.Notifications() {
		ms = append(ms, m.Channel+"="+string(m.Data))
	}
	want := "__keyspace@0__:k=set __keyevent@0__:set=k __keyspace@0__:k=expire __keyevent@0__:expire=k " +
		"__keyspace@0__:n=incrby __keyevent@0__:incrby=n __keyspace@0__:k=del __keyevent@0__:del=k __keyspace@0__:n=del __keyevent@0__:del=n " +
		// As redis-server 7.0 reports a SET with a time already past (x is not in KEg$: no 'expired').
		"__keyspace@0__:p=set __keyevent@0__:set=p __keyspace@0__:p=expire __keyevent@0__:expire=p"
	if join(ms) != want {
		t.Fatalf("notifications\n%s\nwant\n%s", join(ms), want)
	}
	// The reaper's entry says 'expired'; flags survive a snapshot.
	execEntry(t, f, &b, t0, unit(UnitPlain, "rc.notify Ex"), unit(UnitPlain, "SET e v PX 1"))
	applyOne(t, f, b.cmd(Command{Op: OpExpire, Now: t0 + 2e6, Keys: [][]byte{[]byte("e")}}))
	c = got[len(got)-1]
	if ns := c.Notifications(); len(ns) != 1 || ns[0].Channel != "__keyevent@0__:expired" || string(ns[0].Data) != "e" {
		t.Fatalf("expired: %+v", ns)
	}
	// Eviction's entry says 'evicted', for the keys it removed only.
	execEntry(t, f, &b, t0, unit(UnitPlain, "rc.notify Ee"), unit(UnitPlain, "SET v1 x"))
	v1 := mustGet(t, f, "v1", t0, "x").Version
	applyOne(t, f, b.cmd(Command{Op: OpEvict, Now: t0, Keys: [][]byte{[]byte("v1"), []byte("gone")}, Versions: []uint64{v1, 7}}))
	c = got[len(got)-1]
	if ns := c.Notifications(); len(ns) != 1 || ns[0].Channel != "__keyevent@0__:evicted" || string(ns[0].Data) != "v1" {
		t.Fatalf("evicted: %+v", ns)
	}
	execEntry(t, f, &b, t0, unit(UnitPlain, "rc.notify Ex"))
	g := New(nil)
	var restored []Change
	g.OnChange(func(c Change) { restored = append(restored, c) })
	if err := restore(g, snapshotBytes(t, f)); err != nil {
		t.Fatal(err)
	}
	if g.View(t0).NotifyFlags() != NotifyKeyevent|NotifyExpired || len(restored) != 1 || !restored[0].All {
		t.Fatalf("restored flags %b, changes %+v", g.View(t0).NotifyFlags(), restored)
	}
	if d1, _ := f.Digest(); func() bool { d2, _ := g.Digest(); return d1 != d2 }() {
		t.Fatal("digest differs after restore")
	}
}
