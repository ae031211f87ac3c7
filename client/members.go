package client

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Membership: the client starts from Config.Endpoints and learns the
// others from GET /v1/cluster. Refreshes run in the background (one at a
// time), started by a call when the view is older than RefreshInterval or
// after a failure (at most once a second); only a redirect to an unknown
// host waits for one.

// maybeRefresh starts a background refresh when the view is old. It never
// blocks the call that triggers it.
func (c *Client) maybeRefresh() {
	if c.refreshInterval < 0 {
		return
	}
	c.mu.Lock()
	due := time.Since(c.lastRefresh) >= c.refreshInterval
	c.mu.Unlock()
	if due {
		c.refreshAsync()
	}
}

// refreshSoon starts a background refresh after a failure, unless one ran
// within the last second.
func (c *Client) refreshSoon() {
	c.mu.Lock()
	due := time.Since(c.lastRefresh) >= failRefreshGap
	c.mu.Unlock()
	if due {
		c.refreshAsync()
	}
}

func (c *Client) refreshAsync() {
	c.mu.Lock()
	if c.refreshing || c.closed {
		c.mu.Unlock()
		return
	}
	c.refreshing = true
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.bg, 3*refreshTimeout)
		defer cancel()
		c.refresh(ctx)
		c.mu.Lock()
		c.refreshing = false
		c.mu.Unlock()
	}()
}

// refresh asks the members, the leader first and members marked down
// last, for the cluster view until one that knows a leader answers, and
// applies that view (or, if none knows a leader, the first view that
// lists members). It reports whether a view was applied.
func (c *Client) refresh(ctx context.Context) bool {
	c.mu.Lock()
	c.lastRefresh = time.Now() // also rate-limits concurrent triggers
	var up, down []*member
	if c.leader != nil {
		up = append(up, c.leader)
	}
	now := time.Now()
	for _, m := range c.members {
		switch {
		case m == c.leader:
		case m.down(now):
			down = append(down, m)
		default:
			up = append(up, m)
		}
	}
	c.mu.Unlock()
	var fallback *Cluster
	var fallbackFrom *member
	for _, m := range append(up, down...) {
		if ctx.Err() != nil {
			break
		}
		v, err := c.fetchView(ctx, m)
		if err != nil || len(v.Members) == 0 {
			continue
		}
		if v.Leader != nil {
			c.applyView(v, m)
			// A follower's view may lag the leader's (a member's address
			// is registered through the log): ask the leader too.
			if v.State != "Leader" {
				if l := c.memberAt(v.Leader.HTTPAddr); l != nil && l != m {
					if lv, err := c.fetchView(ctx, l); err == nil && lv.Leader != nil && len(lv.Members) > 0 {
						c.applyView(lv, l)
					}
				}
			}
			return true
		}
		if fallback == nil {
			fallback, fallbackFrom = v, m
		}
	}
	if fallback != nil {
		c.applyView(fallback, fallbackFrom)
		return true
	}
	return false
}

func (c *Client) fetchView(ctx context.Context, m *member) (*Cluster, error) {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	cl := &call{method: http.MethodGet, path: "/v1/cluster"}
	res, _, err := c.send(ctx, cl, cl.target(m.base))
	if err != nil {
		c.markDown(m)
		return nil, err
	}
	c.markUp(m)
	if res.status != http.StatusOK {
		return nil, decodeError(res)
	}
	var v Cluster
	if err := json.Unmarshal(res.body, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// applyView makes the members of v (those with an HTTP address) the
// learned members, keeping the configured endpoints and the failure state
// of members already known. A view from the leader itself also names the
// leader; another node's view does so only if no leader is known.
func (c *Client) applyView(v *Cluster, from *member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastRefresh = time.Now()
	keep := map[*member]bool{}
	var list []*member
	add := func(m *member) {
		if !keep[m] {
			keep[m] = true
			list = append(list, m)
		}
	}
	for _, m := range c.members {
		if m.given {
			add(m)
		}
	}
	incomplete := false
	for _, vm := range v.Members {
		host := strings.ToLower(vm.HTTPAddr)
		if host == "" {
			// Registered in Raft, address not yet applied on the node
			// asked: keep what we know of it, and look again soon.
			incomplete = true
			for _, m := range c.members {
				if m.id == vm.ID && vm.ID != "" {
					add(m)
				}
			}
			continue
		}
		m := c.byHost[host]
		if m == nil {
			m = &member{base: c.scheme + "://" + host, host: host}
			c.byHost[host] = m
		}
		m.id = vm.ID
		add(m)
	}
	for host, m := range c.byHost {
		if !keep[m] {
			delete(c.byHost, host)
		}
	}
	c.members = list
	if c.leader != nil && !keep[c.leader] {
		c.leader = nil
	}
	if v.Leader != nil {
		if l := c.byHost[strings.ToLower(v.Leader.HTTPAddr)]; l != nil && (c.leader == nil || (from != nil && from == l && v.State == "Leader")) {
			c.leader = l
		}
	}
	if c.next >= len(c.members) {
		c.next = 0
	}
	if incomplete && c.refreshInterval > incompleteRetry {
		// Make the next call after incompleteRetry start a refresh.
		c.lastRefresh = time.Now().Add(incompleteRetry - c.refreshInterval)
	}
}
