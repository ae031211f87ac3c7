package clustertest

// Acceptance tests of package client against real processes: leader
// kill -9 under a stream of increments and sets, a client that knows only
// a follower, and read-your-writes sessions spread over followers.
//
// Helpers here carry a client prefix so they cannot collide with helpers
// other files add to this package.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftcache/raftcache/client"
)

// clientCallDeadline bounds one client call: generous, since a call may
// span an election and a busy machine, but every call must succeed in it.
const clientCallDeadline = 20 * time.Second

func clientURLs(c *Cluster) []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.URL())
	}
	return out
}

func clientNew(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	cl, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// clientRestart starts a killed node again on its data dir: the first node
// with --bootstrap (a no-op on existing state), the others joining
// through the first (a no-op for a member; Raft reconnects them anyway).
func clientRestart(c *Cluster, n *Node) {
	if n == c.Nodes[0] {
		n.Start()
		return
	}
	n.Start(c.Nodes[0].URL())
}

// clientTraffic counts what the client's requests met, to show that the
// kills hit calls in flight: keys sent more than once are retried writes,
// and replayed answers are retries the server answered from its memory.
type clientTraffic struct {
	next     http.RoundTripper
	mu       sync.Mutex
	keys     map[string]int
	replayed int
	failed   int // requests that ended without an answer
}

func (c *clientTraffic) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := c.next.RoundTrip(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := r.Header.Get("Idempotency-Key"); k != "" {
		c.keys[k]++
	}
	if err != nil {
		c.failed++
	} else if res.Header.Get("Idempotent-Replayed") == "true" {
		c.replayed++
	}
	return res, err
}

func (c *clientTraffic) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	retried := 0
	for _, n := range c.keys {
		if n > 1 {
			retried++
		}
	}
	return fmt.Sprintf("%d requests ended without an answer; %d keyed writes were sent more than once; %d answers were replays", c.failed, retried, c.replayed)
}

// clientWaitRestarted waits until a restarted node is ready. If its
// process exits instead (a node that cannot recover its data directory
// after kill -9), the test fails at once with the end of its log.
func clientWaitRestarted(t *testing.T, c *Cluster, n *Node) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		if !n.Running() {
			b, _ := os.ReadFile(n.logPath)
			s := string(b)
			if i := strings.LastIndex(s, "=== start "); i >= 0 {
				s = s[i:]
			}
			if i := strings.Index(s, "panic:"); i >= 0 {
				s = s[i:min(len(s), i+600)]
			}
			t.Fatalf("%s exited instead of restarting after kill -9:\n%s", n.ID, s)
		}
		resp, err := plainClient.Get(n.URL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(end) {
			t.Fatalf("%s not ready within %v after its restart: %v", n.ID, deadline, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clientWorkload is one client's sequential stream of Incr and Set calls.
type clientWorkload struct {
	cl   *client.Client
	ops  atomic.Int64
	stop atomic.Bool // set by the nemesis when it is done

	mu       sync.Mutex
	incrs    int64             // acknowledged increments
	acked    map[string]string // acknowledged sets
	errs     []string
	slowest  time.Duration
	slowCall string
	slow     int // calls that took over a second (spanned a failover)
}

func (w *clientWorkload) errorf(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs = append(w.errs, fmt.Sprintf(format, args...))
}

// run does at least minOps calls and goes on until stop is set, within
// maxOps calls and the budget.
func (w *clientWorkload) run(parent context.Context, minOps, maxOps int, budget time.Duration, pause time.Duration) {
	start := time.Now()
	for i := 0; i < maxOps && time.Since(start) < budget && parent.Err() == nil; i++ {
		if i >= minOps && w.stop.Load() {
			return
		}
		ctx, cancel := context.WithTimeout(parent, clientCallDeadline)
		t0 := time.Now()
		what := ""
		if i%2 == 0 {
			what = "incr"
			v, err := w.cl.Incr(ctx, "client-counter", 1)
			w.mu.Lock()
			if err != nil {
				w.errs = append(w.errs, fmt.Sprintf("op %d: Incr: %v", i, err))
			} else if w.incrs++; v != w.incrs {
				w.errs = append(w.errs, fmt.Sprintf("op %d: Incr returned %d, want %d (lost or doubled increment)", i, v, w.incrs))
				w.incrs = v
			}
			w.mu.Unlock()
		} else {
			key, value := fmt.Sprintf("client-key-%d", i), fmt.Sprintf("value-%d", i)
			what = "set " + key
			_, err := w.cl.Set(ctx, key, []byte(value))
			w.mu.Lock()
			if err != nil {
				w.errs = append(w.errs, fmt.Sprintf("op %d: Set %s: %v", i, key, err))
			} else {
				w.acked[key] = value
			}
			w.mu.Unlock()
		}
		cancel()
		d := time.Since(t0)
		w.mu.Lock()
		if d > w.slowest {
			w.slowest, w.slowCall = d, fmt.Sprintf("op %d (%s)", i, what)
		}
		if d > time.Second {
			w.slow++
		}
		w.mu.Unlock()
		w.ops.Add(1)
		time.Sleep(pause)
	}
}

// clientWaitOps waits until the workload has done n operations, or has
// ended, or the budget has passed; it reports whether n was reached.
func clientWaitOps(w *clientWorkload, n int64, ended <-chan struct{}, budget time.Duration) bool {
	end := time.Now().Add(budget)
	for w.ops.Load() < n {
		select {
		case <-ended:
			return false
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(end) {
			return false
		}
	}
	return true
}

// One client increments a counter and writes keys while the leader is
// killed with SIGKILL and restarted, again and again. Every call must
// succeed within its deadline, the counter must end at exactly the number
// of acknowledged increments (each Incr returning the previous value plus
// one: none lost, none doubled by a retry), and every acknowledged Set
// must be readable.
func TestClientSurvivesLeaderKills(t *testing.T) {
	c := NewCluster(t, Options{})
	c.WaitForLeader()
	traffic := &clientTraffic{next: &http.Transport{}, keys: map[string]int{}}
	cl := clientNew(t, client.Config{Endpoints: clientURLs(c), HTTPClient: &http.Client{Transport: traffic}})
	w := &clientWorkload{cl: cl, acked: map[string]string{}}

	const (
		minOps = 300
		maxOps = 800
		budget = 60 * time.Second
		kills  = 4
	)
	start := time.Now()
	ended := make(chan struct{})
	abort, stopWorkload := context.WithCancel(context.Background())
	defer func() { stopWorkload(); <-ended }() // if the test fails early
	go func() {
		defer close(ended)
		w.run(abort, minOps, maxOps, budget, 5*time.Millisecond)
	}()

	killed := 0
	for k := 0; k < kills; k++ {
		// Kill at evenly spread points of the run, once the cluster is
		// whole again.
		if !clientWaitOps(w, int64((k+1)*minOps/(kills+2)), ended, budget) {
			break
		}
		leader := c.WaitForLeader()
		before := w.ops.Load()
		t.Logf("kill %d: SIGKILL leader %s after %d ops (%v)", k+1, leader.ID, before, time.Since(start).Round(time.Millisecond))
		leader.Kill()
		killed++
		// The workload must make progress while the old leader is dead.
		if !clientWaitOps(w, before+10, ended, 30*time.Second) {
			t.Errorf("kill %d: the workload made no progress with %s dead (%d ops)", k+1, leader.ID, w.ops.Load()-before)
			break
		}
		t.Logf("kill %d: %d ops done with %s dead; restarting it", k+1, w.ops.Load()-before, leader.ID)
		clientRestart(c, leader)
		clientWaitRestarted(t, c, leader)
	}
	w.stop.Store(true)
	<-ended
	elapsed := time.Since(start)

	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("%d ops (%d increments, %d sets) in %v with %d leader kills; %d calls took over 1s, slowest %v: %s",
		w.ops.Load(), w.incrs, len(w.acked), elapsed.Round(time.Millisecond), killed, w.slow, w.slowest.Round(time.Millisecond), w.slowCall)
	t.Logf("traffic: %v", traffic)
	for _, e := range w.errs {
		t.Error(e)
	}
	if killed < 3 {
		t.Errorf("only %d leader kills happened during the run", killed)
	}
	if w.ops.Load() < minOps {
		t.Errorf("only %d ops within %v", w.ops.Load(), budget)
	}

	// Every node must be back before the final reads; then read strongly.
	c.WaitForLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 2*clientCallDeadline)
	defer cancel()
	item, err := cl.Get(ctx, "client-counter")
	if err != nil {
		t.Fatalf("reading the counter: %v", err)
	}
	if got := string(item.Value); got != fmt.Sprint(w.incrs) {
		t.Errorf("counter = %s, want %d acknowledged increments", got, w.incrs)
	}
	keys := make([]string, 0, len(w.acked))
	for k := range w.acked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), 200)]
		keys = keys[len(chunk):]
		got, err := cl.GetMany(ctx, chunk)
		if err != nil {
			t.Fatalf("reading acknowledged sets: %v", err)
		}
		for _, it := range got.Items {
			if !it.Found || string(it.Value) != w.acked[it.Key] {
				t.Errorf("acknowledged set %s = %q (found %t), want %q", it.Key, it.Value, it.Found, w.acked[it.Key])
			}
		}
	}
	c.WaitConverged()
}

// A client given only a follower's address finds the leader, writes and
// reads, and learns the other members.
func TestClientFollowerOnlyEndpoint(t *testing.T) {
	c := NewCluster(t, Options{})
	leader := c.WaitForLeader()
	f := c.Followers(leader)[0]
	cl := clientNew(t, client.Config{Endpoints: []string{f.URL()}})
	ctx, cancel := context.WithTimeout(context.Background(), clientCallDeadline)
	defer cancel()

	w, err := cl.Set(ctx, "client-follower", []byte("hello"))
	if err != nil {
		t.Fatalf("Set through a follower: %v", err)
	}
	item, err := cl.Get(ctx, "client-follower")
	if err != nil || string(item.Value) != "hello" || item.ServedBy != leader.ID {
		t.Fatalf("strong Get = %+v, %v; want hello from the leader %s", item, err, leader.ID)
	}
	if n, err := cl.Incr(ctx, "client-follower-n", 2); err != nil || n != 2 {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	item, err = cl.Get(ctx, "client-follower", client.WithMinIndex(w.Index))
	if err != nil || string(item.Value) != "hello" {
		t.Fatalf("Get WithMinIndex = %+v, %v", item, err)
	}
	if cl.Leader() != leader.URL() {
		t.Errorf("the client remembers %q as leader, want %q", cl.Leader(), leader.URL())
	}
	Eventually(t, "the client to learn every member", func() error {
		eps := cl.Endpoints()
		if len(eps) != len(c.Nodes) {
			return fmt.Errorf("knows %v", eps)
		}
		return nil
	})
}

// A session writes a key and at once reads it back, 200 times; its reads
// are stale reads spread over the members, so most are served by
// followers, yet every one sees the session's own write. A plain stale
// read after each write (the negative control) shows that followers do
// lag, so min_index is doing the work.
func TestClientSessionReadsOwnWrites(t *testing.T) {
	c := NewCluster(t, Options{})
	leader := c.WaitForLeader()
	cl := clientNew(t, client.Config{Endpoints: clientURLs(c)})
	s := cl.Session()

	servedBy := map[string]int{}
	var staleMisses, staleReads int
	follower := c.Followers(leader)[0]
	stale := clientNew(t, client.Config{Endpoints: []string{follower.URL()}, RefreshInterval: -1})
	last := uint64(0)
	for i := 0; i < 200; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), clientCallDeadline)
		key, value := fmt.Sprintf("client-session-%d", i%20), fmt.Sprintf("v%d", i)
		w, err := s.Set(ctx, key, []byte(value))
		if err != nil {
			cancel()
			t.Fatalf("write %d: %v", i, err)
		}
		if i%2 == 0 {
			// Negative control: a stale read without min_index on a follower.
			staleReads++
			if it, err := stale.Get(ctx, key, client.WithConsistency(client.Stale)); err != nil || string(it.Value) != value {
				staleMisses++
			}
		}
		item, err := s.Get(ctx, key)
		cancel()
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if string(item.Value) != value || item.Index < w.Index {
			t.Fatalf("read %d from %s: %q at index %d, want own write %q at index %d", i, item.ServedBy, item.Value, item.Index, value, w.Index)
		}
		if s.Index() < last || s.Index() < item.Index {
			t.Fatalf("session index went from %d to %d (read at %d)", last, s.Index(), item.Index)
		}
		last = s.Index()
		servedBy[item.ServedBy]++
	}
	var parts []string
	fromFollowers := 0
	for id, n := range servedBy {
		parts = append(parts, fmt.Sprintf("%s:%d", id, n))
		if id != leader.ID {
			fromFollowers += n
		}
	}
	sort.Strings(parts)
	t.Logf("session reads served by %s (leader %s); negative control: %d of %d plain stale follower reads missed the write just made",
		strings.Join(parts, " "), leader.ID, staleMisses, staleReads)
	if fromFollowers < 80 {
		t.Errorf("only %d of 200 session reads were served by followers: %v", fromFollowers, servedBy)
	}
}
