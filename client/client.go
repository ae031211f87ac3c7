// Package client is the Go client for a raftcache cluster.
//
// A Client is given one or more node addresses and hides which node leads:
// it follows the cluster's 307 redirects itself (re-sending method, body
// and headers), remembers the leader, and moves on to another endpoint when
// a node refuses connections or answers 503. Errors are typed: test them
// with errors.Is(err, client.ErrNotFound) and friends.
//
//	c, err := client.New(client.Config{Endpoints: []string{"http://127.0.0.1:8001"}})
//	_, err = c.Set(ctx, "greeting", []byte("hello"), client.WithTTL(time.Minute))
//	item, err := c.Get(ctx, "greeting")
package client

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
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config configures a Client. Only Endpoints is required.
type Config struct {
	// Endpoints are base URLs of cluster members, e.g. http://127.0.0.1:8001.
	// A host:port without scheme means http.
	Endpoints []string
	// Timeout bounds each call whose context has no deadline. Default 10s.
	Timeout time.Duration
	// HTTPClient sends the requests. Default: a client with keep-alive
	// connections. Its redirect policy is replaced: the Client follows
	// redirects itself.
	HTTPClient *http.Client
}

// Client talks to a raftcache cluster. It is safe for concurrent use.
type Client struct {
	hc      *http.Client
	timeout time.Duration

	mu        sync.Mutex
	endpoints []string // normalized base URLs
	leader    string   // base URL of the last known leader, or ""
	next      int      // round-robin position for endpoint failover
}

// maxHops bounds how many redirects one attempt follows.
const maxHops = 5

// New returns a Client. It makes no request.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("client: at least one endpoint is required")
	}
	c := &Client{timeout: cfg.Timeout}
	if c.timeout <= 0 {
		c.timeout = 10 * time.Second
	}
	for _, e := range cfg.Endpoints {
		for _, part := range strings.Split(e, ",") {
			if part = strings.TrimSpace(part); part != "" {
				c.endpoints = append(c.endpoints, normalize(part))
			}
		}
	}
	if len(c.endpoints) == 0 {
		return nil, errors.New("client: at least one endpoint is required")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	copied := *hc
	copied.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &copied
	return c, nil
}

func normalize(e string) string {
	if !strings.Contains(e, "://") {
		e = "http://" + e
	}
	return strings.TrimRight(e, "/")
}

// request is one logical API call, re-sendable to any node.
type request struct {
	method string
	path   string // escaped path, e.g. /v1/kv/a%2Fb
	query  url.Values
	body   []byte
	header http.Header
}

// response is a finished call's status, headers and body.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends req to the leader if known, else to an endpoint, following
// redirects and failing over until ctx ends. It returns the final
// non-redirect, non-503 response.
func (c *Client) do(ctx context.Context, req request) (*response, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			backoff := time.Duration(10+rand.IntN(40)) * time.Millisecond << min(attempt-1, 4)
			select {
			case <-ctx.Done():
				return nil, c.giveUp(ctx, lastErr)
			case <-time.After(backoff):
			}
		}
		resp, err := c.attempt(ctx, req, c.pick(attempt))
		if err == nil && resp.status != http.StatusServiceUnavailable {
			return resp, nil
		}
		if err == nil {
			lastErr = decodeError(resp)
		} else {
			lastErr = err
		}
		if ctx.Err() != nil {
			return nil, c.giveUp(ctx, lastErr)
		}
	}
}

func (c *Client) giveUp(ctx context.Context, last error) error {
	if last == nil {
		return ctx.Err()
	}
	return fmt.Errorf("%w (%v)", last, ctx.Err())
}

// pick chooses the base URL for an attempt: the known leader first, then
// the endpoints in turn.
func (c *Client) pick(attempt int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if attempt == 0 && c.leader != "" {
		return c.leader
	}
	c.leader = ""
	c.next = (c.next + 1) % len(c.endpoints)
	return c.endpoints[c.next]
}

// attempt sends req to base and follows up to maxHops redirects.
func (c *Client) attempt(ctx context.Context, req request, base string) (*response, error) {
	target := base + req.path
	if len(req.query) > 0 {
		target += "?" + req.query.Encode()
	}
	for hop := 0; hop <= maxHops; hop++ {
		hr, err := http.NewRequestWithContext(ctx, req.method, target, bytes.NewReader(req.body))
		if err != nil {
			return nil, err
		}
		for k, v := range req.header {
			hr.Header[k] = v
		}
		res, err := c.hc.Do(hr)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return nil, err
		}
		if res.StatusCode != http.StatusTemporaryRedirect && res.StatusCode != http.StatusPermanentRedirect {
			if res.StatusCode != http.StatusServiceUnavailable && req.method != http.MethodGet {
				c.remember(target)
			}
			return &response{status: res.StatusCode, header: res.Header, body: body}, nil
		}
		loc, err := res.Location()
		if err != nil {
			return nil, fmt.Errorf("client: redirect without a valid Location: %w", err)
		}
		target = loc.String()
		c.remember(target)
	}
	return nil, fmt.Errorf("%w: more than %d redirects", ErrNoLeader, maxHops)
}

// remember records the node at target as the leader.
func (c *Client) remember(target string) {
	u, err := url.Parse(target)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.leader = u.Scheme + "://" + u.Host
	c.mu.Unlock()
}

func (c *Client) doJSON(ctx context.Context, req request, out any) (*response, error) {
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.status/100 != 2 {
		return resp, decodeError(resp)
	}
	if out != nil {
		if err := json.Unmarshal(resp.body, out); err != nil {
			return resp, fmt.Errorf("client: decoding %s response: %w", req.path, err)
		}
	}
	return resp, nil
}

func headerUint(h http.Header, name string) uint64 {
	v, _ := strconv.ParseUint(h.Get(name), 10, 64)
	return v
}
