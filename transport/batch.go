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

// handleBatch applies many sets, deletes and increments in one Raft entry.
// Atomic batches (the default) apply all or nothing: if any condition
// fails, the answer is the error of the first failed op (failed_op).
func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	if !s.node.IsLeader() {
		s.redirectOrFail(w, r)
		return
	}
	var req batchRequest
	if err := s.decodeJSON(w, r, 2*s.cfg.MaxValueSize+(1<<20), &req); err != nil {
		writeError(w, err)
		return
	}
	if len(req.Ops) == 0 || len(req.Ops) > fsm.MaxBatch {
		writeError(w, badRequest("bad_batch", "a batch needs 1 to "+strconv.Itoa(fsm.MaxBatch)+" ops"))
		return
	}
	ops := make([]node.Op, len(req.Ops))
	for i := range req.Ops {
		var err error
		if ops[i], err = s.batchOp(&req.Ops[i]); err != nil {
			writeError(w, badRequest("bad_batch", "op "+strconv.Itoa(i)+": "+err.Error()))
			return
		}
	}
	atomic := req.Atomic == nil || *req.Atomic
	reqID, err := requestID(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), defaultWriteTimeout)
	defer cancel()
	res, err := s.node.WriteBatch(ctx, ops, atomic, reqID)
	if res != nil && res.Duplicate {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if err != nil {
		if res != nil {
			for i := range res.Results {
				if res.Results[i].Err != nil {
					writeBatchError(w, res.Results[i].Err, &res.Results[i], i)
					return
				}
			}
		}
		s.writeFailed(w, r, err, nil)
		return
	}
	out := batchResponse{Index: res.Index, Results: make([]batchResult, len(res.Results))}
	for i, sub := range res.Results {
		if sub.Err != nil {
			_, out.Results[i].Code = errorCode(sub.Err)
			out.Results[i].Error = sub.Err.Error()
			if errors.Is(sub.Err, fsm.ErrConditionFailed) {
				out.Results[i].CurrentVersion = &res.Results[i].Current
			}
			continue
		}
		switch ops[i].Kind {
		case fsm.OpSet:
			out.Results[i].Version = sub.Version
		case fsm.OpDelete:
			out.Results[i].Deleted = &res.Results[i].Deleted
		case fsm.OpIncr:
			out.Results[i].Value = &res.Results[i].Value
			out.Results[i].Version = sub.Version
		}
	}
	w.Header().Set("X-Raft-Index", strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, out)
}

func writeBatchError(w http.ResponseWriter, err error, sub *fsm.Result, i int) {
	body := errorBody{FailedOp: &i}
	if errors.Is(err, fsm.ErrConditionFailed) {
		body.CurrentVersion = &sub.Current
	}
	writeErrorBody(w, err, body)
}

func (s *Server) batchOp(b *batchOp) (node.Op, error) {
	var op node.Op
	key, err := pickText(b.Key, b.KeyB64, "key")
	if err != nil {
		return op, err
	}
	if len(key) == 0 || len(key) > MaxKeySize {
		return op, errors.New("the key must be 1 to " + strconv.Itoa(MaxKeySize) + " bytes")
	}
	op.Key = key
	if op.TTL, err = parseTTL(b.TTL); err != nil {
		return op, err
	}
	if b.CAS != nil {
		op.Cond, op.Version = fsm.CondVersion, *b.CAS
		if *b.CAS == 0 {
			op.Cond = fsm.CondAbsent
		}
	}
	switch b.Op {
	case "set":
		op.Kind = fsm.OpSet
		if op.Value, err = pickText(b.Value, b.ValueB64, "value"); err != nil {
			return op, err
		}
		if int64(len(op.Value)) > s.cfg.MaxValueSize {
			return op, errors.New("the value is larger than the limit")
		}
		if err := s.fits(len(key), int64(len(op.Value))); err != nil {
			return op, err
		}
	case "delete":
		op.Kind = fsm.OpDelete
		if b.TTL != "" {
			return op, errors.New("delete takes no ttl")
		}
	case "incr":
		op.Kind, op.By = fsm.OpIncr, 1
		if b.By != nil {
			op.By = *b.By
		}
		if b.CAS != nil {
			return op, errors.New("incr takes no cas")
		}
	default:
		return op, errors.New("op must be set, delete or incr, not " + strconv.Quote(b.Op))
	}
	return op, nil
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

// handleBatchGet reads many keys from one state of the cache, at the
// consistency the query asks for (?consistency=stale, ...), as GET does.
func (s *Server) handleBatchGet(w http.ResponseWriter, r *http.Request) {
	opt, wait, err := readOptions(r.URL.Query())
	if err != nil {
		writeError(w, err)
		return
	}
	var req batchGetRequest
	if err := s.decodeJSON(w, r, maxJSONBody+maxBatchGetKeys*MaxKeySize*2, &req); err != nil {
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
		if keys[i], err = decodeText(k, b64); err != nil || len(keys[i]) == 0 || len(keys[i]) > MaxKeySize {
			writeError(w, badRequest("bad_key", "key "+strconv.Itoa(i)+" is empty, too long or not valid base64"))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	info, err := s.node.PrepareRead(ctx, opt)
	if err != nil {
		s.readFailed(w, r, err)
		return
	}
	out := batchGetResponse{Items: make([]batchGetItem, len(keys)), Index: info.Index}
	now := s.node.Now()
	for i, k := range keys {
		it := &out.Items[i]
		if utf8.Valid(k) {
			it.Key = string(k)
		} else {
			it.KeyB64 = base64.StdEncoding.EncodeToString(k)
		}
		e, err := s.node.FSM().Get(k, now)
		if err != nil {
			continue
		}
		it.Found, it.Version = true, e.Version
		if utf8.Valid(e.Value) {
			v := string(e.Value)
			it.Value = &v
		} else {
			v := base64.StdEncoding.EncodeToString(e.Value)
			it.ValueB64 = &v
		}
	}
	w.Header().Set("X-Raft-Index", strconv.FormatUint(info.Index, 10))
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
