package transport

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

// maxBatchGetKeys bounds one batch read.
const maxBatchGetKeys = 1000

// batchOp is one operation of POST /v1/batch. Key and value come as UTF-8
// ("key", "value") or base64 ("key_b64", "value_b64").
type batchOp struct {
	Op       string  `json:"op"` // set, delete, incr
	Key      *string `json:"key"`
	KeyB64   *string `json:"key_b64"`
	Value    *string `json:"value"`
	ValueB64 *string `json:"value_b64"`
	TTL      string  `json:"ttl"` // set, incr: like ?ttl=
	CAS      *uint64 `json:"cas"` // set, delete: like ?cas=
	By       *int64  `json:"by"`  // incr; default 1
}

type batchRequest struct {
	Atomic *bool     `json:"atomic"` // default true
	Ops    []batchOp `json:"ops"`
}

// batchResult is one op's outcome. In a non-atomic batch an op can fail on
// its own: then it has error and code (as an error response would), and
// current_version for a failed condition, and no other fields.
type batchResult struct {
	Version        uint64  `json:"version,omitempty"`
	Deleted        *bool   `json:"deleted,omitempty"`
	Value          *int64  `json:"value,omitempty"`
	Error          string  `json:"error,omitempty"`
	Code           string  `json:"code,omitempty"`
	CurrentVersion *uint64 `json:"current_version,omitempty"`
}

type batchResponse struct {
	Index   uint64        `json:"index"`
	Results []batchResult `json:"results"`
}

// handleBatch applies many sets, deletes and increments in one Raft entry,
// as one unit of the command engine: atomic batches (the default) apply
// all or nothing, and if any op fails, the answer is the error of the
// first failed op (failed_op).
func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	if !s.node.IsLeader() {
		s.redirectOrFail(w, r)
		return
	}
	var req batchRequest
	if err := s.decodeJSON(w, r, 2*s.node.MaxValueSize()+(1<<20), &req); err != nil {
		writeError(w, err)
		return
	}
	if len(req.Ops) == 0 || len(req.Ops) > fsm.MaxBatch {
		writeError(w, badRequest("bad_batch", "a batch needs 1 to "+strconv.Itoa(fsm.MaxBatch)+" ops"))
		return
	}
	unit := fsm.Unit{Mode: fsm.UnitPlain, Cmds: make([][][]byte, len(req.Ops))}
	if req.Atomic == nil || *req.Atomic {
		unit.Mode = fsm.UnitAtomic
	}
	for i := range req.Ops {
		var err error
		if unit.Cmds[i], err = s.batchOp(&req.Ops[i]); err != nil {
			writeError(w, badRequest("bad_batch", "op "+strconv.Itoa(i)+": "+err.Error()))
			return
		}
	}
	var err error
	if unit.ReqID, err = requestID(r); err != nil {
		writeError(w, err)
		return
	}
	if err := resendOf(r, &unit); err != nil {
		writeError(w, err)
		return
	}
	res, ok := s.exec(w, r, unit)
	if !ok {
		return
	}
	if res.Err != nil {
		for i, rep := range res.Replies {
			if rep.IsError() {
				writeBatchError(w, rep.Err, i)
				return
			}
		}
		writeBatchError(w, res.Err, len(res.Replies)-1)
		return
	}
	out := batchResponse{Index: res.Index, Results: make([]batchResult, len(res.Replies))}
	for i, rep := range res.Replies {
		br := &out.Results[i]
		if rep.IsError() {
			_, br.Code = errorCode(rep.Err)
			br.Error = errorMessage(rep.Err)
			br.CurrentVersion = currentVersion(rep.Err)
			continue
		}
		var err error
		switch req.Ops[i].Op {
		case "set":
			br.Version, err = setReply(rep)
		case "delete":
			var deleted bool
			deleted, err = delReply(rep)
			br.Deleted = &deleted
		case "incr":
			var value int64
			value, br.Version, err = incrReply(rep)
			br.Value = &value
		}
		if err != nil {
			writeError(w, err)
			return
		}
	}
	w.Header().Set("X-Raft-Index", strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, out)
}

// currentVersion is the key's version a failed condition reports, or nil
// for any other error.
func currentVersion(err error) *uint64 {
	var e *fsm.Error
	if errors.As(err, &e) && errors.Is(err, fsm.ErrConditionFailed) {
		cur := e.Current
		return &cur
	}
	return nil
}

func writeBatchError(w http.ResponseWriter, err error, i int) {
	writeErrorBody(w, err, errorBody{FailedOp: &i, CurrentVersion: currentVersion(err)})
}

// batchOp turns one op into its command, checked against node's limits
// here, so that the error names the op.
func (s *Server) batchOp(b *batchOp) ([][]byte, error) {
	key, err := pickText(b.Key, b.KeyB64, "key")
	if err != nil {
		return nil, err
	}
	if len(key) == 0 {
		return nil, errors.New("the key is empty")
	}
	ttl, err := parseTTL(b.TTL)
	if err != nil {
		return nil, err
	}
	c, version := fsm.CondNone, uint64(0)
	if b.CAS != nil {
		c, version = fsm.CondVersion, *b.CAS
		if *b.CAS == 0 {
			c = fsm.CondAbsent
		}
	}
	var args [][]byte
	switch b.Op {
	case "set":
		value, err := pickText(b.Value, b.ValueB64, "value")
		if err != nil {
			return nil, err
		}
		args = fsm.RCSet(key, value, int64(ttl), c, version, 0)
	case "delete":
		if b.TTL != "" {
			return nil, errors.New("delete takes no ttl")
		}
		args = fsm.RCDel(key, c, version)
	case "incr":
		if b.CAS != nil {
			return nil, errors.New("incr takes no cas")
		}
		by := int64(1)
		if b.By != nil {
			by = *b.By
		}
		args = fsm.RCIncr(key, by, int64(ttl))
	default:
		return nil, errors.New("op must be set, delete or incr, not " + strconv.Quote(b.Op))
	}
	if err := s.node.CheckCommand(args); err != nil {
		return nil, err
	}
	return args, nil
}

// pickText returns the bytes of a "name" or "name_b64" field; exactly one
// must be given (a set may give neither for an empty value).
func pickText(text, b64 *string, name string) ([]byte, error) {
	switch {
	case text != nil && b64 != nil:
		return nil, errors.New("give " + name + " or " + name + "_b64, not both")
	case text != nil:
		return []byte(*text), nil
	case b64 != nil:
		v, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return nil, errors.New(name + "_b64 is not valid base64")
		}
		return v, nil
	}
	if name == "value" {
		return []byte{}, nil
	}
	return nil, errors.New(name + " is missing")
}

type batchGetRequest struct {
	Keys     []string `json:"keys"`
	Encoding string   `json:"encoding"` // of keys: utf8 (default) or base64
}

type batchGetItem struct {
	Key      string  `json:"key,omitempty"`
	KeyB64   string  `json:"key_b64,omitempty"`
	Found    bool    `json:"found"`
	Value    *string `json:"value,omitempty"`
	ValueB64 *string `json:"value_b64,omitempty"`
	Version  uint64  `json:"version,omitempty"`
}

type batchGetResponse struct {
	Items []batchGetItem `json:"items"`
	Index uint64         `json:"index"`
}

// handleBatchGet reads many keys from one state of the cache (one view:
// the index it reports is that state's), at the consistency the query
// asks for (?consistency=stale, ...), as GET does.
func (s *Server) handleBatchGet(w http.ResponseWriter, r *http.Request) {
	opt, wait, err := readOptions(queryFrom(r))
	if err != nil {
		writeError(w, err)
		return
	}
	var req batchGetRequest
	if err := s.decodeJSON(w, r, maxJSONBody+maxBatchGetKeys*node.MaxKeySize*2, &req); err != nil {
		writeError(w, err)
		return
	}
	if len(req.Keys) == 0 || len(req.Keys) > maxBatchGetKeys {
		writeError(w, badRequest("bad_batch", "give 1 to "+strconv.Itoa(maxBatchGetKeys)+" keys"))
		return
	}
	b64 := req.Encoding == "base64"
	if !b64 && req.Encoding != "" && req.Encoding != "utf8" {
		writeError(w, badRequest("bad_encoding", "encoding must be utf8 or base64"))
		return
	}
	keys := make([][]byte, len(req.Keys))
	for i, k := range req.Keys {
		if keys[i], err = decodeText(k, b64); err != nil || len(keys[i]) == 0 || node.CheckKey(keys[i]) != nil {
			writeError(w, badRequest("bad_key", "key "+strconv.Itoa(i)+" is empty, too long or not valid base64"))
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
	out := batchGetResponse{Items: make([]batchGetItem, len(keys)), Index: v.Index()}
	for i, k := range keys {
		it := &out.Items[i]
		if utf8.Valid(k) {
			it.Key = string(k)
		} else {
			it.KeyB64 = base64.StdEncoding.EncodeToString(k)
		}
		rep := v.Exec(fsm.RCGet(k))
		if rep.Kind == fsm.KindNull {
			continue
		}
		value, version, _, err := getReply(rep)
		if err != nil {
			writeError(w, err)
			return
		}
		it.Found, it.Version = true, version
		if utf8.Valid(value) {
			text := string(value)
			it.Value = &text
		} else {
			text := base64.StdEncoding.EncodeToString(value)
			it.ValueB64 = &text
		}
	}
	w.Header().Set("X-Raft-Index", strconv.FormatUint(v.Index(), 10))
	writeJSON(w, http.StatusOK, out)
}

// decodeJSON reads a JSON body of at most limit bytes, refusing unknown
// fields so that a typo is an error rather than an ignored option.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if r.ContentLength > limit {
		return &requestError{http.StatusRequestEntityTooLarge, "body_too_large", "the body is larger than " + strconv.FormatInt(limit, 10) + " bytes"}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &requestError{http.StatusRequestEntityTooLarge, "body_too_large", "the body is larger than " + strconv.FormatInt(limit, 10) + " bytes"}
		}
		return badRequest("bad_json", "malformed JSON body: "+err.Error())
	}
	if dec.More() {
		return badRequest("bad_json", "trailing data after the JSON body")
	}
	return nil
}
