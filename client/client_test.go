package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/fsm"
)

// A client that knows only a follower is redirected to the leader and
// re-sends the method, the (large) body and every header, Authorization
// included; it then remembers the leader.
func TestRedirectCarriesBodyAndHeaders(t *testing.T) {
	tc := newTestCluster(t, 3)
	l := tc.leader()
	f := tc.followers(l)[0]
	c := newClient(t, client.Config{
		Endpoints:       []string{f.url},
		Header:          http.Header{"Authorization": {"Bearer s3cret"}},
		RefreshInterval: -1, // learn the leader only from the redirect
	})
	ctx := callCtx(t)

	key := "dir/../a b%2F?#&é"
	value := make([]byte, 100<<10) // above the Expect: 100-continue threshold
	for i := range value {
		value[i] = byte(rand.IntN(256))
	}
	res, err := c.Set(ctx, key, value, client.WithTTL(time.Hour))
	if err != nil {
		t.Fatalf("Set through a follower: %v", err)
	}
	// Leadership may move while this runs (short Raft timeouts on a busy
	// machine), so look for the redirect and the one successful PUT
	// wherever they happened.
	puts := func(tn *tnode) []seenReq {
		return tn.requests(func(s seenReq) bool { return s.Method == http.MethodPut })
	}
	redirected := false
	for _, s := range puts(f) {
		redirected = redirected || s.Status == http.StatusTemporaryRedirect
	}
	if !redirected {
		t.Errorf("the follower never redirected: %+v", puts(f))
	}
	var ok []seenReq
	var okNode *tnode
	for _, tn := range tc.nodes() {
		for _, s := range puts(tn) {
			if s.Auth != "Bearer s3cret" {
				t.Errorf("%s got a PUT without the Authorization header: %+v", tn.id, s)
			}
			if s.Status == http.StatusOK {
				ok, okNode = append(ok, s), tn
			}
		}
	}
	if len(ok) != 1 || okNode == f {
		t.Fatalf("PUTs answered 200: %+v (by %v), want one, by the leader", ok, okNode)
	}
	if want := puts(f)[0]; ok[0].Path != want.Path || ok[0].Query != want.Query || ok[0].ContentLength != int64(len(value)) {
		t.Errorf("the leader got %+v, the follower %+v", ok[0], want)
	}
	if c.Leader() != okNode.url {
		t.Errorf("remembered leader %q, want %q", c.Leader(), okNode.url)
	}
	l = okNode
	l.forget()
	f.forget()

	item, err := c.Get(ctx, key)
	if err != nil || !bytes.Equal(item.Value, value) || item.Version != res.Version || item.ExpiresAt.IsZero() {
		t.Fatalf("Get = %+v, %v; want the value written at version %d", item, err, res.Version)
	}
	if gets := l.requests(func(s seenReq) bool { return s.Method == http.MethodGet && strings.HasPrefix(s.Path, "/v1/kv/") }); len(gets) == 0 {
		t.Errorf("the strong read did not go to the remembered leader")
	}

	// An Incr through another follower carries the same Idempotency-Key
	// on both hops.
	// An Incr through a follower carries the same Idempotency-Key on
	// every hop and retry.
	f2 := tc.followers(l)[0]
	c2 := newClient(t, client.Config{Endpoints: []string{f2.url}, RefreshInterval: -1})
	if n, err := c2.Incr(ctx, "ctr", 7); err != nil || n != 7 {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	keys := map[string]bool{}
	for _, tn := range tc.nodes() {
		for _, s := range tn.requests(func(s seenReq) bool { return strings.HasPrefix(s.Path, "/v1/incr/") }) {
			keys[s.IdemKey] = true
			if s.Query != "by=7" {
				t.Errorf("%s got query %q", tn.id, s.Query)
			}
		}
	}
	if len(keys) != 1 || keys[""] {
		t.Errorf("Incr sent idempotency keys %v, want one", keys)
	}
}

// A redirect to a host that is not a member is refused, after one
// membership refresh, and the host is never contacted.
func TestRedirectToUnknownHostRefused(t *testing.T) {
	tc := newTestCluster(t, 3)
	l := tc.leader()
	f := tc.followers(l)[0]
	var evilHits int
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { evilHits++ }))
	defer evil.Close()
	f.setHook(func(w http.ResponseWriter, r *http.Request, api http.Handler) {
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		if rec.Code == http.StatusTemporaryRedirect {
			u, _ := url.Parse(rec.Header().Get("Location"))
			u.Host = evil.Listener.Addr().String()
			w.Header().Set("Location", u.String())
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
	c := newClient(t, client.Config{Endpoints: []string{f.url}, RefreshInterval: -1,
		Header: http.Header{"Authorization": {"Bearer s3cret"}}})
	start := time.Now()
	_, err := c.Set(callCtx(t), "k", []byte("v"))
	var re *client.RedirectError
	if !errors.Is(err, client.ErrRedirectRefused) || !errors.As(err, &re) {
		t.Fatalf("Set = %v, want ErrRedirectRefused", err)
	}
	if errors.Is(err, client.ErrUnknownOutcome) {
		t.Errorf("a refused redirect is not an unknown outcome: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v: a refused redirect is not retried", d)
	}
	if evilHits != 0 {
		t.Errorf("the unknown host got %d requests", evilHits)
	}
	if n := len(f.requests(func(s seenReq) bool { return s.Path == "/v1/cluster" })); n < 1 {
		t.Errorf("no membership refresh before refusing the redirect")
	}
	// The refresh taught the client the real members.
	if eps := c.Endpoints(); len(eps) != 3 {
		t.Errorf("endpoints after the refresh: %v", eps)
	}
}

// A dead endpoint is skipped, and a killed leader is replaced: every call
// succeeds within its deadline and no increment is lost or doubled.
func TestFailoverWhenEndpointsDown(t *testing.T) {
	tc := newTestCluster(t, 3)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // connections to it are refused
	c := newClient(t, client.Config{Endpoints: append([]string{deadURL}, tc.urls()...), AttemptTimeout: 2 * time.Second})

	want := int64(0)
	incr := func() {
		t.Helper()
		n, err := c.Incr(callCtx(t), "ctr", 1)
		if err != nil {
			t.Fatalf("Incr %d: %v", want+1, err)
		}
		if want++; n != want {
			t.Fatalf("Incr returned %d, want %d", n, want)
		}
	}
	for i := 0; i < 10; i++ {
		incr()
	}
	old := tc.leader()
	old.Stop()
	start := time.Now()
	for i := 0; i < 10; i++ {
		incr()
	}
	t.Logf("10 increments across the leader's death took %v", time.Since(start))
	if _, err := c.Set(callCtx(t), "after", []byte("x")); err != nil {
		t.Fatal(err)
	}
	item, err := c.Get(callCtx(t), "ctr")
	if err != nil || string(item.Value) != fmt.Sprint(want) {
		t.Fatalf("counter = %v, %v; want %d", item, err, want)
	}
	if c.Leader() == old.url || c.Leader() == deadURL {
		t.Errorf("still remembers %s as leader", c.Leader())
	}
}

// A client given one endpoint learns the others and keeps working when
// that endpoint goes away.
func TestMembershipLearnedFromOneEndpoint(t *testing.T) {
	tc := newTestCluster(t, 3)
	l := tc.leader()
	f := tc.followers(l)[0]
	c := newClient(t, client.Config{Endpoints: []string{f.url}})
	if _, err := c.Set(callCtx(t), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the client to learn all members", func() bool {
		eps := c.Endpoints()
		slices.Sort(eps)
		want := tc.urls()
		slices.Sort(want)
		return slices.Equal(eps, want)
	})
	f.HTTP.Close() // the only configured endpoint stops answering
	for i := 0; i < 5; i++ {
		w, err := c.Set(callCtx(t), "k", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatalf("Set after the configured endpoint went away: %v", err)
		}
		// A stale read may be served by a follower that has not applied
		// the write yet: ask for the write's index.
		item, err := c.Get(callCtx(t), "k", client.WithConsistency(client.Stale), client.WithMinIndex(w.Index))
		if err != nil || string(item.Value) != fmt.Sprint(i) {
			t.Fatalf("stale Get after the configured endpoint went away: %+v, %v", item, err)
		}
		if item.ServedBy == f.id {
			t.Fatalf("served by the closed endpoint")
		}
	}
}

// Server errors come back as typed errors that match through wrapping.
func TestTypedErrors(t *testing.T) {
	tc := newTestCluster(t, 3)
	c := newClient(t, client.Config{Endpoints: tc.urls()})
	ctx := callCtx(t)
	wrap := func(err error) error { return fmt.Errorf("layer 2: %w", fmt.Errorf("layer 1: %w", err)) }

	_, err := c.Get(ctx, "missing")
	if !errors.Is(wrap(err), client.ErrNotFound) {
		t.Errorf("Get missing: %v", err)
	}
	if _, err := c.SetTTL(ctx, "missing", time.Minute); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("SetTTL missing: %v", err)
	}

	w, err := c.Set(ctx, "k", []byte("v"), client.WithCAS(0))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Set(ctx, "k", []byte("v2"), client.WithCAS(0))
	var ce *client.CASConflictError
	if !errors.Is(wrap(err), client.ErrCASConflict) || !errors.As(wrap(err), &ce) || ce.CurrentVersion != w.Version {
		t.Errorf("Set WithCAS(0) on an existing key: %v (%+v), want a conflict at version %d", err, ce, w.Version)
	}
	var se *client.Error
	if !errors.As(err, &se) || se.Status != http.StatusPreconditionFailed {
		t.Errorf("a CAS conflict unwraps to the server's *Error: %v", err)
	}
	if _, err := c.Delete(ctx, "k", client.WithCAS(w.Version+100)); !errors.As(err, &ce) || ce.CurrentVersion != w.Version {
		t.Errorf("Delete WithCAS(wrong): %v", err)
	}
	if d, err := c.Delete(ctx, "k", client.WithCAS(w.Version)); err != nil || !d.Deleted {
		t.Errorf("Delete WithCAS(right) = %+v, %v", d, err)
	}
	if _, err := c.Set(ctx, "k", []byte("v3"), client.WithCAS(w.Version)); !errors.As(err, &ce) || ce.CurrentVersion != 0 {
		t.Errorf("Set WithCAS on a deleted key: %v, want current version 0", err)
	}

	c.Set(ctx, "word", []byte("abc"))
	if _, err := c.Incr(ctx, "word", 1); !errors.Is(wrap(err), client.ErrNotInteger) {
		t.Errorf("Incr on text: %v", err)
	}
	if _, err := c.Incr(ctx, "big", math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Incr(ctx, "big", 1); !errors.Is(err, client.ErrOverflow) {
		t.Errorf("Incr overflow: %v", err)
	}
	if _, err := c.Set(ctx, "huge", make([]byte, maxValue+1)); !errors.Is(wrap(err), client.ErrTooLarge) {
		t.Errorf("Set too large: %v", err)
	}
	if _, err := c.Set(ctx, strings.Repeat("x", 2000), []byte("v")); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("Set with a 2000-byte key: %v", err)
	}
	if err := c.RemoveMember(ctx, "nobody"); !errors.Is(err, client.ErrUnknownMember) {
		t.Errorf("RemoveMember unknown: %v", err)
	}
	_, err = c.Batch(ctx, []client.BatchOp{client.SetOp("b1", []byte("1")), client.IncrOp("word", 1)})
	if !errors.Is(err, client.ErrNotInteger) || !errors.As(err, &se) || se.FailedOp != 1 {
		t.Errorf("Batch with a failing op: %v", err)
	}
	if _, err := c.Get(ctx, "b1"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("an atomic batch that failed applied its first op: %v", err)
	}
	// A key given by the caller names one write (cluster level 6).
	tc.WaitAgreed(t)
	if _, err := c.Set(ctx, "ik", []byte("1"), client.WithIdempotencyKey("ik-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(ctx, "ik", []byte("2"), client.WithIdempotencyKey("ik-1")); !errors.Is(wrap(err), client.ErrIdempotencyKeyReused) ||
		errors.Is(err, client.ErrUnknownOutcome) {
		t.Errorf("a caller's key on another write: %v", err)
	}
	if it, err := c.Get(ctx, "ik"); err != nil || string(it.Value) != "1" {
		t.Errorf("after a reused key: %v, %v", it, err)
	}
	for _, e := range []error{client.ErrNotFound, client.ErrCASConflict, client.ErrUnknownOutcome, client.ErrNoLeader} {
		if errors.Is(fmt.Errorf("x: %w", client.ErrTooLarge), e) {
			t.Errorf("ErrTooLarge matches %v", e)
		}
	}
}

// When every attempt of a write ends in an unknown outcome until the
// deadline, the caller sees ErrUnknownOutcome; every attempt carried the
// same Idempotency-Key, so the write was applied exactly once.
func TestUnknownOutcomeAndOneApplication(t *testing.T) {
	tc := newTestCluster(t, 3)
	c := newClient(t, client.Config{Endpoints: tc.urls()})
	var answered atomic.Int64 // attempts the real handler answered 200
	unknown := applyThenAnswer(func(w http.ResponseWriter) {
		answered.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusGatewayTimeout)
		_, _ = w.Write([]byte(`{"error":"write outcome unknown","code":"unknown_outcome"}` + "\n"))
	})
	for _, tn := range tc.nodes() {
		tn.setHook(func(w http.ResponseWriter, r *http.Request, api http.Handler) {
			if strings.HasPrefix(r.URL.Path, "/v1/incr/") {
				unknown(w, r, api)
			} else {
				api.ServeHTTP(w, r)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := c.Incr(ctx, "ctr", 5)
	if !errors.Is(err, client.ErrUnknownOutcome) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Incr = %v, want ErrUnknownOutcome and DeadlineExceeded", err)
	}
	keys := map[string]int{}
	var replayed int
	for _, tn := range tc.nodes() {
		for _, s := range tn.requests(func(s seenReq) bool { return strings.HasPrefix(s.Path, "/v1/incr/") }) {
			keys[s.IdemKey]++
			if s.Replayed {
				replayed++
			}
		}
		tn.setHook(nil)
	}
	if len(keys) != 1 || keys[""] != 0 {
		t.Fatalf("idempotency keys sent: %v, want one key on every attempt", keys)
	}
	for _, n := range keys {
		if n < 2 {
			t.Fatalf("only %d attempt(s): the write was not retried", n)
		}
	}
	// Elections may turn some attempts away (503); of those the leader
	// handled, only the first was applied and the others were replays.
	n := answered.Load()
	t.Logf("%d attempts, %d handled by the leader, %d replays", func() int {
		for _, v := range keys {
			return v
		}
		return 0
	}(), n, replayed)
	// (All of them may be replays: an attempt that really ended in 504 may
	// still have been applied.)
	if n > 1 && int64(replayed) < n-1 {
		t.Errorf("%d attempts handled, %d replays: want all but the first replayed", n, replayed)
	}
	item, err := c.Get(callCtx(t), "ctr")
	switch {
	case n == 0 && !errors.Is(err, client.ErrNotFound) && (err != nil || string(item.Value) != "5"):
		t.Fatalf("counter = %v, %v; want none or 5", item, err)
	case n > 0 && (err != nil || string(item.Value) != "5"):
		t.Fatalf("counter = %v, %v: want 5, applied once", item, err)
	}

	// Reads and plain writes that only ever meet 503 end with ErrNoLeader,
	// not an unknown outcome: nothing was applied.
	for _, tn := range tc.nodes() {
		tn.setHook(func(w http.ResponseWriter, r *http.Request, api http.Handler) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"no leader available","code":"no_leader"}`))
		})
	}
	for _, write := range []bool{true, false} {
		ctx, cancel := context.WithCancel(context.Background())
		rt := &cancelAfter{next: http.DefaultTransport, status: http.StatusServiceUnavailable, n: 5, cancel: cancel}
		c := newClient(t, client.Config{Endpoints: tc.urls(), HTTPClient: &http.Client{Transport: rt}, RefreshInterval: -1})
		var err error
		if write {
			_, err = c.Set(ctx, "k", []byte("v"))
		} else {
			_, err = c.Get(ctx, "k")
		}
		cancel()
		if !errors.Is(err, client.ErrNoLeader) || !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrUnknownOutcome) {
			t.Errorf("write %t against 503s = %v, want ErrNoLeader and Canceled only", write, err)
		}
	}
}

// A write whose connection dies after it was applied is retried with the
// same key and answered from the server's memory: counted once.
func TestLostResponseRetriedOnce(t *testing.T) {
	tc := newTestCluster(t, 3)
	c := newClient(t, client.Config{Endpoints: tc.urls()})
	var mu sync.Mutex
	dropped := map[string]bool{}
	drop := func(w http.ResponseWriter, r *http.Request, api http.Handler) {
		key := r.Header.Get("Idempotency-Key")
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, r)
		mu.Lock()
		first := rec.Code == http.StatusOK && key != "" && !dropped[key]
		dropped[key] = dropped[key] || first
		mu.Unlock()
		if first { // applied, but the answer is lost
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}
	for _, tn := range tc.nodes() {
		tn.setHook(drop)
	}
	ctx := callCtx(t)
	for want := int64(1); want <= 3; want++ {
		n, err := c.Incr(ctx, "ctr", 1)
		if err != nil || n != want {
			t.Fatalf("Incr = %d, %v; want %d", n, err, want)
		}
	}
	res, err := c.Batch(ctx, []client.BatchOp{client.IncrOp("ctr", 10), client.SetOp("x", []byte("y"))})
	if err != nil || res.Results[0].Value != 13 {
		t.Fatalf("Batch = %+v, %v", res, err)
	}
	// Every call's first answer was dropped; the retries were answered
	// from the server's memory. (Batch replays carry no
	// Idempotent-Replayed header: the value above shows the dedup.)
	replays := 0
	for _, tn := range tc.nodes() {
		for _, s := range tn.requests(func(s seenReq) bool { return strings.HasPrefix(s.Path, "/v1/incr/") }) {
			if s.Replayed {
				replays++
			}
		}
	}
	if replays != 3 {
		t.Errorf("%d replayed Incr answers, want 3 (one per dropped answer)", replays)
	}
}

// A session's reads are stale reads spread over the members, each carrying
// min_index = the highest index the session has written or read, so it
// always reads its own writes and its index never goes back.
func TestSessionMinIndex(t *testing.T) {
	tc := newTestCluster(t, 3)
	c := newClient(t, client.Config{Endpoints: tc.urls()})
	s := c.Session()
	ctx := callCtx(t)
	for _, tn := range tc.nodes() {
		tn.forget()
	}
	last := uint64(0)
	servedBy := map[string]int{}
	for i := 0; i < 30; i++ {
		key, value := fmt.Sprintf("k%d", i%5), fmt.Sprintf("v%d", i)
		w, err := s.Set(ctx, key, []byte(value))
		if err != nil {
			t.Fatal(err)
		}
		if s.Index() < w.Index || s.Index() < last {
			t.Fatalf("session index %d after a write at %d (was %d)", s.Index(), w.Index, last)
		}
		last = s.Index()
		item, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if string(item.Value) != value || item.Index < w.Index {
			t.Fatalf("read %q at index %d from %s after writing %q at %d", item.Value, item.Index, item.ServedBy, value, w.Index)
		}
		if s.Index() < item.Index || s.Index() < last {
			t.Fatalf("session index %d after a read at %d (was %d)", s.Index(), item.Index, last)
		}
		last = s.Index()
		servedBy[item.ServedBy]++
	}
	if len(servedBy) < 2 {
		t.Errorf("session reads were served by %v: want them spread over the members", servedBy)
	}
	for _, tn := range tc.nodes() {
		for _, r := range tn.requests(func(r seenReq) bool { return r.Method == http.MethodGet && strings.HasPrefix(r.Path, "/v1/kv/") }) {
			q, _ := url.ParseQuery(r.Query)
			if q.Get("consistency") != "stale" || q.Get("min_index") == "" {
				t.Errorf("%s got a session read without stale/min_index: %q", tn.id, r.Query)
			}
		}
	}

	// GetMany and Keys carry the index too; an explicit strong read is
	// strong.
	w, err := s.Set(ctx, "many", []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetMany(ctx, []string{"many", "k0", "nope"})
	if err != nil || !got.Items[0].Found || string(got.Items[0].Value) != "m" || got.Items[2].Found || got.Index < w.Index {
		t.Fatalf("session GetMany = %+v, %v", got, err)
	}
	page, err := s.Keys(ctx, "k")
	if err != nil || len(page.Keys) != 5 || page.Index < w.Index {
		t.Fatalf("session Keys = %+v, %v", page, err)
	}
	if item, err := s.Get(ctx, "many", client.WithConsistency(client.Strong)); err != nil || string(item.Value) != "m" {
		t.Fatalf("strong session Get = %v, %v", item, err)
	}
	s2 := c.Session()
	s2.Observe(s.Index())
	if item, err := s2.Get(ctx, "many"); err != nil || string(item.Value) != "m" {
		t.Fatalf("a session carried over with Observe: %v, %v", item, err)
	}
}

// Listing, batches with binary keys, TTL management, statistics and
// membership through the client.
func TestListingBatchesAdmin(t *testing.T) {
	tc := newTestCluster(t, 3)
	c := newClient(t, client.Config{Endpoints: tc.urls()[:1]})
	ctx := callCtx(t)

	bin := "bin:\x00\xff\xfe"
	if _, err := c.Batch(ctx, []client.BatchOp{
		client.SetOp(bin, []byte{0, 1, 0xff}),
		client.SetOp("bin:plain", []byte("text")),
		client.IncrOp("bin:n", 3, client.WithTTL(time.Hour)),
	}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetMany(ctx, []string{bin, "bin:plain", "bin:n"})
	if err != nil {
		t.Fatal(err)
	}
	if it := got.Items[0]; it.Key != bin || !it.Found || !bytes.Equal(it.Value, []byte{0, 1, 0xff}) {
		t.Errorf("binary key read back as %+v", it)
	}
	if it := got.Items[1]; it.Key != "bin:plain" || string(it.Value) != "text" {
		t.Errorf("plain key read back as %+v", it)
	}
	var all []string
	for cursor := ""; ; {
		page, err := c.Keys(ctx, "bin:", client.WithLimit(1), client.WithCursor(cursor))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Keys...)
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if want := []string{bin, "bin:n", "bin:plain"}; !slices.Equal(all, want) {
		t.Errorf("Keys listed %q, want %q", all, want)
	}
	if item, err := c.Get(ctx, bin); err != nil || !bytes.Equal(item.Value, []byte{0, 1, 0xff}) {
		t.Errorf("Get binary key = %v, %v", item, err)
	}

	if _, err := c.ClearTTL(ctx, "bin:n"); err != nil {
		t.Fatal(err)
	}
	if item, _ := c.Get(ctx, "bin:n"); !item.ExpiresAt.IsZero() {
		t.Errorf("ClearTTL left an expiry: %v", item.ExpiresAt)
	}
	if _, err := c.SetTTL(ctx, "bin:n", time.Minute); err != nil {
		t.Fatal(err)
	}
	if item, _ := c.Get(ctx, "bin:n"); item.ExpiresAt.IsZero() || time.Until(item.ExpiresAt) > time.Minute+5*time.Second {
		t.Errorf("SetTTL: expiry %v", item.ExpiresAt)
	}
	if _, err := c.DeletePrefix(ctx, ""); err == nil {
		t.Errorf("DeletePrefix with an empty prefix must be refused")
	}
	if res, err := c.DeletePrefix(ctx, "bin:"); err != nil || res.Deleted != 3 {
		t.Errorf("DeletePrefix = %+v, %v", res, err)
	}

	st, err := c.Stats(ctx, client.WithClusterScope())
	if err != nil || st.Scope != "cluster" || len(st.Nodes) != 3 {
		t.Errorf("cluster Stats = %+v, %v", st, err)
	}
	if st, err := c.Stats(ctx); err != nil || st.Scope != "node" || st.NodeID == "" || st.RequestIDs == 0 || st.RequestIDBytes <= 0 {
		t.Errorf("node Stats = %+v, %v (the client's idempotency keys must show in request_ids)", st, err)
	}
	view, err := c.Cluster(ctx)
	if err != nil || len(view.Members) != 3 {
		t.Fatalf("Cluster = %+v, %v", view, err)
	}

	// Remove a follower, then add it back.
	l := tc.leader()
	f := tc.followers(l)[0]
	if err := c.RemoveMember(ctx, f.id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the member to be gone", func() bool {
		m, err := l.Members()
		return err == nil && len(m) == 2
	})
	if err := c.AddMember(ctx, client.Member{ID: f.id, RaftAddr: f.RaftAddr(), HTTPAddr: f.addr, FeatureLevel: fsm.FeatureLevel}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the member to be back", func() bool {
		m, err := tc.leader().Members()
		return err == nil && len(m) == 3
	})
}

// A keyed write retried after a lost answer says which index its first
// attempt applies above (Raftcache-Resend, the highest X-Raft-Index the
// client had seen before the call), so a server that has forgotten the
// key answers unknown outcome rather than apply it twice; the first
// attempt carries nothing.
func TestKeyedRetryNamesItsIndex(t *testing.T) {
	tc := newTestCluster(t, 3)
	c := newClient(t, client.Config{Endpoints: tc.urls()})
	ctx := callCtx(t)
	w, err := c.Set(ctx, "before", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		resends []string
		lost    atomic.Bool
	)
	loseFirst := applyThenAnswer(func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusGatewayTimeout)
		_, _ = w.Write([]byte(`{"error":"write outcome unknown","code":"unknown_outcome"}` + "\n"))
	})
	for _, tn := range tc.nodes() {
		tn.setHook(func(w http.ResponseWriter, r *http.Request, api http.Handler) {
			if !strings.HasPrefix(r.URL.Path, "/v1/incr/") {
				api.ServeHTTP(w, r)
				return
			}
			mu.Lock()
			resends = append(resends, r.Header.Get("Raftcache-Resend"))
			mu.Unlock()
			if lost.CompareAndSwap(false, true) {
				loseFirst(w, r, api)
				return
			}
			api.ServeHTTP(w, r)
		})
	}
	v, err := c.Incr(ctx, "ctr", 5)
	if err != nil || v != 5 {
		t.Fatalf("Incr = %d, %v; want 5, applied once", v, err)
	}
	for _, tn := range tc.nodes() {
		tn.setHook(nil)
	}
	it, err := c.Get(ctx, "ctr") // a state at or after the Incr
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(resends) < 2 || resends[0] != "" {
		t.Fatalf("Raftcache-Resend per attempt: %q, want none on the first, then the index", resends)
	}
	for _, v := range resends[1:] {
		after, err := strconv.ParseUint(v, 10, 64)
		if err != nil || after < w.Index || after >= it.Index {
			t.Fatalf("a retry named index %q; the client had seen %d before the call, which applied by %d", v, w.Index, it.Index)
		}
	}
}
