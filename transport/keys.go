package transport

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

// Keys and values are bytes, and JSON strings are UTF-8: Go's encoder would
// silently replace invalid bytes. So every key or value in a JSON body is
// either "key" (valid UTF-8) or "key_b64" (standard base64), chosen per
// item, and requests accept either.

const (
	defaultKeysLimit = 1000
	maxKeysLimit     = 10000
)

type keysResponse struct {
	Keys []string `json:"keys"`
	// Types is each key's type, as Redis's TYPE names it: "string",
	// "hash", "set", "zset", "list", "stream".
	Types    []string `json:"types"`
	Encoding string   `json:"encoding"`       // "utf8" or "base64": how Keys are written
	Next     string   `json:"next,omitempty"` // pass as ?cursor= for the next page (same encoding)
	Index    uint64   `json:"index"`
}

// handleKeys lists keys under ?prefix= in order, ?limit= at a time, from
// ?cursor= (the last key of the previous page). It walks only the range
// it returns, on an ordered index. The page's encoding is base64 if any
// key in it is not UTF-8, or if ?encoding=base64 asks for it; the cursor
// is read in ?encoding= (default utf8).
func (s *Server) handleKeys(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opt, wait, err := readOptions(queryFrom(r))
	if err != nil {
		writeError(w, err)
		return
	}
	limit := defaultKeysLimit
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxKeysLimit {
			writeError(w, badRequest("bad_limit", "limit must be 1 to "+strconv.Itoa(maxKeysLimit)))
			return
		}
	}
	b64 := false
	switch q.Get("encoding") {
	case "", "utf8":
	case "base64":
		b64 = true
	default:
		writeError(w, badRequest("bad_encoding", "encoding must be utf8 or base64"))
		return
	}
	var after []byte
	if v, ok := q["cursor"]; ok && len(v) > 0 && v[0] != "" {
		if after, err = decodeText(v[0], b64); err != nil {
			writeError(w, badRequest("bad_cursor", "cursor is not valid base64"))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	v, err := s.node.View(ctx, opt)
	if err != nil {
		s.readFailed(w, r, err)
		return
	}
	keys, types, more, err := keysReply(v.Exec(fsm.RCKeys([]byte(q.Get("prefix")), after, limit)))
	if err != nil {
		writeError(w, err)
		return
	}
	for _, k := range keys {
		b64 = b64 || !utf8.Valid(k)
	}
	out := keysResponse{Keys: make([]string, len(keys)), Types: types, Encoding: "utf8", Index: v.Index()}
	if b64 {
		out.Encoding = "base64"
	}
	for i, k := range keys {
		out.Keys[i] = encodeText(k, b64)
	}
	if more {
		out.Next = out.Keys[len(out.Keys)-1]
	}
	w.Header().Set("X-Raft-Index", strconv.FormatUint(v.Index(), 10))
	writeJSON(w, http.StatusOK, out)
}

// keysReply takes rc.keys's reply [[key...], more, [type...]] apart.
func keysReply(rep fsm.Reply) (keys [][]byte, types []string, more bool, err error) {
	if rep.IsError() {
		return nil, nil, false, rep.Err
	}
	if rep.Kind != fsm.KindArray || len(rep.Elems) != 3 || rep.Elems[0].Kind != fsm.KindArray ||
		len(rep.Elems[2].Elems) != len(rep.Elems[0].Elems) {
		return nil, nil, false, fmt.Errorf("rc.keys answered %s", rep)
	}
	keys = make([][]byte, len(rep.Elems[0].Elems))
	types = make([]string, len(keys))
	for i, k := range rep.Elems[0].Elems {
		keys[i] = k.Bulk
		types[i] = string(rep.Elems[2].Elems[i].Bulk)
	}
	return keys, types, rep.Elems[1].Int == 1, nil
}

type deletePrefixResponse struct {
	Deleted int    `json:"deleted"`
	Index   uint64 `json:"index"`
	Entries int    `json:"entries"` // Raft entries it took: 1 unless more than fsm.MaxBatch keys matched
}

// prefixDeleteTimeout bounds one prefix delete, all its chunks together:
// a few million keys on a small machine. It stays below the server's
// default write timeout, so the answer is not cut.
const prefixDeleteTimeout = 30 * time.Second

// handleDeletePrefix removes every key under ?prefix=, at most
// fsm.MaxBatch keys per Raft entry (see node.DeleteKeysWithPrefix). An
// empty prefix would flush the cache, so it needs ?all=true instead; a
// flush is one entry whatever the cache's size.
func (s *Server) handleDeletePrefix(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	prefix := q.Get("prefix")
	if prefix == "" && q.Get("all") != "true" {
		writeError(w, badRequest("empty_prefix", "give ?prefix=P, or ?all=true to delete every key"))
		return
	}
	if err := node.CheckKey([]byte(prefix)); err != nil {
		writeError(w, badRequest("bad_prefix", "the prefix is longer than a key may be ("+strconv.Itoa(node.MaxKeySize)+" bytes)"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), prefixDeleteTimeout)
	defer cancel()
	res, err := s.node.DeleteKeysWithPrefix(ctx, []byte(prefix))
	if err != nil {
		s.writeFailed(w, r, err)
		return
	}
	w.Header().Set("X-Raft-Index", strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, deletePrefixResponse{Deleted: res.Deleted, Index: res.Index, Entries: res.Entries})
}

// readFailed answers a failed read: redirect when the leader can serve it.
func (s *Server) readFailed(w http.ResponseWriter, r *http.Request, err error) {
	if s.redirectable(err) && s.redirect(w, r) {
		return
	}
	writeError(w, err)
}

func encodeText(b []byte, b64 bool) string {
	if b64 {
		return base64.StdEncoding.EncodeToString(b)
	}
	return string(b)
}

func decodeText(s string, b64 bool) ([]byte, error) {
	if b64 {
		return base64.StdEncoding.DecodeString(s)
	}
	return []byte(s), nil
}
