package client

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"
)

// KeyPage is one page of a key listing.
type KeyPage struct {
	// Keys in byte order. Keys are bytes: a Go string may hold any, and
	// keys that are not UTF-8 are decoded from the server's base64.
	Keys []string
	// Types is each key's type, as Redis's TYPE names it ("string",
	// "hash", "set", "zset", "list", "stream"); nil from servers that
	// predate typed values.
	Types []string
	// Next is the cursor of the following page (pass it to WithCursor),
	// or "" if this is the last page.
	Next  string
	Index uint64 // the Raft index of the state listed
}

// Keys lists the keys starting with prefix, in order, a page at a time.
// Options: WithLimit, WithCursor, and the read options WithConsistency,
// WithMinIndex, WithMaxStale.
//
//	for cursor := ""; ; {
//		page, err := c.Keys(ctx, "user:", client.WithCursor(cursor))
//		...
//		if cursor = page.Next; cursor == "" { break }
//	}
func (c *Client) Keys(ctx context.Context, prefix string, opts ...Option) (*KeyPage, error) {
	o := collect(opts)
	return c.keys(ctx, prefix, &o)
}

func (c *Client) keys(ctx context.Context, prefix string, o *callOptions) (*KeyPage, error) {
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if o.limit > 0 {
		q.Set("limit", strconv.Itoa(o.limit))
	}
	if o.cursor != "" {
		if utf8.ValidString(o.cursor) {
			q.Set("cursor", o.cursor)
		} else {
			q.Set("encoding", "base64")
			q.Set("cursor", base64.StdEncoding.EncodeToString([]byte(o.cursor)))
		}
	}
	r := readQuery(o, q)
	var out struct {
		Keys     []string `json:"keys"`
		Types    []string `json:"types"`
		Encoding string   `json:"encoding"`
		Next     string   `json:"next"`
		Index    uint64   `json:"index"`
	}
	if _, err := c.doJSON(ctx, &call{method: http.MethodGet, path: "/v1/keys", query: q, route: r}, &out); err != nil {
		return nil, err
	}
	page := &KeyPage{Keys: out.Keys, Types: out.Types, Next: out.Next, Index: out.Index}
	if page.Keys == nil {
		page.Keys = []string{}
	}
	if out.Encoding == "base64" {
		for i, k := range out.Keys {
			b, err := base64.StdEncoding.DecodeString(k)
			if err != nil {
				return nil, fmt.Errorf("client: bad base64 key in listing: %w", err)
			}
			page.Keys[i] = string(b)
		}
		if out.Next != "" {
			b, err := base64.StdEncoding.DecodeString(out.Next)
			if err != nil {
				return nil, fmt.Errorf("client: bad base64 cursor in listing: %w", err)
			}
			page.Next = string(b)
		}
	}
	return page, nil
}

// DeletePrefixResult is the outcome of DeletePrefix or DeleteAll.
type DeletePrefixResult struct {
	Deleted int    `json:"deleted"` // live keys removed
	Index   uint64 `json:"index"`
}

// DeletePrefix removes every key starting with prefix (which must not be
// empty: see DeleteAll): up to 4096 keys in one replicated entry (atomic),
// a bigger prefix 4096 keys per entry, entry after entry, so a reader may
// see it partly deleted meanwhile (Entries says how many). It is
// idempotent and is
// retried as it is; a retry after an ambiguous failure may report fewer
// deletions than the first attempt made.
func (c *Client) DeletePrefix(ctx context.Context, prefix string) (*DeletePrefixResult, error) {
	if prefix == "" {
		return nil, errEmptyPrefix
	}
	return c.deletePrefix(ctx, url.Values{"prefix": {prefix}})
}

// DeleteAll removes every key.
func (c *Client) DeleteAll(ctx context.Context) (*DeletePrefixResult, error) {
	return c.deletePrefix(ctx, url.Values{"all": {"true"}})
}

func (c *Client) deletePrefix(ctx context.Context, q url.Values) (*DeletePrefixResult, error) {
	var out DeletePrefixResult
	_, err := c.doJSON(ctx, &call{method: http.MethodDelete, path: "/v1/keys", query: q, write: true}, &out)
	if c.near != nil {
		// The prefix's keys change at out.Index (unknown on an error:
		// the events, when they come, drop them).
		c.near.invalidatePrefix(q.Get("prefix"), out.Index)
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}
