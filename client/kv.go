package client

import (
	"context"
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
	// confirmed leadership. The default.
	Strong Consistency = iota
	// Stale reads are served by whichever node is asked.
	Stale
)

// Option tunes one call.
type Option func(*callOptions)

type callOptions struct {
	ttl         time.Duration
	consistency Consistency
	minIndex    uint64
	maxStale    time.Duration
}

// WithTTL makes a Set expire after d.
func WithTTL(d time.Duration) Option { return func(o *callOptions) { o.ttl = d } }

// WithConsistency chooses how a Get is served.
func WithConsistency(c Consistency) Option { return func(o *callOptions) { o.consistency = c } }

// WithMinIndex makes a stale Get wait until the node has applied index i
// (for example the Index of the caller's own last write).
func WithMinIndex(i uint64) Option {
	return func(o *callOptions) { o.consistency, o.minIndex = Stale, i }
}

// WithMaxStale makes a stale Get go to the leader when the asked node has
// not heard from one for longer than d.
func WithMaxStale(d time.Duration) Option {
	return func(o *callOptions) { o.consistency, o.maxStale = Stale, d }
}

func collect(opts []Option) callOptions {
	var o callOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Item is a value read from the cache.
type Item struct {
	Value    []byte
	Version  uint64
	Index    uint64 // the serving node's applied index
	ServedBy string // the serving node's id
}

// WriteResult is the outcome of a Set.
type WriteResult struct {
	Version uint64 `json:"version"`
	Index   uint64 `json:"index"`
}

// DeleteResult is the outcome of a Delete.
type DeleteResult struct {
	Deleted bool   `json:"deleted"`
	Index   uint64 `json:"index"`
}

func kvPath(key string) string { return "/v1/kv/" + url.PathEscape(key) }

// Get reads key. A missing key returns an error matching ErrNotFound.
func (c *Client) Get(ctx context.Context, key string, opts ...Option) (*Item, error) {
	o := collect(opts)
	q := url.Values{}
	if o.consistency == Stale {
		q.Set("consistency", "stale")
		if o.minIndex > 0 {
			q.Set("min_index", strconv.FormatUint(o.minIndex, 10))
		}
		if o.maxStale > 0 {
			q.Set("max_stale", o.maxStale.String())
		}
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: kvPath(key), query: q})
	if err != nil {
		return nil, err
	}
	if resp.status != http.StatusOK {
		return nil, decodeError(resp)
	}
	version, _ := strconv.ParseUint(strings.Trim(resp.header.Get("ETag"), `"`), 10, 64)
	return &Item{
		Value:    resp.body,
		Version:  version,
		Index:    headerUint(resp.header, "X-Raft-Index"),
		ServedBy: resp.header.Get("X-Served-By"),
	}, nil
}

// Set writes key = value.
func (c *Client) Set(ctx context.Context, key string, value []byte, opts ...Option) (*WriteResult, error) {
	o := collect(opts)
	q := url.Values{}
	if o.ttl > 0 {
		q.Set("ttl", o.ttl.String())
	}
	var out WriteResult
	_, err := c.doJSON(ctx, request{method: http.MethodPut, path: kvPath(key), query: q, body: value}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete removes key. Deleting a missing key is not an error: the result
// says Deleted false.
func (c *Client) Delete(ctx context.Context, key string) (*DeleteResult, error) {
	var out DeleteResult
	if _, err := c.doJSON(ctx, request{method: http.MethodDelete, path: kvPath(key)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
