package transport

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

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
	opt, wait, err := readOptions(queryFrom(r))
	if err != nil {
		writeError(w, err)
		return
	}
	ctx := s.within(r, wait)
	defer ctx.Release()
	h := w.Header()
	if opt.Consistency == node.Stale {
		h["X-Last-Contact"] = intHeader(s.node.LastContact().Milliseconds())
	}
	v, err := s.node.View(ctx, opt)
	if err != nil {
		s.readFailed(w, r, err)
		return
	}
	rep := v.Exec(fsm.RCGet(key))
	if rep.Kind == fsm.KindNull {
		h["X-Raft-Index"] = []string{strconv.FormatUint(v.Index(), 10)}
		writeError(w, fsm.ErrNotFound)
		return
	}
	value, version, expireAt, err := getReply(rep)
	if err != nil {
		h["X-Raft-Index"] = []string{strconv.FormatUint(v.Index(), 10)}
		writeError(w, err)
		return
	}
	setGetHeaders(h, v.Index(), version, len(value), expireAt)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(value)
	}
}

// setGetHeaders sets a found key's headers: X-Raft-Index, ETag,
// Content-Type, Content-Length and X-Expires-At if it expires. The numbers
// are formatted into one string and the values share one slice (each
// header gets its own part of it, capacity capped, so an Add by anyone
// later copies rather than overwrites), where Header.Set would allocate a
// string and a slice per header. Keys are canonical already.
func setGetHeaders(h http.Header, index, version uint64, size int, expireAt int64) {
	var buf [96]byte
	b := strconv.AppendUint(buf[:0], index, 10)
	i1 := len(b)
	b = append(b, '"')
	b = strconv.AppendUint(b, version, 10)
	b = append(b, '"')
	i2 := len(b)
	b = strconv.AppendInt(b, int64(size), 10)
	i3 := len(b)
	if expireAt != 0 {
		b = strconv.AppendInt(b, expireAt/int64(time.Millisecond), 10)
	}
	all := string(b)
	vals := make([]string, 4)
	vals[0], vals[1], vals[2], vals[3] = all[:i1], all[i1:i2], all[i2:i3], all[i3:]
	h["X-Raft-Index"] = vals[0:1:1]
	h["Etag"] = vals[1:2:2]
	h["Content-Type"] = octetStream
	h["Content-Length"] = vals[2:3:3]
	if expireAt != 0 {
		h["X-Expires-At"] = vals[3:4:4]
	}
}

// Header values shared by every response that has them; never modified
// (len == cap, so an append copies).
var (
	octetStream = []string{"application/octet-stream"}
	jsonType    = []string{"application/json"}
	smallInts   = func() (v [100][]string) {
		for i := range v {
			v[i] = []string{strconv.Itoa(i)}
		}
		return v
	}()
)

// intHeader is the header value n, shared for small n (a follower's
// X-Last-Contact in milliseconds mostly is).
func intHeader(n int64) []string {
	if n >= 0 && n < int64(len(smallInts)) {
		return smallInts[n]
	}
	return []string{strconv.FormatInt(n, 10)}
}

// getReply takes rc.get's reply apart: [value, version, expireAt].
func getReply(rep fsm.Reply) (value []byte, version uint64, expireAt int64, err error) {
	if rep.IsError() {
		return nil, 0, 0, rep.Err
	}
	if rep.Kind != fsm.KindArray || len(rep.Elems) != 3 {
		return nil, 0, 0, fmt.Errorf("rc.get answered %s", rep)
	}
	return rep.Elems[0].Bulk, uint64(rep.Elems[1].Int), rep.Elems[2].Int, nil
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
	q := queryFrom(r)
	ttl, err := parseTTL(q.Get("ttl"))
	if err != nil {
		writeError(w, err)
		return
	}
	c, err := parseCond(r, q)
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
	s.write(w, r, fsm.RCSet(key, value, int64(ttl), c.cond, c.version, 0), func(rep fsm.Reply, index uint64) (any, error) {
		version, err := setReply(rep)
		return writeResponse{Version: version, Index: index}, err
	})
}

// setReply is the version in rc.set's reply [version, previous value].
func setReply(rep fsm.Reply) (uint64, error) {
	if rep.Kind != fsm.KindArray || len(rep.Elems) != 2 {
		return 0, fmt.Errorf("rc.set answered %s", rep)
	}
	return uint64(rep.Elems[0].Int), nil
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	key, err := keyFrom(r)
	if err != nil {
		writeError(w, err)
		return
	}
	c, err := parseCond(r, queryFrom(r))
	if err != nil {
		writeError(w, err)
		return
	}
	s.write(w, r, fsm.RCDel(key, c.cond, c.version), func(rep fsm.Reply, index uint64) (any, error) {
		deleted, err := delReply(rep)
		return deleteResponse{Deleted: deleted, Index: index}, err
	})
}

// delReply is rc.del's reply: 1 if a live key was removed.
func delReply(rep fsm.Reply) (bool, error) {
	if rep.Kind != fsm.KindInt {
		return false, fmt.Errorf("rc.del answered %s", rep)
	}
	return rep.Int == 1, nil
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
	by := int64(1)
	if v := q.Get("by"); v != "" {
		if by, err = strconv.ParseInt(v, 10, 64); err != nil {
			writeError(w, badRequest("bad_by", "by must be a 64-bit decimal integer: "+strconv.Quote(v)))
			return
		}
	}
	ttl, err := parseTTL(q.Get("ttl"))
	if err != nil {
		writeError(w, err)
		return
	}
	s.write(w, r, fsm.RCIncr(key, by, int64(ttl)), func(rep fsm.Reply, index uint64) (any, error) {
		value, _, err := incrReply(rep)
		return incrResponse{Value: value, Index: index}, err
	})
}

// incrReply takes rc.incr's reply [value, version] apart.
func incrReply(rep fsm.Reply) (value int64, version uint64, err error) {
	if rep.Kind != fsm.KindArray || len(rep.Elems) != 2 {
		return 0, 0, fmt.Errorf("rc.incr answered %s", rep)
	}
	return rep.Elems[0].Int, uint64(rep.Elems[1].Int), nil
}

// handleSetTTL sets (PUT ?ttl=D) or clears (DELETE) the expiry of an
// existing key without rewriting its value.
func (s *Server) handleSetTTL(w http.ResponseWriter, r *http.Request) {
	key, err := keyFrom(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var ttl time.Duration
	if r.Method == http.MethodPut {
		if ttl, err = parseTTL(r.URL.Query().Get("ttl")); err != nil {
			writeError(w, err)
			return
		}
		if ttl == 0 {
			writeError(w, badRequest("bad_ttl", "PUT /v1/ttl/{key} needs ?ttl=; DELETE clears the expiry"))
			return
		}
	}
	s.write(w, r, fsm.RCTouch(key, int64(ttl)), func(rep fsm.Reply, index uint64) (any, error) {
		if rep.Kind != fsm.KindInt {
			return nil, fmt.Errorf("rc.touch answered %s", rep)
		}
		return writeResponse{Version: uint64(rep.Int), Index: index}, nil
	})
}

// write runs one command through the log as a unit of its own (with the
// request's Idempotency-Key as the unit's id) and answers with what body
// makes of its reply, or the mapped error: an error reply (a failed
// condition, not an integer...) is answered like any other error.
func (s *Server) write(w http.ResponseWriter, r *http.Request, args [][]byte, body func(fsm.Reply, uint64) (any, error)) {
	reqID, err := requestID(r)
	if err != nil {
		writeError(w, err)
		return
	}
	u := fsm.Unit{ReqID: reqID, Mode: fsm.UnitPlain, Cmds: [][][]byte{args}}
	if err := resendOf(r, &u); err != nil {
		writeError(w, err)
		return
	}
	res, ok := s.exec(w, r, u)
	if !ok {
		return
	}
	rep := res.Replies[0]
	if rep.IsError() {
		writeReplyError(w, rep.Err)
		return
	}
	out, err := body(rep, res.Index)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header()["X-Raft-Index"] = []string{strconv.FormatUint(res.Index, 10)}
	writeJSON(w, http.StatusOK, out)
}

// exec proposes one unit and returns its result, with a reply for each of
// its commands (an atomic unit that failed: up to the failed one). On
// failure it has answered already: a redirect when this node is not the
// leader (nothing was applied), else the mapped error.
//
// A unit keyed by the client (Idempotency-Key) goes with the key tagged
// by a digest of the unit from cluster level 6 (fsm.TagRequestID): the
// key then names this request, and the same key on a different request
// is refused (422) rather than answered with another request's result.
func (s *Server) exec(w http.ResponseWriter, r *http.Request, u fsm.Unit) (*fsm.Result, bool) {
	ctx := s.within(r, defaultWriteTimeout)
	defer ctx.Release()
	if u.ReqID != nil && s.node.ClusterLevel() >= fsm.LevelRequestDigest {
		u.ReqID = fsm.TagRequestID(u.ReqID, &u)
	}
	results, err := s.node.Exec(ctx, u)
	if err != nil {
		s.writeFailed(w, r, err)
		return nil, false
	}
	res := &results[0]
	if errors.Is(res.Err, fsm.ErrRequestMismatch) || errors.Is(res.Err, fsm.ErrResendForgotten) {
		writeError(w, res.Err)
		return nil, false
	}
	if res.Duplicate {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if len(res.Replies) == 0 || res.Err == nil && len(res.Replies) != len(u.Cmds) {
		// A retry of a request applied before the state was restored
		// from a snapshot, which keeps that it ran but not its replies.
		writeError(w, fmt.Errorf("%w (applied at index %d)", errResultLost, res.Index))
		return nil, false
	}
	return res, true
}

// cond is a write's precondition.
type cond struct {
	cond    fsm.Cond
	version uint64 // with fsm.CondVersion
}

// parseCond reads a write's precondition: ?cas=V (0: only if absent),
// If-Match: "V" or If-None-Match: *.
func parseCond(r *http.Request, q query) (cond, error) {
	var c cond
	conds := 0
	if v := q.Get("cas"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return c, badRequest("bad_cas", "cas must be a version number (0: only if absent): "+strconv.Quote(v))
		}
		c.cond, c.version = fsm.CondVersion, n
		if n == 0 {
			c.cond = fsm.CondAbsent
		}
		conds++
	}
	if v := r.Header.Get("If-Match"); v != "" {
		if v == "*" {
			c.cond = fsm.CondExists
		} else {
			n, err := strconv.ParseUint(strings.Trim(strings.TrimPrefix(v, "W/"), `"`), 10, 64)
			if err != nil {
				return c, badRequest("bad_cas", "If-Match must be an ETag like \"12\" or *: "+strconv.Quote(v))
			}
			c.cond, c.version = fsm.CondVersion, n
		}
		conds++
	}
	if v := r.Header.Get("If-None-Match"); v != "" {
		if v != "*" {
			return c, badRequest("bad_cas", "If-None-Match supports only *")
		}
		c.cond = fsm.CondAbsent
		conds++
	}
	if conds > 1 {
		return c, badRequest("bad_cas", "give at most one of cas, If-Match and If-None-Match")
	}
	return c, nil
}

// requestID reads the Idempotency-Key header: a retry that carries the
// same key is answered with the first attempt's result, not applied again.
func requestID(r *http.Request) ([]byte, error) {
	v := r.Header.Get("Idempotency-Key")
	if v == "" {
		return nil, nil
	}
	if !fsm.ValidRequestID([]byte(v)) {
		return nil, badRequest("bad_idempotency_key", "Idempotency-Key must be 1 to "+strconv.Itoa(fsm.MaxReqID)+" bytes, without NUL")
	}
	return []byte(v), nil
}

// resendOf reads Raftcache-Resend: a retry of a keyed write whose
// earlier attempt's answer was lost names the highest X-Raft-Index its
// client had seen before the first attempt, which that attempt can only
// have been applied above. If the key is unknown while keys applied above
// it were forgotten, the first attempt may have been applied and its key
// forgotten: the state machine refuses it (fsm.ErrResendForgotten, 409
// key_forgotten) instead of applying it again. Without a key it means
// nothing. A client should name an index it saw recently: keys also
// leave after 5 minutes, so an old index makes a retry that should be
// applied look forgotten (the Go client names none older than 30 s).
func resendOf(r *http.Request, u *fsm.Unit) error {
	v := r.Header.Get("Raftcache-Resend")
	if v == "" || u.ReqID == nil {
		return nil
	}
	after, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return badRequest("bad_resend", "Raftcache-Resend must be a log index: "+strconv.Quote(v))
	}
	u.Resend, u.After = true, after
	return nil
}

func etag(version uint64) string { return `"` + strconv.FormatUint(version, 10) + `"` }

// writeFailed answers a failed write: a node that is not (or no longer)
// the leader redirects, since nothing was applied.
func (s *Server) writeFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, node.ErrNotLeader) {
		s.redirectOrFail(w, r)
		return
	}
	writeError(w, err)
}

// readValue reads the request body, refusing more than the node's largest
// value with 413 (before reading it when Content-Length says so). Every
// other limit on the value is node's, checked before it is proposed.
func (s *Server) readValue(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := s.node.MaxValueSize()
	tooLarge := &node.LimitError{Err: node.ErrValueTooLarge, Limit: limit, Size: r.ContentLength}
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	// Size the buffer from Content-Length only up to a point: a client
	// announcing 4 MiB and sending nothing must not pin 4 MiB per request.
	buf := bytes.NewBuffer(make([]byte, 0, min(max(r.ContentLength, 0), maxPrealloc)+bytes.MinRead))
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, badRequest("bad_body", "reading the request body: "+err.Error())
	}
	return buf.Bytes(), nil
}

// maxPrealloc bounds the body buffer allocated before the body arrives.
const maxPrealloc = 64 << 10

// keyFrom decodes the key of /v1/kv/{key}, /v1/incr/{key} and
// /v1/ttl/{key}: the escaped path after its third "/", which is what the
// router's {key:.+} matches (routes.go serves /v1/kv/ without the router,
// so there are no router variables to read). The route matches the
// escaped path, so the key may hold any byte, "/" included. Its size is
// checked by node's rule, here already so that a follower refuses it
// rather than redirecting.
func keyFrom(r *http.Request) ([]byte, error) {
	_, raw, _ := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), "/v1/"), "/")
	key, err := url.PathUnescape(raw)
	if err != nil {
		return nil, badRequest("bad_key", "the key is not valid percent-encoding: "+err.Error())
	}
	if key == "" {
		return nil, badRequest("empty_key", "the key is empty")
	}
	b := []byte(key)
	if err := node.CheckKey(b); err != nil {
		return nil, err
	}
	return b, nil
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
func readOptions(q query) (node.ReadOptions, time.Duration, error) {
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
