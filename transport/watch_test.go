package transport_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/node"
	"github.com/raftcache/raftcache/transport"
)

// sseEvent is one server-sent event as a watch stream writes it.
type sseEvent struct {
	id, event string
	data      map[string]any
}

// openWatch opens GET /v1/watch with query and header, and returns its
// events on a channel closed when the stream ends.
func openWatch(t *testing.T, url, query, lastID string) (<-chan sseEvent, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/watch?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan sseEvent, 1024)
	if resp.StatusCode != http.StatusOK {
		close(ch)
		return ch, resp
	}
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.event != "" {
					ch <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				e.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(line[6:]), &e.data)
			}
		}
	}()
	return ch, resp
}

// nextChange returns the next event that is not a progress notice.
func nextChange(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatal("the stream ended")
			}
			if e.event != "progress" {
				return e
			}
		case <-timeout:
			t.Fatal("no change event within 20s")
		}
	}
}

func TestWatchStream(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{HTTP: &transport.Config{}, MaxValueSize: maxValue,
		Configure: func(_ string, nc *testcluster.NodeConfig) { nc.Node.FeedRing = 64 }})
	leader := c.Leader(t)
	follower := c.Followers(leader)[0]

	// Progress notices come while nothing changes.
	ch, resp := openWatch(t, follower.URL, "prefix=user:", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /v1/watch = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	select {
	case e := <-ch:
		if e.event != "progress" {
			t.Fatalf("first event %+v, want progress", e)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no progress notice")
	}

	// Events equal the applied changes, for the prefix only, in order.
	w1 := put(t, leader, "user:1", "a", "")
	put(t, leader, "other", "x", "")
	w2 := put(t, leader, "user:2", "b", "")
	if r := do(t, http.MethodDelete, leader.URL+"/v1/kv/user:1", nil); r.status != http.StatusOK {
		t.Fatalf("delete: %s", r)
	}
	e1, e2, e3 := nextChange(t, ch), nextChange(t, ch), nextChange(t, ch)
	if e1.event != "put" || e1.data["key"] != "user:1" || uint64(e1.data["version"].(float64)) != w1.Version ||
		e2.event != "put" || e2.data["key"] != "user:2" || uint64(e2.data["index"].(float64)) != w2.Index ||
		e3.event != "delete" || e3.data["key"] != "user:1" {
		t.Fatalf("events %+v %+v %+v", e1, e2, e3)
	}

	// Resume after e1 on another node: e2 and e3 again, nothing lost.
	ch2, resp2 := openWatch(t, leader.URL, "prefix=user:", e1.id)
	if resp2.StatusCode != http.StatusOK {
		t.Fatalf("resume = %d", resp2.StatusCode)
	}
	if r2, r3 := nextChange(t, ch2), nextChange(t, ch2); r2.id != e2.id || r3.id != e3.id {
		t.Fatalf("resumed %+v %+v, want %s %s", r2, r3, e2.id, e3.id)
	}

	// Past the ring: 410 Gone.
	for i := 0; i < 80; i++ {
		put(t, leader, fmt.Sprintf("fill:%d", i), "v", "")
	}
	waitFor(t, "the follower to apply the fill", func() bool {
		return follower.FeedStats().Floor.Index > w1.Index
	})
	_, gone := openWatch(t, follower.URL, "prefix=user:", e1.id)
	if gone.StatusCode != http.StatusGone {
		t.Fatalf("resume past the ring = %d, want 410", gone.StatusCode)
	}
	var body struct{ Code string }
	_ = json.NewDecoder(gone.Body).Decode(&body)
	if body.Code != "compacted" {
		t.Fatalf("code %q, want compacted", body.Code)
	}
	if _, bad := openWatch(t, follower.URL, "", "x.y"); bad.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad id = %d", bad.StatusCode)
	}
	// A prefix delete reaches the watchers of keys under it.
	if r := do(t, http.MethodDelete, leader.URL+"/v1/keys?prefix=user", nil); r.status != http.StatusOK {
		t.Fatalf("prefix delete: %s", r)
	}
	if e := nextChange(t, ch); e.event != "delete_prefix" || e.data["key"] != "user" {
		t.Fatalf("prefix delete event %+v", e)
	}
}

// TestWatchEndsWhenCutOff: a follower that stops hearing from its leader
// ends its streams (it cannot vouch for what it would send).
func TestWatchEndsWhenCutOff(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{HTTP: &transport.Config{}, MaxValueSize: maxValue})
	leader := c.Leader(t)
	var rest []*testNode
	for _, n := range c.Nodes() {
		if n.ID() != leader.ID() {
			rest = append(rest, n)
		}
	}
	ch, resp := openWatch(t, rest[0].URL, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("watch = %d", resp.StatusCode)
	}
	// While it hears from the leader, it sends progress notices.
	for got := 0; got < 5; {
		select {
		case e, ok := <-ch:
			if !ok || e.event != "progress" {
				t.Fatalf("before the cut: %+v (open %v)", e, ok)
			}
			got++
		case <-time.After(20 * time.Second):
			t.Fatal("no progress notices from a follower in contact")
		}
	}
	// Stop the other two: the follower hears from no leader.
	leader.Stop()
	rest[1].Stop()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatal("the stream ended without saying why")
			}
			if e.event == "error" {
				if !strings.Contains(fmt.Sprint(e.data["error"]), node.ErrLostContact.Error()) {
					t.Fatalf("ended with %+v", e)
				}
				return
			}
		case <-timeout:
			t.Fatal("the stream of a cut-off follower did not end")
		}
	}
}
