package client

import (
	"bufio"
	"container/list"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// NearCache configures a cache inside the client's process, fed by a watch
// stream (GET /v1/watch): a hit costs no network round trip.
//
// What a hit may return (the bound docs/consistency.md states): a value
// that was current at most MaxSilence + the serving node's contact bound
// (half its Raft heartbeat timeout) + its commit delay ago, and never a
// value older than this client's own last write of the key. The client
// keeps that promise by three rules: a key is dropped when its change
// event arrives; a value read from the cluster is kept only if the read's
// index is at least the newest event index seen for the key (a read that
// raced an invalidation is not cached); and everything is dropped when
// the stream breaks, or when neither an event nor a progress notice has
// arrived for MaxSilence (a node cut off from its leader goes silent and
// ends its streams).
//
// Only Get calls without options use it; a Get WithConsistency, MinIndex
// or MaxStale goes to the cluster as asked.
type NearCache struct {
	// MaxBytes bounds the cached keys and values (least recently used
	// first out). Required: 0 disables the near cache.
	MaxBytes int64
	// TTL, if set, bounds how long an entry is served after it was read.
	TTL time.Duration
	// Prefix limits the cache (and the stream) to keys under it.
	Prefix string
	// MaxSilence is how long the stream may be silent before everything
	// is dropped; default 1s (nodes send progress notices every 100 ms).
	MaxSilence time.Duration
}

// NearCacheStats are the near cache's counters.
type NearCacheStats struct {
	Hits, Misses  uint64
	Invalidations uint64 // keys dropped by change events and own writes
	Flushes       uint64 // times everything was dropped (stream broke, silence, flush events)
	Entries       int
	Bytes         int64
	Connected     bool // the stream is healthy: hits are served
}

type nearEntry struct {
	key     string
	item    Item
	readAt  time.Time
	size    int64
	element *list.Element
}

// nearCache is the cache and the stream that feeds it.
type nearCache struct {
	cfg NearCache
	c   *Client

	mu      sync.Mutex
	entries map[string]*nearEntry
	lru     list.List // front: most recently used
	bytes   int64
	// evIndex is the newest change index seen per key (events and own
	// writes); when it grows past evIndexMax it is cleared and floor
	// takes the newest index seen, a conservative stand-in for all.
	evIndex map[string]uint64
	floor   uint64
	newest  uint64    // the newest event index seen on the stream
	heard   time.Time // the last event or progress notice
	healthy bool      // the stream is open and has spoken within MaxSilence
	gen     uint64    // bumped on every flush: a read begun before it is not cached

	hits, misses, invalidations, flushes atomic.Uint64
}

const evIndexMax = 1 << 16

func newNearCache(c *Client, cfg NearCache) *nearCache {
	if cfg.MaxSilence <= 0 {
		cfg.MaxSilence = time.Second
	}
	return &nearCache{cfg: cfg, c: c, entries: map[string]*nearEntry{}, evIndex: map[string]uint64{}}
}

// get returns a cached item if one may be served now.
func (n *nearCache) get(key string) (*Item, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	n.checkSilence(now)
	e, ok := n.entries[key]
	if !ok || !n.healthy || (n.cfg.TTL > 0 && now.Sub(e.readAt) > n.cfg.TTL) ||
		(!e.item.ExpiresAt.IsZero() && !now.Before(e.item.ExpiresAt)) {
		n.misses.Add(1)
		return nil, false
	}
	n.lru.MoveToFront(e.element)
	n.hits.Add(1)
	it := e.item
	it.Value = append([]byte(nil), e.item.Value...)
	return &it, true
}

// begin notes the state before a read that may fill the cache.
func (n *nearCache) begin() (gen uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.gen
}

// fill caches item, read at item.Index, unless the stream is unhealthy,
// was reset since the read began, or a change of the key at a higher
// index than the read's was seen.
func (n *nearCache) fill(key string, item *Item, gen uint64) {
	if !strings.HasPrefix(key, n.cfg.Prefix) {
		return
	}
	size := int64(len(key)+len(item.Value)) + 64
	if size > n.cfg.MaxBytes/4 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.checkSilence(time.Now())
	if !n.healthy || gen != n.gen || item.Index < max(n.evIndex[key], n.floor) {
		return
	}
	n.dropLocked(key)
	it := *item
	it.Value = append([]byte(nil), item.Value...)
	e := &nearEntry{key: key, item: it, readAt: time.Now(), size: size}
	e.element = n.lru.PushFront(e)
	n.entries[key] = e
	n.bytes += size
	for n.bytes > n.cfg.MaxBytes {
		old := n.lru.Back().Value.(*nearEntry)
		n.dropLocked(old.key)
	}
}

// invalidate drops key and remembers that it changed at index.
func (n *nearCache) invalidate(key string, index uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.noteLocked(key, index)
	if n.dropLocked(key) {
		n.invalidations.Add(1)
	}
}

// invalidatePrefix drops every key under prefix (a prefix delete).
func (n *nearCache) invalidatePrefix(prefix string, index uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k := range n.entries {
		if strings.HasPrefix(k, prefix) {
			n.dropLocked(k)
			n.invalidations.Add(1)
		}
	}
	// Keys under the prefix not cached now must not be filled by a read
	// older than the delete: raise the floor (conservative for others).
	n.floor = max(n.floor, index)
}

func (n *nearCache) noteLocked(key string, index uint64) {
	if index <= n.floor {
		return
	}
	if len(n.evIndex) >= evIndexMax {
		clear(n.evIndex)
		n.floor = max(n.floor, n.newest, index)
		return
	}
	n.evIndex[key] = max(n.evIndex[key], index)
}

func (n *nearCache) dropLocked(key string) bool {
	e, ok := n.entries[key]
	if !ok {
		return false
	}
	n.lru.Remove(e.element)
	delete(n.entries, key)
	n.bytes -= e.size
	return true
}

// flushLocked drops everything.
func (n *nearCache) flushLocked() {
	clear(n.entries)
	n.lru.Init()
	n.bytes = 0
	n.gen++
	n.flushes.Add(1)
}

// checkSilence drops everything when the stream has been silent too long.
func (n *nearCache) checkSilence(now time.Time) {
	if n.healthy && now.Sub(n.heard) > n.cfg.MaxSilence {
		n.healthy = false
		n.flushLocked()
	}
}

func (n *nearCache) stats() NearCacheStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.checkSilence(time.Now())
	return NearCacheStats{Hits: n.hits.Load(), Misses: n.misses.Load(), Invalidations: n.invalidations.Load(),
		Flushes: n.flushes.Load(), Entries: len(n.entries), Bytes: n.bytes, Connected: n.healthy}
}

// run keeps a watch stream open, on one member after another, until ctx
// ends. It resumes from the last event id; a 410 (or any break) drops
// everything first, since what was cached can no longer be vouched for.
func (n *nearCache) run(ctx context.Context) {
	defer n.c.wg.Done()
	lastID := ""
	backoff := backoffBase
	for ctx.Err() == nil {
		m := n.c.pick(toAny, nil)
		resumed, err := n.stream(ctx, m, &lastID)
		n.mu.Lock()
		if n.healthy || n.lru.Len() > 0 {
			n.flushLocked()
		}
		n.healthy = false
		n.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			n.c.markDown(m)
		}
		if resumed {
			backoff = backoffBase
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// stream reads one watch stream until it ends. It reports whether the
// stream opened.
func (n *nearCache) stream(ctx context.Context, m *member, lastID *string) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := url.Values{}
	if n.cfg.Prefix != "" {
		q.Set("prefix", n.cfg.Prefix)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.base+"/v1/watch?"+q.Encode(), nil)
	if err != nil {
		return false, err
	}
	for k, v := range n.c.header {
		req.Header[k] = append([]string(nil), v...)
	}
	// A stream that does not resume starts at the node's newest event
	// (the first id it sends), not at the index of any read in flight:
	// the changes between such a read and that point never arrive as
	// events, so no read below it may fill the cache (start).
	fresh := *lastID == ""
	if !fresh {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	res, err := n.c.hc.Do(req)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusGone {
		*lastID = "" // relist: start from now, with nothing cached
		return false, nil
	}
	if res.StatusCode != http.StatusOK {
		return false, &Error{Status: res.StatusCode, Code: "watch_refused", Message: "GET /v1/watch answered " + res.Status}
	}
	// A stream that stops speaking is cut after MaxSilence by the
	// watchdog, so a half-open connection cannot keep the cache "healthy".
	spoke := make(chan struct{}, 1)
	go func() {
		t := time.NewTimer(n.cfg.MaxSilence)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-spoke:
				t.Reset(n.cfg.MaxSilence)
			case <-t.C:
				cancel()
				return
			}
		}
	}()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var id, event, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = line[6:]
		case line == "" && event != "":
			select {
			case spoke <- struct{}{}:
			default:
			}
			if event == "error" {
				return true, nil
			}
			if fresh {
				at, ok := eventIndex(id)
				if !ok {
					return true, fmt.Errorf("client: the watch stream's first event has no id (%q)", id)
				}
				n.start(at)
				fresh = false
			}
			n.apply(event, data)
			if id != "" {
				*lastID = id
			}
			id, event, data = "", "", ""
		}
	}
	return true, sc.Err()
}

// start raises the floor to where a stream that did not resume begins:
// the index of its first id (a progress notice's is the node's newest
// event when the watch began; an event's is above it, so its index is
// conservative). Called before the first message marks the cache healthy.
func (n *nearCache) start(at uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.floor = max(n.floor, at)
}

// eventIndex is the Raft index of a watch event id ("index.position").
func eventIndex(id string) (uint64, bool) {
	i, _, _ := strings.Cut(id, ".")
	v, err := strconv.ParseUint(i, 10, 64)
	return v, err == nil
}

// apply takes one stream event into the cache.
func (n *nearCache) apply(event, data string) {
	var e struct {
		Key    string `json:"key"`
		KeyB64 string `json:"key_b64"`
		Index  uint64 `json:"index"`
	}
	if event != "progress" {
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return
		}
		if e.KeyB64 != "" {
			if b, err := base64.StdEncoding.DecodeString(e.KeyB64); err == nil {
				e.Key = string(b)
			}
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.heard = time.Now()
	n.healthy = true
	if e.Index > n.newest {
		n.newest = e.Index
	}
	switch event {
	case "put", "delete":
		n.noteLocked(e.Key, e.Index)
		if n.dropLocked(e.Key) {
			n.invalidations.Add(1)
		}
	case "delete_prefix":
		n.mu.Unlock()
		n.invalidatePrefix(e.Key, e.Index)
		n.mu.Lock()
	case "flush":
		n.floor = max(n.floor, e.Index)
		n.flushLocked()
	}
}

// NearCacheStats reports the near cache's counters (zero without one).
func (c *Client) NearCacheStats() NearCacheStats {
	if c.near == nil {
		return NearCacheStats{}
	}
	return c.near.stats()
}

// nearWrote drops key after this client wrote it: acknowledged at index
// (0 when the outcome is unknown), so no read older than the write fills
// it again.
func (c *Client) nearWrote(key string, index uint64) {
	if c.near != nil {
		c.near.invalidate(key, index)
	}
}
