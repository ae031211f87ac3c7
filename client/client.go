package client

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultTimeout         = 10 * time.Second
	DefaultAttemptTimeout  = 5 * time.Second
	DefaultRefreshInterval = 30 * time.Second
)

// MaxRedirects bounds how many 307 redirects one attempt follows before it
// counts as failed (and the call is retried after a backoff).
const MaxRedirects = 3

// KeyedRetryLimit bounds how long a write carrying an Idempotency-Key is
// retried, measured from its first attempt: inside the server's
// five-minute deduplication window. The server also forgets the oldest
// keys past 200,000 newer ones (docs/api.md, "Idempotency keys"): a retry
// after a lost answer says so (Raftcache-Resend), and one that outlives
// that many is answered ErrUnknownOutcome (cluster feature level 5 on)
// rather than applied as a new write.
const KeyedRetryLimit = 4 * time.Minute

const (
	backoffBase = 25 * time.Millisecond
	backoffMax  = time.Second
	// failRefreshGap rate-limits membership refreshes caused by failures.
	failRefreshGap = time.Second
	// refreshTimeout bounds one GET /v1/cluster during a refresh.
	refreshTimeout = 2 * time.Second
	// incompleteRetry: how soon to refresh again after a view that lists
	// a member without an HTTP address (not yet registered on that node).
	incompleteRetry = time.Second
	// expectContinueOver: bodies larger than this are sent with
	// "Expect: 100-continue", so a follower's 307 comes before the body.
	expectContinueOver = 64 << 10
)

// Config configures a Client. Only Endpoints is required; zero values take
// the defaults noted on each field.
type Config struct {
	// Endpoints are base URLs of cluster members, e.g.
	// http://127.0.0.1:8001 or https://10.0.0.1:8001 ("host:port" alone
	// means http, or https when TLS is set; a comma-separated string is
	// split). One reachable member is enough: the client learns the others
	// from GET /v1/cluster, and talks to them with the first endpoint's
	// scheme. The given endpoints are never forgotten, even if the cluster
	// does not list them.
	Endpoints []string
	// TLS configures HTTPS for every member the client talks to: given,
	// learned, or reached through a redirect. Set RootCAs to the CA that
	// signed the members' certificates (nil: the system roots), and
	// Certificates to a client certificate for a cluster started with
	// --tls-client-ca; TLSConfigFromFiles builds one from PEM files. With
	// TLS set, every endpoint must be https:// (a plaintext endpoint would
	// send the token in the clear). A handshake that fails (a server
	// certificate the client does not trust, or a client certificate the
	// server refuses) is retried on other members, but ends the call with
	// ErrTLS once the call has seen as many such failures as the client
	// knows members: it is a configuration error that retrying does not
	// fix, and nothing was applied. Nil: https endpoints use the system
	// roots and no client certificate.
	//
	// With HTTPClient also set, its Transport must be an *http.Transport
	// (or nil): the Client uses a copy of it with TLS as TLSClientConfig.
	TLS *tls.Config
	// Timeout bounds each call whose context has no deadline, retries
	// included. Default 10s (DefaultTimeout).
	Timeout time.Duration
	// AttemptTimeout bounds one attempt (one request and the redirects it
	// follows). A node that does not answer in time is treated like one
	// that refused the connection: the call moves on to another member.
	// Default 5s (DefaultAttemptTimeout).
	AttemptTimeout time.Duration
	// RefreshInterval is how old the learned membership may grow before a
	// call starts a background refresh (the call itself does not wait).
	// Failures trigger refreshes too. Default 30s; negative disables the
	// periodic and the initial refresh (failures and unknown redirect
	// targets still refresh).
	RefreshInterval time.Duration
	// Token, if set, is sent as "Authorization: Bearer <Token>" (for a
	// cluster that requires tokens), on every request, redirect hop and
	// retry, and only to known members.
	Token string
	// Header is added to every request, on every redirect hop and retry
	// (e.g. Authorization for a proxy in front of the cluster). It is only
	// ever sent to known members.
	Header http.Header
	// HTTPClient sends the requests. Default: a client with keep-alive
	// connections, a 2s dial timeout and Expect: 100-continue support. Its
	// redirect policy is replaced: the Client follows redirects itself. Its
	// Timeout, if any, still applies to each request.
	HTTPClient *http.Client
	// NearCache, if set (MaxBytes > 0), keeps values read by Get in this
	// process, invalidated by a watch stream: see NearCache for what a
	// hit may return.
	NearCache *NearCache
}

// Client talks to a raftcache cluster. It is safe for concurrent use.
type Client struct {
	hc              *http.Client
	ownTransport    bool
	timeout         time.Duration
	attemptTimeout  time.Duration
	refreshInterval time.Duration
	header          http.Header
	scheme          string // for learned members

	mu          sync.Mutex
	members     []*member
	byHost      map[string]*member
	leader      *member // last known leader, or nil
	next        int     // round-robin position
	lastRefresh time.Time
	refreshing  bool
	closed      bool

	near *nearCache // nil without Config.NearCache

	// seen is the highest X-Raft-Index any answer carried, and seenAt
	// when an answer last carried it: an index committed before a call
	// that starts now, so its entry can only be applied above it (the
	// Raftcache-Resend header).
	seenMu sync.Mutex
	seen   uint64
	seenAt time.Time

	bg     context.Context // canceled by Close
	stopBg context.CancelFunc
	wg     sync.WaitGroup
}

// member is one node the client may talk to.
type member struct {
	base      string // scheme://host:port
	host      string // host:port, as Location and http_addr name it
	id        string // "" until learned
	given     bool   // from Config.Endpoints: never forgotten
	fails     int    // consecutive transport failures
	downUntil time.Time
}

// New returns a Client. It makes no request; the first call starts a
// background membership refresh.
func New(cfg Config) (*Client, error) {
	c := &Client{
		timeout:         cfg.Timeout,
		attemptTimeout:  cfg.AttemptTimeout,
		refreshInterval: cfg.RefreshInterval,
		header:          cfg.Header.Clone(),
		byHost:          map[string]*member{},
	}
	if cfg.Token != "" {
		if c.header == nil {
			c.header = http.Header{}
		}
		c.header.Set("Authorization", "Bearer "+cfg.Token)
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.attemptTimeout <= 0 {
		c.attemptTimeout = DefaultAttemptTimeout
	}
	if c.refreshInterval == 0 {
		c.refreshInterval = DefaultRefreshInterval
	}
	for _, e := range cfg.Endpoints {
		for _, part := range strings.Split(e, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			u, err := parseEndpoint(part, cfg.TLS != nil)
			if err != nil {
				return nil, err
			}
			if cfg.TLS != nil && u.Scheme != "https" {
				return nil, fmt.Errorf("client: endpoint %q is not https:// but Config.TLS is set", part)
			}
			if c.scheme == "" {
				c.scheme = u.Scheme
			}
			if _, dup := c.byHost[u.Host]; !dup {
				m := &member{base: u.Scheme + "://" + u.Host, host: u.Host, given: true}
				c.members = append(c.members, m)
				c.byHost[m.host] = m
			}
		}
	}
	if len(c.members) == 0 {
		return nil, errors.New("client: at least one endpoint is required")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		c.ownTransport = true
		hc = &http.Client{Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
		}}
	}
	copied := *hc
	if cfg.TLS != nil {
		var t *http.Transport
		switch rt := copied.Transport.(type) {
		case nil:
			t = http.DefaultTransport.(*http.Transport).Clone()
		case *http.Transport:
			t = rt.Clone()
		default:
			return nil, fmt.Errorf("client: Config.TLS needs Config.HTTPClient.Transport to be an *http.Transport, not %T (or set TLS on your transport and leave Config.TLS nil)", rt)
		}
		t.TLSClientConfig = cfg.TLS.Clone()
		copied.Transport = t
		c.ownTransport = true
	}
	copied.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &copied
	c.bg, c.stopBg = context.WithCancel(context.Background())
	if nc := cfg.NearCache; nc != nil && nc.MaxBytes > 0 {
		c.near = newNearCache(c, *nc)
		c.wg.Add(1)
		go c.near.run(c.bg)
	}
	return c, nil
}

func parseEndpoint(e string, https bool) (*url.URL, error) {
	if !strings.Contains(e, "://") {
		if https {
			e = "https://" + e
		} else {
			e = "http://" + e
		}
	}
	u, err := url.Parse(strings.TrimRight(e, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("client: bad endpoint %q: want http://host:port", e)
	}
	if u.Path != "" {
		return nil, fmt.Errorf("client: bad endpoint %q: a base URL has no path", e)
	}
	u.Host = strings.ToLower(u.Host)
	return u, nil
}

// Close stops background membership refreshes and, if the Client made its
// own HTTP transport, closes its idle connections. Calls made after Close
// still work but no longer refresh membership in the background.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.stopBg()
	c.wg.Wait()
	if c.ownTransport {
		c.hc.CloseIdleConnections()
	}
	return nil
}

// Endpoints returns the base URLs of the members the client currently
// knows: the configured endpoints and those learned from the cluster.
func (c *Client) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.base
	}
	return out
}

// Leader returns the base URL of the last known leader, or "".
func (c *Client) Leader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader == nil {
		return ""
	}
	return c.leader.base
}

// route says where a call goes first.
type route int

const (
	toLeader route = iota // writes and strong reads: the leader (followers redirect)
	toAny                 // stale reads: round robin over the members
	toInfo                // cluster view and stats: the leader if known, else any
)

// call is one logical API call, re-sendable to any node.
type call struct {
	method string
	path   string // escaped path, e.g. /v1/kv/a%2Fb
	query  url.Values
	body   []byte
	header http.Header // per call: Content-Type, Idempotency-Key
	route  route
	// write: a failure after the request may have reached the leader
	// leaves the outcome unknown. Every write this package sends is safe to
	// retry (idempotent, or carrying an Idempotency-Key).
	write bool
	keyed bool // carries an Idempotency-Key: retried at most KeyedRetryLimit
}

func (cl *call) setKey(explicit string) {
	if cl.header == nil {
		cl.header = http.Header{}
	}
	key := explicit
	if key == "" {
		key = newIdempotencyKey()
	}
	cl.header.Set("Idempotency-Key", key)
	cl.keyed = true
}

func (cl *call) target(base string) string {
	t := base + cl.path
	if len(cl.query) > 0 {
		t += "?" + cl.query.Encode()
	}
	return t
}

// newIdempotencyKey returns 128 random bits in hex (32 bytes; the server
// accepts up to 64).
func newIdempotencyKey() string {
	var b [16]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic("client: no randomness: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// response is a finished call's status, headers and body.
type response struct {
	status int
	header http.Header
	body   []byte
	// ambiguous: an earlier attempt of this write may have been applied.
	ambiguous bool
}

func (r *response) index() uint64 { return headerUint(r.header, "X-Raft-Index") }

// outcome classifies one attempt.
type outcome int

const (
	answered  outcome = iota // a final HTTP answer (not a redirect)
	notSent                  // failed before anything reached a node: safe
	uncertain                // failed after the request may have been handled
	fatal                    // stop retrying
	// handshake: the TLS handshake failed, nothing was sent. Retried on
	// other members, but fatal once as many attempts as there are members
	// have failed so (a client misconfiguration, not a passing fault).
	handshake
)

// do sends cl until it gets an answer other than 503 and 504 or ctx ends,
// following redirects, failing over between members and backing off
// between attempts. It returns the final answer, whatever its status.
func (c *Client) do(ctx context.Context, cl *call) (*response, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	if cl.keyed {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, KeyedRetryLimit)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.maybeRefresh()
	var (
		lastErr   error
		ambiguous bool
		avoid     *member
		tlsFails  int
		after     = c.resendAfter() // the first attempt applies above it; 0: none to name
	)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if !sleep(ctx, backoff(attempt)) {
				return nil, giveUp(ctx, cl, lastErr, ambiguous)
			}
		}
		if ambiguous && cl.keyed && after > 0 { // 0: nothing seen, nothing to name
			// An earlier attempt may have been applied: if the server no
			// longer knows the key while keys applied above after were
			// forgotten, it answers 409 key_forgotten rather than apply
			// the write a second time (docs/api.md, "Idempotency keys").
			cl.header.Set("Raftcache-Resend", strconv.FormatUint(after, 10))
		}
		m := c.pick(cl.route, avoid)
		res, served, out, err := c.attempt(ctx, cl, m)
		avoid = nil
		if out == handshake {
			if tlsFails++; tlsFails >= c.memberCount() {
				out = fatal
			} else {
				out = notSent
			}
		}
		switch out {
		case fatal:
			if ambiguous && cl.write {
				return nil, fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
			}
			return nil, err
		case notSent, uncertain:
			if lastErr == nil || ctx.Err() == nil { // not just "the context ended"
				lastErr = err
			}
			avoid = served
			ambiguous = ambiguous || out == uncertain && cl.write
			c.forgetLeader(served)
			c.refreshSoon()
		case answered:
			switch res.status {
			case http.StatusServiceUnavailable: // certainly not applied
				lastErr, avoid = decodeError(res), served
				if !errors.Is(lastErr, ErrOverloaded) { // a busy leader is still the leader
					c.forgetLeader(served)
					c.refreshSoon()
				}
			case http.StatusGatewayTimeout: // unknown_outcome, index_timeout
				lastErr, avoid = decodeError(res), served
				ambiguous = ambiguous || cl.write
				c.forgetLeader(served)
			default:
				if cl.route == toLeader && leaderAnswer(res.status) {
					c.setLeader(served)
				}
				res.ambiguous = ambiguous
				return res, nil
			}
		}
		if ctx.Err() != nil {
			return nil, giveUp(ctx, cl, lastErr, ambiguous)
		}
	}
}

// writeFailure is the error of a call whose final answer was err. For a
// write it is ErrUnknownOutcome (wrapping err) when the write may have been
// applied all the same: an earlier attempt's answer was lost (ambiguous),
// and this answer is only the retry's (a 507 once memory filled up, a 404
// once the key expired: the first attempt may have gone through); or the
// server said so itself (500 internal: outcome unknown; 409
// result_unavailable: applied once, its result no longer held; 409
// key_forgotten: a retry whose key may have been applied and forgotten). Answers
// that any attempt would have got (a malformed request, credentials) stay
// as they are.
func writeFailure(cl *call, ambiguous bool, err error) error {
	var e *Error
	if !cl.write || errors.Is(err, ErrUnknownOutcome) || !errors.As(err, &e) {
		return err
	}
	switch {
	case e.Code == "internal", e.Code == "result_unavailable", e.Code == "key_forgotten":
	case !ambiguous:
		return err
	case e.Status == http.StatusBadRequest, e.Status == http.StatusUnauthorized, e.Status == http.StatusForbidden:
		return err
	case cl.keyed && e.Status < 500 && e.Status != http.StatusRequestEntityTooLarge && e.Code != "idempotency_key_reused":
		// A keyed retry is answered with the first attempt's result
		// (a CAS conflict, a missing key) once the server holds it;
		// what it checks before the key (memory, size) is the retry's.
		// A reused key after a lost answer is not certain: a leader of
		// another version may have tagged the same request otherwise.
		return err
	}
	return fmt.Errorf("%w: the write may have been applied: %w", ErrUnknownOutcome, err)
}

// leaderAnswer: an answer a write or strong read gets only from the leader
// (followers redirect those; 400s come before the leadership check).
func leaderAnswer(status int) bool {
	switch status {
	case http.StatusOK, http.StatusNotFound, http.StatusConflict, http.StatusPreconditionFailed, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// giveUp is the error of a call whose context ended before an answer.
func giveUp(ctx context.Context, cl *call, last error, ambiguous bool) error {
	cause := ctx.Err()
	if ambiguous && cl.write {
		if last == nil {
			return fmt.Errorf("%w: %w", ErrUnknownOutcome, cause)
		}
		return fmt.Errorf("%w: %w (last attempt: %v)", ErrUnknownOutcome, cause, last)
	}
	if last == nil {
		return cause
	}
	return fmt.Errorf("%w (gave up: %w)", last, cause)
}

// backoff is the jittered exponential pause before attempt n (n >= 1):
// between half and all of 25ms·2^(n-1), at most 1s.
func backoff(n int) time.Duration {
	d := backoffBase << min(n-1, 6)
	if d > backoffMax {
		d = backoffMax
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// pick chooses the member for an attempt: for leader-bound calls the known
// leader, otherwise (or if it is unknown or down) the next member in round
// robin that is not marked down and is not avoid.
func (c *Client) pick(r route, avoid *member) *member {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if r != toAny && c.leader != nil && c.leader != avoid && !c.leader.down(now) {
		return c.leader
	}
	n := len(c.members)
	for i := 0; i < n; i++ {
		c.next = (c.next + 1) % n
		if m := c.members[c.next]; !m.down(now) && m != avoid {
			return m
		}
	}
	// Everything is down (or avoided): take whoever recovers first.
	var best *member
	for _, m := range c.members {
		if best == nil || (best == avoid && m != avoid) || (m != avoid && m.downUntil.Before(best.downUntil)) {
			best = m
		}
	}
	return best
}

func (m *member) down(now time.Time) bool { return now.Before(m.downUntil) }

// markDown notes a transport failure: the member is skipped for a while
// (250ms, doubling with each consecutive failure, at most 4s).
func (c *Client) markDown(m *member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m.fails++
	m.downUntil = time.Now().Add(min(250*time.Millisecond<<min(m.fails-1, 4), 4*time.Second))
}

func (c *Client) markUp(m *member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m.fails, m.downUntil = 0, time.Time{}
}

func (c *Client) setLeader(m *member) {
	c.mu.Lock()
	c.leader = m
	c.mu.Unlock()
}

func (c *Client) forgetLeader(m *member) {
	c.mu.Lock()
	if c.leader == m {
		c.leader = nil
	}
	c.mu.Unlock()
}

func (c *Client) memberCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.members)
}

func (c *Client) memberAt(host string) *member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byHost[strings.ToLower(host)]
}

// attempt sends cl to m and follows up to MaxRedirects redirects, each only
// to a known member. It returns the member that gave the last answer (or
// failed).
func (c *Client) attempt(ctx context.Context, cl *call, m *member) (*response, *member, outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
	defer cancel()
	for hop := 0; ; hop++ {
		res, written, err := c.send(ctx, cl, cl.target(m.base))
		if err != nil {
			c.markDown(m)
			if handshakeFailed(err) {
				// The server cannot have read the request, even if
				// (TLS 1.3) the client wrote it before the refusal.
				return nil, m, handshake, fmt.Errorf("%w: %w", ErrTLS, err)
			}
			if !written || dialFailed(err) {
				return nil, m, notSent, err
			}
			return nil, m, uncertain, err
		}
		c.markUp(m)
		if idx := res.index(); idx > 0 {
			c.noteIndex(idx)
		}
		if res.status != http.StatusTemporaryRedirect && res.status != http.StatusPermanentRedirect {
			return res, m, answered, nil
		}
		// A 307 means the node did not handle the request: nothing applied.
		if hop == MaxRedirects {
			return nil, m, notSent, fmt.Errorf("%w: more than %d redirects", ErrNoLeader, MaxRedirects)
		}
		next, err := c.redirectTarget(ctx, cl, res)
		if err != nil {
			return nil, m, fatal, err
		}
		c.setLeader(next) // a redirect names the leader
		m = next
	}
}

// noteIndex raises seen to idx.
func (c *Client) noteIndex(idx uint64) {
	c.seenMu.Lock()
	if idx >= c.seen {
		c.seen, c.seenAt = idx, time.Now()
	}
	c.seenMu.Unlock()
}

// resendFresh bounds the age of the index a retry names: the server
// forgets keys 5 minutes after they were applied, and a keyed call is
// retried for up to KeyedRetryLimit (4), so an index seen longer ago than
// the difference would have its successors' keys aged out by the time of
// the retry, and a retry that should be applied would be refused. 30 s
// leaves the rest for a follower's lag behind the leader.
const resendFresh = 30 * time.Second

// resendAfter is the index a call starting now names when it retries
// after a lost answer (Raftcache-Resend), or 0 when none is fresh enough.
func (c *Client) resendAfter() uint64 {
	c.seenMu.Lock()
	defer c.seenMu.Unlock()
	if c.seen == 0 || time.Since(c.seenAt) > resendFresh {
		return 0
	}
	return c.seen
}

// redirectTarget checks a redirect and returns the member it names. Only
// known members are followed, so credentials in Config.Header never leave
// the cluster; an unknown host gets one synchronous membership refresh.
// The request is re-sent as it was (method, path, query, body, headers):
// only the host changes, and a Location with another path is refused.
func (c *Client) redirectTarget(ctx context.Context, cl *call, res *response) (*member, error) {
	loc := res.header.Get("Location")
	u, err := url.Parse(loc)
	if err != nil || u.Host == "" {
		return nil, &RedirectError{Location: loc, Reason: "no absolute Location"}
	}
	want, err := url.PathUnescape(cl.path)
	if err != nil || u.Path != want {
		return nil, &RedirectError{Location: loc, Reason: "the redirect changes the path"}
	}
	if m := c.memberAt(u.Host); m != nil {
		return m, nil
	}
	c.refresh(ctx)
	if m := c.memberAt(u.Host); m != nil {
		return m, nil
	}
	return nil, &RedirectError{Location: loc, Reason: "the host is not a known cluster member"}
}

// dialFailed reports whether err happened while connecting, before any
// byte of the request was sent.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// send makes one HTTP exchange and reads the whole answer. written says
// whether the whole request was sent at least once: until then no node can
// have acted on it (a write's body is read in full before it is applied).
func (c *Client) send(ctx context.Context, cl *call, target string) (res *response, written bool, err error) {
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true)
			}
		},
	})
	hr, err := http.NewRequestWithContext(ctx, cl.method, target, body)
	if err != nil {
		return nil, false, err
	}
	for k, v := range c.header {
		hr.Header[k] = append([]string(nil), v...)
	}
	for k, v := range cl.header {
		hr.Header[k] = append([]string(nil), v...)
	}
	if len(cl.body) > expectContinueOver {
		hr.Header.Set("Expect", "100-continue")
	}
	hres, err := c.hc.Do(hr)
	if err != nil {
		return nil, wrote.Load(), err
	}
	defer hres.Body.Close()
	b, err := io.ReadAll(hres.Body)
	if err != nil {
		return nil, true, err
	}
	return &response{status: hres.StatusCode, header: hres.Header, body: b}, true, nil
}

// doJSON sends cl and decodes a 2xx answer into out; other answers become
// errors.
func (c *Client) doJSON(ctx context.Context, cl *call, out any) (*response, error) {
	res, err := c.do(ctx, cl)
	if err != nil {
		return nil, err
	}
	if res.status/100 != 2 {
		return res, writeFailure(cl, res.ambiguous, decodeError(res))
	}
	if out != nil {
		if err := json.Unmarshal(res.body, out); err != nil {
			return res, fmt.Errorf("client: decoding the %s answer: %w", cl.path, err)
		}
	}
	return res, nil
}

func headerUint(h http.Header, name string) uint64 {
	v, _ := strconv.ParseUint(h.Get(name), 10, 64)
	return v
}
