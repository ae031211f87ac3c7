package clustertest

// Linearizability of strong reads and writes under faults, checked with
// porcupine. A workload of concurrent clients does strong GETs and PUTs of
// unique values on a few keys through every node, following redirects, and
// records each operation's call and return on one monotonic clock. Writes
// whose outcome is unknown (timeout, reset, 504, other 5xx) keep an
// infinite return time; writes that certainly did not happen (503,
// connection refused, with no earlier attempt of the same exchange left
// unanswered) and failed reads are left out. In the nemesis tests half of
// the clients retry unknown writes with an Idempotency-Key until one
// attempt is acknowledged, which checks the server's deduplication too.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Workload parameters.
const (
	linClients        = 6
	linRequestTimeout = 2500 * time.Millisecond // per request, redirects included
	linMaxOpsPerRun   = 4000                    // per client: bounds the history
	linCheckTimeout   = 60 * time.Second
)

var linKeys = []string{"lin-a", "lin-b", "lin-c"}

// linWorkload records a history of operations against a cluster.
type linWorkload struct {
	t     testing.TB
	c     *Cluster
	start time.Time
	hc    *http.Client // follows redirects
	tr    *http.Transport

	mu         sync.Mutex
	ops        []porcupine.Operation
	dropped    map[string]string // value of a write left out as certainly not applied -> why
	notes      []porcupine.Annotation
	unexpected []string
	stats      linCounts

	cancel context.CancelFunc
	wg     sync.WaitGroup
	seq    int

	// RetryAmbiguous makes even-numbered clients retry writes of unknown
	// outcome with an Idempotency-Key (see Put). Set before Run.
	RetryAmbiguous bool
}

type linCounts struct {
	PutOK        int
	PutResolved  int // of PutOK: unknown at first, acknowledged by a retry
	PutReplayed  int // of PutResolved: the retry found the first attempt applied
	PutAmbiguous int
	PutFailed    int
	GetOK        int
	GetFailed    int
}

func (s linCounts) String() string {
	return fmt.Sprintf("put ok %d (%d after a retry, %d of them replayed), ambiguous %d, failed %d; get ok %d, failed %d",
		s.PutOK, s.PutResolved, s.PutReplayed, s.PutAmbiguous, s.PutFailed, s.GetOK, s.GetFailed)
}

func newLinWorkload(t testing.TB, c *Cluster) *linWorkload {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	w := &linWorkload{t: t, c: c, start: time.Now(), tr: tr, hc: &http.Client{Transport: tr},
		dropped: map[string]string{}}
	t.Cleanup(func() {
		w.Stop()
		tr.CloseIdleConnections()
	})
	return w
}

// Now is the history clock: nanoseconds since the workload was created.
func (w *linWorkload) Now() int64 { return int64(time.Since(w.start)) }

// Note adds an annotation (a fault, say) to the visualization.
func (w *linWorkload) Note(desc string, start, end int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.notes = append(w.notes, porcupine.Annotation{
		Tag: "nemesis", Start: start, End: end, Description: desc,
		BackgroundColor: "#ffd6d6",
	})
}

// Run starts that many client goroutines doing random strong GETs and
// PUTs on keys through random nodes of targets (every node if nil), until
// Stop or maxDur.
func (w *linWorkload) Run(clients int, keys []string, targets []*Node, maxDur time.Duration) {
	if targets == nil {
		targets = w.c.Nodes
	}
	ctx, cancel := context.WithTimeout(context.Background(), maxDur)
	w.mu.Lock()
	prev := w.cancel
	w.cancel = func() {
		cancel()
		if prev != nil {
			prev()
		}
	}
	w.mu.Unlock()
	for i := 0; i < clients; i++ {
		w.wg.Add(1)
		go func(client int) {
			defer w.wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(client)))
			for n := 0; n < linMaxOpsPerRun && ctx.Err() == nil; n++ {
				node := targets[rnd.IntN(len(targets))]
				key := keys[rnd.IntN(len(keys))]
				var r linResult
				if rnd.IntN(2) == 0 {
					r = w.Put(client, node, key, w.value(client))
				} else {
					r = w.Get(client, node, key, false)
				}
				// A little think time keeps the history (and the CPU)
				// bounded; a failure (a dead node refusing at once) waits
				// longer so that clients do not spin.
				think := time.Duration(rnd.IntN(4)) * time.Millisecond
				if r.err != nil || r.status >= 300 && r.status != http.StatusNotFound {
					think += 20 * time.Millisecond
				}
				select {
				case <-ctx.Done():
				case <-time.After(think):
				}
			}
		}(i)
	}
}

// Stop ends the clients started by Run and waits for them.
func (w *linWorkload) Stop() {
	w.mu.Lock()
	cancel := w.cancel
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	w.wg.Wait()
}

// value returns a value no other write in this history uses.
func (w *linWorkload) value(client int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seq++
	return fmt.Sprintf("c%d-%d", client, w.seq)
}

func (w *linWorkload) record(op porcupine.Operation) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ops = append(w.ops, op)
}

func (w *linWorkload) unexpectedf(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.unexpected) < 20 {
		w.unexpected = append(w.unexpected, fmt.Sprintf(format, args...))
	}
}

// linResult is one finished HTTP exchange or its error.
type linResult struct {
	status int
	served string
	code   string // error code from a JSON error body
	body   []byte
	err    error
	// replayed: the answer to a retried Idempotency-Key is the first
	// attempt's result.
	replayed bool
	// unanswered: some attempt inside this exchange (the Transport's own
	// retry) was sent on a connection and got no answer.
	unanswered bool
}

func (r linResult) describe() string {
	if r.err != nil {
		return r.err.Error()
	}
	if r.code != "" {
		return fmt.Sprintf("%d %s", r.status, r.code)
	}
	return fmt.Sprint(r.status)
}

// linDo sends one request with its own timeout. ctx ending does not cut a
// request short: the workload stops between requests, so no operation is
// made ambiguous by the test itself.
func linDo(hc *http.Client, method, url string, body []byte) linResult {
	return linDoHeader(hc, method, url, body, nil)
}

func linDoHeader(hc *http.Client, method, url string, body []byte, hdr http.Header) linResult {
	ctx, cancel := context.WithTimeout(context.Background(), linRequestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	// Go's Transport silently re-sends a request whose reused connection
	// failed before the answer if it is "replayable", which includes any
	// request with an Idempotency-Key: the error then returned (say,
	// connection refused) is the retry's, while the first attempt may have
	// been applied. Count connections used and answers received: a request
	// that got a connection but no answer may have been handled.
	var conns, answers atomic.Int32
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn:              func(httptrace.GotConnInfo) { conns.Add(1) },
		GotFirstResponseByte: func() { answers.Add(1) },
	})
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return linResult{err: err}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	unanswered := conns.Load() > answers.Load()
	if err != nil {
		return linResult{err: err, unanswered: unanswered}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := linResult{status: resp.StatusCode, served: resp.Header.Get("X-Served-By"), body: b, err: err,
		replayed: resp.Header.Get("Idempotent-Replayed") == "true", unanswered: unanswered}
	if err == nil && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && resp.StatusCode >= 300 {
		var e struct{ Code string }
		_ = json.Unmarshal(b, &e)
		r.code = e.Code
	}
	return r
}

// linRefused reports whether a request certainly never reached a server.
func linRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// linOutcome is what an answer to a PUT says about the write.
type linOutcome int

const (
	linApplied    linOutcome = iota // 200
	linNotApplied                   // 503 or connection refused: certainly not
	linUnknown                      // timeout, reset, 504, other 5xx: may or may not
	linRejected                     // other 3xx/4xx: not applied, and no fault should cause it
)

func linPutOutcome(r linResult) linOutcome {
	switch {
	case r.unanswered && !(r.err == nil && r.status == http.StatusOK):
		return linUnknown
	case r.err == nil && r.status == http.StatusOK:
		return linApplied
	case r.err != nil && linRefused(r.err), r.err == nil && r.status == http.StatusServiceUnavailable:
		return linNotApplied
	case r.err == nil && r.status >= 300 && r.status < 500:
		return linRejected
	}
	return linUnknown
}

// Put writes key=value through n and records the outcome. With
// RetryAmbiguous, even-numbered clients send an Idempotency-Key and retry
// a write whose outcome is unknown (through the other nodes in turn) until
// one attempt is acknowledged: the write then took effect exactly once
// between the first call and that acknowledgement, which the checker
// verifies (a key applied twice would bring an overwritten value back).
func (w *linWorkload) Put(client int, n *Node, key, value string) linResult {
	idem := w.RetryAmbiguous && client%2 == 0
	var hdr http.Header
	if idem {
		hdr = http.Header{"Idempotency-Key": {value}}
	}
	url := "/v1/kv/" + key
	call := w.Now()
	r := linDoHeader(w.hc, http.MethodPut, n.URL()+url, []byte(value), hdr)
	out := linPutOutcome(r)
	unknown, attempts := out == linUnknown, 1
	for backoff := 250 * time.Millisecond; idem && unknown && out != linApplied && out != linRejected &&
		attempts < 5 && time.Duration(w.Now()-call) < 6*time.Second; backoff *= 2 {
		time.Sleep(backoff) // an election takes a second or so
		via := w.c.Nodes[(linIndex(w.c, n)+attempts)%len(w.c.Nodes)]
		r = linDoHeader(w.hc, http.MethodPut, via.URL()+url, []byte(value), hdr)
		out = linPutOutcome(r)
		unknown = unknown || out == linUnknown
		attempts++
	}
	ret := w.Now()
	status := r.describe()
	if attempts > 1 {
		status = fmt.Sprintf("%s after %d attempts", status, attempts)
		if r.replayed {
			status += " (replayed: the first attempt had been applied)"
		}
	}
	op := porcupine.Operation{ClientId: client, Input: linInput{Key: key, Put: true, Value: value},
		Call: call, Output: linOutput{}, Return: ret, Metadata: linMeta{Via: n.ID, Served: r.served, Status: status}}
	switch {
	case out == linApplied:
		w.count(func(s *linCounts) {
			s.PutOK++
			if attempts > 1 {
				s.PutResolved++
			}
			if r.replayed {
				s.PutReplayed++
			}
		})
	case out == linRejected && !unknown:
		w.unexpectedf("PUT %s via %s: %s %s", key, n.ID, r.describe(), r.body)
		w.drop(value, fmt.Sprintf("[%v, %v] via %s, served by %q: %s %s", time.Duration(call), time.Duration(ret), n.ID, r.served, status, r.body))
		return r
	case !unknown:
		// Certainly not applied: leave it out of the history.
		w.drop(value, fmt.Sprintf("[%v, %v] via %s, served by %q: %s %s", time.Duration(call), time.Duration(ret), n.ID, r.served, status, r.body))
		return r
	default:
		// May or may not have happened, at any time from the call on.
		if out == linRejected {
			w.unexpectedf("PUT %s via %s: %s %s", key, n.ID, r.describe(), r.body)
		}
		op.Return = linPending
		w.count(func(s *linCounts) { s.PutAmbiguous++ })
	}
	w.record(op)
	return r
}

// Get reads key through n (strong, or stale if asked, but recorded as a
// strong read either way) and records it if it succeeded.
func (w *linWorkload) Get(client int, n *Node, key string, stale bool) linResult {
	url := n.URL() + "/v1/kv/" + key
	if stale {
		url += "?consistency=stale"
	}
	call := w.Now()
	r := linDo(w.hc, http.MethodGet, url, nil)
	ret := w.Now()
	var out linOutput
	switch {
	case r.err == nil && r.status == http.StatusOK:
		out = linOutput{Found: true, Value: string(r.body)}
	case r.err == nil && r.status == http.StatusNotFound && r.code == "not_found":
		out = linOutput{}
	default:
		if r.err == nil && r.status < 500 && r.status != http.StatusNotFound {
			w.unexpectedf("GET %s via %s: %s %s", key, n.ID, r.describe(), r.body)
		}
		w.count(func(s *linCounts) { s.GetFailed++ })
		return r
	}
	w.count(func(s *linCounts) { s.GetOK++ })
	w.record(porcupine.Operation{ClientId: client, Input: linInput{Key: key}, Call: call,
		Output: out, Return: ret, Metadata: linMeta{Via: n.ID, Served: r.served, Status: r.describe()}})
	return r
}

// drop notes a write left out of the history as certainly not applied.
func (w *linWorkload) drop(value, why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stats.PutFailed++
	w.dropped[value] = why
}

func (w *linWorkload) count(f func(*linCounts)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(&w.stats)
}

// Counts returns the outcome counters so far.
func (w *linWorkload) Counts() linCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// History returns a copy of the recorded operations.
func (w *linWorkload) History() ([]porcupine.Operation, []porcupine.Annotation) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]porcupine.Operation(nil), w.ops...), append([]porcupine.Annotation(nil), w.notes...)
}

// FinalReads reads every key once more through the (recovered) leader, so
// that a lost acknowledged write shows up in the history.
func (w *linWorkload) FinalReads(keys []string) {
	w.t.Helper()
	l := w.c.WaitForLeader()
	for _, k := range keys {
		var r linResult
		for i := 0; i < 20; i++ {
			if r = w.Get(linClients, l, k, false); r.err == nil && (r.status == 200 || r.status == 404) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if r.err != nil || (r.status != 200 && r.status != 404) {
			w.t.Errorf("final read of %s: %s", k, r.describe())
		}
	}
}

// reportDroppedReads names every read that returned the value of a write
// the server had answered as certainly not applied: a broken promise.
func (w *linWorkload) reportDroppedReads(h []porcupine.Operation) {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := map[string]bool{}
	for _, op := range h {
		in, out := op.Input.(linInput), op.Output.(linOutput)
		if in.Put || !out.Found || seen[out.Value] {
			continue
		}
		if why, ok := w.dropped[out.Value]; ok {
			seen[out.Value] = true
			w.t.Errorf("get(%s) at [%v, %v] (%+v) returned %s, whose write was answered as certainly not applied: %s",
				in.Key, time.Duration(op.Call), time.Duration(op.Return), op.Metadata, out.Value, why)
		}
	}
}

// Check checks the history and fails the test, naming the visualization
// and logs it saved, unless the history is linearizable.
func (w *linWorkload) Check() {
	w.t.Helper()
	w.Stop()
	h, notes := w.History()
	for _, u := range w.unexpected {
		w.t.Errorf("unexpected answer: %s", u)
	}
	pruned, dropped := linPrune(h)
	w.t.Logf("history: %d operations (%s); %d ambiguous writes never read left out", len(h), w.Counts(), dropped)
	w.reportDroppedReads(h)
	res, path := linCheck(w.t, pruned, notes, linCheckTimeout, "")
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		logs := linSaveLogs(w.t, w.c)
		w.t.Fatalf("history is NOT linearizable: visualization %s; node logs %s", path, strings.Join(logs, " "))
	default:
		w.t.Fatalf("the checker did not finish within %v (%s): visualization %s; shrink the workload", linCheckTimeout, res, path)
	}
}

// ---- tests ----

// TestLinNegativeControlStaleReads proves that a real history can fail the
// check: reads served with consistency=stale by an ex-leader cut off from
// the majority, recorded as if they were strong, must be found not
// linearizable.
func TestLinNegativeControlStaleReads(t *testing.T) {
	pn := newProxyNet(t)
	c := NewCluster(t, pn.Options(Options{}))
	w := newLinWorkload(t, c)
	l := c.WaitForLeader()
	li := linIndex(c, l)

	// Pin the outcome: "before" is acknowledged and on every node, then
	// "after" is acknowledged by the majority while the ex-leader is cut
	// off, and the ex-leader keeps serving "before".
	const key = "lin-pinned"
	if r := w.Put(0, l, key, "before"); r.err != nil || r.status != 200 {
		t.Fatalf("put before: %s", r.describe())
	}
	c.WaitConverged()
	w.Run(3, linKeys, nil, 20*time.Second)
	time.Sleep(500 * time.Millisecond)

	t0 := w.Now()
	pn.Isolate(li)
	majority := c.Followers(l)
	attempt := 0
	Eventually(t, "the majority acknowledges a write while the ex-leader is cut off", func() error {
		attempt++
		r := w.Put(1, majority[attempt%2], key, fmt.Sprintf("after-%d", attempt))
		if r.err != nil || r.status != 200 {
			return fmt.Errorf("put after: %s", r.describe())
		}
		return nil
	})
	stale := 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		for _, k := range append([]string{key}, linKeys...) {
			if r := w.Get(linClients+1, l, k, true); r.err == nil && r.status == 200 && k == key && string(r.body) == "before" {
				// Served after "after-N" was acknowledged.
				stale++
			}
		}
	}
	pn.Heal()
	w.Note("ex-leader "+l.ID+" isolated; stale reads from it recorded as strong", t0, w.Now())
	time.Sleep(time.Second)
	w.Stop()
	if stale == 0 {
		t.Fatalf("the isolated ex-leader served no stale read of %s: the negative control proves nothing", key)
	}

	h, notes := w.History()
	pruned, _ := linPrune(h)
	res, path := linCheck(t, pruned, notes, linCheckTimeout, t.TempDir())
	if res != porcupine.Illegal {
		t.Fatalf("the checker said %s for a history with %d stale reads recorded as strong; it must say Illegal", res, stale)
	}
	var pinned []porcupine.Operation
	for _, op := range pruned {
		if op.Input.(linInput).Key == key {
			pinned = append(pinned, op)
		}
	}
	if r := porcupine.CheckOperationsTimeout(linModel, pinned, linCheckTimeout); r != porcupine.Illegal {
		t.Fatalf("the checker said %s for %s, read stale as %q after %q was acknowledged; it must say Illegal", r, key, "before", "after-N")
	}
	t.Logf("as required, not linearizable (%d stale reads of %s from %s); visualization %s", stale, key, l.ID, path)
}

// TestPartitionMinorityLeaderStopsServing: a leader cut off in a minority
// stops acknowledging writes and strong reads within a few election
// timeouts, never serves a stale strong read nor acknowledges a write that
// is then lost; the majority elects a new leader and keeps serving. The
// "cut" variant closes the leader's connections (it sees errors at once),
// "blackhole" drops their bytes (it sees only silence).
func TestPartitionMinorityLeaderStopsServing(t *testing.T) {
	t.Run("cut", func(t *testing.T) { linMinorityLeader(t, false) })
	t.Run("blackhole", func(t *testing.T) { linMinorityLeader(t, true) })
}

func linMinorityLeader(t *testing.T, silent bool) {
	pn := newProxyNet(t)
	c := NewCluster(t, pn.Options(Options{}))
	w := newLinWorkload(t, c)
	l := c.WaitForLeader()
	li := linIndex(c, l)
	majority := c.Followers(l)
	const key = "minority-shared"
	if r := w.Put(0, l, key, "v0"); r.err != nil || r.status != 200 {
		t.Fatalf("first put: %s", r.describe())
	}

	// The old leader is asked directly, without following redirects, so
	// its own answers are seen.
	direct := &http.Client{Transport: w.tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	type probe struct {
		call, ret time.Duration // since the partition
		what      string
		r         linResult
	}
	var (
		mu       sync.Mutex
		probes   []probe
		acked    = map[string]string{} // minority key -> value, acknowledged by the old leader
		majOK    int
		majFirst time.Duration = -1
	)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var tPart time.Time
	since := func() time.Duration { return time.Since(tPart) }

	tPart = time.Now()
	t0 := w.Now()
	if silent {
		pn.IsolateSilently(li)
	} else {
		pn.Isolate(li)
	}

	// Prober: strong GET of the shared key and PUTs of fresh keys, straight
	// to the old leader.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			call := since()
			callH := w.Now()
			r := linDo(direct, http.MethodGet, l.URL()+"/v1/kv/"+key, nil)
			retH := w.Now()
			mu.Lock()
			probes = append(probes, probe{call, since(), "GET " + key, r})
			mu.Unlock()
			if r.err == nil && r.status == 200 {
				w.record(porcupine.Operation{ClientId: 0, Input: linInput{Key: key}, Call: callH, Return: retH,
					Output: linOutput{Found: true, Value: string(r.body)}, Metadata: linMeta{Via: l.ID, Served: r.served, Status: "200"}})
			}
			mk, mv := fmt.Sprintf("minority-%d", i), fmt.Sprintf("m%d", i)
			call = since()
			r = linDo(direct, http.MethodPut, l.URL()+"/v1/kv/"+mk, []byte(mv))
			mu.Lock()
			probes = append(probes, probe{call, since(), "PUT " + mk, r})
			if r.err == nil && r.status == 200 {
				acked[mk] = mv
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	// The majority side: writes and strong reads of the shared key through
	// the followers, following redirects, recorded for the checker.
	for ci, n := range majority {
		wg.Add(1)
		go func(client int, n *Node) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				r := w.Put(client, n, key, w.value(client))
				if r.err == nil && r.status == 200 {
					mu.Lock()
					majOK++
					if majFirst < 0 {
						majFirst = since()
					}
					mu.Unlock()
				}
				w.Get(client, n, key, false)
				time.Sleep(20 * time.Millisecond)
			}
		}(ci+1, n)
	}
	wg.Wait()
	pn.Heal()
	w.Note(l.ID+" isolated: "+pn.Blocked(), t0, w.Now())

	// Liveness of the majority.
	if majOK < 5 {
		t.Errorf("the majority acknowledged only %d writes in 4s after the partition", majOK)
	} else {
		t.Logf("majority: %d writes acknowledged, the first %v after the partition", majOK, majFirst.Round(time.Millisecond))
	}
	// The old leader: no 200 once a few election timeouts have passed.
	grace := 3 * heartbeat
	var last200 time.Duration = -1
	statuses := map[string]int{}
	for _, p := range probes {
		statuses[p.r.describe()]++
		if p.r.err == nil && p.r.status == 200 {
			if p.ret > last200 {
				last200 = p.ret
			}
			if p.call > grace {
				t.Errorf("%s sent %v after the partition: the cut-off old leader answered 200", p.what, p.call.Round(time.Millisecond))
			}
		}
		if p.r.err == nil && p.r.status == http.StatusTemporaryRedirect {
			// A redirect must name another node (the new leader).
			if strings.Contains(string(p.r.body), "leader is "+l.ID) {
				t.Errorf("%s: the old leader redirected to itself: %s", p.what, p.r.body)
			}
		}
	}
	t.Logf("old leader %s after the partition: %d probes, answers %v, last 200 at %v", l.ID, len(probes), statuses, last200)

	// No acknowledged write is lost: every PUT the old leader acknowledged
	// is readable after the heal.
	// A leader just elected answers 503 until it has applied an entry of
	// its term: retry those (and connection errors), judge anything else.
	nl := c.WaitForLeader()
	for k, v := range acked {
		Eventually(t, "reading "+k+" from the new leader", func() error {
			r := linDo(w.hc, http.MethodGet, nl.URL()+"/v1/kv/"+k, nil)
			if r.err != nil || r.status == http.StatusServiceUnavailable || r.status == http.StatusTemporaryRedirect {
				nl = c.WaitForLeader()
				return fmt.Errorf("%s", r.describe())
			}
			if r.status != 200 || string(r.body) != v {
				t.Errorf("write %s=%s acknowledged by the cut-off leader is lost: %s %q", k, v, r.describe(), r.body)
			}
			return nil
		})
	}
	w.FinalReads([]string{key})
	c.WaitConverged()
	w.Check()
}

// linStats is the part of /v1/stats about strong reads.
type linStats struct {
	Rounds uint64 `json:"strong_read_rounds"`
	Reads  uint64 `json:"strong_reads"`
}

// TestLinStrongReadRoundsShared: 64 concurrent strong readers share
// leadership rounds, so there are far fewer rounds than reads. The bound is
// loose (rounds < reads/2) and not a timing: it holds however slow the
// machine is. Reads go to the leader only, without following redirects,
// so the leader's counters cover every read that succeeded.
func TestLinStrongReadRoundsShared(t *testing.T) {
	c := NewCluster(t, Options{})
	l := c.WaitForLeader()
	c.Put(l, "rounds", "x")
	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	var before, after linStats
	if err := getJSON(l.URL()+"/v1/stats", &before); err != nil {
		t.Fatal(err)
	}
	const readers, dur = 64, 3 * time.Second
	var ok int64
	failures := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var o int64
			fails := map[string]int{}
			for n := 0; n < 100000 && time.Since(start) < dur; n++ {
				r, err := Do(context.Background(), hc, http.MethodGet, l.URL()+"/v1/kv/rounds", nil)
				switch {
				case err != nil:
					fails["error"]++
				case r.Status == 200 && string(r.Body) == "x":
					o++
				case r.Status == 200:
					t.Errorf("strong read of rounds: %q, want x", r.Body)
				default:
					fails[fmt.Sprint(r.Status)]++
				}
			}
			mu.Lock()
			ok += o
			for k, v := range fails {
				failures[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := getJSON(l.URL()+"/v1/stats", &after); err != nil {
		t.Fatal(err)
	}
	rounds, reads := after.Rounds-before.Rounds, after.Reads-before.Reads
	if len(failures) > 0 {
		// A loaded machine can cost the leader its leadership for a moment;
		// that is not what this test is about.
		t.Logf("reads that did not succeed on %s: %v", l.ID, failures)
	}
	if ok < 100 {
		t.Fatalf("only %d strong reads succeeded: too few to count rounds", ok)
	}
	if reads < uint64(ok) {
		t.Errorf("stats count %d strong reads, clients saw %d succeed", reads, ok)
	}
	if rounds == 0 || rounds >= reads/2 {
		t.Fatalf("%d leadership rounds for %d strong reads: rounds are not shared", rounds, reads)
	}
	t.Logf("%d readers: %d strong reads in %d rounds, %.1f reads per round (%.0f reads/s)",
		readers, reads, rounds, float64(reads)/float64(rounds), float64(ok)/elapsed.Seconds())
}

// linIndex is n's index in c.Nodes (its proxy index).
func linIndex(c *Cluster, n *Node) int {
	for i, m := range c.Nodes {
		if m == n {
			return i
		}
	}
	c.t.Fatalf("node %s is not in the cluster", n.ID)
	return -1
}
