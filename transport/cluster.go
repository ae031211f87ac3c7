package transport

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/raftcache/raftcache/node"
)

type memberJSON struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
	Voter    bool   `json:"voter"`
}

type leaderJSON struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
}

type clusterJSON struct {
	NodeID        string       `json:"node_id"`
	State         string       `json:"state"`
	Leader        *leaderJSON  `json:"leader"`
	Term          uint64       `json:"term"`
	CommitIndex   uint64       `json:"commit_index"`
	AppliedIndex  uint64       `json:"applied_index"`
	LastContactMS int64        `json:"last_contact_ms"`
	Members       []memberJSON `json:"members"`
}

func (s *Server) handleCluster(w http.ResponseWriter, r *http.Request) {
	st := s.node.Status()
	members, err := s.node.Members()
	if err != nil {
		writeError(w, err)
		return
	}
	out := clusterJSON{
		NodeID:        s.node.ID(),
		State:         st.State,
		Term:          st.Term,
		CommitIndex:   st.CommitIndex,
		AppliedIndex:  st.AppliedIndex,
		LastContactMS: st.LastContact.Milliseconds(),
		Members:       []memberJSON{},
	}
	if st.HasLeader {
		out.Leader = &leaderJSON{ID: st.Leader.ID, HTTPAddr: st.Leader.HTTPAddr, RaftAddr: st.Leader.RaftAddr}
	}
	for _, m := range members {
		out.Members = append(out.Members, memberJSON{ID: m.ID, HTTPAddr: m.HTTPAddr, RaftAddr: m.RaftAddr, Voter: m.Voter})
	}
	w.Header().Set("X-Raft-Index", strconv.FormatUint(st.AppliedIndex, 10))
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAddMember(w http.ResponseWriter, r *http.Request) {
	if !s.node.IsLeader() {
		s.redirectOrFail(w, r)
		return
	}
	var m memberJSON
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		writeError(w, badRequest("bad_json", "the body must be {\"id\",\"raft_addr\",\"http_addr\"}: "+err.Error()))
		return
	}
	if err := validateMember(m); err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), defaultWriteTimeout)
	defer cancel()
	err := s.node.AddMember(ctx, node.Member{ID: m.ID, RaftAddr: m.RaftAddr, HTTPAddr: m.HTTPAddr, Voter: true})
	if err != nil {
		s.writeFailed(w, r, err)
		return
	}
	m.Voter = true
	writeJSON(w, http.StatusOK, m)
}

func validateMember(m memberJSON) error {
	if m.ID == "" || len(m.ID) > 128 {
		return badRequest("bad_member", "id must be 1 to 128 bytes")
	}
	for name, addr := range map[string]string{"raft_addr": m.RaftAddr, "http_addr": m.HTTPAddr} {
		host, port, err := net.SplitHostPort(addr)
		if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p <= 0 || p > 65535 {
			return badRequest("bad_member", name+" must be host:port with a port from 1 to 65535, not "+strconv.Quote(addr))
		}
	}
	return nil
}

func (s *Server) handleRemoveMember(w http.ResponseWriter, r *http.Request) {
	if !s.node.IsLeader() {
		s.redirectOrFail(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), defaultWriteTimeout)
	defer cancel()
	id := mux.Vars(r)["id"]
	if err := s.node.RemoveMember(ctx, id); err != nil {
		s.writeFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"removed": id})
}

type statsJSON struct {
	NodeID           string `json:"node_id"`
	Keys             int    `json:"keys"`
	Bytes            int64  `json:"bytes"`
	Hits             uint64 `json:"hits"`
	Misses           uint64 `json:"misses"`
	AppliedIndex     uint64 `json:"applied_index"`
	Digest           string `json:"digest"`
	StrongReadRounds uint64 `json:"strong_read_rounds"`
	StrongReads      uint64 `json:"strong_reads"`
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	st := s.node.FSM().Stats()
	rs := s.node.ReadStats()
	writeJSON(w, http.StatusOK, statsJSON{
		NodeID: s.node.ID(), Keys: st.Keys, Bytes: st.Bytes, Hits: st.Hits, Misses: st.Misses,
		AppliedIndex: st.AppliedIndex, Digest: st.Digest,
		StrongReadRounds: rs.Rounds, StrongReads: rs.Reads,
	})
}

func (s *Server) handleLivez(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if !s.node.Ready() {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "no known leader, or the local state is behind the commit index", Code: "not_ready"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
