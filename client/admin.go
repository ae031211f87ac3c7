package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Administration: membership changes beyond AddMember and RemoveMember,
// leadership transfer, backups and restores, and asking one member about
// itself. Every call needs the admin role on a cluster that checks tokens.

// AddNonVoter adds a non-voting member (ID, RaftAddr and HTTPAddr are
// required; m.Voter is ignored). A non-voter receives the log and serves
// stale reads but does not vote or count toward the quorum: a way to scale
// reads, or to let a new node catch up before Promote makes it a voter.
// Like AddMember it is idempotent; a member already present with the same
// addresses is left as it is (a voter stays a voter: use Demote).
func (c *Client) AddNonVoter(ctx context.Context, m Member) error {
	_, err := c.addMember(ctx, m, false)
	return err
}

// Promote makes the member id a voter (a no-op if it is one) and returns
// the leader's view of the cluster afterwards. A member that has not
// caught up is not promoted at once: its state becomes "catching_up" and
// the leader promotes it once it has. It returns ErrUnknownMember if there
// is no such member.
func (c *Client) Promote(ctx context.Context, id string) (*Cluster, error) {
	return c.setVoter(ctx, id, "promote", nil)
}

// Demote makes the member id a non-voter (a no-op if it is one): it keeps
// replicating and serving stale reads but no longer votes. Demoting the
// leader makes it step down. It returns the leader's view of the cluster
// afterwards, or ErrUnknownMember.
//
// Like RemoveMember, demoting a voter that the quorum needs returns
// ErrQuorumAtRisk unless WithForce is given.
func (c *Client) Demote(ctx context.Context, id string, opts ...Option) (*Cluster, error) {
	var q url.Values
	if collect(opts).force {
		q = url.Values{"force": {"true"}}
	}
	return c.setVoter(ctx, id, "demote", q)
}

func (c *Client) setVoter(ctx context.Context, id, verb string, q url.Values) (*Cluster, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: a member id is required", ErrBadRequest)
	}
	var out Cluster
	if _, err := c.doJSON(ctx, &call{method: http.MethodPost, path: "/v1/cluster/members/" + url.PathEscape(id) + "/" + verb, query: q, write: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TransferLeadership asks the leader to hand leadership to the member id,
// or, when id is "", to the most up-to-date follower, and returns the
// cluster view once the transfer is done (its Leader is the new leader).
// If id already leads, nothing is sent. If the leader reports the
// transfer done but another leader than id (or, for "", the same one)
// then leads, for example because id is a non-voter, it returns an error.
//
// A transfer is not idempotent (sent again, it would move leadership on
// from the new leader, perhaps back), so unlike other calls it is re-sent
// only when the previous attempt certainly did nothing (connection refused,
// 503) and the leader is still the one it started from. When an attempt's
// outcome is unknown (a timeout, a reset connection), the call asks the
// cluster who leads instead: a new leader (id, if given) means success.
func (c *Client) TransferLeadership(ctx context.Context, id string) (*Cluster, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	from, err := c.leaderView(ctx)
	if err != nil {
		return nil, err
	}
	if id != "" && from.Leader.ID == id {
		return from, nil
	}
	moved := func(v *Cluster) bool {
		return v.Leader != nil && v.Leader.ID != from.Leader.ID && (id == "" || v.Leader.ID == id)
	}
	body, err := json.Marshal(map[string]string{"id": id})
	if err != nil {
		return nil, err
	}
	cl := &call{method: http.MethodPost, path: "/v1/cluster/transfer-leadership", body: body, write: true,
		header: http.Header{"Content-Type": {"application/json"}}}
	var lastErr error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if !sleep(ctx, backoff(attempt)) {
				return nil, giveUp(ctx, cl, lastErr, false)
			}
			// Something may have moved leadership meanwhile (the previous
			// attempt, or an election): never move it twice.
			if v, err := c.leaderView(ctx); err == nil {
				if moved(v) {
					return v, nil
				}
				if v.Leader.ID != from.Leader.ID {
					return nil, fmt.Errorf("raftcache: leadership moved to %s, not %s, while transferring", v.Leader.ID, id)
				}
			}
		}
		m := c.pick(toLeader, nil)
		res, served, out, err := c.attempt(ctx, cl, m)
		switch {
		case out == fatal:
			return nil, err
		case out == notSent:
			lastErr = err
			c.refreshSoon()
			continue
		case out == uncertain || (out == answered && res.status == http.StatusGatewayTimeout):
			if out == answered {
				err = decodeError(res)
			}
			c.forgetLeader(served)
			v, verr := c.waitLeaderChange(ctx, from.Leader.ID)
			if verr == nil && moved(v) {
				return v, nil
			}
			return nil, fmt.Errorf("%w: leadership transfer: %w", ErrUnknownOutcome, err)
		case res.status == http.StatusServiceUnavailable:
			lastErr = decodeError(res)
			continue
		case res.status/100 != 2:
			return nil, decodeError(res)
		}
		var v Cluster
		if err := json.Unmarshal(res.body, &v); err != nil {
			return nil, fmt.Errorf("client: decoding the %s answer: %w", cl.path, err)
		}
		c.forgetLeader(served)
		if v.Leader != nil && len(v.Members) > 0 {
			c.applyView(&v, nil)
		}
		if moved(&v) {
			return &v, nil
		}
		// The leader said done, but its view does not show the move yet
		// (or the target could not win: a non-voter, a lagging node).
		if w, err := c.waitLeaderChange(ctx, from.Leader.ID); err == nil && moved(w) {
			return w, nil
		}
		now := "no leader"
		if v.Leader != nil {
			now = v.Leader.ID + " leads"
		}
		target := id
		if target == "" {
			target = "another member"
		}
		return nil, fmt.Errorf("raftcache: leadership did not move from %s to %s (%s, term %d)", from.Leader.ID, target, now, v.Term)
	}
}

// leaderView is Cluster, insisting on a view that names a leader.
func (c *Client) leaderView(ctx context.Context) (*Cluster, error) {
	for attempt := 0; ; attempt++ {
		v, err := c.Cluster(ctx)
		if err == nil && v.Leader != nil {
			return v, nil
		}
		if err == nil {
			err = fmt.Errorf("%w: %s knows no leader", ErrNoLeader, v.NodeID)
			c.refreshSoon()
		}
		if !sleep(ctx, backoff(attempt+1)) {
			return nil, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		}
	}
}

// waitLeaderChange polls the cluster view for a short while until it names
// a leader other than from; it returns the last view.
func (c *Client) waitLeaderChange(ctx context.Context, from string) (*Cluster, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var last *Cluster
	var lastErr error
	for attempt := 1; ; attempt++ {
		if v, err := c.Cluster(ctx); err == nil {
			last, lastErr = v, nil
			if v.Leader != nil && v.Leader.ID != from {
				return v, nil
			}
		} else {
			lastErr = err
		}
		if !sleep(ctx, backoff(attempt)) {
			if last == nil {
				return nil, lastErr
			}
			return last, nil
		}
	}
}

// MaxRestoreBuffer bounds how much of a Restore body that is not an
// io.ReaderAt (a pipe, a network stream) is read into memory so that it can
// be re-sent on a retry. Larger backups must be given as a file.
const MaxRestoreBuffer = 256 << 20

// RestoreResult is the outcome of Restore.
type RestoreResult struct {
	Keys  int    `json:"keys"`  // keys written (those already expired are skipped)
	Index uint64 `json:"index"` // the Raft index of the last restore entry
}

// Restore replaces the cluster's contents with a backup made by Snapshot
// (or `raftcache snapshot save`). It goes through the Raft log like any
// write: one entry deletes every key, then batches of sets recreate the
// backup's keys with their absolute expiry times, skipping keys that have
// expired since. It is not atomic: while it runs, readers may see the
// cache partly restored, and writes made meanwhile may be lost. Versions
// are new. The cluster's members are not touched.
//
// The body is re-sent on a retry (a leader change, a follower's
// redirect), and a retry is safe: restoring the same backup twice leaves
// the same contents. r is read from its current offset to its end: an
// io.ReaderAt with io.Seeker (an *os.File, a *bytes.Reader) is streamed,
// anything else is first read into memory, at most MaxRestoreBuffer bytes.
//
// The leader answers only once every entry is applied, so Config's
// AttemptTimeout does not apply; ctx (or Config.Timeout if ctx has no
// deadline) bounds the whole call: give a large backup a long deadline.
// The server parses the whole backup before deleting anything, so a
// corrupt backup leaves the cache as it was.
func (c *Client) Restore(ctx context.Context, r io.Reader) (*RestoreResult, error) {
	body, err := resendable(r)
	if err != nil {
		return nil, err
	}
	cl := &call{method: http.MethodPost, path: "/v1/restore", write: true,
		header: http.Header{"Content-Type": {"application/octet-stream"}}}
	var out RestoreResult
	defer func() {
		// Every key may have changed, up to out.Index (0 when the outcome
		// is unknown: the events, when they come, drop what follows).
		if c.near != nil {
			c.near.invalidatePrefix("", out.Index)
		}
	}()
	res, err := c.stream(ctx, cl, body, 0)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&out); err != nil {
		out.Index = 0
		return nil, fmt.Errorf("client: decoding the %s answer: %w", cl.path, err)
	}
	return &out, nil
}

// resendable returns a function giving a fresh copy of r's remaining
// bytes for each attempt, with their length.
func resendable(r io.Reader) (func() (io.Reader, int64), error) {
	type readerAtSeeker interface {
		io.ReaderAt
		io.Seeker
	}
	if rs, ok := r.(readerAtSeeker); ok {
		start, err := rs.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		end, err := rs.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, err
		}
		if _, err := rs.Seek(start, io.SeekStart); err != nil {
			return nil, err
		}
		// A section reader per attempt: the transport may still be
		// reading one attempt's body when the next begins.
		return func() (io.Reader, int64) { return io.NewSectionReader(rs, start, end-start), end - start }, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, MaxRestoreBuffer+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxRestoreBuffer {
		return nil, fmt.Errorf("client: a restore body over %d bytes must be an io.ReaderAt (a file), to be re-sent on a retry", MaxRestoreBuffer)
	}
	return func() (io.Reader, int64) { return bytes.NewReader(b), int64(len(b)) }, nil
}

// Snapshot writes a consistent backup of the cluster's contents to w and
// returns its size. The leader takes it after confirming its leadership
// and applying every committed entry, so it holds every write acknowledged
// before the call (and perhaps some made during it), with keys' versions
// and absolute expiry times. The stream is in the snapshot format; Restore
// loads it into a running cluster.
//
// Until the first byte arrives the call is retried like a read (redirects,
// failover; each attempt bounded by Config.AttemptTimeout); once bytes are
// written to w a failure is returned as it is, and w holds a partial
// backup: write to a temporary file and keep it only on success. ctx (or
// Config.Timeout if ctx has no deadline) bounds the whole transfer.
func (c *Client) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	cl := &call{method: http.MethodGet, path: "/v1/snapshot"}
	res, err := c.stream(ctx, cl, nil, c.attemptTimeout)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	n, err := io.Copy(w, res.Body)
	if err != nil {
		return n, fmt.Errorf("client: receiving the backup after %d bytes: %w", n, err)
	}
	return n, nil
}

// stream is do for calls whose bodies are too large to hold: the request
// body comes from body (nil: none), fresh for each attempt, and a 2xx
// answer is returned open, for the caller to read and close. headerTimeout,
// if positive, bounds each attempt until the answer's headers arrive
// (afterwards only ctx bounds it). Redirects, failover and retries on
// transport failures, 503 and 504 are as for do.
func (c *Client) stream(ctx context.Context, cl *call, body func() (io.Reader, int64), headerTimeout time.Duration) (*http.Response, error) {
	cancel := context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	if err := ctx.Err(); err != nil {
		cancel()
		return nil, err
	}
	if c.Leader() == "" {
		// Large bodies should go straight to the leader.
		c.refresh(ctx)
	}
	var (
		lastErr   error
		ambiguous bool
		avoid     *member
	)
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !sleep(ctx, backoff(attempt)) {
			cancel()
			return nil, giveUp(ctx, cl, lastErr, ambiguous)
		}
		m := c.pick(toLeader, avoid)
		hres, res, served, out, err := c.streamAttempt(ctx, cl, m, body, headerTimeout)
		avoid = nil
		switch out {
		case fatal:
			cancel()
			if ambiguous && cl.write {
				return nil, fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
			}
			return nil, err
		case notSent, uncertain:
			if lastErr == nil || ctx.Err() == nil {
				lastErr = err
			}
			avoid = served
			ambiguous = ambiguous || out == uncertain && cl.write
			c.forgetLeader(served)
			c.refreshSoon()
		case answered:
			if hres != nil { // 2xx, open
				c.setLeader(served)
				hres.Body = &cancelOnClose{ReadCloser: hres.Body, cancel: cancel}
				return hres, nil
			}
			switch res.status {
			case http.StatusServiceUnavailable:
				lastErr, avoid = decodeError(res), served
				if !errors.Is(lastErr, ErrOverloaded) {
					c.forgetLeader(served)
					c.refreshSoon()
				}
			case http.StatusGatewayTimeout:
				lastErr, avoid = decodeError(res), served
				ambiguous = ambiguous || cl.write
				c.forgetLeader(served)
			default:
				cancel()
				if leaderAnswer(res.status) {
					c.setLeader(served)
				}
				return nil, writeFailure(cl, ambiguous, decodeError(res))
			}
		}
		if ctx.Err() != nil {
			cancel()
			return nil, giveUp(ctx, cl, lastErr, ambiguous)
		}
	}
}

// cancelOnClose releases a streamed answer's context when it is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (r *cancelOnClose) Close() error {
	err := r.ReadCloser.Close()
	r.cancel()
	return err
}

// streamAttempt sends cl to m, following redirects to known members. A
// 2xx answer comes back open (hres), any other final answer read into res.
func (c *Client) streamAttempt(ctx context.Context, cl *call, m *member, body func() (io.Reader, int64), headerTimeout time.Duration) (hres *http.Response, res *response, served *member, out outcome, err error) {
	for hop := 0; ; hop++ {
		hresp, wrote, err := c.streamHop(ctx, cl, m, body, headerTimeout)
		if err != nil {
			c.markDown(m)
			if !wrote || dialFailed(err) {
				return nil, nil, m, notSent, err
			}
			return nil, nil, m, uncertain, err
		}
		c.markUp(m)
		if hresp.StatusCode/100 == 2 {
			return hresp, nil, m, answered, nil
		}
		b, rerr := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
		hresp.Body.Close()
		if rerr != nil {
			return nil, nil, m, uncertain, rerr
		}
		r := &response{status: hresp.StatusCode, header: hresp.Header, body: b}
		if r.status != http.StatusTemporaryRedirect && r.status != http.StatusPermanentRedirect {
			return nil, r, m, answered, nil
		}
		if hop == MaxRedirects {
			return nil, nil, m, notSent, fmt.Errorf("%w: more than %d redirects", ErrNoLeader, MaxRedirects)
		}
		next, err := c.redirectTarget(ctx, cl, r)
		if err != nil {
			return nil, nil, m, fatal, err
		}
		c.setLeader(next)
		m = next
	}
}

// streamHop makes one HTTP exchange with m and returns the answer open;
// closing its body releases it. wrote says whether the whole request was
// sent.
func (c *Client) streamHop(ctx context.Context, cl *call, m *member, body func() (io.Reader, int64), headerTimeout time.Duration) (*http.Response, bool, error) {
	actx, cancel := context.WithCancel(ctx)
	var rd io.Reader
	var size int64
	if body != nil {
		rd, size = body()
	}
	var wrote atomic.Bool
	tctx := httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true)
			}
		},
	})
	hr, err := http.NewRequestWithContext(tctx, cl.method, cl.target(m.base), nil)
	if err != nil {
		cancel()
		return nil, false, err
	}
	if rd != nil {
		hr.Body, hr.ContentLength = io.NopCloser(rd), size
		if size == 0 {
			hr.Body = http.NoBody
		}
	}
	for k, v := range c.header {
		hr.Header[k] = append([]string(nil), v...)
	}
	for k, v := range cl.header {
		hr.Header[k] = append([]string(nil), v...)
	}
	if size > expectContinueOver {
		hr.Header.Set("Expect", "100-continue")
	}
	var timer *time.Timer
	if headerTimeout > 0 {
		timer = time.AfterFunc(headerTimeout, cancel)
	}
	hresp, err := c.hc.Do(hr)
	if timer != nil && !timer.Stop() && err == nil {
		// The header timeout fired just as the answer came.
		hresp.Body.Close()
		err = fmt.Errorf("no answer within %v: %w", headerTimeout, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, wrote.Load(), err
	}
	hresp.Body = &cancelOnClose{ReadCloser: hresp.Body, cancel: cancel}
	return hresp, true, nil
}

// MemberStatus is what one member says about itself, asked directly (no
// redirect, no failover).
type MemberStatus struct {
	// Err is why the member could not be asked (nil: it answered).
	Err error
	// Ready: GET /readyz answered 200 (a known leader, and the member's
	// state caught up with its commit index). NotReady says why not.
	Ready    bool
	NotReady string
	// View is the member's own GET /v1/cluster (its state, term and
	// indices); nil if it did not answer.
	View *Cluster
	// RTT is how long the /v1/cluster request took.
	RTT time.Duration
}

// MemberStatus asks the member whose HTTP address is httpAddr (host:port,
// as Member.HTTPAddr gives it) for its readiness and its view of the
// cluster. Only members the client knows are asked (after one refresh of
// the membership), so credentials never leave the cluster. Each request is
// bounded by Config.AttemptTimeout.
func (c *Client) MemberStatus(ctx context.Context, httpAddr string) *MemberStatus {
	m := c.memberAt(httpAddr)
	if m == nil {
		c.refresh(ctx)
		if m = c.memberAt(httpAddr); m == nil {
			return &MemberStatus{Err: fmt.Errorf("client: %q is not a known member's HTTP address", httpAddr)}
		}
	}
	ask := func(path string) (*response, time.Duration, error) {
		actx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
		defer cancel()
		cl := &call{method: http.MethodGet, path: path}
		start := time.Now()
		res, _, err := c.send(actx, cl, cl.target(m.base))
		return res, time.Since(start), err
	}
	st := &MemberStatus{}
	res, rtt, err := ask("/v1/cluster")
	if err != nil {
		st.Err = err
		return st
	}
	st.RTT = rtt
	if res.status != http.StatusOK {
		st.Err = decodeError(res)
	} else {
		var v Cluster
		if err := json.Unmarshal(res.body, &v); err != nil {
			st.Err = fmt.Errorf("client: decoding /v1/cluster: %w", err)
		} else {
			st.View = &v
		}
	}
	res, _, err = ask("/readyz")
	switch {
	case err != nil:
		st.NotReady = err.Error()
	case res.status == http.StatusOK:
		st.Ready = true
	default:
		st.NotReady = strings.TrimPrefix(decodeError(res).Error(), "raftcache: ")
	}
	return st
}
