package transport_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/raftcache/raftcache/internal/testcluster"
	"github.com/raftcache/raftcache/transport"
)

// A backup holding a hash, restored into a cluster at feature level 2
// (before types), is refused with 409 feature_level, which says nothing
// was done: the cache keeps its keys. (The refusal once came after the
// restore's first entry, which deletes every key.)
func TestRestoreRefusedBeforeAnythingIsDeleted(t *testing.T) {
	src := startLeader(t)
	surl := "http://" + src.HTTPAddr()
	if r := do(t, http.MethodPost, surl+"/v1/eval", strings.NewReader(`{"script":"return redis.call('HSET', KEYS[1], 'f', 'v')","keys":["h"]}`)); r.status != http.StatusOK {
		t.Fatalf("eval: %s", r)
	}
	do(t, http.MethodPut, surl+"/v1/kv/s", strings.NewReader("x"))
	snap := do(t, http.MethodGet, surl+"/v1/snapshot", nil)
	if snap.status != http.StatusOK {
		t.Fatalf("snapshot: %s", snap)
	}
	dst := testcluster.Start(t, 1, testcluster.Options{HTTP: &transport.Config{}, MaxValueSize: maxValue, Level: 2,
		Configure: func(_ string, c *testcluster.NodeConfig) { c.Node.FeatureLevel = 2 }}).Leader(t)
	durl := "http://" + dst.HTTPAddr()
	for i := 0; i < 5; i++ {
		do(t, http.MethodPut, fmt.Sprintf("%s/v1/kv/keep%d", durl, i), strings.NewReader("precious"))
	}
	if r := do(t, http.MethodPost, durl+"/v1/restore", strings.NewReader(string(snap.body))); r.status != http.StatusConflict || !strings.Contains(string(r.body), "feature_level") {
		t.Fatalf("restore of a backup with a hash at level 2: %s, want 409 feature_level", r)
	}
	for i := 0; i < 5; i++ {
		if g := do(t, http.MethodGet, fmt.Sprintf("%s/v1/kv/keep%d", durl, i), nil); g.status != http.StatusOK {
			t.Fatalf("after the refused restore, keep%d: %s", i, g)
		}
	}
}
