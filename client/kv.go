package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Consistency of a read.
type Consistency int

const (
	// Strong reads are linearizable: served by the leader after it has
	// confirmed its leadership with a quorum. The default (except for
	// Session reads).
	Strong Consistency = iota
	// Stale reads are served by whichever member is asked, from its local
	// state; the client spreads them round robin over the members.
	Stale
)

func (c Consistency) String() string {
	if c == Stale {
		return "stale"
	}
	return "strong"
}

// Option tunes one call. Options that do not apply to a call are ignored;
// each method lists those it reads.
type Option func(*callOptions)

type callOptions struct {
	ttl            time.Duration
	cas            *uint64
	consistency    Consistency
	consistencySet bool
	minIndex       uint64
	maxStale       time.Duration
	limit          int
	cursor         string
	clusterScope   bool
	nonAtomic      bool
	force          bool
	idemKey        string
}

// WithTTL makes a Set (or a batch set) expire after d, or an Incr that
// creates its counter. d <= 0 means no expiry.
func WithTTL(d time.Duration) Option { return func(o *callOptions) { o.ttl = d } }

// WithCAS makes a Set or Delete (or their batch ops) conditional on the
// key's current version: it is applied only if the key's version is
// version, or, for version 0, only if the key does not exist. A failed
// condition returns a *CASConflictError (errors.Is ErrCASConflict) with
// the current version.
func WithCAS(version uint64) Option {
	return func(o *callOptions) { v := version; o.cas = &v }
}

// WithConsistency chooses how a read (Get, GetMany, Keys) is served.
func WithConsistency(c Consistency) Option {
	return func(o *callOptions) { o.consistency, o.consistencySet = c, true }
}

// WithMinIndex makes a read stale, served by any member once it has
// applied Raft index i (for example the Index of the caller's own write):
// read-your-writes without going to the leader. A member that cannot
// catch up within a second redirects to the leader. Sessions do this for
// you.
func WithMinIndex(i uint64) Option {
	return func(o *callOptions) { o.consistency, o.consistencySet, o.minIndex = Stale, true, i }
}

// WithMaxStale makes a read stale, but a member that has not heard from a
// leader for longer than d redirects it to the leader instead.
func WithMaxStale(d time.Duration) Option {
	return func(o *callOptions) { o.consistency, o.consistencySet, o.maxStale = Stale, true, d }
}

// WithLimit bounds how many keys one Keys call returns (server default
// 1000, at most 10000).
func WithLimit(n int) Option { return func(o *callOptions) { o.limit = n } }

// WithCursor continues a Keys listing after the page whose Next it is.
func WithCursor(next string) Option { return func(o *callOptions) { o.cursor = next } }

// WithForce makes RemoveMember or Demote go ahead even when it puts the
// quorum at risk (the cluster otherwise refuses with ErrQuorumAtRisk):
// for disaster recovery only.
func WithForce() Option { return func(o *callOptions) { o.force = true } }

// WithClusterScope makes Stats gather every member's statistics.
func WithClusterScope() Option { return func(o *callOptions) { o.clusterScope = true } }

// NonAtomic makes a Batch apply each operation on its own: a failed
// condition fails only that operation. Batches are atomic by default.
func NonAtomic() Option { return func(o *callOptions) { o.nonAtomic = true } }

// WithIdempotencyKey sends key (at most 64 bytes) as the write's
// Idempotency-Key instead of a fresh random one, so that the caller can
// retry the same logical write across Client instances or processes. Any
// write accepts it; plain Set, Delete and TTL writes then become
// deduplicated too. A key names one write: the same key on a different
// write fails with ErrIdempotencyKeyReused (cluster feature level 6 on)
// and does nothing.
func WithIdempotencyKey(key string) Option { return func(o *callOptions) { o.idemKey = key } }

func collect(opts []Option) callOptions {
	var o callOptions
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// readQuery renders a read's consistency and says where to send it.
func readQuery(o *callOptions, q url.Values) route {
	if o.consistency != Stale {
		return toLeader
	}
	q.Set("consistency", "stale")
	if o.minIndex > 0 {
		q.Set("min_index", strconv.FormatUint(o.minIndex, 10))
	}
	if o.maxStale > 0 {
		q.Set("max_stale", o.maxStale.String())
	}
	return toAny
}

// Item is a value read from the cache.
type Item struct {
	Value     []byte
	Version   uint64    // changes with every write of the key
	ExpiresAt time.Time // zero if the key does not expire
	Index     uint64    // the Raft index of the state the read saw
	ServedBy  string    // the id of the member that answered
}

// WriteResult is the outcome of a Set, SetTTL or ClearTTL.
type WriteResult struct {
	Version uint64 `json:"version"` // the key's new version
	Index   uint64 `json:"index"`   // the Raft index of the write
}

// DeleteResult is the outcome of a Delete.
type DeleteResult struct {
	// Deleted says a live key was removed. A Delete retried after an
	// ambiguous failure may report false although its first attempt
	// removed the key.
	Deleted bool   `json:"deleted"`
	Index   uint64 `json:"index"`
}

func kvPath(key string) string { return "/v1/kv/" + url.PathEscape(key) }

// Get reads key. A missing or expired key returns an error matching
// ErrNotFound. Options: WithConsistency, WithMinIndex, WithMaxStale.
func (c *Client) Get(ctx context.Context, key string, opts ...Option) (*Item, error) {
	o := collect(opts)
	if c.near != nil && len(opts) == 0 {
		if it, ok := c.near.get(key); ok {
			return it, nil
		}
		gen := c.near.begin()
		item, _, err := c.get(ctx, key, &o)
		if err == nil {
			c.near.fill(key, item, gen)
		}
		return item, err
	}
	item, _, err := c.get(ctx, key, &o)
	return item, err
}

// get also returns the Raft index the answer reflects, found or not.
func (c *Client) get(ctx context.Context, key string, o *callOptions) (*Item, uint64, error) {
	q := url.Values{}
	r := readQuery(o, q)
	res, err := c.do(ctx, &call{method: http.MethodGet, path: kvPath(key), query: q, route: r})
	if err != nil {
		return nil, 0, err
	}
	idx := res.index()
	if res.status != http.StatusOK {
		return nil, idx, decodeError(res)
	}
	item := &Item{Value: res.body, Index: idx, ServedBy: res.header.Get("X-Served-By")}
	item.Version, _ = strconv.ParseUint(strings.Trim(res.header.Get("ETag"), `"`), 10, 64)
	if ms, err := strconv.ParseInt(res.header.Get("X-Expires-At"), 10, 64); err == nil {
		item.ExpiresAt = time.UnixMilli(ms)
	}
	return item, idx, nil
}

func ttlString(d time.Duration) string { return d.String() }

// Set writes key = value. Options: WithTTL, WithCAS, WithIdempotencyKey.
//
// A plain Set is idempotent and is retried as it is after an ambiguous
// failure (it may then be applied twice, with the same value). A Set with
// WithCAS carries an Idempotency-Key, so a retry is answered with the
// first attempt's result instead of failing its own condition.
func (c *Client) Set(ctx context.Context, key string, value []byte, opts ...Option) (*WriteResult, error) {
	o := collect(opts)
	return c.set(ctx, key, value, &o)
}

// resIndex is a write's index, 0 if it failed.
func resIndex(r *WriteResult) uint64 {
	if r == nil {
		return 0
	}
	return r.Index
}

// set, del, incr, batch and touch are the writes of Client and Session;
// each drops what it wrote from the near cache (nearWrote), whatever its
// outcome.
func (c *Client) set(ctx context.Context, key string, value []byte, o *callOptions) (res *WriteResult, err error) {
	defer func() { c.nearWrote(key, resIndex(res)) }()
	q := url.Values{}
	if o.ttl > 0 {
		q.Set("ttl", ttlString(o.ttl))
	}
	if o.cas != nil {
		q.Set("cas", strconv.FormatUint(*o.cas, 10))
	}
	if value == nil {
		value = []byte{}
	}
	cl := &call{method: http.MethodPut, path: kvPath(key), query: q, body: value, write: true,
		header: http.Header{"Content-Type": {"application/octet-stream"}}}
	if o.cas != nil || o.idemKey != "" {
		cl.setKey(o.idemKey)
	}
	var out WriteResult
	if _, err := c.doJSON(ctx, cl, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete removes key. Deleting a missing key is not an error: the result
// says Deleted false. Options: WithCAS (0 is meaningless here: it never
// matches a live key), WithIdempotencyKey.
func (c *Client) Delete(ctx context.Context, key string, opts ...Option) (*DeleteResult, error) {
	o := collect(opts)
	return c.del(ctx, key, &o)
}

func (c *Client) del(ctx context.Context, key string, o *callOptions) (res *DeleteResult, err error) {
	defer func() {
		var idx uint64
		if res != nil {
			idx = res.Index
		}
		c.nearWrote(key, idx)
	}()
	q := url.Values{}
	if o.cas != nil {
		q.Set("cas", strconv.FormatUint(*o.cas, 10))
	}
	cl := &call{method: http.MethodDelete, path: kvPath(key), query: q, write: true}
	if o.cas != nil || o.idemKey != "" {
		cl.setKey(o.idemKey)
	}
	var out DeleteResult
	if _, err := c.doJSON(ctx, cl, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Incr adds by to the decimal counter at key (a missing key counts as 0)
// and returns the new value. It carries an Idempotency-Key, so retries
// after ambiguous failures never count twice. A value that is not an
// integer returns ErrNotInteger; overflowing int64 returns ErrOverflow.
// Options: WithTTL (applies only when this call creates the counter: a
// fixed-window rate limiter is one Incr), WithIdempotencyKey.
func (c *Client) Incr(ctx context.Context, key string, by int64, opts ...Option) (int64, error) {
	o := collect(opts)
	v, _, err := c.incr(ctx, key, by, &o)
	return v, err
}

func (c *Client) incr(ctx context.Context, key string, by int64, o *callOptions) (v int64, idx uint64, err error) {
	defer func() { c.nearWrote(key, idx) }()
	q := url.Values{"by": {strconv.FormatInt(by, 10)}}
	if o.ttl > 0 {
		q.Set("ttl", ttlString(o.ttl))
	}
	cl := &call{method: http.MethodPost, path: "/v1/incr/" + url.PathEscape(key), query: q, write: true}
	cl.setKey(o.idemKey)
	var out struct {
		Value int64  `json:"value"`
		Index uint64 `json:"index"`
	}
	if _, err := c.doJSON(ctx, cl, &out); err != nil {
		return 0, 0, err
	}
	return out.Value, out.Index, nil
}

// SetTTL makes an existing key expire after ttl (> 0) without rewriting
// its value. A missing key returns ErrNotFound. Option: WithIdempotencyKey.
func (c *Client) SetTTL(ctx context.Context, key string, ttl time.Duration, opts ...Option) (*WriteResult, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("%w: SetTTL needs a positive ttl (ClearTTL removes the expiry)", ErrBadRequest)
	}
	o := collect(opts)
	return c.touch(ctx, http.MethodPut, key, ttl, &o)
}

// ClearTTL makes an existing key never expire. A missing key returns
// ErrNotFound. Option: WithIdempotencyKey.
func (c *Client) ClearTTL(ctx context.Context, key string, opts ...Option) (*WriteResult, error) {
	o := collect(opts)
	return c.touch(ctx, http.MethodDelete, key, 0, &o)
}

func (c *Client) touch(ctx context.Context, method, key string, ttl time.Duration, o *callOptions) (*WriteResult, error) {
	q := url.Values{}
	if ttl > 0 {
		q.Set("ttl", ttlString(ttl))
	}
	cl := &call{method: method, path: "/v1/ttl/" + url.PathEscape(key), query: q, write: true}
	if o.idemKey != "" {
		cl.setKey(o.idemKey)
	}
	var out WriteResult
	if _, err := c.doJSON(ctx, cl, &out); err != nil {
		c.nearWrote(key, 0)
		return nil, err
	}
	c.nearWrote(key, out.Index)
	return &out, nil
}

var errEmptyPrefix = errors.New("client: DeletePrefix needs a non-empty prefix; use DeleteAll to remove every key")
