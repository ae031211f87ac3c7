package transport

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

// errorStatus is the one table that turns errors into HTTP answers. The
// code is stable and machine-readable; clients switch on it (or on the
// status), never on the message. 503 always means "not applied, safe to
// retry"; 504 with unknown_outcome means a write may or may not have
// happened.
var errorStatus = []struct {
	err    error
	status int
	code   string
}{
	{fsm.ErrNotFound, http.StatusNotFound, "not_found"},
	{node.ErrUnknownMember, http.StatusNotFound, "unknown_member"},
	{node.ErrNoLeader, http.StatusServiceUnavailable, "no_leader"},
	{node.ErrNotLeader, http.StatusServiceUnavailable, "no_leader"},
	{node.ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
	{node.ErrTooStale, http.StatusServiceUnavailable, "too_stale"},
	{node.ErrClosed, http.StatusServiceUnavailable, "shutting_down"},
	{node.ErrPoisoned, http.StatusServiceUnavailable, "poisoned"},
	{node.ErrFeatureLevel, http.StatusConflict, "feature_level"},
	{node.ErrUnknownOutcome, http.StatusGatewayTimeout, "unknown_outcome"},
	{node.ErrIndexTimeout, http.StatusGatewayTimeout, "index_timeout"},
	{node.ErrTooMany, http.StatusBadRequest, "too_many"},
	{node.ErrTooLarge, http.StatusRequestEntityTooLarge, "too_large_for_memory"},
	{fsm.ErrConditionFailed, http.StatusPreconditionFailed, "cas_conflict"},
	{fsm.ErrBadSnapshot, http.StatusBadRequest, "bad_backup"},
	{node.ErrInvalid, http.StatusBadRequest, "invalid"},
	{fsm.ErrNotInteger, http.StatusConflict, "not_integer"},
	{fsm.ErrOverflow, http.StatusConflict, "overflow"},
}

// requestError is a problem with the request itself, found by transport
// before anything reaches the node.
type requestError struct {
	status int
	code   string
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(code, msg string) error {
	return &requestError{status: http.StatusBadRequest, code: code, msg: msg}
}

// errorBody is the JSON of every error response. CurrentVersion comes with
// cas_conflict (0: the key is absent); FailedOp with a failed batch.
type errorBody struct {
	Error          string  `json:"error"`
	Code           string  `json:"code"`
	CurrentVersion *uint64 `json:"current_version,omitempty"`
	FailedOp       *int    `json:"failed_op,omitempty"`
}

// writeError answers with the status and code the table gives err.
func writeError(w http.ResponseWriter, err error) {
	writeErrorBody(w, err, errorBody{})
}

// writeResultError answers a write whose command was applied but failed a
// check: a CAS conflict carries the current version.
func writeResultError(w http.ResponseWriter, err error, res *fsm.Result) {
	var extra errorBody
	if res != nil && errors.Is(err, fsm.ErrConditionFailed) {
		extra.CurrentVersion = &res.Current
		if res.Current != 0 {
			w.Header().Set("ETag", etag(res.Current))
		}
	}
	writeErrorBody(w, err, extra)
}

// errorCode looks err up in the table.
func errorCode(err error) (status int, code string) {
	var re *requestError
	if errors.As(err, &re) {
		return re.status, re.code
	}
	for _, e := range errorStatus {
		if errors.Is(err, e.err) {
			return e.status, e.code
		}
	}
	return http.StatusInternalServerError, "internal"
}

func writeErrorBody(w http.ResponseWriter, err error, body errorBody) {
	status, code := errorCode(err)
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	body.Error, body.Code = err.Error(), code
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
