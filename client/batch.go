package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"unicode/utf8"
)

// GetManyItem is one key of a GetMany.
type GetManyItem struct {
	Key     string
	Found   bool
	Value   []byte
	Version uint64
}

// GetManyResult holds the keys of a GetMany, in the order asked, all read
// from one state of the cache.
type GetManyResult struct {
	Items []GetManyItem
	Index uint64 // the Raft index of the state read
}

// GetMany reads up to 1000 keys at once (POST /v1/batch/get), all from one
// state of the cache. Missing keys are not errors: their Found is false.
// Options: WithConsistency, WithMinIndex, WithMaxStale.
func (c *Client) GetMany(ctx context.Context, keys []string, opts ...Option) (*GetManyResult, error) {
	o := collect(opts)
	return c.getMany(ctx, keys, &o)
}

func (c *Client) getMany(ctx context.Context, keys []string, o *callOptions) (*GetManyResult, error) {
	req := struct {
		Keys     []string `json:"keys"`
		Encoding string   `json:"encoding,omitempty"`
	}{Keys: keys}
	for _, k := range keys {
		if !utf8.ValidString(k) {
			req.Encoding = "base64"
		}
	}
	if req.Encoding == "base64" {
		req.Keys = make([]string, len(keys))
		for i, k := range keys {
			req.Keys[i] = base64.StdEncoding.EncodeToString([]byte(k))
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	r := readQuery(o, q)
	var out struct {
		Items []struct {
			Key      string  `json:"key"`
			KeyB64   string  `json:"key_b64"`
			Found    bool    `json:"found"`
			Value    *string `json:"value"`
			ValueB64 *string `json:"value_b64"`
			Version  uint64  `json:"version"`
		} `json:"items"`
		Index uint64 `json:"index"`
	}
	cl := &call{method: http.MethodPost, path: "/v1/batch/get", query: q, body: body, route: r,
		header: http.Header{"Content-Type": {"application/json"}}}
	if _, err := c.doJSON(ctx, cl, &out); err != nil {
		return nil, err
	}
	res := &GetManyResult{Index: out.Index, Items: make([]GetManyItem, len(out.Items))}
	for i, it := range out.Items {
		g := &res.Items[i]
		g.Found, g.Version, g.Key = it.Found, it.Version, it.Key
		if it.KeyB64 != "" {
			k, err := base64.StdEncoding.DecodeString(it.KeyB64)
			if err != nil {
				return nil, fmt.Errorf("client: bad key_b64 in answer: %w", err)
			}
			g.Key = string(k)
		}
		switch {
		case it.ValueB64 != nil:
			if g.Value, err = base64.StdEncoding.DecodeString(*it.ValueB64); err != nil {
				return nil, fmt.Errorf("client: bad value_b64 in answer: %w", err)
			}
		case it.Value != nil:
			g.Value = []byte(*it.Value)
		}
	}
	return res, nil
}

// BatchOp is one operation of a Batch; make it with SetOp, DeleteOp or
// IncrOp.
type BatchOp struct {
	kind  string
	key   string
	value []byte
	opts  callOptions
	by    int64
}

// SetOp is a batch set. Options: WithTTL, WithCAS.
func SetOp(key string, value []byte, opts ...Option) BatchOp {
	return BatchOp{kind: "set", key: key, value: value, opts: collect(opts)}
}

// DeleteOp is a batch delete. Option: WithCAS.
func DeleteOp(key string, opts ...Option) BatchOp {
	return BatchOp{kind: "delete", key: key, opts: collect(opts)}
}

// IncrOp is a batch increment. Option: WithTTL (on create).
func IncrOp(key string, by int64, opts ...Option) BatchOp {
	return BatchOp{kind: "incr", key: key, by: by, opts: collect(opts)}
}

// OpResult is the result of one batch operation.
type OpResult struct {
	Version uint64 // set, incr: the key's new version
	Deleted bool   // delete: a live key was removed
	Value   int64  // incr: the new value
}

// BatchResult is the outcome of a Batch.
type BatchResult struct {
	Index   uint64     // the Raft index of the batch
	Results []OpResult // one per operation, in order
}

type batchOpJSON struct {
	Op       string  `json:"op"`
	Key      *string `json:"key,omitempty"`
	KeyB64   *string `json:"key_b64,omitempty"`
	Value    *string `json:"value,omitempty"`
	ValueB64 *string `json:"value_b64,omitempty"`
	TTL      string  `json:"ttl,omitempty"`
	CAS      *uint64 `json:"cas,omitempty"`
	By       *int64  `json:"by,omitempty"`
}

// text puts b in the plain field if it is UTF-8, else in the base64 one.
func text(b []byte, plain, b64 **string) {
	s := string(b)
	if utf8.Valid(b) {
		*plain = &s
		return
	}
	s = base64.StdEncoding.EncodeToString(b)
	*b64 = &s
}

// Batch applies up to the server's limit of sets, deletes and increments
// in one replicated entry (POST /v1/batch). Batches are atomic by default:
// if any condition fails, nothing is applied and the error (an *Error, or
// a *CASConflictError wrapping one) names the failed operation in
// FailedOp. Option NonAtomic applies each operation on its own; the server
// then does not report which operations failed a condition (a failed set
// or incr has Version 0, a failed delete Deleted false). A Batch
// always carries an Idempotency-Key, so a retry after an ambiguous failure
// is never applied twice. Option: WithIdempotencyKey.
func (c *Client) Batch(ctx context.Context, ops []BatchOp, opts ...Option) (*BatchResult, error) {
	o := collect(opts)
	return c.batch(ctx, ops, &o)
}

func (c *Client) batch(ctx context.Context, ops []BatchOp, o *callOptions) (res *BatchResult, err error) {
	defer func() { // the near cache drops what it wrote (kv.go, set)
		if c.near == nil {
			return
		}
		var idx uint64
		if res != nil {
			idx = res.Index
		}
		for _, op := range ops {
			if op.kind != "get" {
				c.nearWrote(op.key, idx)
			}
		}
	}()
	req := struct {
		Atomic bool          `json:"atomic"`
		Ops    []batchOpJSON `json:"ops"`
	}{Atomic: !o.nonAtomic, Ops: make([]batchOpJSON, len(ops))}
	for i, op := range ops {
		j := &req.Ops[i]
		j.Op = op.kind
		text([]byte(op.key), &j.Key, &j.KeyB64)
		switch op.kind {
		case "set":
			text(op.value, &j.Value, &j.ValueB64)
			j.CAS = op.opts.cas
		case "delete":
			j.CAS = op.opts.cas
		case "incr":
			by := op.by
			j.By = &by
		default:
			return nil, fmt.Errorf("%w: batch op %d: make ops with SetOp, DeleteOp or IncrOp", ErrBadRequest, i)
		}
		if op.kind != "delete" && op.opts.ttl > 0 {
			j.TTL = ttlString(op.opts.ttl)
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	cl := &call{method: http.MethodPost, path: "/v1/batch", body: body, write: true,
		header: http.Header{"Content-Type": {"application/json"}}}
	cl.setKey(o.idemKey)
	var out struct {
		Index   uint64 `json:"index"`
		Results []struct {
			Version uint64 `json:"version"`
			Deleted *bool  `json:"deleted"`
			Value   *int64 `json:"value"`
		} `json:"results"`
	}
	if _, err := c.doJSON(ctx, cl, &out); err != nil {
		return nil, err
	}
	res = &BatchResult{Index: out.Index, Results: make([]OpResult, len(out.Results))}
	for i, r := range out.Results {
		res.Results[i].Version = r.Version
		if r.Deleted != nil {
			res.Results[i].Deleted = *r.Deleted
		}
		if r.Value != nil {
			res.Results[i].Value = *r.Value
		}
	}
	return res, nil
}
