package transport

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/raftcache/raftcache/auth"
	"github.com/raftcache/raftcache/fsm"
)

// POST /v1/eval runs a Lua script with the semantics and limits of EVAL
// on the Redis port (docs/api.md): the body is
//
//	{"script": "...", "keys": ["k"], "args": ["a"]}   or   {"sha": "...", ...}
//
// with "readonly": true for EVAL_RO. Keys and args may be given in base64
// with "encoding": "base64". A script that may write needs the write role
// and runs through the log on the leader (a follower redirects with 307);
// a read-only one (readonly, or a no-writes shebang) needs the read role
// and is served at ?consistency= like GET. The reply is
// {"result": ..., "index": N}, where a bulk string is a JSON string (or
// {"b64": ...} when it is not UTF-8), a status {"ok": ...}, nil null, and
// an array a JSON array. A script error is 400 script_error with Redis's
// message; EVALSHA of an unknown script 404 noscript.

type evalRequest struct {
	Script   *string  `json:"script"`
	SHA      string   `json:"sha"`
	Keys     []string `json:"keys"`
	Args     []string `json:"args"`
	ReadOnly bool     `json:"readonly"`
	Encoding string   `json:"encoding"` // utf8 (default) or base64, for keys and args
}

type evalResponse struct {
	Result any    `json:"result"`
	Index  uint64 `json:"index"`
}

func (s *Server) handleEval(w http.ResponseWriter, r *http.Request) {
	var req evalRequest
	if err := s.decodeJSON(w, r, s.node.MaxValueSize()+fsm.ScriptMaxBody+(1<<20), &req); err != nil {
		writeError(w, err)
		return
	}
	args, err := evalArgs(&req)
	if err != nil {
		writeError(w, err)
		return
	}
	if !fsm.Writes(args, s.node.LocalView()) {
		s.evalRead(w, r, args)
		return
	}
	if p, ok := PrincipalFrom(r.Context()); ok && s.cfg.Auth != nil && p.Role < auth.RoleWrite {
		writeError(w, &requestError{http.StatusForbidden, "forbidden", "token " + p.Name + " has role " + p.Role.String() +
			"; a script that may write needs write (use readonly, or a #!lua flags=no-writes script)"})
		return
	}
	if !s.node.IsLeader() {
		s.redirectOrFail(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), defaultWriteTimeout)
	defer cancel()
	res, err := s.node.Exec(ctx, fsm.Unit{Cmds: [][][]byte{args}})
	if err != nil {
		if evalRefused(w, err) {
			return
		}
		s.writeFailed(w, r, err)
		return
	}
	writeEvalReply(w, res[0].Replies[0], res[0].Index)
}

func (s *Server) evalRead(w http.ResponseWriter, r *http.Request, args [][]byte) {
	opt, wait, err := readOptions(queryFrom(r))
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	v, err := s.node.View(ctx, opt)
	if err != nil {
		s.readFailed(w, r, err)
		return
	}
	writeEvalReply(w, v.Exec(args), v.Index())
}

// evalArgs builds EVAL's (or EVALSHA's, EVAL_RO's...) argument vector.
func evalArgs(req *evalRequest) ([][]byte, error) {
	b64 := req.Encoding == "base64"
	if !b64 && req.Encoding != "" && req.Encoding != "utf8" {
		return nil, badRequest("bad_encoding", "encoding must be utf8 or base64")
	}
	var args [][]byte
	switch {
	case req.Script != nil && req.SHA != "":
		return nil, badRequest("bad_eval", "give script or sha, not both")
	case req.Script != nil:
		name := "eval"
		if req.ReadOnly {
			name = "eval_ro"
		}
		args = [][]byte{[]byte(name), []byte(*req.Script)}
	case req.SHA != "":
		name := "evalsha"
		if req.ReadOnly {
			name = "evalsha_ro"
		}
		args = [][]byte{[]byte(name), []byte(req.SHA)}
	default:
		return nil, badRequest("bad_eval", "give script or sha")
	}
	args = append(args, []byte(strconv.Itoa(len(req.Keys))))
	for i, list := range [][]string{req.Keys, req.Args} {
		for j, v := range list {
			b, err := decodeText(v, b64)
			if err != nil {
				return nil, badRequest("bad_eval", [2]string{"key ", "arg "}[i]+strconv.Itoa(j)+" is not valid base64")
			}
			if i == 0 && (len(b) == 0 || len(b) > MaxKeySize) {
				return nil, badRequest("bad_key", "key "+strconv.Itoa(j)+" must be 1 to "+strconv.Itoa(MaxKeySize)+" bytes")
			}
			args = append(args, b)
		}
	}
	return args, nil
}

// evalRefused answers the errors only scripts have: a script that does
// not compile (refused before proposing) and the engine's own replies.
func evalRefused(w http.ResponseWriter, err error) bool {
	var fe *fsm.Error
	if !errors.As(err, &fe) {
		return false
	}
	writeEvalError(w, fe)
	return true
}

func writeEvalError(w http.ResponseWriter, fe *fsm.Error) {
	status, code := http.StatusBadRequest, "script_error"
	switch {
	case errors.Is(fe, fsm.ErrNoScript):
		status, code = http.StatusNotFound, "noscript"
	case errors.Is(fe, fsm.ErrReadOnly):
		status, code = http.StatusBadRequest, "read_only"
	}
	writeJSON(w, status, errorBody{Error: fe.Msg, Code: code})
}

func writeEvalReply(w http.ResponseWriter, rep fsm.Reply, index uint64) {
	if rep.IsError() {
		fe := &fsm.Error{Code: rep.Err, Msg: fsm.ErrorText(rep.Err)}
		errors.As(rep.Err, &fe)
		writeEvalError(w, fe)
		return
	}
	w.Header().Set("X-Raft-Index", strconv.FormatUint(index, 10))
	writeJSON(w, http.StatusOK, evalResponse{Result: evalJSON(rep), Index: index})
}

// evalJSON is a reply as JSON.
func evalJSON(r fsm.Reply) any {
	switch r.Kind {
	case fsm.KindNull, fsm.KindNullArray:
		return nil
	case fsm.KindStatus:
		return map[string]string{"ok": string(r.Bulk)}
	case fsm.KindError:
		return map[string]string{"err": fsm.ErrorText(r.Err)}
	case fsm.KindInt:
		return r.Int
	case fsm.KindDouble:
		return r.Float
	case fsm.KindBulk:
		if utf8.Valid(r.Bulk) {
			return string(r.Bulk)
		}
		return map[string]string{"b64": base64.StdEncoding.EncodeToString(r.Bulk)}
	}
	out := make([]any, len(r.Elems))
	for i, e := range r.Elems {
		out[i] = evalJSON(e)
	}
	return out
}
