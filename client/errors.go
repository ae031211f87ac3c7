package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Errors a call can return, to be tested with errors.Is. The server's
// machine-readable code decides which one an *Error matches.
var (
	// ErrNotFound: the key does not exist or has expired.
	ErrNotFound = errors.New("raftcache: not found")
	// ErrNoLeader: no leader could serve before the deadline; nothing was
	// applied.
	ErrNoLeader = errors.New("raftcache: no leader")
	// ErrUnknownOutcome: a write may or may not have been applied.
	ErrUnknownOutcome = errors.New("raftcache: write outcome unknown")
	// ErrTooLarge: the value exceeds the server's limit.
	ErrTooLarge = errors.New("raftcache: value too large")
	// ErrBadRequest: the server rejected the request as malformed.
	ErrBadRequest = errors.New("raftcache: bad request")
	// ErrUnknownMember: no member has that id.
	ErrUnknownMember = errors.New("raftcache: unknown member")
)

// Error is an error answer from the server.
type Error struct {
	Status  int    // HTTP status
	Code    string // the server's error code, e.g. "not_found"
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("raftcache: %s (%d %s)", e.Message, e.Status, e.Code)
}

// Is maps the server's codes onto the sentinel errors.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == "not_found"
	case ErrNoLeader:
		return e.Status == http.StatusServiceUnavailable
	case ErrUnknownOutcome:
		return e.Code == "unknown_outcome"
	case ErrTooLarge:
		return e.Status == http.StatusRequestEntityTooLarge
	case ErrBadRequest:
		return e.Status == http.StatusBadRequest
	case ErrUnknownMember:
		return e.Code == "unknown_member"
	}
	return false
}

func decodeError(resp *response) error {
	var body struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil || body.Code == "" {
		body.Error, body.Code = http.StatusText(resp.status), "http_"+fmt.Sprint(resp.status)
	}
	return &Error{Status: resp.status, Code: body.Code, Message: body.Error}
}
