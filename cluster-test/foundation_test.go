package clustertest

// Foundation tests on real processes: redirects and reads at both
// consistencies, leader kill -9 and recovery, clean shutdown, and a
// whole-cluster restart (membership and snapshot install are in
// membership_test.go).
//
// Helpers here carry an fnd prefix so they cannot collide with helpers
// other files add to this package.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fndExitCode is the exit status of n's last process, or -1 while it runs.
func fndExitCode(n *Node) int {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return -1
	}
	select {
	case <-exited: // cmd.Wait has returned: ProcessState is set
		return cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// fndRestart starts n again on its data dir with the flags NewCluster gave
// it: the first node bootstraps (a no-op on existing state), the others
// join through the first.
func fndRestart(c *Cluster, n *Node) {
	c.t.Helper()
	if n == c.Nodes[0] {
		fndStart(c.t, n)
		return
	}
	fndStart(c.t, n, c.Nodes[0].URL())
}

// fndLog is n's log output since its latest start.
func fndLog(t testing.TB, n *Node) string {
	t.Helper()
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if i := strings.LastIndex(s, "=== start "); i >= 0 {
		s = s[i:]
	}
	return s
}

// fndDo sends one request and fails the test on a transport error.
func fndDo(t testing.TB, hc *http.Client, method, url string, body []byte) *Response {
	t.Helper()
	r, err := Do(context.Background(), hc, method, url, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// fndCode is the "code" of a JSON error body.
func fndCode(r *Response) string {
	var e struct{ Code string }
	_ = json.Unmarshal(r.Body, &e)
	return e.Code
}

// fndIndex parses the X-Raft-Index header.
func fndIndex(t testing.TB, r *Response) uint64 {
	t.Helper()
	i, err := strconv.ParseUint(r.Header.Get("X-Raft-Index"), 10, 64)
	if err != nil {
		t.Fatalf("X-Raft-Index %q: %v", r.Header.Get("X-Raft-Index"), err)
	}
	return i
}

// fndWrite sends a write to n, following redirects, until it is
// acknowledged. It retries, within the harness deadline, while the cluster
// answers 503 (nothing applied), 504 unknown_outcome or a transport error:
// on this busy machine an election can interrupt any write, and every
// write in these tests is idempotent (same key, same value), so a retry
// changes nothing but the index. It returns the 200 answer and whether a
// retry was needed; any other status fails the test.
func fndWrite(t testing.TB, n *Node, method, path string, body []byte) (*Response, bool) {
	t.Helper()
	retries := 0
	var last string
	for end := time.Now().Add(deadline); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		r, err := Do(context.Background(), followClient, method, n.URL()+path, body)
		switch {
		case err != nil:
			last = err.Error()
		case r.Status == http.StatusOK:
			if retries > 0 {
				t.Logf("%s %s via %s: acknowledged after %d retries", method, path, n.ID, retries)
			}
			return r, retries > 0
		case r.Status == http.StatusServiceUnavailable || fndCode(r) == "unknown_outcome":
			last = fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body))
		default:
			t.Fatalf("%s %s via %s: %d %s", method, path, n.ID, r.Status, r.Body)
		}
		if retries == 0 {
			t.Logf("%s %s via %s: %s; retrying", method, path, n.ID, last)
		}
		retries++
	}
	t.Fatalf("%s %s via %s: not acknowledged within %v: %s", method, path, n.ID, deadline, last)
	return nil, false
}

// fndPut writes key=value through n (see fndWrite) and returns its index.
func fndPut(t testing.TB, n *Node, key, value string) uint64 {
	t.Helper()
	r, _ := fndWrite(t, n, http.MethodPut, "/v1/kv/"+key, []byte(value))
	var w struct{ Index uint64 }
	if err := json.Unmarshal(r.Body, &w); err != nil || w.Index == 0 {
		t.Fatalf("PUT %s: %v in %s", key, err, r.Body)
	}
	return w.Index
}

// fndStrongGet reads key strongly from the current leader, without
// following redirects, and returns the answer and the node asked. It asks
// again only while the cluster cannot serve strong reads (503: a new
// leader has not yet applied an entry of its term) or leadership moves
// (307); any other answer, a wrong value included, is the caller's to judge.
func fndStrongGet(t testing.TB, c *Cluster, key string) (*Response, *Node) {
	t.Helper()
	var last string
	for end := time.Now().Add(deadline); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		l := c.WaitForLeader()
		r, err := Do(context.Background(), plainClient, http.MethodGet, l.URL()+"/v1/kv/"+key, nil)
		switch {
		case err != nil:
			last = err.Error()
		case r.Status == http.StatusServiceUnavailable || r.Status == http.StatusTemporaryRedirect:
			last = fmt.Sprintf("%d %s", r.Status, r.Body)
		default:
			return r, l
		}
	}
	t.Fatalf("strong GET %s: no answer from a leader within %v: %s", key, deadline, last)
	return nil, nil
}

// fndCheckStrong reads every key in want strongly from the leader.
func fndCheckStrong(t testing.TB, c *Cluster, want map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r, l := fndStrongGet(t, c, k)
		if r.Status != http.StatusOK || string(r.Body) != want[k] || r.Header.Get("X-Served-By") != l.ID {
			t.Fatalf("strong GET %s on %s: %d %q (served by %q), want %q", k, l.ID, r.Status, r.Body, r.Header.Get("X-Served-By"), want[k])
		}
	}
}

// fndRedirects checks that n answers method path with 307 to the same path
// on the leader. It asks again only if leadership moved meanwhile.
func fndRedirects(t testing.TB, c *Cluster, n *Node, method, path string, body []byte) {
	t.Helper()
	Eventually(t, fmt.Sprintf("%s %s on %s redirects to the leader", method, path, n.ID), func() error {
		l, err := c.leader()
		if err != nil {
			return err
		}
		if l == n {
			return fmt.Errorf("%s leads now", n.ID)
		}
		r, err := Do(context.Background(), plainClient, method, n.URL()+path, body)
		if err != nil {
			return err
		}
		if r.Status != http.StatusTemporaryRedirect || r.Header.Get("Location") != l.URL()+path || fndCode(r) != "redirect" {
			return fmt.Errorf("%d Location %q %s; leader is %s at %s", r.Status, r.Header.Get("Location"), r.Body, l.ID, l.URL())
		}
		return nil
	})
}

func TestFollowerWriteRedirectAndReads(t *testing.T) {
	c := NewCluster(t, Options{})
	l := c.WaitForLeader()
	f := c.Followers(l)[0]
	value := []byte("head\x00tail\xff\xfe\r\n end\x00")
	path := "/v1/kv/blob"

	// Without following: 307 to the same path on the leader. Following:
	// the body is re-sent to the leader intact.
	fndRedirects(t, c, f, http.MethodPut, path, value)
	r, _ := fndWrite(t, f, http.MethodPut, path, value)
	var w struct{ Version, Index uint64 }
	if err := json.Unmarshal(r.Body, &w); err != nil || w.Index == 0 || w.Version != w.Index {
		t.Fatalf("PUT answer %s: %v", r.Body, err)
	}
	if by := r.Header.Get("X-Served-By"); by == f.ID || by == "" {
		t.Fatalf("PUT via follower %s was served by %q, not redirected to the leader", f.ID, by)
	}
	etag := strconv.Quote(strconv.FormatUint(w.Index, 10))

	// Stale reads on every node once it has applied the write: no retry.
	for _, n := range c.Nodes {
		c.WaitForIndex(n, w.Index)
		r := fndDo(t, plainClient, http.MethodGet, n.URL()+path+"?consistency=stale", nil)
		if r.Status != http.StatusOK || !bytes.Equal(r.Body, value) {
			t.Fatalf("stale GET on %s: %d %q, want %q", n.ID, r.Status, r.Body, value)
		}
		if r.Header.Get("X-Served-By") != n.ID || r.Header.Get("ETag") != etag || fndIndex(t, r) < w.Index {
			t.Fatalf("stale GET on %s: headers %v, want ETag %s, index >= %d", n.ID, r.Header, etag, w.Index)
		}
	}

	// Strong reads: a follower redirects, the leader answers.
	l = c.WaitForLeader()
	for _, n := range c.Followers(l) {
		fndRedirects(t, c, n, http.MethodGet, path, nil)
	}
	r, l = fndStrongGet(t, c, "blob")
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, value) {
		t.Fatalf("strong GET on leader %s: %d %q", l.ID, r.Status, r.Body)
	}
	if r.Header.Get("ETag") != etag || fndIndex(t, r) < w.Index || r.Header.Get("X-Served-By") != l.ID {
		t.Fatalf("strong GET on leader %s: headers %v, want ETag %s, index >= %d", l.ID, r.Header, etag, w.Index)
	}

	// DELETE through the follower: redirected too, then gone everywhere.
	r, retried := fndWrite(t, f, http.MethodDelete, path, nil)
	var d struct {
		Deleted bool
		Index   uint64
	}
	if json.Unmarshal(r.Body, &d) != nil || d.Index == 0 || !(d.Deleted || retried) {
		t.Fatalf("DELETE via %s: %d %s", f.ID, r.Status, r.Body)
	}
	c.WaitForIndex(f, d.Index)
	if r := fndDo(t, plainClient, http.MethodGet, f.URL()+path+"?consistency=stale", nil); r.Status != http.StatusNotFound || fndCode(r) != "not_found" {
		t.Fatalf("stale GET after DELETE on %s: %d %s", f.ID, r.Status, r.Body)
	}
	if r, l := fndStrongGet(t, c, "blob"); r.Status != http.StatusNotFound || fndCode(r) != "not_found" {
		t.Fatalf("strong GET after DELETE on %s: %d %s", l.ID, r.Status, r.Body)
	}
}

func TestLeaderKillFailoverAndCatchUp(t *testing.T) {
	c := NewCluster(t, Options{})
	old := c.WaitForLeader()
	want := map[string]string{}
	var last uint64
	for i := 0; i < 50; i++ {
		k, v := fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d-%d", i, i*i)
		last = fndPut(t, c.Nodes[i%len(c.Nodes)], k, v) // through every node, redirects included
		want[k] = v
	}

	old = c.WaitForLeader() // normally unchanged; kill whoever leads now
	old.Kill()
	nl := c.WaitForLeader()
	if nl == old {
		t.Fatalf("killed %s is still named leader", old.ID)
	}
	fndCheckStrong(t, c, want)
	if r, l := fndStrongGet(t, c, "k00"); fndIndex(t, r) < last {
		t.Fatalf("leader %s read at index %d, below acknowledged %d", l.ID, fndIndex(t, r), last)
	}
	last = fndPut(t, nl, "after", "failover")
	want["after"] = "failover"

	fndRestart(c, old)
	c.WaitForIndex(old, last)
	c.WaitConverged()
	for k, v := range want {
		r := fndDo(t, plainClient, http.MethodGet, old.URL()+"/v1/kv/"+k+"?consistency=stale", nil)
		if r.Status != http.StatusOK || string(r.Body) != v {
			t.Fatalf("stale GET %s on restarted %s: %d %q, want %q", k, old.ID, r.Status, r.Body, v)
		}
	}
	c.WaitMembers(3)
}

func TestCleanShutdownExitsZero(t *testing.T) {
	c := NewCluster(t, Options{})
	l := c.WaitForLeader()
	f := c.Followers(l)[0]
	c.WaitForIndex(f, fndPut(t, l, "before", "stop"))

	f.Stop()
	if f.Running() {
		t.Fatalf("%s still runs after SIGTERM", f.ID)
	}
	if code := fndExitCode(f); code != 0 {
		t.Fatalf("%s exited with status %d after SIGTERM, want 0; log:\n%s", f.ID, code, fndLog(t, f))
	}
	if log := fndLog(t, f); !strings.Contains(log, "shutting down") {
		t.Fatalf("%s logged no clean shutdown:\n%s", f.ID, log)
	}

	// Two of three remain: the cluster keeps serving writes and reads.
	l = c.WaitForLeader()
	other := c.Followers(l)[0]
	c.WaitForIndex(other, fndPut(t, other, "after", "stop"))
	fndCheckStrong(t, c, map[string]string{"before": "stop", "after": "stop"})
}

func TestWholeClusterRestart(t *testing.T) {
	c := NewCluster(t, Options{})
	l := c.WaitForLeader()
	want := map[string]string{}
	for i := 0; i < 40; i++ {
		k := fmt.Sprintf("r%02d", i)
		want[k] = "value " + k
		fndPut(t, l, k, want[k])
	}
	for i := 0; i < 40; i += 8 {
		k := fmt.Sprintf("r%02d", i)
		fndWrite(t, l, http.MethodDelete, "/v1/kv/"+k, nil)
		delete(want, k)
	}
	before := c.WaitConverged()
	if st, err := l.Stats(); err != nil || st.Keys != len(want) {
		t.Fatalf("stats before restart: %+v %v, want %d keys", st, err, len(want))
	}

	for _, n := range c.Nodes {
		n.Stop()
		if code := fndExitCode(n); code != 0 {
			t.Fatalf("%s exited with status %d after SIGTERM, want 0", n.ID, code)
		}
	}
	for _, n := range c.Nodes {
		fndRestart(c, n)
	}
	c.WaitForLeader()
	c.WaitMembers(3)
	for _, n := range c.Nodes {
		c.WaitReady(n)
	}
	if after := c.WaitConverged(); after != before {
		t.Fatalf("digest %s after restart, %s before", after, before)
	}
	if log := fndLog(t, c.Nodes[0]); strings.Contains(log, "bootstrapping a new cluster") {
		t.Fatalf("%s bootstrapped again over existing state:\n%s", c.Nodes[0].ID, log)
	}
	fndCheckStrong(t, c, want)
	if r, l := fndStrongGet(t, c, "r00"); r.Status != http.StatusNotFound {
		t.Fatalf("deleted key r00 on %s after restart: %d %q", l.ID, r.Status, r.Body)
	}
	for _, n := range c.Nodes {
		if st, err := n.Stats(); err != nil || st.Keys != len(want) {
			t.Fatalf("stats of %s after restart: %+v %v, want %d keys", n.ID, st, err, len(want))
		}
	}
}
