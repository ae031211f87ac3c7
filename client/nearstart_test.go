package client_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/raftcache/raftcache/client"
)

// A read that began before the near cache's stream was open, answered at
// R; a write of the key at C > R; the stream opens (from now, after C);
// the read's answer arrives. Caching it would keep v1 for good (no event
// for C ever comes): the stream's start is a floor for fills.
func TestNearCacheFillAcrossStreamStart(t *testing.T) {
	tc := newTestCluster(t, 1)
	n := tc.leader()
	other := newClient(t, client.Config{Endpoints: []string{n.url}})
	if _, err := other.Set(callCtx(t), "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	watchGo := make(chan struct{})
	readDone := make(chan struct{})
	readGo := make(chan struct{})
	n.setHook(func(w http.ResponseWriter, r *http.Request, api http.Handler) {
		switch {
		case r.URL.Path == "/v1/watch":
			<-watchGo
			api.ServeHTTP(w, r)
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/kv/"):
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, r) // read now, at R
			close(readDone)
			<-readGo // answer later
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		default:
			api.ServeHTTP(w, r)
		}
	})
	near := newClient(t, client.Config{Endpoints: []string{n.url}, RefreshInterval: -1,
		NearCache: &client.NearCache{MaxBytes: 1 << 20}})
	got := make(chan *client.Item, 1)
	go func() {
		it, err := near.Get(callCtx(t), "k")
		if err != nil {
			t.Error(err)
		}
		got <- it
	}()
	<-readDone
	wr, err := other.Set(callCtx(t), "k", []byte("v2"))
	if err != nil {
		t.Fatal(err)
	}
	close(watchGo)
	waitFor(t, "the stream", func() bool { return near.NearCacheStats().Connected })
	close(readGo)
	first := <-got
	t.Logf("in-flight read answered %q at index %d; the write of v2 was at %d", first.Value, first.Index, wr.Index)
	n.setHook(nil)
	// Within the bound B (about 1.6 s; 10 s here for a busy machine) the
	// cache must answer v2; with the fill kept it answered v1 for good.
	deadline := time.Now().Add(10 * time.Second)
	for {
		it, err := near.Get(callCtx(t), "k")
		if err != nil {
			t.Fatal(err)
		}
		if string(it.Value) == "v2" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the write of v2 (index %d) was acknowledged, the near cache answers %q (index %d); stats %+v",
				wr.Index, it.Value, it.Index, near.NearCacheStats())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
