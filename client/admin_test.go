package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/fsm"
)

// parseBackup returns a backup's keys and values.
func parseBackup(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := fsm.ReadBackup(bytes.NewReader(b), func(it fsm.BackupItem) error {
		out[string(it.Key)] = string(it.Value)
		return nil
	}); err != nil {
		t.Fatalf("the backup does not parse: %v", err)
	}
	return out
}

// moveLeadership hands leadership to another node behind the client's
// back, so that its next leader-bound call is redirected.
func moveLeadership(t *testing.T, tc *tcluster) *tnode {
	t.Helper()
	old := tc.leader()
	var l *tnode
	// A transfer times out after one election timeout, which a busy
	// machine can exceed (the target was slow to start its election):
	// try again until another node leads.
	waitFor(t, "a new leader", func() bool {
		if l = tc.leader(); l != old {
			return true
		}
		if err := old.TransferLeadership(""); err != nil {
			t.Logf("leadership transfer: %v (retrying)", err)
			return false
		}
		l = tc.leader()
		return l != old
	})
	return l
}

func TestSnapshotRestoreRedirectedAndRetried(t *testing.T) {
	tc := newTestCluster(t, 3)
	c := newClient(t, client.Config{Endpoints: tc.urls()})
	ctx := callCtx(t)
	big := bytes.Repeat([]byte("v"), 100<<10)
	want := map[string]string{}
	for i := 0; i < 4; i++ {
		k := fmt.Sprintf("big%d", i)
		if _, err := c.Set(ctx, k, big); err != nil {
			t.Fatal(err)
		}
		want[k] = string(big)
	}

	// The backup is redirected from the old leader to the new one.
	old := tc.leader()
	l := moveLeadership(t, tc)
	var buf bytes.Buffer
	n, err := c.Snapshot(ctx, &buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("Snapshot = %d, %v (%d bytes written)", n, err, buf.Len())
	}
	got := parseBackup(t, buf.Bytes())
	if len(got) != len(want) || got["big3"] != want["big3"] {
		t.Fatalf("the backup holds %d keys", len(got))
	}
	if r := old.requests(func(s seenReq) bool { return s.Path == "/v1/snapshot" }); len(r) != 1 || r[0].Status != http.StatusTemporaryRedirect {
		t.Errorf("the old leader saw %+v for /v1/snapshot, want one 307", r)
	}
	backup := buf.Bytes()

	// Restores: from a file (streamed), and from a plain reader (buffered);
	// each redirected (leadership moved again), the first also answered
	// 503 once by the new leader: its body is sent again in full.
	path := filepath.Join(t.TempDir(), "b.snap")
	if err := os.WriteFile(path, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	for round, open := range []func() io.Reader{
		func() io.Reader {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return f
		},
		func() io.Reader { return io.MultiReader(bytes.NewReader(backup)) },
	} {
		if _, err := c.Set(ctx, "extra", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Delete(ctx, "big0"); err != nil {
			t.Fatal(err)
		}
		old, l = l, moveLeadership(t, tc)
		for _, tn := range tc.nodes() {
			tn.forget()
		}
		var refused atomic.Bool
		if round == 0 {
			l.setHook(func(w http.ResponseWriter, r *http.Request, api http.Handler) {
				if r.URL.Path == "/v1/restore" && refused.CompareAndSwap(false, true) {
					w.Header().Set("Retry-After", "1")
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusServiceUnavailable)
					fmt.Fprint(w, `{"error":"try again","code":"unavailable"}`)
					return
				}
				api.ServeHTTP(w, r)
			})
		}
		res, err := c.Restore(ctx, open())
		l.setHook(nil)
		if err != nil || res.Keys != len(want) || res.Index == 0 {
			t.Fatalf("round %d: Restore = %+v, %v", round, res, err)
		}
		for k, v := range want {
			if item, err := c.Get(ctx, k); err != nil || string(item.Value) != v {
				t.Fatalf("round %d: %s after restore: %v", round, k, err)
			}
		}
		if _, err := c.Get(ctx, "extra"); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("round %d: a key written after the backup survived the restore: %v", round, err)
		}
		served := l.requests(func(s seenReq) bool { return s.Path == "/v1/restore" })
		if round == 0 && (len(served) != 2 || served[0].Status != http.StatusServiceUnavailable) {
			t.Errorf("round %d: the leader saw %+v, want a 503 then a 200", round, served)
		}
		last := served[len(served)-1]
		if last.Status != http.StatusOK || last.ContentLength != int64(len(backup)) {
			t.Errorf("round %d: the leader's last restore request: %+v (backup %d bytes)", round, last, len(backup))
		}
	}

	// A corrupt backup: 500 from the server, nothing deleted.
	if _, err := c.Restore(ctx, bytes.NewReader(backup[:len(backup)/2])); err == nil {
		t.Fatal("Restore of a truncated backup succeeded")
	}
	if _, err := c.Get(ctx, "big1"); err != nil {
		t.Fatalf("a refused restore deleted keys: %v", err)
	}
}

func TestTransferPromoteDemoteMemberStatus(t *testing.T) {
	tc := newTestCluster(t, 3)
	c := newClient(t, client.Config{Endpoints: tc.urls()[:1]})
	ctx := callCtx(t)

	l := tc.leader()
	to := tc.followers(l)[0]
	v, err := c.TransferLeadership(ctx, to.id)
	if err != nil || v.Leader == nil || v.Leader.ID != to.id {
		t.Fatalf("TransferLeadership(%s) = %+v, %v", to.id, v, err)
	}
	waitFor(t, to.id+" to lead", func() bool { return tc.leader() == to })
	// To the leader itself: nothing is sent.
	for _, tn := range tc.nodes() {
		tn.forget()
	}
	if v, err := c.TransferLeadership(ctx, to.id); err != nil || v.Leader.ID != to.id {
		t.Fatalf("TransferLeadership to the leader = %+v, %v", v, err)
	}
	for _, tn := range tc.nodes() {
		if r := tn.requests(func(s seenReq) bool { return strings.Contains(s.Path, "transfer") }); len(r) != 0 {
			t.Fatalf("a transfer to the current leader was sent: %+v", r)
		}
	}
	if _, err := c.TransferLeadership(ctx, "n9"); !errors.Is(err, client.ErrUnknownMember) {
		t.Fatalf("TransferLeadership to an unknown member: %v", err)
	}

	// The answer is lost after the transfer happened: the client asks who
	// leads instead of sending it again (which would move leadership on).
	var drops atomic.Int32
	l = tc.leader()
	for _, tn := range tc.nodes() {
		tn.forget()
		tn.setHook(func(w http.ResponseWriter, r *http.Request, api http.Handler) {
			if r.URL.Path != "/v1/cluster/transfer-leadership" {
				api.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, r)
			if rec.Code == http.StatusOK {
				drops.Add(1)
				if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
					conn.Close()
				}
				return
			}
			for k, vs := range rec.Header() {
				w.Header()[k] = vs
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	}
	v, err = c.TransferLeadership(ctx, "")
	for _, tn := range tc.nodes() {
		tn.setHook(nil)
	}
	if err != nil || v.Leader == nil || v.Leader.ID == l.id {
		t.Fatalf("TransferLeadership with a lost answer = %+v, %v (leader was %s)", v, err, l.id)
	}
	sent := 0
	for _, tn := range tc.nodes() {
		sent += len(tn.requests(func(s seenReq) bool {
			return s.Path == "/v1/cluster/transfer-leadership" && s.Status != http.StatusTemporaryRedirect
		}))
	}
	if drops.Load() != 1 || sent != 1 {
		t.Fatalf("the transfer was handled %d times (%d answers dropped), want once", sent, drops.Load())
	}

	// A non-voter: added, promoted, demoted.
	n4 := tc.add("n4")
	if err := c.AddNonVoter(ctx, client.Member{ID: "n4", RaftAddr: n4.RaftAddr(), HTTPAddr: n4.addr, FeatureLevel: fsm.FeatureLevel}); err != nil {
		t.Fatal(err)
	}
	voter := func(v *client.Cluster, id string) (bool, bool) {
		for _, m := range v.Members {
			if m.ID == id {
				return m.Voter, true
			}
		}
		return false, false
	}
	view, err := c.Cluster(ctx)
	if isVoter, ok := voter(view, "n4"); err != nil || !ok || isVoter {
		t.Fatalf("after AddNonVoter: %+v, %v", view, err)
	}
	if view, err = c.Promote(ctx, "n4"); err != nil {
		t.Fatal(err)
	}
	// A member that has not applied anything yet is promoted once it has
	// caught up (the leader promotes it by itself), not at once.
	waitFor(t, "n4 promoted", func() bool {
		if isVoter, ok := voter(view, "n4"); ok && isVoter {
			return true
		}
		view, err = c.Cluster(ctx)
		return false
	})
	if view, err = c.Demote(ctx, "n4"); err != nil {
		t.Fatal(err)
	}
	if isVoter, ok := voter(view, "n4"); !ok || isVoter {
		t.Fatalf("after Demote: %+v", view.Members)
	}
	if _, err := c.Promote(ctx, "n9"); !errors.Is(err, client.ErrUnknownMember) {
		t.Fatalf("Promote of an unknown member: %v", err)
	}

	// MemberStatus asks each member directly. Membership changes just
	// moved the commit index, so a member may be a moment behind: wait for
	// each to be ready, then check what MemberStatus reports.
	for _, tn := range tc.nodes() {
		waitFor(t, tn.id+" to be ready", func() bool { return tn.Ready() })
		st := c.MemberStatus(ctx, tn.addr)
		if st.Err != nil || st.View == nil || st.View.NodeID != tn.id {
			t.Fatalf("MemberStatus(%s) = %+v", tn.id, st)
		}
		waitFor(t, tn.id+" to report ready", func() bool { return c.MemberStatus(ctx, tn.addr).Ready })
	}
	if st := c.MemberStatus(ctx, "127.0.0.1:1"); st.Err == nil {
		t.Fatal("MemberStatus of an address that is no member's answered")
	}
}

// A removal or demotion the cluster refuses for the quorum's sake is
// ErrQuorumAtRisk, naming the unreachable voters; WithForce sends force.
func TestQuorumAtRiskAndForce(t *testing.T) {
	tc := newTestCluster(t, 1)
	l := tc.leader()
	var forced []string
	l.setHook(func(w http.ResponseWriter, r *http.Request, api http.Handler) {
		if !strings.HasPrefix(r.URL.Path, "/v1/cluster/members/n7") {
			api.ServeHTTP(w, r)
			return
		}
		if r.URL.Query().Get("force") == "true" {
			forced = append(forced, r.Method+" "+r.URL.Path)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"removed":"n7"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"error":"removing n7 while n3 does not answer","code":"quorum_at_risk","unreachable":["n3"]}`))
	})
	c := newClient(t, client.Config{Endpoints: []string{l.url}})
	ctx := context.Background()
	err := c.RemoveMember(ctx, "n7")
	var ce *client.Error
	if !errors.Is(err, client.ErrQuorumAtRisk) || !errors.As(err, &ce) || len(ce.Unreachable) != 1 || ce.Unreachable[0] != "n3" {
		t.Fatalf("RemoveMember refused: %v (%+v)", err, ce)
	}
	if _, err := c.Demote(ctx, "n7"); !errors.Is(err, client.ErrQuorumAtRisk) {
		t.Fatalf("Demote refused: %v", err)
	}
	if err := c.RemoveMember(ctx, "n7", client.WithForce()); err != nil {
		t.Fatalf("RemoveMember forced: %v", err)
	}
	if len(forced) != 1 || forced[0] != "DELETE /v1/cluster/members/n7" {
		t.Fatalf("forced requests: %v", forced)
	}
}
