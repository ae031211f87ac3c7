// Package bench load-tests a running raftcache cluster over its HTTP API,
// in the manner of redis-benchmark: a number of concurrent clients send
// one kind of request (a workload) as fast as they can for a duration or
// a request count, and the result is the throughput, the latency
// percentiles and the errors.
//
// The hot loop uses net/http directly, with a keep-alive transport that
// holds one connection per client, so the figures are the server's and
// not a client library's. The cluster's leader and members are read from
// GET /v1/cluster on the first endpoint that names a leader.
//
// bench/compare.sh is the companion script that runs raftcache and etcd
// side by side under an external load tool; docs/benchmarks.md has the
// figures.
package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Workloads.
const (
	Set       = "set"        // PUT /v1/kv/{key} on the leader
	GetStrong = "get-strong" // GET /v1/kv/{key} on the leader (linearizable)
	GetStale  = "get-stale"  // GET /v1/kv/{key}?consistency=stale, spread over the followers
	Incr      = "incr"       // POST /v1/incr/{key} on the leader
	Mix       = "mix"        // ReadRatio reads (MixReads consistency), the rest sets
)

// Workloads lists every workload, in the order the command runs them.
var Workloads = []string{Set, GetStrong, GetStale, Incr, Mix}

// Defaults for zero Config fields.
const (
	DefaultClients   = 64
	DefaultValueSize = 100
	DefaultKeys      = 1000
	DefaultDuration  = 10 * time.Second
	DefaultReadRatio = 0.9
	DefaultTimeout   = 10 * time.Second
	DefaultKeyPrefix = "bench:"
)

// Config describes one run of one workload.
type Config struct {
	Endpoints []string // cluster member URLs; the first naming a leader is used for discovery
	Workload  string   // one of Workloads
	Clients   int      // concurrent clients, each with its own connection; default 64
	ValueSize int      // bytes per value; default 100
	Keys      int      // keys are drawn uniformly from this many; default 1000
	// Duration bounds the run; Requests, if positive, bounds it too, by
	// the number of requests sent. With neither, Duration is 10s.
	Duration time.Duration
	Requests int64
	// ReadRatio is the fraction of reads in the mix workload (default
	// 0.9); MixReads is their consistency, "strong" (default) or "stale"
	// (spread over the followers).
	ReadRatio float64
	MixReads  string
	KeyPrefix string        // default "bench:"; counters live under KeyPrefix+"ctr:"
	Timeout   time.Duration // bound on one request; default 10s
	// TLS is the client side of HTTPS (the CA of the members'
	// certificates, a client certificate), for https:// endpoints; nil
	// trusts the system roots. Ignored when Transport is set.
	TLS *tls.Config
	// Token, if set, is sent as "Authorization: Bearer <Token>" on every
	// request, including a redirect to a new leader.
	Token string
	// Transport, if set, replaces the tuned keep-alive transport (tests).
	Transport http.RoundTripper
}

// Latency holds latency figures in milliseconds.
type Latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// Result is the outcome of one run. Only successful (2xx) requests count
// in Ops and the latencies; every other outcome is an error, counted by
// kind in ErrorKinds ("status 503", "timeout", ...).
type Result struct {
	Workload   string           `json:"workload"`
	Clients    int              `json:"clients"`
	ValueSize  int              `json:"value_size"`
	Keys       int              `json:"keys"`
	ReadRatio  float64          `json:"read_ratio,omitempty"`
	MixReads   string           `json:"mix_reads,omitempty"`
	Leader     string           `json:"leader"`
	Targets    []string         `json:"targets"`
	Elapsed    float64          `json:"elapsed_s"`
	Ops        int64            `json:"ops"`
	Errors     int64            `json:"errors"`
	OpsPerSec  float64          `json:"ops_per_sec"`
	LatencyMS  Latency          `json:"latency_ms"`
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"`
}

// Cluster is what discovery learned from GET /v1/cluster.
type Cluster struct {
	Leader    string   // base URL of the leader
	LeaderID  string   // its member id
	Followers []string // base URLs of the other members
}

type clusterJSON struct {
	Leader *struct {
		ID       string `json:"id"`
		HTTPAddr string `json:"http_addr"`
	} `json:"leader"`
	AppliedIndex uint64 `json:"applied_index"`
	Members      []struct {
		ID       string `json:"id"`
		HTTPAddr string `json:"http_addr"`
	} `json:"members"`
}

func (c *Config) setDefaults() error {
	if len(c.Endpoints) == 0 {
		return errors.New("bench: no endpoints")
	}
	if !validWorkload(c.Workload) {
		return fmt.Errorf("bench: unknown workload %q (want one of %s)", c.Workload, strings.Join(Workloads, ", "))
	}
	if c.Clients <= 0 {
		c.Clients = DefaultClients
	}
	if c.ValueSize < 0 {
		return errors.New("bench: negative value size")
	}
	if c.ValueSize == 0 {
		c.ValueSize = DefaultValueSize
	}
	if c.Keys <= 0 {
		c.Keys = DefaultKeys
	}
	if c.Duration <= 0 && c.Requests <= 0 {
		c.Duration = DefaultDuration
	}
	if c.ReadRatio == 0 {
		c.ReadRatio = DefaultReadRatio
	}
	if c.ReadRatio < 0 || c.ReadRatio > 1 {
		return fmt.Errorf("bench: read ratio %v is not between 0 and 1", c.ReadRatio)
	}
	switch c.MixReads {
	case "":
		c.MixReads = "strong"
	case "strong", "stale":
	default:
		return fmt.Errorf("bench: mix reads must be strong or stale, not %q", c.MixReads)
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	return nil
}

func validWorkload(w string) bool {
	for _, v := range Workloads {
		if v == w {
			return true
		}
	}
	return false
}

// NewTransport is the keep-alive transport of the hot loop: one idle
// connection kept per client and host, no compression, no proxy.
func NewTransport(clients int) *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          0, // no overall bound
		MaxIdleConnsPerHost:   clients + 8,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: 0, // the client's Timeout bounds each request
		ExpectContinueTimeout: 0,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
}

// Discover asks each endpoint in turn for GET /v1/cluster and returns the
// first answer that names a leader with its HTTP address. While none does
// (an election, or a new leader whose address is not yet replicated), it
// asks again every 100ms until ctx ends, unless every endpoint refused in
// a way asking again cannot change (permanent): then it says so at once.
// The error names, for each endpoint, its last answer that ctx did not
// cut short, so a run ended by its deadline still says why.
func Discover(ctx context.Context, hc *http.Client, endpoints []string) (*Cluster, error) {
	last := make([]error, len(endpoints))
	for {
		refused := 0
		for i, ep := range endpoints {
			cl, err := discoverOne(ctx, hc, ep)
			if err == nil {
				return cl, nil
			}
			if ctx.Err() == nil || last[i] == nil {
				last[i] = fmt.Errorf("%s: %w", ep, err)
			}
			if permanent(err) {
				refused++
			}
		}
		if refused == len(endpoints) {
			return nil, fmt.Errorf("bench: no endpoint named a leader: %w", errors.Join(last...))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bench: no endpoint named a leader: %w", errors.Join(last...))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// statusError is an answer other than 200.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// permanent reports the refusals that asking again will not change: a
// certificate this client does not trust, or a token refused.
func permanent(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code == http.StatusUnauthorized || se.code == http.StatusForbidden
	}
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

func discoverOne(ctx context.Context, hc *http.Client, endpoint string) (*Cluster, error) {
	u, err := url.Parse(strings.TrimRight(endpoint, "/"))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("bad endpoint URL %q", endpoint)
	}
	var cj clusterJSON
	if err := getJSON(ctx, hc, u.String()+"/v1/cluster", &cj); err != nil {
		return nil, err
	}
	if cj.Leader == nil || cj.Leader.HTTPAddr == "" {
		return nil, errors.New("no leader (or its HTTP address) known")
	}
	base := func(addr string) string { return u.Scheme + "://" + addr }
	cl := &Cluster{Leader: base(cj.Leader.HTTPAddr), LeaderID: cj.Leader.ID}
	for _, m := range cj.Members {
		if m.ID != cj.Leader.ID && m.HTTPAddr != "" {
			cl.Followers = append(cl.Followers, base(m.HTTPAddr))
		}
	}
	sort.Strings(cl.Followers)
	return cl, nil
}

func getJSON(ctx context.Context, hc *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &statusError{code: resp.StatusCode, msg: fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))}
	}
	return json.Unmarshal(body, v)
}

// Run discovers the cluster, preloads the keys the workload reads, and
// runs the workload. ctx ends the run early (its requests in flight are
// not counted as errors); the run's own bounds are cfg.Duration and
// cfg.Requests.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	rt := cfg.Transport
	if rt == nil {
		t := NewTransport(cfg.Clients)
		t.TLSClientConfig = cfg.TLS.Clone()
		defer t.CloseIdleConnections()
		rt = t
	}
	hc := &http.Client{Transport: rt, Timeout: cfg.Timeout}
	var tt *tokenTransport
	if cfg.Token != "" {
		tt = newTokenTransport(rt, cfg.Token, cfg.Endpoints)
		hc.Transport = tt
	}

	dctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	cl, err := Discover(dctx, hc, cfg.Endpoints)
	cancel()
	if err != nil {
		return nil, err
	}
	if tt != nil {
		tt.allow(append([]string{cl.Leader}, cl.Followers...))
	}
	r := &runner{cfg: cfg, hc: hc, cl: cl, value: makeValue(cfg.ValueSize)}
	r.buildURLs()
	if cfg.Workload == GetStrong || cfg.Workload == GetStale || cfg.Workload == Mix {
		if err := r.preload(ctx); err != nil {
			return nil, err
		}
	}
	return r.run(ctx), nil
}

// tokenTransport sends the bearer token to the cluster's members: it adds
// Authorization to a request for a member that lacks it (discovery, and a
// redirect to a new leader: Go's client drops the header when a redirect
// changes host), never to another host. The hot loop sets the header
// itself, sparing a copy of each request.
type tokenTransport struct {
	next  http.RoundTripper
	auth  string
	mu    sync.Mutex
	hosts map[string]bool
}

func newTokenTransport(next http.RoundTripper, token string, endpoints []string) *tokenTransport {
	t := &tokenTransport{next: next, auth: "Bearer " + token, hosts: map[string]bool{}}
	t.allow(endpoints)
	return t
}

// allow adds the hosts of base URLs to those that get the token.
func (t *tokenTransport) allow(bases []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range bases {
		if u, err := url.Parse(strings.TrimRight(b, "/")); err == nil && u.Host != "" {
			t.hosts[u.Host] = true
		}
	}
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") == "" {
		t.mu.Lock()
		ok := t.hosts[req.URL.Host]
		t.mu.Unlock()
		if ok {
			req = req.Clone(req.Context())
			req.Header.Set("Authorization", t.auth)
		}
	}
	return t.next.RoundTrip(req)
}

func setToken(req *http.Request, token string) {
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
}

type runner struct {
	cfg   Config
	hc    *http.Client
	cl    *Cluster
	value []byte

	leaderKV   []string // leader URL of each value key
	leaderIncr []string // leader URL of each counter key
	staleKV    [][]string
}

// makeValue returns n printable bytes (they also travel as a JSON string
// in the preload batches).
func makeValue(n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return b
}

func (r *runner) key(i int) string { return r.cfg.KeyPrefix + strconv.Itoa(i) }

// buildURLs precomputes every request URL, so the hot loop only indexes.
func (r *runner) buildURLs() {
	n := r.cfg.Keys
	r.leaderKV = make([]string, n)
	r.leaderIncr = make([]string, n)
	for i := range n {
		r.leaderKV[i] = r.cl.Leader + "/v1/kv/" + url.PathEscape(r.key(i))
		r.leaderIncr[i] = r.cl.Leader + "/v1/incr/" + url.PathEscape(r.cfg.KeyPrefix+"ctr:"+strconv.Itoa(i))
	}
	if r.cfg.Workload == GetStale || (r.cfg.Workload == Mix && r.cfg.MixReads == "stale") {
		targets := r.cl.Followers
		if len(targets) == 0 {
			targets = []string{r.cl.Leader} // a one-node cluster has no followers
		}
		r.staleKV = make([][]string, len(targets))
		for t, base := range targets {
			r.staleKV[t] = make([]string, n)
			for i := range n {
				r.staleKV[t][i] = base + "/v1/kv/" + url.PathEscape(r.key(i)) + "?consistency=stale"
			}
		}
	}
}

func (r *runner) targets() []string {
	switch {
	case r.staleKV != nil && r.cfg.Workload == GetStale:
		return r.staleBases()
	case r.staleKV != nil && len(r.cl.Followers) > 0:
		return append([]string{r.cl.Leader}, r.cl.Followers...)
	default:
		return []string{r.cl.Leader}
	}
}

func (r *runner) staleBases() []string {
	if len(r.cl.Followers) == 0 {
		return []string{r.cl.Leader}
	}
	return r.cl.Followers
}

// preload writes every value key through /v1/batch (a few concurrent
// batches of at most 1000 keys and about 1 MB), then waits until the
// followers have applied them, so reads find every key.
func (r *runner) preload(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	per := max(1, min(1000, (1<<20)/(r.cfg.ValueSize+64)))
	type chunk struct{ from, to int }
	chunks := make(chan chunk)
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	for range min(4, r.cfg.Clients) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range chunks {
				if err := r.writeBatch(ctx, c.from, c.to); err != nil {
					select {
					case errc <- err:
					default:
					}
					cancel()
					return
				}
			}
		}()
	}
feed:
	for from := 0; from < r.cfg.Keys; from += per {
		select {
		case chunks <- chunk{from, min(from+per, r.cfg.Keys)}:
		case <-ctx.Done():
			break feed
		}
	}
	close(chunks)
	wg.Wait()
	select {
	case err := <-errc:
		return fmt.Errorf("bench: preload: %w", err)
	default:
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bench: preload: %w", err)
	}
	return r.waitFollowers(ctx)
}

func (r *runner) writeBatch(ctx context.Context, from, to int) error {
	type op struct {
		Op    string `json:"op"`
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	body := struct {
		Atomic bool `json:"atomic"`
		Ops    []op `json:"ops"`
	}{Atomic: false}
	v := string(r.value)
	for i := from; i < to; i++ {
		body.Ops = append(body.Ops, op{Op: "set", Key: r.key(i), Value: v})
	}
	buf, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cl.Leader+"/v1/batch", bytes.NewReader(buf))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	setToken(req, r.cfg.Token)
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST /v1/batch: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// waitFollowers waits until every follower has applied what the leader
// had applied after the preload.
func (r *runner) waitFollowers(ctx context.Context) error {
	if len(r.cl.Followers) == 0 {
		return nil
	}
	var lj clusterJSON
	if err := getJSON(ctx, r.hc, r.cl.Leader+"/v1/cluster", &lj); err != nil {
		return fmt.Errorf("bench: leader status: %w", err)
	}
	for _, f := range r.cl.Followers {
		for {
			var fj clusterJSON
			err := getJSON(ctx, r.hc, f+"/v1/cluster", &fj)
			if err == nil && fj.AppliedIndex >= lj.AppliedIndex {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("bench: follower %s did not catch up with the preload: %w", f, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// worker is one client's state; only its goroutine touches it.
type worker struct {
	hist   Histogram
	errs   map[string]int64
	rng    *rand.Rand
	stale  []string // this worker's follower URLs, for stale reads
	reader *bytes.Reader
}

func (r *runner) run(ctx context.Context) *Result {
	var (
		sent    atomic.Int64
		wg      sync.WaitGroup
		workers = make([]*worker, r.cfg.Clients)
	)
	// The run ends when the duration passes or the request budget is
	// spent; requests in flight then finish (bounded by cfg.Timeout) and
	// count. Cancelling ctx aborts them, uncounted.
	var deadline time.Time
	start := time.Now()
	if r.cfg.Duration > 0 {
		deadline = start.Add(r.cfg.Duration)
	}
	for i := range workers {
		w := &worker{
			errs:   map[string]int64{},
			rng:    rand.New(rand.NewPCG(uint64(i)+1, uint64(start.UnixNano()))),
			reader: bytes.NewReader(nil),
		}
		if r.staleKV != nil {
			w.stale = r.staleKV[i%len(r.staleKV)]
		}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if r.cfg.Requests > 0 && sent.Add(1) > r.cfg.Requests {
					return
				}
				if !deadline.IsZero() && !time.Now().Before(deadline) {
					return
				}
				r.one(ctx, w)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	var hist Histogram
	res := &Result{
		Workload:  r.cfg.Workload,
		Clients:   r.cfg.Clients,
		ValueSize: r.cfg.ValueSize,
		Keys:      r.cfg.Keys,
		Leader:    r.cl.Leader,
		Targets:   r.targets(),
		Elapsed:   elapsed.Seconds(),
	}
	if r.cfg.Workload == Mix {
		res.ReadRatio, res.MixReads = r.cfg.ReadRatio, r.cfg.MixReads
	}
	for _, w := range workers {
		hist.Merge(&w.hist)
		for k, n := range w.errs {
			if res.ErrorKinds == nil {
				res.ErrorKinds = map[string]int64{}
			}
			res.ErrorKinds[k] += n
			res.Errors += n
		}
	}
	res.Ops = int64(hist.Count())
	if elapsed > 0 {
		res.OpsPerSec = float64(res.Ops) / elapsed.Seconds()
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	res.LatencyMS = Latency{
		Min: ms(hist.Min()), Mean: ms(hist.Mean()),
		P50: ms(hist.Quantile(0.50)), P95: ms(hist.Quantile(0.95)), P99: ms(hist.Quantile(0.99)),
		Max: ms(hist.Max()),
	}
	return res
}

// one sends one request of the workload and records its outcome.
func (r *runner) one(ctx context.Context, w *worker) {
	k := w.rng.IntN(r.cfg.Keys)
	var method, u string
	var body []byte
	switch r.cfg.Workload {
	case Set:
		method, u, body = http.MethodPut, r.leaderKV[k], r.value
	case GetStrong:
		method, u = http.MethodGet, r.leaderKV[k]
	case GetStale:
		method, u = http.MethodGet, w.stale[k]
	case Incr:
		method, u = http.MethodPost, r.leaderIncr[k]
	case Mix:
		switch {
		case w.rng.Float64() >= r.cfg.ReadRatio:
			method, u, body = http.MethodPut, r.leaderKV[k], r.value
		case w.stale != nil:
			method, u = http.MethodGet, w.stale[k]
		default:
			method, u = http.MethodGet, r.leaderKV[k]
		}
	}
	var rd io.Reader
	if body != nil {
		w.reader.Reset(body)
		rd = w.reader
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		w.errs["request: "+err.Error()]++
		return
	}
	if body != nil {
		// NewRequest set ContentLength and GetBody from the *bytes.Reader,
		// so a 307 to a new leader re-sends the value.
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	setToken(req, r.cfg.Token)
	t0 := time.Now()
	resp, err := r.hc.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			w.errs[errKind(err)]++
		}
		return
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			w.errs[errKind(err)]++
		}
	case resp.StatusCode/100 != 2:
		w.errs["status "+strconv.Itoa(resp.StatusCode)]++
	default:
		w.hist.Record(d)
	}
}

// errKind names a transport error without its URL, so errors group.
func errKind(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op + ": " + oe.Err.Error()
	}
	return err.Error()
}
