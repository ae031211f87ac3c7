package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Errors a call can return, to be tested with errors.Is (they match
// through any wrapping). The server's machine-readable code decides which
// one an *Error matches.
var (
	// ErrNotFound: the key does not exist or has expired.
	ErrNotFound = errors.New("raftcache: not found")
	// ErrCASConflict: a compare-and-set condition failed; nothing was
	// written. errors.As to *CASConflictError gives the current version.
	ErrCASConflict = errors.New("raftcache: version conflict")
	// ErrNotInteger: Incr on a value that is not a decimal integer.
	ErrNotInteger = errors.New("raftcache: value is not an integer")
	// ErrOverflow: Incr would overflow int64.
	ErrOverflow = errors.New("raftcache: counter overflow")
	// ErrTooLarge: the value (or body) exceeds the server's limit, or can
	// never fit under its memory bound.
	ErrTooLarge = errors.New("raftcache: value too large")
	// ErrNoLeader: the cluster had no leader able to serve (503) until the
	// call gave up; nothing was applied.
	ErrNoLeader = errors.New("raftcache: no leader")
	// ErrOverloaded: the node refused the request because too many were in
	// flight (503 overloaded) until the call gave up; nothing was applied.
	ErrOverloaded = errors.New("raftcache: overloaded")
	// ErrUnknownOutcome: a write may or may not have been applied. The
	// client returns it when the context ended while the outcome of some
	// attempt was still unknown (a timeout, a reset connection, a 504
	// unknown_outcome) and no later attempt got an answer; when a retry
	// after such an attempt was refused for its own sake (a 507 once
	// memory filled up, a 404 once the key expired), wrapping that answer;
	// and when the server says so (500 internal; 409 result_unavailable:
	// applied once, its result no longer held). Any other error is
	// certain: the write was not applied.
	ErrUnknownOutcome = errors.New("raftcache: write outcome unknown")
	// ErrBadRequest: the server rejected the request as malformed.
	ErrBadRequest = errors.New("raftcache: bad request")
	// ErrUnauthorized: the server wants a (valid) bearer token (401); see
	// Config.Token.
	ErrUnauthorized = errors.New("raftcache: unauthorized")
	// ErrForbidden: the token's role does not allow the call (403).
	ErrForbidden = errors.New("raftcache: forbidden")
	// ErrUnknownMember: no member has that id.
	ErrUnknownMember = errors.New("raftcache: unknown member")
	// ErrRedirectRefused: a node redirected to a host that is not a known
	// cluster member (even after refreshing the membership), or to another
	// path. The client does not follow such redirects, so credentials
	// never leave the cluster; nothing was applied by that attempt.
	ErrRedirectRefused = errors.New("raftcache: redirect refused")
	// ErrTLS: the TLS handshake with the members failed: the client does
	// not trust their certificate (see Config.TLS: RootCAs), the server
	// refused the client's certificate or its lack of one, or one side
	// does not speak TLS. Nothing was applied. The error wraps the
	// crypto/tls or crypto/x509 error.
	ErrTLS = errors.New("raftcache: TLS handshake failed")
	// ErrFeatureLevel: the cluster refused a member whose binary is
	// older than the cluster's feature level (409 feature_level), or a
	// request that needs a higher level than the cluster runs at.
	ErrFeatureLevel = errors.New("raftcache: feature level too low")
	// ErrQuorumAtRisk: the cluster refused a membership change (removing
	// or demoting a voter) that would put its quorum at risk (409
	// quorum_at_risk): another voter does not answer, or the voters that
	// answer would not be a majority afterwards. The *Error's Unreachable
	// names the voters that did not answer. WithForce overrides.
	ErrQuorumAtRisk = errors.New("raftcache: membership change would put the quorum at risk")
	// ErrIdempotencyKeyReused: the key given with WithIdempotencyKey was
	// used before on a different write (422 idempotency_key_reused,
	// cluster feature level 6 on). Nothing was done; the first write's
	// result is not given, for it answered another write. A retry after
	// an attempt whose answer was lost reports ErrUnknownOutcome instead
	// (wrapping this): during an upgrade, a leader of another version may
	// have recorded the same write otherwise.
	ErrIdempotencyKeyReused = errors.New("raftcache: idempotency key used on a different write")
)

// Error is an error answer from the server.
type Error struct {
	Status  int    // HTTP status
	Code    string // the server's error code, e.g. "not_found"
	Message string
	// FailedOp is the index of the operation that failed in a Batch, or
	// -1.
	FailedOp int
	// Unreachable, with quorum_at_risk, lists the voters that did not
	// answer the leader.
	Unreachable []string
}

func (e *Error) Error() string {
	if e.FailedOp >= 0 {
		return fmt.Sprintf("raftcache: %s (%d %s, batch op %d)", e.Message, e.Status, e.Code, e.FailedOp)
	}
	return fmt.Sprintf("raftcache: %s (%d %s)", e.Message, e.Status, e.Code)
}

// Is maps the server's codes onto the sentinel errors.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == "not_found"
	case ErrCASConflict:
		return e.Code == "cas_conflict"
	case ErrNotInteger:
		return e.Code == "not_integer"
	case ErrOverflow:
		return e.Code == "overflow"
	case ErrTooLarge:
		return e.Status == http.StatusRequestEntityTooLarge
	case ErrNoLeader:
		return e.Status == http.StatusServiceUnavailable && e.Code != "overloaded"
	case ErrOverloaded:
		return e.Code == "overloaded"
	case ErrUnknownOutcome:
		return e.Code == "unknown_outcome"
	case ErrBadRequest:
		return e.Status == http.StatusBadRequest
	case ErrUnknownMember:
		return e.Code == "unknown_member"
	case ErrFeatureLevel:
		return e.Code == "feature_level"
	case ErrQuorumAtRisk:
		return e.Code == "quorum_at_risk"
	case ErrIdempotencyKeyReused:
		return e.Code == "idempotency_key_reused"
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	}
	return false
}

// CASConflictError is the error of a write whose version condition failed
// (WithCAS): nothing was written. It matches ErrCASConflict, and unwraps to
// the server's *Error.
type CASConflictError struct {
	// CurrentVersion is the key's version when the write was applied; 0
	// means the key did not exist.
	CurrentVersion uint64
	Err            *Error
}

func (e *CASConflictError) Error() string {
	return fmt.Sprintf("%v; current version %d", e.Err, e.CurrentVersion)
}

// Is reports whether target is ErrCASConflict.
func (e *CASConflictError) Is(target error) bool { return target == ErrCASConflict }

// Unwrap returns the server's *Error.
func (e *CASConflictError) Unwrap() error { return e.Err }

// RedirectError is a redirect the client refused to follow. It matches
// ErrRedirectRefused.
type RedirectError struct {
	Location string
	Reason   string
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("%v: %s: %q", ErrRedirectRefused, e.Reason, e.Location)
}

// Is reports whether target is ErrRedirectRefused.
func (e *RedirectError) Is(target error) bool { return target == ErrRedirectRefused }

func decodeError(resp *response) error {
	var body struct {
		Error          string   `json:"error"`
		Code           string   `json:"code"`
		CurrentVersion *uint64  `json:"current_version"`
		FailedOp       *int     `json:"failed_op"`
		Unreachable    []string `json:"unreachable"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil || body.Code == "" {
		body.Error, body.Code = http.StatusText(resp.status), fmt.Sprintf("http_%d", resp.status)
		if resp.status == http.StatusBadRequest && bytes.Contains(resp.body, []byte("HTTP request to an HTTPS server")) {
			// Go's own answer to plaintext on a TLS listener.
			body.Error = "the member serves HTTPS: use https:// endpoints (and Config.TLS for a private CA)"
		}
	}
	e := &Error{Status: resp.status, Code: body.Code, Message: body.Error, FailedOp: -1, Unreachable: body.Unreachable}
	if body.FailedOp != nil {
		e.FailedOp = *body.FailedOp
	}
	if body.Code == "cas_conflict" {
		ce := &CASConflictError{Err: e}
		if body.CurrentVersion != nil {
			ce.CurrentVersion = *body.CurrentVersion
		}
		return ce
	}
	return e
}
