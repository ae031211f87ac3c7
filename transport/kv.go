package transport

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/mux"

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
	h.Set("ETag", `"`+strconv.FormatUint(res.Version, 10)+`"`)
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
	ttl, err := parseTTL(r.URL.Query().Get("ttl"))
	if err != nil {
		writeError(w, err)
		return
	}
	if !s.node.IsLeader() {
		// Redirect before reading the body: the client re-sends it.
		s.redirectOrFail(w, r)
		return
	}
	value, err := s.readValue(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), defaultWriteTimeout)
	defer cancel()
	res, err := s.node.Set(ctx, key, value, ttl)
	if err != nil {
		s.writeFailed(w, r, err)
		return
	}
	w.Header().Set("X-Raft-Index", strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, writeResponse{Version: res.Version, Index: res.Index})
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	key, err := keyFrom(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), defaultWriteTimeout)
	defer cancel()
	res, err := s.node.Delete(ctx, key)
	if err != nil {
		s.writeFailed(w, r, err)
		return
	}
	w.Header().Set("X-Raft-Index", strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, deleteResponse{Deleted: res.Deleted, Index: res.Index})
}

// writeFailed answers a failed write: a node that is not (or no longer)
// the leader redirects, since nothing was applied.
func (s *Server) writeFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, node.ErrNotLeader) {
		s.redirectOrFail(w, r)
		return
	}
	writeError(w, err)
}

// readValue reads the request body, refusing more than MaxValueSize bytes
// with 413 before reading them when Content-Length says so.
func (s *Server) readValue(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	max := s.cfg.MaxValueSize
	tooLarge := &requestError{http.StatusRequestEntityTooLarge, "value_too_large",
		"the value is larger than the limit of " + strconv.FormatInt(max, 10) + " bytes"}
	if r.ContentLength > max {
		return nil, tooLarge
	}
	buf := bytes.NewBuffer(make([]byte, 0, max64(r.ContentLength, 0)+bytes.MinRead))
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, max)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, badRequest("bad_body", "reading the request body: "+err.Error())
	}
	return buf.Bytes(), nil
}

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
	w.Header().Set("Location", "http://"+leader.HTTPAddr+r.URL.RequestURI())
	writeJSON(w, http.StatusTemporaryRedirect, errorBody{Error: "not the leader; leader is " + leader.ID, Code: "redirect"})
	return true
}

func (s *Server) redirectOrFail(w http.ResponseWriter, r *http.Request) {
	if !s.redirect(w, r) {
		writeError(w, node.ErrNoLeader)
	}
}
