package client

import (
	"errors"
	"net/http"
	"testing"
)

// writeFailure: a write whose final answer is an error is reported as of
// unknown outcome when it may have been applied all the same (an earlier
// attempt's answer was lost, and this one is the retry's own; or the
// server says so), so a caller that re-issues only what certainly failed
// never applies a write twice.
func TestWriteFailure(t *testing.T) {
	oom := &Error{Status: http.StatusInsufficientStorage, Code: "out_of_memory"}
	notFound := &Error{Status: http.StatusNotFound, Code: "not_found"}
	casConflict := &Error{Status: http.StatusConflict, Code: "cas_conflict"}
	bad := &Error{Status: http.StatusBadRequest, Code: "bad_request"}
	internal := &Error{Status: http.StatusInternalServerError, Code: "internal"}
	gone := &Error{Status: http.StatusConflict, Code: "result_unavailable"}
	reused := &Error{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused"}
	forgotten := &Error{Status: http.StatusConflict, Code: "key_forgotten"}
	write, keyed, read := &call{write: true}, &call{write: true, keyed: true}, &call{}
	for _, tc := range []struct {
		name      string
		cl        *call
		ambiguous bool
		err       *Error
		unknown   bool
	}{
		{"first answer", write, false, oom, false},
		{"retry refused for memory", write, true, oom, true},
		{"retry of a keyed write refused for memory (checked before the key)", keyed, true, oom, true},
		{"retry finds the key gone", write, true, notFound, true},
		{"keyed retry: the first attempt's conflict, replayed", keyed, true, casConflict, false},
		{"malformed on any attempt", write, true, bad, false},
		{"server: outcome unknown", write, false, internal, true},
		{"server: applied once, result no longer held", keyed, false, gone, true},
		{"a caller's key used on another write", keyed, false, reused, false},
		{"a keyed retry told its key was used on another write", keyed, true, reused, true},
		{"server: a retry whose key may have been applied and forgotten", keyed, true, forgotten, true},
		{"a read", read, true, oom, false},
	} {
		err := writeFailure(tc.cl, tc.ambiguous, tc.err)
		if got := errors.Is(err, ErrUnknownOutcome); got != tc.unknown {
			t.Errorf("%s: %v: unknown outcome %v, want %v", tc.name, err, got, tc.unknown)
		}
		var e *Error
		if !errors.As(err, &e) || e != tc.err {
			t.Errorf("%s: %v does not wrap the server's answer", tc.name, err)
		}
	}
}
