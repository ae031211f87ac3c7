package node

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/fsm"
)

// hubRig is an FSM at level 3 feeding a hub, dispatched by hand.
type hubRig struct {
	t     *testing.T
	f     *fsm.FSM
	h     *Hub
	index uint64
}

func newHubRig(t *testing.T) *hubRig {
	f := fsm.New(nil)
	r := &hubRig{t: t, f: f, h: NewHub(f)}
	r.apply(fsm.Command{Op: fsm.OpClusterLevel, Level: 3})
	return r
}

func (r *hubRig) apply(c fsm.Command) {
	r.t.Helper()
	r.index++
	if c.Now == 0 {
		c.Now = time.Now().UnixNano()
	}
	res := r.f.Apply(&raft.Log{Index: r.index, Type: raft.LogCommand, Data: c.Encode(nil)}).(*fsm.Result)
	if res.Err != nil {
		r.t.Fatal(res.Err)
	}
}

func (r *hubRig) exec(lines ...string) {
	r.t.Helper()
	u := fsm.Unit{}
	for _, l := range lines {
		var args [][]byte
		for _, a := range strings.Fields(l) {
			args = append(args, []byte(a))
		}
		u.Cmds = append(u.Cmds, args)
	}
	r.apply(fsm.Command{Op: fsm.OpExec, Units: []fsm.Unit{u}})
}

func payloads(evs []Event) string {
	var out []string
	for _, e := range evs {
		switch e.Kind {
		case EventMessage:
			out = append(out, e.Channel+"="+string(e.Data))
		case EventInvalidate:
			if e.Keys == nil {
				out = append(out, "inv(all)")
			} else {
				out = append(out, "inv("+strings.Join(e.Keys, ",")+")")
			}
		}
	}
	return strings.Join(out, " ")
}

func TestHubDelivery(t *testing.T) {
	r := newHubRig(t)
	r.exec("PUBLISH c before-start")
	r.h.floor = r.index + 1 // the next entry was in the log at start: replayed
	a := r.h.NewSub(1, 0)
	a.Subscribe(Channel, "c")
	r.exec("PUBLISH c replayed")
	r.exec("PUBLISH c one", "PUBLISH d no", "PUBLISH c two")
	// Applied but not dispatched yet when b subscribes: not for b.
	b := r.h.NewSub(2, 0)
	b.Subscribe(Pattern, "c*")
	r.exec("PUBLISH c three")
	r.h.drain()
	if got := payloads(a.Take(nil)); got != "c=one c=two c=three" {
		t.Fatalf("a got %q", got)
	}
	if got := payloads(b.Take(nil)); got != "c=three" {
		t.Fatalf("b got %q", got)
	}
	if n := r.h.Receivers("c", false); n != 2 {
		t.Fatalf("receivers %d", n)
	}
	st := r.h.Stats()
	if st.Subscribers != 2 || st.Channels != 1 || st.Patterns != 1 || st.Delivered != 4 {
		t.Fatalf("stats %+v", st)
	}

	// A subscriber that does not keep up is dropped; the others are not.
	slow := r.h.NewSub(3, 1024)
	slow.Subscribe(Channel, "c")
	big := strings.Repeat("x", 600)
	r.exec("PUBLISH c "+big, "PUBLISH c "+big)
	r.h.drain()
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow subscriber not dropped")
	}
	if !errors.Is(slow.Err(), ErrSlowSubscriber) || r.h.Stats().Dropped != 1 {
		t.Fatalf("err %v, stats %+v", slow.Err(), r.h.Stats())
	}
	if got := a.Take(nil); len(got) != 2 {
		t.Fatalf("a got %d events beside the slow one", len(got))
	}
	slow.Close()
	a.Close()
	if r.h.NumSub(Channel, "c") != 0 || r.h.Stats().Subscribers != 1 {
		t.Fatalf("after close: %+v", r.h.Stats())
	}
}

func TestHubTracking(t *testing.T) {
	r := newHubRig(t)
	s := r.h.NewSub(1, 0)
	s.Track(&TrackOptions{})
	r.exec("SET k 1")
	readAt := r.index
	r.exec("SET k 2") // lands between the read and its registration
	r.exec("SET j 1")
	r.h.drain()
	s.TrackKeys([][]byte{[]byte("k"), []byte("j")}, readAt) // j was read at readAt too: changed since
	if got := payloads(s.Take(nil)); got != "inv(k,j)" {
		t.Fatalf("late registration: %q", got)
	}
	// Registered at the current index: only a later change reports it,
	// once.
	s.TrackKeys([][]byte{[]byte("k")}, r.index)
	r.h.drain()
	if got := payloads(s.Take(nil)); got != "" {
		t.Fatalf("spurious: %q", got)
	}
	r.exec("SET k 3")
	r.exec("SET k 4")
	r.h.drain()
	if got := payloads(s.Take(nil)); got != "inv(k)" {
		t.Fatalf("after a write: %q", got)
	}
	// A flush: everything.
	s.TrackKeys([][]byte{[]byte("k")}, r.index)
	r.exec("FLUSHDB")
	r.h.drain()
	if got := payloads(s.Take(nil)); got != "inv(all)" {
		t.Fatalf("flush: %q", got)
	}
	// A write of the subscriber's cannot be told from another client's
	// write of the same key, so it is reported too (no NOLOOP: hiding the
	// other's would leave its cache stale for good).
	s.Track(&TrackOptions{})
	s.TrackKeys([][]byte{[]byte("k"), []byte("m")}, r.index)
	r.exec("MSET k 5 m 5")
	r.h.drain()
	if got := payloads(s.Take(nil)); got != "inv(k,m)" {
		t.Fatalf("noloop: %q", got)
	}
	// Tracking turned on again in the same mode keeps what was tracked:
	// the client's cache still holds it.
	s.TrackKeys([][]byte{[]byte("k")}, r.index)
	s.Track(&TrackOptions{})
	r.exec("SET k 6")
	r.h.drain()
	if got := payloads(s.Take(nil)); got != "inv(k)" {
		t.Fatalf("tracking on again: %q", got)
	}
	// The subscriber's own write: reported at once for what it tracks,
	// and not again when the change is applied.
	s.TrackKeys([][]byte{[]byte("k"), []byte("m")}, r.index)
	s.InvalidateOwn([][]byte{[]byte("k"), []byte("x")})
	if got := payloads(s.Take(nil)); got != "inv(k)" {
		t.Fatalf("own write: %q", got)
	}
	r.exec("SET k 7")
	r.h.drain()
	if got := payloads(s.Take(nil)); got != "" {
		t.Fatalf("own write, applied: %q", got)
	}
	// Its own flush: everything at once, and nothing tracked after it.
	s.InvalidateOwnAll()
	if got := payloads(s.Take(nil)); got != "inv(all)" {
		t.Fatalf("own flush: %q", got)
	}
	r.exec("SET m 7")
	r.h.drain()
	if got := payloads(s.Take(nil)); got != "" {
		t.Fatalf("after an own flush: %q", got)
	}
	// BCAST with a prefix, redirected to another subscriber.
	to := r.h.NewSub(2, 0)
	s.Track(&TrackOptions{BCAST: true, Prefixes: []string{"p:"}, Redirect: to})
	r.exec("SET p:1 x", "SET q:1 x")
	r.h.drain()
	if got := payloads(to.Take(nil)); got != "inv(p:1)" {
		t.Fatalf("bcast: %q", got)
	}
	if r.h.Stats().TrackingClients != 1 {
		t.Fatalf("stats %+v", r.h.Stats())
	}
}
