package transport_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/internal/testlog"
	"github.com/raftcache/raftcache/node"
	"github.com/raftcache/raftcache/transport"
)

// TestRetryAcrossSnapshotRestoreNeverLies: a request retried with its
// Idempotency-Key after the node restarted from a snapshot that holds the
// first attempt is either answered with the first attempt's outcome or
// refused with 409 result_unavailable (the state machine may keep only
// that the request ran), never run again and never answered with another
// outcome: a PUT that succeeded must not turn into a conflict with its own
// write, a batch that failed must not turn into a success.
func TestRetryAcrossSnapshotRestoreNeverLies(t *testing.T) {
	cfg := node.Config{
		ID: "n1", RaftAddr: "127.0.0.1:0", DataDir: t.TempDir(), Bootstrap: true,
		Logger: testlog.New(t, "n1", hclog.Warn), HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond,
		SnapshotThreshold: 16, SnapshotInterval: 20 * time.Millisecond, TrailingLogs: 4,
		// At this binary's level: the requests are engine units whose
		// replies the snapshot must keep.
		FetchLevel: func(context.Context, node.Member) (uint32, error) { return fsm.FeatureLevel, nil },
	}
	start := func(cfg node.Config) (*node.Node, *httptest.Server) {
		var n *node.Node
		var err error
		for end := time.Now().Add(deadline); ; time.Sleep(50 * time.Millisecond) {
			if n, err = node.New(cfg); err == nil || time.Now().After(end) {
				break // a restart may find its Raft port still held for a moment
			}
		}
		if err != nil {
			t.Fatalf("node.New: %v", err)
		}
		srv := httptest.NewServer(transport.New(n, transport.Config{}))
		t.Cleanup(func() { srv.Close(); n.Close() })
		waitFor(t, "the node to lead and serve", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := n.View(ctx, node.ReadOptions{})
			return err == nil
		})
		return n, srv
	}
	n, srv := start(cfg)
	put := func(url, key, value string, header ...string) response {
		return do(t, http.MethodPut, url+"/v1/kv/"+key, strings.NewReader(value), header...)
	}
	batch := func(url string) response {
		return do(t, http.MethodPost, url+"/v1/batch", strings.NewReader(`{"ops":[{"op":"set","key":"once","value":"x","cas":0}]}`),
			"Idempotency-Key", "batch-1")
	}

	first := put(srv.URL, "once?cas=0", "v", "Idempotency-Key", "put-1")
	var w struct{ Version, Index uint64 }
	decodeJSON(t, first, &w)
	if first.status != http.StatusOK || w.Version == 0 {
		t.Fatalf("first PUT: %s", first)
	}
	failed := batch(srv.URL)
	wantError(t, "a batch whose condition fails", failed, http.StatusPreconditionFailed, "cas_conflict")

	// Enough writes for a snapshot past both requests.
	var last struct{ Index uint64 }
	for i := 0; i < 40; i++ {
		decodeJSON(t, put(srv.URL, "fill-"+strconv.Itoa(i), "x"), &last)
	}
	waitFor(t, "a snapshot past the requests", func() bool {
		snaps, _ := filepath.Glob(filepath.Join(cfg.DataDir, "snapshots", "*", "state.bin"))
		for _, s := range snaps {
			parts := strings.Split(filepath.Base(filepath.Dir(s)), "-") // term-index-ms
			if idx, err := strconv.ParseUint(parts[1], 10, 64); err == nil && idx > w.Index+1 {
				return true
			}
		}
		put(srv.URL, "fill", "x") // keep going until one is taken
		return false
	})

	srv.Close()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.RaftAddr = n.RaftAddr()
	_, srv = start(cfg)

	again := put(srv.URL, "once?cas=0", "v", "Idempotency-Key", "put-1")
	switch again.status {
	case http.StatusOK:
		if !bytes.Equal(again.body, first.body) {
			t.Errorf("retried PUT answered %s, first %s", again, first)
		}
	case http.StatusConflict:
		wantError(t, "retried PUT", again, http.StatusConflict, "result_unavailable")
		t.Logf("retried PUT after the restore: %s (the state machine kept no result to replay)", again.body)
	default:
		t.Errorf("retried PUT after a snapshot restore: %s, want the first answer (%s) or 409 result_unavailable", again, first)
	}
	if again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retried PUT: Idempotent-Replayed %q", again.header.Get("Idempotent-Replayed"))
	}

	againBatch := batch(srv.URL)
	switch againBatch.status {
	case http.StatusPreconditionFailed:
		var e struct {
			FailedOp *int `json:"failed_op"`
		}
		if err := json.Unmarshal(againBatch.body, &e); err != nil || e.FailedOp == nil || *e.FailedOp != 0 {
			t.Errorf("retried batch: %s, want failed_op 0", againBatch)
		}
	case http.StatusConflict:
		wantError(t, "retried batch", againBatch, http.StatusConflict, "result_unavailable")
		t.Logf("retried failed batch after the restore: %s", againBatch.body)
	default:
		t.Errorf("retried failed batch after a snapshot restore: %s, want 412 again or 409 result_unavailable", againBatch)
	}
	if got := do(t, http.MethodGet, srv.URL+"/v1/kv/once", nil); got.status != http.StatusOK || string(got.body) != "v" ||
		got.header.Get("ETag") != `"`+strconv.FormatUint(w.Version, 10)+`"` {
		t.Errorf("once after the retries: %s (ETag %s), want v at version %d", got, got.header.Get("ETag"), w.Version)
	}
}
