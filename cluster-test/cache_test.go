package clustertest

// Cache features on real three-process clusters: TTLs that expire on every
// node at the leader-stamped time (and survive a leader crash), CAS races
// across nodes, an INCR rate limiter under concurrency, prefix
// invalidation, LRU eviction under --max-memory, cluster-wide stats, and
// health probes that stay fast while 4 MiB values move.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cacheStatsView is the whole of GET /v1/stats.
type cacheStatsView struct {
	NodeID       string `json:"node_id"`
	Keys         int    `json:"keys"`
	Bytes        int64  `json:"bytes"`
	MaxMemory    int64  `json:"max_memory"`
	Hits         uint64 `json:"hits"`
	Misses       uint64 `json:"misses"`
	Evictions    uint64 `json:"evictions"`
	Expirations  uint64 `json:"expirations"`
	Sets         uint64 `json:"sets"`
	Deletes      uint64 `json:"deletes"`
	AppliedIndex uint64 `json:"applied_index"`
	Digest       string `json:"digest"`
}

func cacheStats(t testing.TB, n *Node) cacheStatsView {
	t.Helper()
	var s cacheStatsView
	if err := getJSON(n.URL()+"/v1/stats", &s); err != nil {
		t.Fatalf("stats of %s: %v", n.ID, err)
	}
	return s
}

// cacheMust sends one request and fails the test unless it answers want.
func cacheMust(t testing.TB, hc *http.Client, want int, method, url string, body []byte) *Response {
	t.Helper()
	r, err := Do(context.Background(), hc, method, url, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if r.Status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, r.Status, bytes.TrimSpace(r.Body), want)
	}
	return r
}

// cacheSend sends one request with optional headers and reads the answer.
func cacheSend(ctx context.Context, hc *http.Client, method, url string, body []byte, hdr map[string]string) (*Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// cacheRetry sends a request that is safe to repeat (a read, a write of a
// fixed value, or a write carrying an Idempotency-Key) through
// followClient until it gets an answer that is not "try again": transport
// errors, 503 (not applied) and 504 (outcome unknown: safe to resend only
// because the request is idempotent) are retried for up to deadline. The
// machine these tests run on is shared and busy, so elections happen.
func cacheRetry(method, url string, body []byte, hdr map[string]string) (*Response, error) {
	var last string
	for end := time.Now().Add(deadline); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		r, err := cacheSend(context.Background(), followClient, method, url, body, hdr)
		switch {
		case err != nil:
			last = err.Error()
		case r.Status == http.StatusServiceUnavailable || r.Status == http.StatusGatewayTimeout:
			last = fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body))
		default:
			return r, nil
		}
	}
	return nil, fmt.Errorf("%s %s: no answer within %v: %s", method, url, deadline, last)
}

// cacheRetryMust is cacheRetry that fails the test unless the answer is want.
func cacheRetryMust(t testing.TB, want int, method, url string, body []byte, hdr map[string]string) *Response {
	t.Helper()
	r, err := cacheRetry(method, url, body, hdr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, r.Status, bytes.TrimSpace(r.Body), want)
	}
	return r
}

// cacheIndex reads "index" from a write's answer.
func cacheIndex(t testing.TB, r *Response) uint64 {
	t.Helper()
	var w struct{ Index uint64 }
	if err := json.Unmarshal(r.Body, &w); err != nil || w.Index == 0 {
		t.Fatalf("no index in %s (%v)", r.Body, err)
	}
	return w.Index
}

// cacheETag parses a response's ETag.
func cacheETag(r *Response) (uint64, error) {
	et := r.Header.Get("ETag")
	if len(et) < 3 || et[0] != '"' || et[len(et)-1] != '"' {
		return 0, fmt.Errorf("bad ETag %q", et)
	}
	return strconv.ParseUint(et[1:len(et)-1], 10, 64)
}

// cacheExpiresAt parses X-Expires-At (Unix ms).
func cacheExpiresAt(t testing.TB, r *Response) time.Time {
	t.Helper()
	ms, err := strconv.ParseInt(r.Header.Get("X-Expires-At"), 10, 64)
	if err != nil {
		t.Fatalf("X-Expires-At %q: %v", r.Header.Get("X-Expires-At"), err)
	}
	return time.UnixMilli(ms)
}

// cacheRunning lists the running nodes.
func cacheRunning(c *Cluster) []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// cacheWatchExpiry polls a stale read of key on every node in nodes every
// 10ms until it answers 404, and returns when each did. A node must answer
// only 200 before that, and only 404 for a while after.
func cacheWatchExpiry(t testing.TB, nodes []*Node, key string, until time.Time) map[string]time.Time {
	t.Helper()
	var mu sync.Mutex
	gone := map[string]time.Time{}
	var errs []string
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func(n *Node) {
			defer wg.Done()
			fail := func(format string, args ...any) {
				mu.Lock()
				errs = append(errs, n.ID+": "+fmt.Sprintf(format, args...))
				mu.Unlock()
			}
			var first time.Time
			after := 0
			for time.Now().Before(until) && after < 10 {
				r, err := Do(context.Background(), plainClient, http.MethodGet, n.URL()+"/v1/kv/"+key+"?consistency=stale", nil)
				now := time.Now()
				switch {
				case err != nil:
					fail("stale GET: %v", err)
					return
				case r.Status == http.StatusNotFound:
					if first.IsZero() {
						first = now
					}
					after++
				case r.Status == http.StatusOK && first.IsZero():
				default:
					fail("stale GET answered %d %s (absent since %v)", r.Status, bytes.TrimSpace(r.Body), first)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			if first.IsZero() {
				fail("%s still readable at %v", key, until)
				return
			}
			mu.Lock()
			gone[n.ID] = first
			mu.Unlock()
		}(n)
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("watching %s expire: %s", key, strings.Join(errs, "; "))
	}
	return gone
}

// cachePresentBefore reads key on every node in nodes (stale, at least
// index idx) and checks it holds value with expiry exp. A miss is a failure
// unless the read came after exp: on a busy machine the check may simply
// be late, and that is logged.
func cachePresentBefore(t testing.TB, nodes []*Node, key, value string, idx uint64, exp time.Time) {
	t.Helper()
	for _, n := range nodes {
		r, err := cacheRetry(http.MethodGet, n.URL()+"/v1/kv/"+key+"?consistency=stale&min_index="+strconv.FormatUint(idx, 10), nil, nil)
		switch {
		case err != nil:
			t.Fatal(err)
		case r.Status == http.StatusOK:
			if string(r.Body) != value || !cacheExpiresAt(t, r).Equal(exp) {
				t.Fatalf("%s before expiry: %q expiring %v, want %q expiring %v", n.ID, r.Body, cacheExpiresAt(t, r), value, exp)
			}
		case r.Status == http.StatusNotFound && time.Now().After(exp):
			t.Logf("%s: the before-expiry read of %s came %v late; not checked", n.ID, key, time.Since(exp))
		default:
			t.Fatalf("%s before expiry (%v left): %d %s", n.ID, time.Until(exp), r.Status, bytes.TrimSpace(r.Body))
		}
	}
}

// TestCacheTTLExpiry: a key written with a TTL is readable everywhere
// before it expires and gone everywhere at about the same moment after;
// a key whose leader is killed right after writing it still expires at
// the time that leader stamped, and the new leader reaps it.
func TestCacheTTLExpiry(t *testing.T) {
	c := NewCluster(t, Options{})
	l := c.WaitForLeader()

	// 1. ttl=2s, watched on every node.
	w := cacheRetryMust(t, http.StatusOK, http.MethodPut, l.URL()+"/v1/kv/ttl/a?ttl=2s", []byte("short-lived"), nil)
	idx := cacheIndex(t, w)
	// The node that took the write has applied it: read its expiry there.
	by := c.Node(w.Header.Get("X-Served-By"))
	exp := cacheExpiresAt(t, cacheMust(t, plainClient, http.StatusOK, http.MethodGet, by.URL()+"/v1/kv/ttl/a?consistency=stale", nil))
	if d := time.Until(exp); d < time.Second || d > 2100*time.Millisecond {
		t.Fatalf("ttl=2s expires in %v", d)
	}
	cachePresentBefore(t, c.Nodes, "ttl/a", "short-lived", idx, exp)
	gone := cacheWatchExpiry(t, c.Nodes, "ttl/a", exp.Add(10*time.Second))
	var first, last time.Time
	for id, at := range gone {
		if at.Before(exp) {
			t.Errorf("%s stopped returning ttl/a %v before its expiry", id, exp.Sub(at))
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	spread := last.Sub(first)
	t.Logf("ttl=2s: nodes stopped returning the key %v to %v after its expiry; spread %v",
		first.Sub(exp).Round(time.Millisecond), last.Sub(exp).Round(time.Millisecond), spread.Round(time.Millisecond))
	if spread > 1500*time.Millisecond {
		t.Errorf("nodes stopped returning the key %v apart, want under 1.5s", spread)
	}
	if last.Sub(exp) > 1500*time.Millisecond {
		t.Errorf("a node returned the key until %v after its expiry", last.Sub(exp))
	}
	Eventually(t, "every node applies the reaping of ttl/a", func() error {
		for _, n := range c.Nodes {
			if s := cacheStats(t, n); s.Expirations < 1 || s.Keys != 0 {
				return fmt.Errorf("%s: expirations %d, keys %d", n.ID, s.Expirations, s.Keys)
			}
		}
		return nil
	})

	// 2. ttl=4s, then kill -9 the leader at once.
	l = c.WaitForLeader()
	e0 := cacheStats(t, l).Expirations
	w = cacheRetryMust(t, http.StatusOK, http.MethodPut, l.URL()+"/v1/kv/ttl/b?ttl=4s", []byte("outlives its leader"), nil)
	idx = cacheIndex(t, w)
	l = c.Node(w.Header.Get("X-Served-By")) // the leader that stamped the expiry
	exp = cacheExpiresAt(t, cacheMust(t, plainClient, http.StatusOK, http.MethodGet, l.URL()+"/v1/kv/ttl/b?consistency=stale", nil))
	l.Kill()
	killed := time.Now()
	nl := c.WaitForLeader()
	t.Logf("killed leader %s %v before ttl/b's expiry; %s leads %v later",
		l.ID, exp.Sub(killed).Round(time.Millisecond), nl.ID, time.Since(killed).Round(time.Millisecond))
	survivors := cacheRunning(c)
	cachePresentBefore(t, survivors, "ttl/b", "outlives its leader", idx, exp)
	gone = cacheWatchExpiry(t, survivors, "ttl/b", exp.Add(10*time.Second))
	for id, at := range gone {
		t.Logf("%s stopped returning ttl/b %v after its original expiry", id, at.Sub(exp).Round(time.Millisecond))
		if at.Before(exp) {
			t.Errorf("%s dropped ttl/b %v early", id, exp.Sub(at))
		}
		if at.After(exp.Add(1500 * time.Millisecond)) {
			t.Errorf("%s still returned ttl/b %v after its original expiry", id, at.Sub(exp))
		}
	}
	cacheRetryMust(t, http.StatusNotFound, http.MethodGet, nl.URL()+"/v1/kv/ttl/b", nil, nil)
	Eventually(t, "the new leader reaps ttl/b", func() error {
		for _, n := range survivors {
			if s := cacheStats(t, n); s.Expirations <= e0 || s.Keys != 0 {
				return fmt.Errorf("%s: expirations %d (were %d), keys %d", n.ID, s.Expirations, e0, s.Keys)
			}
		}
		return nil
	})
	c.WaitConverged()
}

// TestCacheCASRace: two clients read the same ETag and race a CAS write
// through different nodes: exactly one wins each round, the other gets
// 412 with the winner's version.
func TestCacheCASRace(t *testing.T) {
	c := NewCluster(t, Options{})
	l := c.WaitForLeader()
	fs := c.Followers(l)
	const key = "cas/k"
	cacheRetryMust(t, http.StatusOK, http.MethodPut, l.URL()+"/v1/kv/"+key, []byte("init"), nil)
	wins := map[string]int{}
	for round := 0; round < 20; round++ {
		via := [2]*Node{l, fs[0]}
		if round%2 == 1 {
			via = [2]*Node{fs[1], fs[0]}
		}
		// Each client reads the version through its own node.
		var seen [2]uint64
		for i, n := range via {
			r := cacheRetryMust(t, http.StatusOK, http.MethodGet, n.URL()+"/v1/kv/"+key, nil, nil)
			v, err := cacheETag(r)
			if err != nil {
				t.Fatal(err)
			}
			seen[i] = v
		}
		if seen[0] != seen[1] {
			t.Fatalf("round %d: the clients read versions %d and %d with no write between", round, seen[0], seen[1])
		}
		type outcome struct {
			r    *Response
			err  error
			body string
		}
		var out [2]outcome
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range via {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				out[i].body = fmt.Sprintf("client%d-round%d", i, round)
				<-start
				// The Idempotency-Key makes a resend after an unknown
				// outcome answer the first attempt's result.
				out[i].r, out[i].err = cacheRetry(http.MethodPut, via[i].URL()+"/v1/kv/"+key+"?cas="+strconv.FormatUint(seen[i], 10),
					[]byte(out[i].body), map[string]string{"Idempotency-Key": out[i].body})
			}(i)
		}
		close(start)
		wg.Wait()
		winner, loser := -1, -1
		for i, o := range out {
			if o.err != nil {
				t.Fatalf("round %d client %d via %s: %v", round, i, via[i].ID, o.err)
			}
			switch o.r.Status {
			case http.StatusOK:
				if winner >= 0 {
					t.Fatalf("round %d: both clients won CAS on version %d", round, seen[0])
				}
				winner = i
			case http.StatusPreconditionFailed:
				if loser >= 0 {
					t.Fatalf("round %d: both clients lost CAS on version %d (%s)", round, seen[0], o.r.Body)
				}
				loser = i
			default:
				t.Fatalf("round %d client %d via %s: %d %s", round, i, via[i].ID, o.r.Status, o.r.Body)
			}
		}
		var won struct{ Version uint64 }
		if err := json.Unmarshal(out[winner].r.Body, &won); err != nil || won.Version <= seen[0] {
			t.Fatalf("round %d: winner's answer %s", round, out[winner].r.Body)
		}
		var lost struct {
			Code           string  `json:"code"`
			CurrentVersion *uint64 `json:"current_version"`
		}
		if err := json.Unmarshal(out[loser].r.Body, &lost); err != nil || lost.Code != "cas_conflict" ||
			lost.CurrentVersion == nil || *lost.CurrentVersion != won.Version {
			t.Fatalf("round %d: loser's answer %s, want cas_conflict with current_version %d", round, out[loser].r.Body, won.Version)
		}
		if et, err := cacheETag(out[loser].r); err != nil || et != won.Version {
			t.Fatalf("round %d: loser's ETag %q, want %d", round, out[loser].r.Header.Get("ETag"), won.Version)
		}
		r := cacheRetryMust(t, http.StatusOK, http.MethodGet, fs[1].URL()+"/v1/kv/"+key, nil, nil)
		if v, _ := cacheETag(r); string(r.Body) != out[winner].body || v != won.Version {
			t.Fatalf("round %d: the key holds %q at %d, the winner wrote %q at %d", round, r.Body, v, out[winner].body, won.Version)
		}
		wins[via[winner].ID]++
	}
	t.Logf("CAS wins by the node the winner wrote through: %v", wins)
}

// TestCacheRateLimiter: a fixed-window limiter is one INCR with a TTL;
// concurrent clients on every node are admitted exactly N times.
func TestCacheRateLimiter(t *testing.T) {
	c := NewCluster(t, Options{})
	c.WaitForLeader()
	const (
		clients = 24
		calls   = 300
		limit   = 100
	)
	var issued atomic.Int64
	var mu sync.Mutex
	var values []int64
	var errs []string
	start := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			n := c.Nodes[g%len(c.Nodes)]
			for {
				call := issued.Add(1)
				if call > calls {
					return
				}
				// Each call carries its own Idempotency-Key, so resending it
				// after an unknown outcome (an election on this busy
				// machine) cannot count it twice.
				r, err := cacheRetry(http.MethodPost, n.URL()+"/v1/incr/rl?ttl=5s", nil,
					map[string]string{"Idempotency-Key": fmt.Sprintf("rl-call-%d", call)})
				var v struct{ Value int64 }
				if err == nil && r.Status == http.StatusOK {
					err = json.Unmarshal(r.Body, &v)
				} else if err == nil {
					err = fmt.Errorf("%d %s", r.Status, bytes.TrimSpace(r.Body))
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Sprintf("client %d via %s: %v", g, n.ID, err))
				} else {
					values = append(values, v.Value)
				}
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(errs) > 0 {
		t.Fatalf("%d of %d calls failed: %s", len(errs), calls, strings.Join(errs[:min(len(errs), 5)], "; "))
	}
	sort.Slice(values, func(i, j int) bool { return values[i] < values[j] })
	admitted := 0
	for i, v := range values {
		if v != int64(i+1) {
			t.Fatalf("the counter answers are not 1..%d (lost, repeated or reset count): position %d holds %d; took %v with a 5s window",
				calls, i, v, elapsed)
		}
		if v <= limit {
			admitted++
		}
	}
	t.Logf("%d calls from %d clients over 3 nodes in %v: %d admitted", calls, clients, elapsed.Round(time.Millisecond), admitted)
	if admitted != limit {
		t.Fatalf("%d admitted, want exactly %d", admitted, limit)
	}
	r := cacheRetryMust(t, http.StatusOK, http.MethodGet, c.Nodes[0].URL()+"/v1/kv/rl", nil, nil)
	if string(r.Body) != strconv.Itoa(calls) || r.Header.Get("X-Expires-At") == "" {
		t.Fatalf("rl reads %q, expires %q", r.Body, r.Header.Get("X-Expires-At"))
	}
}

// cacheBatchSet writes key=value pairs in one batch through n.
func cacheBatchSet(t testing.TB, n *Node, kv map[string]string) {
	t.Helper()
	type op struct {
		Op    string `json:"op"`
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	var ops []op
	for k, v := range kv {
		ops = append(ops, op{"set", k, v})
	}
	b, _ := json.Marshal(map[string]any{"ops": ops})
	cacheRetryMust(t, http.StatusOK, http.MethodPost, n.URL()+"/v1/batch", b, nil)
}

// cacheList lists every key under prefix on n with a stale read.
func cacheList(t testing.TB, n *Node, prefix string) []string {
	t.Helper()
	var out []string
	cursor := ""
	for page := 0; page < 100; page++ {
		q := url.Values{"prefix": {prefix}, "consistency": {"stale"}, "limit": {"100"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var k struct {
			Keys []string `json:"keys"`
			Next string   `json:"next"`
		}
		if err := getJSON(n.URL()+"/v1/keys?"+q.Encode(), &k); err != nil {
			t.Fatalf("listing %s on %s: %v", prefix, n.ID, err)
		}
		out = append(out, k.Keys...)
		if k.Next == "" {
			return out
		}
		cursor = k.Next
	}
	t.Fatalf("listing %s on %s: too many pages", prefix, n.ID)
	return nil
}

// TestCachePrefixInvalidation: DELETE /v1/keys?prefix= removes exactly the
// keys under the prefix, on every node, and nothing else.
func TestCachePrefixInvalidation(t *testing.T) {
	c := NewCluster(t, Options{})
	l := c.WaitForLeader()
	f := c.Followers(l)[0]
	under, other := map[string]string{}, map[string]string{}
	for i := 0; i < 150; i++ {
		under[fmt.Sprintf("a/%03d", i)] = "x"
	}
	for i := 0; i < 30; i++ {
		under[fmt.Sprintf("alpha%02d", i)] = "y"
	}
	for i := 0; i < 100; i++ {
		other[fmt.Sprintf("b/%03d", i)] = fmt.Sprintf("b%d", i)
	}
	cacheBatchSet(t, f, under)
	cacheBatchSet(t, f, other)
	cacheBatchSet(t, f, map[string]string{"A/1": "upper", "_a": "before"})
	c.WaitConverged()

	// Retrying is safe here: a repeat finds nothing left to delete, and
	// the listings below check the outcome; only the count would be off.
	r := cacheRetryMust(t, http.StatusOK, http.MethodDelete, f.URL()+"/v1/keys?prefix=a", nil, nil)
	var d struct{ Deleted int }
	if err := json.Unmarshal(r.Body, &d); err != nil || d.Deleted != len(under) {
		t.Fatalf("DELETE prefix=a: %s, want %d deleted", r.Body, len(under))
	}
	c.WaitConverged()
	for _, n := range c.Nodes {
		if keys := cacheList(t, n, "a"); len(keys) != 0 {
			t.Fatalf("%s still lists %d keys under a: %v", n.ID, len(keys), keys[:min(5, len(keys))])
		}
		if keys := cacheList(t, n, "b/"); len(keys) != len(other) {
			t.Fatalf("%s lists %d keys under b/, want %d", n.ID, len(keys), len(other))
		}
		for _, k := range []string{"A/1", "_a", "b/042"} {
			cacheMust(t, plainClient, http.StatusOK, http.MethodGet, n.URL()+"/v1/kv/"+k+"?consistency=stale", nil)
		}
		for _, k := range []string{"a/000", "alpha00"} {
			cacheMust(t, plainClient, http.StatusNotFound, http.MethodGet, n.URL()+"/v1/kv/"+k+"?consistency=stale", nil)
		}
		if s := cacheStats(t, n); s.Keys != len(other)+2 {
			t.Fatalf("%s has %d keys, want %d", n.ID, s.Keys, len(other)+2)
		}
	}
}

// TestCacheEviction: under --max-memory a burst of never-read keys is
// evicted down to the bound, identically on every node, while a key read
// all along stays.
func TestCacheEviction(t *testing.T) {
	c := NewCluster(t, Options{Args: []string{"--max-memory", "64KB", "--maxmemory-policy", "allkeys-lru"}})
	l := c.WaitForLeader()
	const maxMem = 64000
	hot := strings.Repeat("h", 100)
	cacheRetryMust(t, http.StatusOK, http.MethodPut, l.URL()+"/v1/kv/hot", []byte(hot), nil)

	stop := make(chan struct{})
	var hotReads, hotMisses, hotUnavailable atomic.Int64
	var hotErr atomic.Value
	var readers sync.WaitGroup
	for i := 0; i < 2; i++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := Do(context.Background(), followClient, http.MethodGet, l.URL()+"/v1/kv/hot", nil)
				switch {
				case err != nil || r.Status == http.StatusServiceUnavailable || r.Status == http.StatusGatewayTimeout:
					hotUnavailable.Add(1) // an election on this busy machine
					time.Sleep(20 * time.Millisecond)
				case r.Status == http.StatusNotFound:
					hotMisses.Add(1)
				case r.Status != http.StatusOK || string(r.Body) != hot:
					hotErr.Store(fmt.Sprintf("%d %.100s", r.Status, r.Body))
				default:
					hotReads.Add(1)
				}
			}
		}()
	}

	const keys, writers = 2000, 12
	value := []byte(strings.Repeat("c", 100))
	var next atomic.Int64
	var writeErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			n := c.Nodes[w%len(c.Nodes)]
			for {
				i := next.Add(1) - 1
				if i >= keys {
					return
				}
				// Scattered key order, so each eviction sample mixes ages.
				k := fmt.Sprintf("cold/%04d", (i*7919)%keys)
				r, err := cacheRetry(http.MethodPut, n.URL()+"/v1/kv/"+k, value, nil)
				if err == nil && r.Status != http.StatusOK {
					err = fmt.Errorf("%d %s", r.Status, bytes.TrimSpace(r.Body))
				}
				if err != nil {
					writeErr.Store(fmt.Sprintf("PUT %s via %s: %v", k, n.ID, err))
					return
				}
			}
		}(w)
	}
	wg.Wait()
	burst := time.Since(start)
	if e := writeErr.Load(); e != nil {
		close(stop)
		readers.Wait()
		t.Fatal(e)
	}

	// Keep reading hot until the leader has evicted down to the bound.
	Eventually(t, "the leader evicts down to max memory", func() error {
		if s := cacheStats(t, l); s.Bytes > maxMem {
			return fmt.Errorf("bytes %d > %d", s.Bytes, maxMem)
		}
		return nil
	})
	close(stop)
	readers.Wait()
	digest := c.WaitConverged()
	var first cacheStatsView
	for i, n := range c.Nodes {
		s := cacheStats(t, n)
		if s.MaxMemory != maxMem || s.Bytes > maxMem || s.Evictions == 0 {
			t.Fatalf("%s: bytes %d, max_memory %d, evictions %d", n.ID, s.Bytes, s.MaxMemory, s.Evictions)
		}
		if i == 0 {
			first = s
		} else if s.Bytes != first.Bytes || s.Keys != first.Keys || s.Evictions != first.Evictions {
			t.Fatalf("%s: %d keys %d bytes %d evictions; %s: %d keys %d bytes %d evictions",
				n.ID, s.Keys, s.Bytes, s.Evictions, c.Nodes[0].ID, first.Keys, first.Bytes, first.Evictions)
		}
	}
	t.Logf("%d writes of 100 bytes in %v; after eviction %d keys, %d bytes (max %d), %d evictions, digest %s; %d hot reads during the burst (%d unavailable)",
		keys, burst.Round(time.Millisecond), first.Keys, first.Bytes, maxMem, first.Evictions, digest, hotReads.Load(), hotUnavailable.Load())
	if first.Bytes < maxMem/2 {
		t.Errorf("eviction went far below the bound: %d bytes of %d", first.Bytes, maxMem)
	}
	if e := hotErr.Load(); e != nil {
		t.Errorf("hot reads failed: %v", e)
	}
	if m := hotMisses.Load(); m > 0 {
		t.Errorf("the hot key was missing for %d of its reads: evicted while in use", m)
	}
	if hotReads.Load() == 0 {
		t.Error("no hot read succeeded")
	}
	r := cacheRetryMust(t, http.StatusOK, http.MethodGet, c.Nodes[1].URL()+"/v1/kv/hot", nil, nil)
	if string(r.Body) != hot {
		t.Fatalf("hot holds %q", r.Body)
	}
	for _, n := range c.Nodes {
		cacheMust(t, plainClient, http.StatusOK, http.MethodGet, n.URL()+"/v1/kv/hot?consistency=stale", nil)
	}
}

// TestCacheClusterStats: ?scope=cluster lists every member and sums the
// local hit and miss counters it lists.
func TestCacheClusterStats(t *testing.T) {
	c := NewCluster(t, Options{})
	l := c.WaitForLeader()
	idx := cacheIndex(t, cacheRetryMust(t, http.StatusOK, http.MethodPut, l.URL()+"/v1/kv/s", []byte("v"), nil))
	for i, n := range c.Nodes {
		c.WaitForIndex(n, idx)
		for j := 0; j <= i; j++ {
			cacheMust(t, plainClient, http.StatusOK, http.MethodGet, n.URL()+"/v1/kv/s?consistency=stale", nil)
		}
		for j := 0; j < 2; j++ {
			cacheMust(t, plainClient, http.StatusNotFound, http.MethodGet, n.URL()+"/v1/kv/missing?consistency=stale", nil)
		}
	}
	c.WaitConverged()
	var cs struct {
		Scope  string            `json:"scope"`
		Hits   uint64            `json:"hits"`
		Misses uint64            `json:"misses"`
		Nodes  []cacheStatsView  `json:"nodes"`
		Errors map[string]string `json:"errors"`
	}
	for _, via := range c.Nodes {
		if err := getJSON(via.URL()+"/v1/stats?scope=cluster", &cs); err != nil {
			t.Fatal(err)
		}
		if cs.Scope != "cluster" || len(cs.Nodes) != 3 || len(cs.Errors) != 0 {
			t.Fatalf("via %s: scope %q, %d nodes, errors %v", via.ID, cs.Scope, len(cs.Nodes), cs.Errors)
		}
		var hits, misses uint64
		ids := map[string]bool{}
		for _, s := range cs.Nodes {
			ids[s.NodeID] = true
			hits += s.Hits
			misses += s.Misses
			if s.Digest != cs.Nodes[0].Digest || s.Keys != 1 || s.Sets != cs.Nodes[0].Sets {
				t.Fatalf("via %s: replicated figures differ: %+v vs %+v", via.ID, s, cs.Nodes[0])
			}
		}
		if !ids["n1"] || !ids["n2"] || !ids["n3"] {
			t.Fatalf("via %s: nodes %v", via.ID, ids)
		}
		if cs.Hits != hits || cs.Misses != misses {
			t.Fatalf("via %s: hits %d misses %d, the listed nodes sum to %d and %d", via.ID, cs.Hits, cs.Misses, hits, misses)
		}
		if hits != 1+2+3 || misses != 3*2 {
			t.Fatalf("via %s: hits %d misses %d, want 6 and 6 from the reads made", via.ID, hits, misses)
		}
		for _, s := range cs.Nodes {
			i, _ := strconv.Atoi(strings.TrimPrefix(s.NodeID, "n"))
			if s.Hits != uint64(i) || s.Misses != 2 {
				t.Fatalf("via %s: %s counts %d hits %d misses, want %d and 2", via.ID, s.NodeID, s.Hits, s.Misses, i)
			}
		}
	}
}

// cacheTerm is the highest Raft term a running node reports.
func cacheTerm(t testing.TB, c *Cluster) uint64 {
	t.Helper()
	var term uint64
	for _, n := range cacheRunning(c) {
		if v, err := n.View(); err == nil && v.Term > term {
			term = v.Term
		}
	}
	return term
}

// cacheStreamGet reads url and compares the body with want as it streams
// in, without buffering 4 MiB per read in the test process (whose CPU the
// probes share). A 200 whose body differs is an error.
func cacheStreamGet(ctx context.Context, hc *http.Client, url string, want []byte) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, err := io.ReadAll(resp.Body)
		return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, err
	}
	buf := make([]byte, 64<<10)
	off := 0
	for {
		k, err := resp.Body.Read(buf)
		if off+k > len(want) || !bytes.Equal(buf[:k], want[off:off+k]) {
			return nil, fmt.Errorf("GET %s: the body differs from the value written at byte %d", url, off)
		}
		off += k
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if off != len(want) {
		return nil, fmt.Errorf("GET %s: %d bytes, want %d", url, off, len(want))
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header}, nil
}

// TestCacheBigValuesProbes: twenty clients move 4 MiB values while health
// probes poll every node; the probes stay fast.
func TestCacheBigValuesProbes(t *testing.T) {
	c := NewCluster(t, Options{})
	l := c.WaitForLeader()
	seed := bytes.Repeat([]byte("s"), 4<<20)
	cacheRetryMust(t, http.StatusOK, http.MethodPut, l.URL()+"/v1/kv/big/seed", seed, nil)
	const (
		clients = 20
		maxOps  = 300
		maxDur  = 8 * time.Second
		size    = 4 << 20
	)
	// The load sends "Expect: 100-continue" with its PUTs, as the Go client
	// does: a follower answers 307 before the body, so no 4 MiB upload is
	// wasted on it (and the connection is not torn down mid-upload).
	load := &http.Client{Timeout: 60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: clients, ExpectContinueTimeout: 30 * time.Second}}
	expect := map[string]string{"Expect": "100-continue"}
	probe := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer load.CloseIdleConnections()
	defer probe.CloseIdleConnections()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pmu sync.Mutex
	var lat, idle []time.Duration // under load, and before it
	var loaded atomic.Bool
	byEP := map[string][]time.Duration{}
	codes := map[string]int{}
	// The busy leader's /readyz must never say 503 (issue 15): readiness
	// is not "applied == commit at this instant" (node/ready.go).
	var leaderUnready int
	var leaderWhy string
	var probes sync.WaitGroup
	for _, n := range c.Nodes {
		for _, ep := range []string{"/livez", "/readyz"} {
			probes.Add(1)
			go func(n *Node, ep string) {
				defer probes.Done()
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					t0 := time.Now()
					r, err := Do(context.Background(), probe, http.MethodGet, n.URL()+ep, nil)
					d := time.Since(t0)
					pmu.Lock()
					switch {
					case !loaded.Load():
						idle = append(idle, d)
					case err != nil:
						codes[ep+" error"]++
						lat = append(lat, d)
						byEP[ep] = append(byEP[ep], d)
					default:
						codes[fmt.Sprintf("%s %d", ep, r.Status)]++
						if ep == "/readyz" && n == l && r.Status != http.StatusOK {
							leaderUnready++
							leaderWhy = string(bytes.TrimSpace(r.Body))
						}
						lat = append(lat, d)
						byEP[ep] = append(byEP[ep], d)
					}
					pmu.Unlock()
				}
			}(n, ep)
		}
	}

	// A baseline without load first: probe latency on this (shared,
	// busy) machine alone.
	Eventually(t, "baseline probes", func() error {
		pmu.Lock()
		defer pmu.Unlock()
		if len(idle) < 150 {
			return fmt.Errorf("%d baseline probes", len(idle))
		}
		return nil
	})
	loaded.Store(true)
	term0 := cacheTerm(t, c)
	var ops, bytesMoved, shed, reads, writes, cut, connErrs atomic.Int64
	var lastConnErr, shedWhy atomic.Value
	var lerr atomic.Value
	end := time.Now().Add(maxDur)
	start := time.Now()
	// Requests still running a second after the end are cut off, so the
	// test stays bounded when writes queue behind each other.
	loadCtx, stopLoad := context.WithDeadline(context.Background(), end.Add(time.Second))
	defer stopLoad()
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			n := c.Nodes[i%len(c.Nodes)]
			key := fmt.Sprintf("big/%02d", i)
			val := bytes.Repeat([]byte{byte('a' + i)}, size)
			copy(val, key)
			written := false
			for round := 0; time.Now().Before(end); round++ {
				if ops.Add(1) > maxOps {
					return
				}
				// One write of this client's key to three reads: of that key
				// once a write of it succeeded, else of the seed.
				write := round%4 == 3
				want, readKey := seed, "big/seed"
				if written {
					want, readKey = val, key
				}
				var r *Response
				var err error
				if write {
					r, err = cacheSend(loadCtx, load, http.MethodPut, n.URL()+"/v1/kv/"+key, val, expect)
				} else {
					r, err = cacheStreamGet(loadCtx, load, n.URL()+"/v1/kv/"+readKey, want)
				}
				switch {
				case err != nil && loadCtx.Err() != nil:
					cut.Add(1)
					return
				case err != nil && errors.Is(err, syscall.ECONNRESET):
					// Seen only during elections under this load: counted,
					// reported, and tolerated in small numbers below.
					connErrs.Add(1)
					lastConnErr.Store(fmt.Sprintf("client %d via %s round %d: %v", i, n.ID, round, err))
					continue
				case err != nil:
					lerr.Store(fmt.Sprintf("client %d via %s round %d: %v", i, n.ID, round, err))
					return
				case r.Status == http.StatusServiceUnavailable || r.Status == http.StatusGatewayTimeout:
					// Overload or an election: the server says so in time.
					shed.Add(1)
					shedWhy.Store(fmt.Sprintf("%s %s: %d %s", map[bool]string{true: "PUT", false: "GET"}[write], n.ID, r.Status, bytes.TrimSpace(r.Body)))
					continue
				case r.Status != http.StatusOK:
					lerr.Store(fmt.Sprintf("client %d via %s round %d: %d %.200s", i, n.ID, round, r.Status, r.Body))
					return
				}
				written = written || write
				if write {
					writes.Add(1)
				} else {
					reads.Add(1)
				}
				bytesMoved.Add(size)
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	cancel()
	probes.Wait()
	done := min(ops.Load(), maxOps)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) < 50 {
		t.Fatalf("only %d probes ran", len(lat))
	}
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	pmu.Lock()
	sort.Slice(idle, func(i, j int) bool { return idle[i] < idle[j] })
	t.Logf("baseline without load: %d probes, p50 %v, p99 %v", len(idle),
		idle[len(idle)/2].Round(10*time.Microsecond), idle[int(0.99*float64(len(idle)-1))].Round(10*time.Microsecond))
	pmu.Unlock()
	t.Logf("%d ops on 4 MiB values by %d clients in %v: %d reads and %d writes done (%.1f MiB/s), %d answered 503/504, %d connections reset, %d cut off at the end; Raft term %d -> %d",
		done, clients, elapsed.Round(time.Millisecond), reads.Load(), writes.Load(), float64(bytesMoved.Load())/(1<<20)/elapsed.Seconds(),
		shed.Load(), connErrs.Load(), cut.Load(), term0, cacheTerm(t, c))
	if e := shedWhy.Load(); e != nil {
		t.Logf("last 503/504: %v", e)
	}
	if e := lastConnErr.Load(); e != nil {
		t.Logf("last connection reset: %v", e)
	}
	if connErrs.Load() > done/10 {
		t.Errorf("%d of %d operations had their connection reset", connErrs.Load(), done)
	}
	t.Logf("%d probes of /livez and /readyz: p50 %v, p99 %v, max %v; answers %v",
		len(lat), pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(time.Millisecond), codes)
	for ep, l := range byEP {
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		t.Logf("%s: %d probes, p99 %v", ep, len(l), l[int(0.99*float64(len(l)-1))].Round(10*time.Microsecond))
	}
	if e := lerr.Load(); e != nil {
		t.Error(e)
	}
	if bytesMoved.Load() == 0 {
		t.Error("no 4 MiB operation succeeded")
	}
	for k, v := range codes {
		if strings.HasPrefix(k, "/livez") && k != "/livez 200" {
			t.Errorf("%d probes answered %s", v, k)
		}
		if strings.HasSuffix(k, "error") {
			t.Errorf("%d probes failed: %s", v, k)
		}
	}
	if term1 := cacheTerm(t, c); leaderUnready > 0 && term1 == term0 {
		t.Errorf("the busy leader %s answered /readyz with 503 %d times in term %d (last: %s)", l.ID, leaderUnready, term0, leaderWhy)
	} else if leaderUnready > 0 {
		t.Logf("an election ran (term %d -> %d); the old leader %s answered /readyz 503 %d times", term0, term1, l.ID, leaderUnready)
	}
	if p99 := pct(0.99); p99 > time.Second {
		t.Errorf("probe p99 %v, want under 1s", p99)
	}
	c.WaitConverged()
}
