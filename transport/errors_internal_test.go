package transport

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

// The errors node and the command engine return map through the one
// table, wrapped however they come: node's limits checked before
// proposing, the engine's error replies, the cluster's feature level.
func TestErrorTableMapsEngineAndLimitErrors(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{node.CheckKey(make([]byte, node.MaxKeySize+1)), 400, "key_too_large"},
		{&node.LimitError{Err: node.ErrValueTooLarge, Limit: 10, Size: 11}, 413, "value_too_large"},
		{&node.LimitError{Err: node.ErrTooLarge, Limit: 100, Size: 200}, 413, "too_large_for_memory"},
		{fmt.Errorf("%w: level 1, needs 2", node.ErrFeatureLevel), 409, "feature_level"},
		{fmt.Errorf("%w: 5000 commands", node.ErrTooMany), 400, "too_many"},
		{&fsm.Error{Code: fsm.ErrConditionFailed, Msg: "ERR condition failed", Current: 7}, 412, "cas_conflict"},
		{fsm.ErrNotInteger, 409, "not_integer"},
		{&fsm.Error{Code: fsm.ErrOverflow, Msg: "ERR decrement would overflow"}, 409, "overflow"},
		{fsm.ErrNotFound, 404, "not_found"},
		{fsm.ErrValueTooLarge, 413, "value_too_large"},
		{errResultLost, 409, "result_unavailable"},
		{&node.QuorumError{Unreachable: []string{"n3"}, Reason: "r"}, 409, "quorum_at_risk"},
		{fmt.Errorf("%w: why", node.ErrRemoved), 503, "removed"},
		{&fsm.Error{Code: fsm.ErrSyntax, Msg: "ERR syntax error"}, 500, "internal"}, // a command transport built wrong
	} {
		if status, code := errorCode(c.err); status != c.status || code != c.code {
			t.Errorf("%v: %d %s, want %d %s", c.err, status, code, c.status, c.code)
		}
	}
	if got := node.CheckKey(make([]byte, node.MaxKeySize)); got != nil {
		t.Errorf("a key of exactly MaxKeySize: %v", got)
	}
}

// An error reply is answered in HTTP's words (the sentinel's text, not
// the Redis error line), a failed condition with the current version and
// its ETag.
func TestReplyErrorBody(t *testing.T) {
	w := httptest.NewRecorder()
	writeReplyError(w, &fsm.Error{Code: fsm.ErrConditionFailed, Msg: "ERR condition failed", Current: 7})
	body := w.Body.String()
	if w.Code != http.StatusPreconditionFailed || w.Header().Get("ETag") != `"7"` ||
		!strings.Contains(body, `"current_version":7`) || !strings.Contains(body, `"error":"condition failed"`) {
		t.Errorf("condition failed: %d ETag %q %s", w.Code, w.Header().Get("ETag"), body)
	}
	w = httptest.NewRecorder()
	writeReplyError(w, &fsm.Error{Code: fsm.ErrConditionFailed, Msg: "ERR condition failed"})
	if w.Header().Get("ETag") != "" || !strings.Contains(w.Body.String(), `"current_version":0`) {
		t.Errorf("condition failed on an absent key: ETag %q %s", w.Header().Get("ETag"), w.Body.String())
	}
}

// A refused membership change names the unreachable voters in its body.
func TestQuorumErrorBody(t *testing.T) {
	w := httptest.NewRecorder()
	writeError(w, fmt.Errorf("removing: %w", &node.QuorumError{Unreachable: []string{"n2", "n3"}, Reason: "r"}))
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), `"code":"quorum_at_risk"`) ||
		!strings.Contains(w.Body.String(), `"unreachable":["n2","n3"]`) {
		t.Fatalf("quorum error: %d %s", w.Code, w.Body)
	}
}
