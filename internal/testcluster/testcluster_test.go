package testcluster_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/resp"
	"github.com/raftcache/raftcache/transport"
)

// TestStopRestartAdd covers what no package's tests use yet: a follower
// stopped and restarted on its data and addresses, and a node added.
func TestStopRestartAdd(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{HTTP: &transport.Config{}, RESP: &resp.Config{}})
	l := c.WaitAgreed(t)
	if l.URL == "" || l.RESPAddr() == "" || len(c.Followers(l)) != 2 {
		t.Fatalf("leader %s at %q and %q, followers %v", l.ID(), l.URL, l.RESPAddr(), c.Followers(l))
	}
	ctx := testcluster.Ctx(t)
	if _, err := l.Set(ctx, []byte("k"), []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	f := c.Followers(l)[0]
	url := f.URL
	f.Stop()
	if _, err := http.Get(url + "/livez"); err == nil {
		t.Fatalf("%s answers after Stop", f.ID())
	}
	if _, err := c.Leader(t).Set(ctx, []byte("k"), []byte("v2"), 0); err != nil {
		t.Fatal(err)
	}
	f.Restart(t)
	n4 := c.Add(t, "n4")
	c.WaitAgreed(t)
	for _, n := range []*testcluster.Node{f, n4} {
		testcluster.WaitFor(t, n.ID()+" to have v2", func() bool {
			r, err := http.Get(n.URL + "/v1/kv/k?consistency=stale")
			if err != nil {
				return false
			}
			defer r.Body.Close()
			b, _ := io.ReadAll(r.Body)
			return string(b) == "v2"
		})
		if r, err := http.Get(n.URL + "/readyz"); err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("%s /readyz: %v %v", n.ID(), r, err)
		}
	}
	if got := len(c.Followers(c.Leader(t))); got != 3 {
		t.Fatalf("%d followers, want 3", got)
	}
}
