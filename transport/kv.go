package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

type writeResponse struct {
	Version uint64 `json:"version"`
	Index   uint64 `json:"index"`
}

type deleteResponse struct {
	Deleted bool   `json:"deleted"`
	Index   uint64 `json:"index"`
}

func (s *Server) handleEmptyKey(w http.ResponseWriter, r *http.Request) {
	writeError(w, badRequest("empty_key", "the key is empty: use /v1/kv/{key}"))
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	key, err := keyFrom(r)
	if err != nil {
		writeError(w, err)
		return
	}
	opt, wait, err := readOptions(r.URL.Query())
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	res, err := s.node.Get(ctx, key, opt)
	h := w.Header()
	if opt.Consistency == node.Stale {
		h.Set("X-Last-Contact", strconv.FormatInt(res.LastContact.Milliseconds(), 10))
	}
	if err != nil {
		if s.redirectable(err) && s.redirect(w, r) {
			return
		}
		if res.Index > 0 {
			h.Set("X-Raft-Index", strconv.FormatUint(res.Index, 10))
		}
		writeError(w, err)
		return
	}
	h.Set("X-Raft-Index", strconv.FormatUint(res.Index, 10))
	h.Set("ETag", etag(res.Version))
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(res.Value)))
	if res.ExpireAt != 0 {
		h.Set("X-Expires-At", strconv.FormatInt(res.ExpireAt/int64(time.Millisecond), 10))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(res.Value)
	}
}

// redirectable says whether a failed read is better answered by the
// leader: this node is not it, is too stale, or could not catch up in time.
func (s *Server) redirectable(err error) bool {
	if errors.Is(err, node.ErrNotLeader) {
		return true
	}
	return !s.node.IsLeader() && (errors.Is(err, node.ErrTooStale) || errors.Is(err, node.ErrIndexTimeout))
}

func (s *Server) handlePut(w http.ResponseWriter, r *http.Request) {
	key, err := keyFrom(r)
	if err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	op := node.Op{Kind: fsm.OpSet, Key: key}
	if op.TTL, err = parseTTL(q.Get("ttl")); err != nil {
		writeError(w, err)
		return
	}
	if err := parseCond(r, &op); err != nil {
		writeError(w, err)
		return
	}
	if !s.node.IsLeader() {
		// Redirect before reading the body: the client re-sends it.
		s.redirectOrFail(w, r)
		return
	}
	if op.Value, err = s.readValue(w, r, len(key)); err != nil {
		writeError(w, err)
		return
	}
	s.write(w, r, op, func(res *fsm.Result) any {
		return writeResponse{Version: res.Version, Index: res.Index}
	})
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	key, err := keyFrom(r)
	if err != nil {
		writeError(w, err)
		return
	}
	op := node.Op{Kind: fsm.OpDelete, Key: key}
	if err := parseCond(r, &op); err != nil {
		writeError(w, err)
		return
	}
	s.write(w, r, op, func(res *fsm.Result) any {
		return deleteResponse{Deleted: res.Deleted, Index: res.Index}
	})
}

type incrResponse struct {
	Value int64  `json:"value"`
	Index uint64 `json:"index"`
}

// handleIncr adds ?by=N (default 1) to a decimal counter. ?ttl applies only
// when this call creates the key, so a fixed-window rate limiter is one
// call: INCR with the window as TTL, and compare the returned value.
func (s *Server) handleIncr(w http.ResponseWriter, r *http.Request) {
	key, err := keyFrom(r)
	if err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	op := node.Op{Kind: fsm.OpIncr, Key: key, By: 1}
	if v := q.Get("by"); v != "" {
		if op.By, err = strconv.ParseInt(v, 10, 64); err != nil {
			writeError(w, badRequest("bad_by", "by must be a 64-bit decimal integer: "+strconv.Quote(v)))
			return
		}
	}
	if op.TTL, err = parseTTL(q.Get("ttl")); err != nil {
		writeError(w, err)
		return
	}
	s.write(w, r, op, func(res *fsm.Result) any {
		return incrResponse{Value: res.Value, Index: res.Index}
	})
}

// handleSetTTL sets (PUT ?ttl=D) or clears (DELETE) the expiry of an
// existing key without rewriting its value.
func (s *Server) handleSetTTL(w http.ResponseWriter, r *http.Request) {
	key, err := keyFrom(r)
	if err != nil {
		writeError(w, err)
		return
	}
	op := node.Op{Kind: fsm.OpTouch, Key: key}
	if r.Method == http.MethodPut {
		if op.TTL, err = parseTTL(r.URL.Query().Get("ttl")); err != nil {
			writeError(w, err)
			return
		}
		if op.TTL == 0 {
			writeError(w, badRequest("bad_ttl", "PUT /v1/ttl/{key} needs ?ttl=; DELETE clears the expiry"))
			return
		}
	}
	s.write(w, r, op, func(res *fsm.Result) any {
		return writeResponse{Version: res.Version, Index: res.Index}
	})
}

// write proposes op and answers with body(res), or the mapped error.
func (s *Server) write(w http.ResponseWriter, r *http.Request, op node.Op, body func(*fsm.Result) any) {
	var err error
	if op.ReqID, err = requestID(r); err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), defaultWriteTimeout)
	defer cancel()
	res, err := s.node.Write(ctx, op)
	if res != nil && res.Duplicate {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if err != nil {
		s.writeFailed(w, r, err, res)
		return
	}
	w.Header().Set("X-Raft-Index", strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, body(res))
}

// parseCond reads a write's precondition: ?cas=V (0: only if absent),
// If-Match: "V" or If-None-Match: *.
func parseCond(r *http.Request, op *node.Op) error {
	conds := 0
	if v := r.URL.Query().Get("cas"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return badRequest("bad_cas", "cas must be a version number (0: only if absent): "+strconv.Quote(v))
		}
		op.Cond, op.Version = fsm.CondVersion, n
		if n == 0 {
			op.Cond = fsm.CondAbsent
		}
		conds++
	}
	if v := r.Header.Get("If-Match"); v != "" {
		if v == "*" {
			op.Cond = fsm.CondExists
		} else {
			n, err := strconv.ParseUint(strings.Trim(strings.TrimPrefix(v, "W/"), `"`), 10, 64)
			if err != nil {
				return badRequest("bad_cas", "If-Match must be an ETag like \"12\" or *: "+strconv.Quote(v))
			}
			op.Cond, op.Version = fsm.CondVersion, n
		}
		conds++
	}
	if v := r.Header.Get("If-None-Match"); v != "" {
		if v != "*" {
			return badRequest("bad_cas", "If-None-Match supports only *")
		}
		op.Cond = fsm.CondAbsent
		conds++
	}
	if conds > 1 {
		return badRequest("bad_cas", "give at most one of cas, If-Match and If-None-Match")
	}
	return nil
}

// requestID reads the Idempotency-Key header: a retry that carries the
// same key is answered with the first attempt's result, not applied again.
func requestID(r *http.Request) ([]byte, error) {
	v := r.Header.Get("Idempotency-Key")
	if len(v) > fsm.MaxReqID {
		return nil, badRequest("bad_idempotency_key", "Idempotency-Key is longer than "+strconv.Itoa(fsm.MaxReqID)+" bytes")
	}
	if v == "" {
		return nil, nil
	}
	return []byte(v), nil
}

func etag(version uint64) string { return `"` + strconv.FormatUint(version, 10) + `"` }

// writeFailed answers a failed write: a node that is not (or no longer)
// the leader redirects, since nothing was applied.
func (s *Server) writeFailed(w http.ResponseWriter, r *http.Request, err error, res *fsm.Result) {
	if errors.Is(err, node.ErrNotLeader) {
		s.redirectOrFail(w, r)
		return
	}
	writeResultError(w, err, res)
}

// readValue reads the request body, refusing more than MaxValueSize bytes
// with 413 before reading them when Content-Length says so.
func (s *Server) readValue(w http.ResponseWriter, r *http.Request, keyLen int) ([]byte, error) {
	max := s.cfg.MaxValueSize
	if err := s.fits(keyLen, r.ContentLength); err != nil {
		return nil, err
	}
	tooLarge := &requestError{http.StatusRequestEntityTooLarge, "value_too_large",
		"the value is larger than the limit of " + strconv.FormatInt(max, 10) + " bytes"}
	if r.ContentLength > max {
		return nil, tooLarge
	}
	// Size the buffer from Content-Length only up to a point: a client
	// announcing 4 MiB and sending nothing must not pin 4 MiB per request.
	buf := bytes.NewBuffer(make([]byte, 0, min(max64(r.ContentLength, 0), maxPrealloc)+bytes.MinRead))
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, max)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, badRequest("bad_body", "reading the request body: "+err.Error())
	}
	return buf.Bytes(), s.fits(keyLen, int64(buf.Len()))
}

// fits refuses an entry that could never fit under --max-memory: evicting
// everything else would not make room for it.
func (s *Server) fits(keyLen int, valueLen int64) error {
	size := int64(keyLen) + valueLen + fsm.EntryOverhead
	if mm := s.node.MaxMemory(); mm > 0 && size > mm {
		return fmt.Errorf("%w: %d bytes with key and overhead, max memory %d", node.ErrTooLarge, size, mm)
	}
	return nil
}

// maxPrealloc bounds the body buffer allocated before the body arrives.
const maxPrealloc = 64 << 10

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// keyFrom decodes the {key} path variable. The route matches the escaped
// path, so the key may hold any byte, "/" included.
func keyFrom(r *http.Request) ([]byte, error) {
	raw := mux.Vars(r)["key"]
	key, err := url.PathUnescape(raw)
	if err != nil {
		return nil, badRequest("bad_key", "the key is not valid percent-encoding: "+err.Error())
	}
	switch {
	case key == "":
		return nil, badRequest("empty_key", "the key is empty")
	case len(key) > MaxKeySize:
		return nil, badRequest("key_too_large", "the key is longer than "+strconv.Itoa(MaxKeySize)+" bytes")
	}
	return []byte(key), nil
}

// maxTTL keeps expiry times far from int64 overflow.
const maxTTL = 100 * 365 * 24 * time.Hour

// parseTTL accepts a Go duration ("30s", "1h30m") or plain seconds ("30").
// Empty means no expiry.
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > int64(maxTTL/time.Second) {
			return 0, badRequest("bad_ttl", "ttl is too large: "+s)
		}
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, badRequest("bad_ttl", "ttl must be a duration like 30s or a number of seconds: "+s)
	}
	if d <= 0 || d > maxTTL {
		return 0, badRequest("bad_ttl", "ttl must be positive and at most 100 years: "+s)
	}
	return d, nil
}

// readOptions parses consistency, min_index and max_stale, and returns how
// long the read may wait.
func readOptions(q url.Values) (node.ReadOptions, time.Duration, error) {
	var opt node.ReadOptions
	wait := defaultWriteTimeout
	switch c := q.Get("consistency"); c {
	case "", "strong":
		opt.Consistency = node.Strong
	case "stale":
		opt.Consistency = node.Stale
	default:
		return opt, 0, badRequest("bad_consistency", "consistency must be strong or stale, not "+strconv.Quote(c))
	}
	if v := q.Get("min_index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return opt, 0, badRequest("bad_min_index", "min_index must be a non-negative integer: "+v)
		}
		opt.MinIndex = n
		wait = defaultMinIndexWait
	}
	if v := q.Get("max_stale"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return opt, 0, badRequest("bad_max_stale", "max_stale must be a positive duration like 2s: "+v)
		}
		opt.MaxStale = d
	}
	if opt.Consistency == node.Strong && (opt.MinIndex > 0 || opt.MaxStale > 0) {
		return opt, 0, badRequest("bad_consistency", "min_index and max_stale apply to consistency=stale only")
	}
	return opt, wait, nil
}

// redirect sends the client to the same method, path and query on the
// leader with 307, so the body is re-sent (301 and 302 turn a PUT into a
// GET in many clients). It reports false when no leader can be named.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request) bool {
	leader, ok := s.node.Leader()
	if !ok || leader.HTTPAddr == "" || leader.ID == s.node.ID() {
		return false
	}
	w.Header().Set("Location", s.scheme()+"://"+leader.HTTPAddr+keepDotSegments(r.URL.EscapedPath())+queryOf(r))
	writeJSON(w, http.StatusTemporaryRedirect, errorBody{Error: "not the leader; leader is " + leader.ID, Code: "redirect"})
	return true
}

// keepDotSegments escapes "." and ".." path segments, which are legal key
// bytes here: a client following the redirect would otherwise resolve
// them (RFC 3986) and write /v1/kv/a/../b to the key "b".
func keepDotSegments(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		switch s {
		case ".":
			segs[i] = "%2E"
		case "..":
			segs[i] = "%2E%2E"
		}
	}
	return strings.Join(segs, "/")
}

func queryOf(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return ""
	}
	return "?" + r.URL.RawQuery
}

func (s *Server) scheme() string {
	if s.cfg.TLS {
		return "https"
	}
	return "http"
}

func (s *Server) redirectOrFail(w http.ResponseWriter, r *http.Request) {
	if !s.redirect(w, r) {
		writeError(w, node.ErrNoLeader)
	}
}
