package transport

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"
)

// maxRestoreBody bounds a restore upload; adminStreamTimeout bounds a
// backup download or a restore, beyond the server's usual timeouts.
const (
	maxRestoreBody     = 8 << 30
	adminStreamTimeout = 30 * time.Minute
)

// handleSnapshot streams a consistent backup of the cache, taken on the
// leader after a strong-read barrier (a follower redirects).
func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	if !s.node.IsLeader() {
		s.redirectOrFail(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), defaultWriteTimeout)
	defer cancel()
	// A large backup may take longer than the server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(adminStreamTimeout))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="raftcache.snap"`)
	// Errors before the first byte can still be reported as JSON.
	bw := &lazyWriter{w: w}
	if err := s.node.Backup(ctx, bw); err != nil {
		if !bw.started {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Del("Content-Disposition")
			s.readFailed(w, r, err)
			return
		}
		// Abort the connection: ending the response normally would hand
		// the client a complete-looking, truncated backup.
		s.logger.Warn("backup stream failed", "error", err)
		panic(http.ErrAbortHandler)
	}
}

// lazyWriter records whether anything was written.
type lazyWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	l.started = true
	return l.w.Write(p)
}

type restoreResponse struct {
	Keys  int    `json:"keys"`
	Index uint64 `json:"index"`
}

// handleRestore replaces the cache's contents with an uploaded backup,
// through the Raft log (see node.RestoreBackup).
func (s *Server) handleRestore(w http.ResponseWriter, r *http.Request) {
	if !s.node.IsLeader() {
		s.redirectOrFail(w, r)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(adminStreamTimeout))
	_ = rc.SetWriteDeadline(time.Now().Add(adminStreamTimeout))
	ctx, cancel := context.WithTimeout(r.Context(), adminStreamTimeout)
	defer cancel()
	keys, idx, err := s.node.RestoreBackup(ctx, http.MaxBytesReader(w, r.Body, maxRestoreBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = &requestError{http.StatusRequestEntityTooLarge, "body_too_large", "the backup is larger than the restore limit"}
	}
	if err != nil {
		s.writeFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, restoreResponse{Keys: keys, Index: idx})
}

type transferRequest struct {
	ID string `json:"id"` // empty: the most up-to-date follower
}

// handleTransfer hands leadership to another member.
func (s *Server) handleTransfer(w http.ResponseWriter, r *http.Request) {
	if !s.node.IsLeader() {
		s.redirectOrFail(w, r)
		return
	}
	var req transferRequest
	if r.ContentLength != 0 {
		if err := s.decodeJSON(w, r, maxJSONBody, &req); err != nil {
			writeError(w, err)
			return
		}
	}
	if err := s.node.TransferLeadership(req.ID); err != nil {
		s.writeFailed(w, r, err)
		return
	}
	// Answer with the new leader once this node has heard from it.
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	_ = s.node.WaitForLeader(ctx) // without one in time, the view says leader null
	s.handleCluster(w, r)
}

// handleVoter promotes (POST .../promote) or demotes (POST .../demote) a
// member.
func (s *Server) handleVoter(voter bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.node.IsLeader() {
			s.redirectOrFail(w, r)
			return
		}
		force, err := forceParam(r)
		if err != nil {
			writeError(w, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), defaultWriteTimeout)
		defer cancel()
		if err := s.node.SetVoter(ctx, mux.Vars(r)["id"], voter, force); err != nil {
			s.writeFailed(w, r, err)
			return
		}
		s.handleCluster(w, r)
	}
}
