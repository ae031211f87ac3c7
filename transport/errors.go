package transport

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

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
	{node.ErrQuorumAtRisk, http.StatusConflict, "quorum_at_risk"},
	{node.ErrRemoved, http.StatusServiceUnavailable, "removed"},
	{node.ErrUnknownOutcome, http.StatusGatewayTimeout, "unknown_outcome"},
	{node.ErrIndexTimeout, http.StatusGatewayTimeout, "index_timeout"},
	{node.ErrTooMany, http.StatusBadRequest, "too_many"},
	{node.ErrKeyTooLarge, http.StatusBadRequest, "key_too_large"},
	{node.ErrValueTooLarge, http.StatusRequestEntityTooLarge, "value_too_large"},
	{fsm.ErrValueTooLarge, http.StatusRequestEntityTooLarge, "value_too_large"}, // a limit lowered after the command was proposed
	{node.ErrTooLarge, http.StatusRequestEntityTooLarge, "too_large_for_memory"},
	{node.ErrOOM, http.StatusInsufficientStorage, "out_of_memory"},
	{node.ErrOutOfMemory, http.StatusInsufficientStorage, "out_of_memory"},
	{fsm.ErrConditionFailed, http.StatusPreconditionFailed, "cas_conflict"},
	{fsm.ErrBadSnapshot, http.StatusBadRequest, "bad_backup"},
	{node.ErrInvalid, http.StatusBadRequest, "invalid"},
	{fsm.ErrNotInteger, http.StatusConflict, "not_integer"},
	{fsm.ErrOverflow, http.StatusConflict, "overflow"},
	{fsm.ErrWrongType, http.StatusConflict, "wrong_type"},
	{fsm.ErrCommandFailed, http.StatusInternalServerError, "internal"},
	{fsm.ErrNewerLevel, http.StatusConflict, "feature_level"},
	{errResultLost, http.StatusConflict, "result_unavailable"},
	{fsm.ErrResendForgotten, http.StatusConflict, "key_forgotten"}, // settled: sending it again cannot tell more
	{fsm.ErrRequestMismatch, http.StatusUnprocessableEntity, "idempotency_key_reused"},
	{node.ErrCompacted, http.StatusGone, "compacted"},
	{node.ErrBadEventID, http.StatusBadRequest, "bad_event_id"},
	{node.ErrWatchLimit, http.StatusServiceUnavailable, "too_many_watches"},
}

// errResultLost: a retried request (same Idempotency-Key) was applied
// before, but its result is no longer known (the state machine keeps only
// that a request ran across a snapshot restore, not its replies).
var errResultLost = errors.New("the request with this Idempotency-Key was applied before, but its result is no longer kept; read the key instead")

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
	// Unreachable comes with quorum_at_risk: the voters that did not
	// answer the leader.
	Unreachable []string `json:"unreachable,omitempty"`
}

// writeError answers with the status and code the table gives err.
func writeError(w http.ResponseWriter, err error) {
	writeErrorBody(w, err, errorBody{})
}

// writeReplyError answers a command's error reply (the command reached
// the state machine and failed a check): a failed condition carries the
// key's current version, and its ETag when the key exists.
func writeReplyError(w http.ResponseWriter, err error) {
	var body errorBody
	var e *fsm.Error
	if errors.As(err, &e) && errors.Is(err, fsm.ErrConditionFailed) {
		cur := e.Current
		body.CurrentVersion = &cur
		if cur != 0 {
			w.Header().Set("ETag", etag(cur))
		}
	}
	writeErrorBody(w, err, body)
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
	var qe *node.QuorumError
	if errors.As(err, &qe) {
		body.Unreachable = append([]string{}, qe.Unreachable...)
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	body.Error, body.Code = errorMessage(err), code
	writeJSON(w, status, body)
}

// errorMessage is err's text for an HTTP client: a command's error reply
// (an *fsm.Error, whose text is a Redis error line) says what its code
// says.
func errorMessage(err error) string {
	var e *fsm.Error
	if errors.As(err, &e) && e.Code != nil {
		return e.Code.Error()
	}
	return err.Error()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header()["Content-Type"] = jsonType
	w.WriteHeader(status)
	if wr, ok := v.(writeResponse); ok {
		// The answer to every PUT, formatted by hand: byte for byte what
		// the encoder writes (the JSON of two integers cannot differ).
		var buf [64]byte
		b := append(buf[:0], `{"version":`...)
		b = strconv.AppendUint(b, wr.Version, 10)
		b = append(b, `,"index":`...)
		b = strconv.AppendUint(b, wr.Index, 10)
		b = append(b, "}\n"...)
		_, _ = w.Write(b)
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}
