package client

import (
	"context"
	"sync/atomic"
	"time"
)

// Session gives read-your-writes and monotonic reads without sending every
// read to the leader. It tracks the highest Raft index it has written or
// read; its reads are stale reads, spread round robin over all members,
// that carry min_index = that index, so whichever member serves one first
// catches up to it (or, after a second, redirects to the leader). A
// session therefore always sees its own writes and never goes back in
// time, while its reads scale with the number of members.
//
// A Session is safe for concurrent use; concurrent calls see each other's
// effects once they have returned.
type Session struct {
	c     *Client
	index atomic.Uint64
}

// Session starts a session at index 0.
func (c *Client) Session() *Session { return &Session{c: c} }

// Index is the highest Raft index the session has written or read.
func (s *Session) Index() uint64 { return s.index.Load() }

// Observe raises the session's index to i, e.g. to carry a session over
// from another process. It never lowers it.
func (s *Session) Observe(i uint64) {
	for {
		cur := s.index.Load()
		if i <= cur || s.index.CompareAndSwap(cur, i) {
			return
		}
	}
}

// readOpts applies the session defaults: stale with min_index, unless the
// caller asked for a consistency; an explicit min index is raised to the
// session's.
func (s *Session) readOpts(opts []Option) callOptions {
	o := collect(opts)
	if !o.consistencySet {
		o.consistency = Stale
	}
	if o.consistency == Stale {
		o.minIndex = max(o.minIndex, s.Index())
	}
	return o
}

// Get reads key, by default from any member that has applied everything
// this session has written or read. Options as Client.Get.
func (s *Session) Get(ctx context.Context, key string, opts ...Option) (*Item, error) {
	o := s.readOpts(opts)
	item, idx, err := s.c.get(ctx, key, &o)
	s.Observe(idx)
	return item, err
}

// GetMany reads keys like Client.GetMany, with the session's defaults.
func (s *Session) GetMany(ctx context.Context, keys []string, opts ...Option) (*GetManyResult, error) {
	o := s.readOpts(opts)
	res, err := s.c.getMany(ctx, keys, &o)
	if err == nil {
		s.Observe(res.Index)
	}
	return res, err
}

// Keys lists keys like Client.Keys, with the session's defaults.
func (s *Session) Keys(ctx context.Context, prefix string, opts ...Option) (*KeyPage, error) {
	o := s.readOpts(opts)
	res, err := s.c.keys(ctx, prefix, &o)
	if err == nil {
		s.Observe(res.Index)
	}
	return res, err
}

// Set is Client.Set; the session then reads at least this write.
func (s *Session) Set(ctx context.Context, key string, value []byte, opts ...Option) (*WriteResult, error) {
	o := collect(opts)
	res, err := s.c.set(ctx, key, value, &o)
	if err == nil {
		s.Observe(res.Index)
	}
	return res, err
}

// Delete is Client.Delete; the session then reads at least this write.
func (s *Session) Delete(ctx context.Context, key string, opts ...Option) (*DeleteResult, error) {
	o := collect(opts)
	res, err := s.c.del(ctx, key, &o)
	if err == nil {
		s.Observe(res.Index)
	}
	return res, err
}

// Incr is Client.Incr; the session then reads at least this write.
func (s *Session) Incr(ctx context.Context, key string, by int64, opts ...Option) (int64, error) {
	o := collect(opts)
	v, idx, err := s.c.incr(ctx, key, by, &o)
	if err == nil {
		s.Observe(idx)
	}
	return v, err
}

// Batch is Client.Batch; the session then reads at least this write.
func (s *Session) Batch(ctx context.Context, ops []BatchOp, opts ...Option) (*BatchResult, error) {
	o := collect(opts)
	res, err := s.c.batch(ctx, ops, &o)
	if err == nil {
		s.Observe(res.Index)
	}
	return res, err
}

// SetTTL is Client.SetTTL; the session then reads at least this write.
func (s *Session) SetTTL(ctx context.Context, key string, ttl time.Duration, opts ...Option) (*WriteResult, error) {
	res, err := s.c.SetTTL(ctx, key, ttl, opts...)
	if err == nil {
		s.Observe(res.Index)
	}
	return res, err
}

// ClearTTL is Client.ClearTTL; the session then reads at least this write.
func (s *Session) ClearTTL(ctx context.Context, key string, opts ...Option) (*WriteResult, error) {
	res, err := s.c.ClearTTL(ctx, key, opts...)
	if err == nil {
		s.Observe(res.Index)
	}
	return res, err
}

// DeletePrefix is Client.DeletePrefix; the session then reads at least
// this write.
func (s *Session) DeletePrefix(ctx context.Context, prefix string) (*DeletePrefixResult, error) {
	res, err := s.c.DeletePrefix(ctx, prefix)
	if err == nil {
		s.Observe(res.Index)
	}
	return res, err
}
