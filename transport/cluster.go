package transport

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/gorilla/mux"

	"github.com/raftcache/raftcache/fsm"
	"github.com/raftcache/raftcache/node"
)

type memberJSON struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
	RESPAddr string `json:"resp_addr,omitempty"`
	Voter    bool   `json:"voter"`
	// Addrs is every named address the member registered ("http",
	// "redis", ...); Incarnation the id of its data directory.
	Addrs       map[string]string `json:"addrs,omitempty"`
	Incarnation string            `json:"incarnation,omitempty"`
	// FeatureLevel is the level of the member's binary as recorded or
	// last asked by the leader; 0 = unknown.
	FeatureLevel uint32 `json:"feature_level"`
	// State is voter, catching_up (a learner the leader promotes once it
	// has caught up and stayed healthy) or learner.
	State string `json:"state,omitempty"`
	// LastHeardMS is, in the leader's view, how long ago the member last
	// answered the leader's probe; absent when unknown.
	LastHeardMS *int64 `json:"last_heard_ms,omitempty"`
	// Version is the member's build as it last told the answering node's
	// probe (on the leader), or the answering node's own; absent unknown.
	Version string `json:"version,omitempty"`
}

// addMemberJSON is POST /v1/cluster/members; voter defaults to true,
// feature_level to 1 (a joiner from before levels does not send it).
type addMemberJSON struct {
	ID           string            `json:"id"`
	HTTPAddr     string            `json:"http_addr"`
	RaftAddr     string            `json:"raft_addr"`
	RESPAddr     string            `json:"resp_addr"`
	Voter        *bool             `json:"voter"`
	Addrs        map[string]string `json:"addrs"`
	Incarnation  string            `json:"incarnation"`
	FeatureLevel uint32            `json:"feature_level"`
}

// nodeJSON is GET /v1/node: what this node's binary is.
type nodeJSON struct {
	ID           string `json:"id"`
	FeatureLevel uint32 `json:"feature_level"`
	Incarnation  string `json:"incarnation"`
	// State is the node's Raft state; AppliedIndex what its cache has
	// applied; Removed, if set, says why it is out of the cluster.
	State        string `json:"state"`
	AppliedIndex uint64 `json:"applied_index"`
	Removed      string `json:"removed,omitempty"`
	// Version and Revision are the binary's (module version, VCS
	// revision); ClusterID is its data directory's cluster id.
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	ClusterID string `json:"cluster_id,omitempty"`
	// MaxMemory is the node's own memory bound (0: none); the leader
	// enforces the smallest any member reports.
	MaxMemory int64 `json:"max_memory"`
	// Registered: the cluster registered this data directory, so it may
	// vote; the leader promotes a learner only once it is.
	Registered bool `json:"registered"`
}

// formationJSON is GET /v1/cluster/formation: what a founder of a
// --bootstrap-expect cluster needs to know of every other.
type formationJSON struct {
	ID           string `json:"id"`
	RaftAddr     string `json:"raft_addr"`
	HTTPAddr     string `json:"http_addr"`
	Incarnation  string `json:"incarnation"`
	HasState     bool   `json:"has_state"`
	ClusterID    string `json:"cluster_id"`
	FeatureLevel uint32 `json:"feature_level"`
	Version      string `json:"version"`
	// Founders: the list this process formed the cluster with, if it did.
	Founders []founderJSON `json:"founders,omitempty"`
}

// founderJSON is one founder of a formation answer's list.
type founderJSON struct {
	ID           string `json:"id"`
	RaftAddr     string `json:"raft_addr"`
	Incarnation  string `json:"incarnation"`
	FeatureLevel uint32 `json:"feature_level,omitempty"`
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
	// FeatureLevel is this node's binary's; ClusterFeatureLevel the
	// cluster's, as applied here.
	FeatureLevel        uint32 `json:"feature_level"`
	ClusterFeatureLevel uint32 `json:"cluster_feature_level"`
	// Removed, if set, says why this node is out of the cluster.
	Removed string `json:"removed,omitempty"`
	// ClusterID is the cluster's id as this node's data directory holds
	// it (absent for a cluster formed before cluster ids); a joining node
	// adopts it. Version and Revision are this node's binary's.
	ClusterID string `json:"cluster_id,omitempty"`
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
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

		FeatureLevel:        s.node.FeatureLevel(),
		ClusterFeatureLevel: s.node.ClusterLevel(),
		ClusterID:           s.node.ClusterID(),
		Version:             node.BuildInfo().Version,
		Revision:            node.BuildInfo().Revision,
	}
	if st.HasLeader {
		out.Leader = &leaderJSON{ID: st.Leader.ID, HTTPAddr: st.Leader.HTTPAddr, RaftAddr: st.Leader.RaftAddr}
	}
	if err := s.node.RemovedReason(); err != nil {
		out.Removed = err.Error()
	}
	for _, m := range members {
		mj := memberJSON{ID: m.ID, HTTPAddr: m.HTTPAddr, RaftAddr: m.RaftAddr, RESPAddr: m.RESPAddr, Voter: m.Voter,
			Addrs: m.Addrs, Incarnation: m.Incarnation, FeatureLevel: m.Level, State: m.State, Version: m.Version}
		if m.LastHeard >= 0 {
			ms := m.LastHeard.Milliseconds()
			mj.LastHeardMS = &ms
		}
		out.Members = append(out.Members, mj)
	}
	w.Header().Set("X-Raft-Index", strconv.FormatUint(st.AppliedIndex, 10))
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAddMember(w http.ResponseWriter, r *http.Request) {
	if !s.node.IsLeader() {
		s.redirectOrFail(w, r)
		return
	}
	var req addMemberJSON
	if err := s.decodeJSON(w, r, maxJSONBody, &req); err != nil {
		writeError(w, err)
		return
	}
	m := memberJSON{ID: req.ID, HTTPAddr: req.HTTPAddr, RaftAddr: req.RaftAddr, RESPAddr: req.RESPAddr, Voter: req.Voter == nil || *req.Voter,
		Addrs: req.Addrs, Incarnation: req.Incarnation, FeatureLevel: max(req.FeatureLevel, 1)}
	if err := validateMember(m); err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), defaultWriteTimeout)
	defer cancel()
	err := s.node.AddMember(ctx, node.Member{ID: m.ID, RaftAddr: m.RaftAddr, HTTPAddr: m.HTTPAddr, RESPAddr: m.RESPAddr, Voter: m.Voter,
		Addrs: m.Addrs, Incarnation: m.Incarnation, Level: m.FeatureLevel})
	if err != nil {
		s.writeFailed(w, r, err)
		return
	}
	// Learner first: the answer says where the member stands now (voter
	// only if it already was one; catching_up if it asked for a vote).
	m.State, m.Voter = node.StateLearner, false
	if st, err := s.node.MemberState(m.ID); err == nil {
		m.State, m.Voter = st, st == node.StateVoter
	}
	writeJSON(w, http.StatusOK, m)
}

func validateMember(m memberJSON) error {
	if m.ID == "" || len(m.ID) > 128 {
		return badRequest("bad_member", "id must be 1 to 128 bytes")
	}
	if len(m.Addrs) > fsm.MaxMemberAddrs || len(m.Incarnation) > 128 {
		return badRequest("bad_member", "at most "+strconv.Itoa(fsm.MaxMemberAddrs)+" addrs and an incarnation of at most 128 bytes")
	}
	addrs := map[string]string{"raft_addr": m.RaftAddr, "http_addr": m.HTTPAddr}
	if m.RESPAddr != "" {
		addrs["resp_addr"] = m.RESPAddr
	}
	for name, addr := range m.Addrs {
		if name == "" || len(name) > 64 {
			return badRequest("bad_member", "an address name must be 1 to 64 bytes")
		}
		addrs["addrs."+name] = addr
	}
	for name, addr := range addrs {
		host, port, err := net.SplitHostPort(addr)
		if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p <= 0 || p > 65535 {
			return badRequest("bad_member", name+" must be host:port with a port from 1 to 65535, not "+strconv.Quote(addr))
		}
		if err := node.CheckAdvertisable(addr); err != nil {
			return badRequest("bad_member", name+": "+err.Error())
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
	force, err := forceParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.node.RemoveMember(ctx, id, force); err != nil {
		s.writeFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"removed": id})
}

type statsJSON struct {
	NodeID           string `json:"node_id"`
	Keys             int    `json:"keys"`
	Bytes            int64  `json:"bytes"`
	MaxMemory        int64  `json:"max_memory"`
	Hits             uint64 `json:"hits"`
	Misses           uint64 `json:"misses"`
	Evictions        uint64 `json:"evictions"`
	Expirations      uint64 `json:"expirations"`
	Sets             uint64 `json:"sets"`
	Deletes          uint64 `json:"deletes"`
	AppliedIndex     uint64 `json:"applied_index"`
	Digest           string `json:"digest"`
	StrongReadRounds uint64 `json:"strong_read_rounds"`
	StrongReads      uint64 `json:"strong_reads"`
	RequestIDs       int    `json:"request_ids"`
	RequestIDBytes   int64  `json:"request_id_bytes"`
}

type clusterStatsJSON struct {
	Scope  string            `json:"scope"`
	Hits   uint64            `json:"hits"`   // summed over the members that answered
	Misses uint64            `json:"misses"` // summed over the members that answered
	Nodes  []statsJSON       `json:"nodes"`
	Errors map[string]string `json:"errors,omitempty"` // member id -> why it is missing
}

// handleStats reports this node's statistics, or with ?scope=cluster asks
// every member and sums what is local to each (hits, misses); replicated
// figures (keys, bytes, counters, digest) are per node, to compare.
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Query().Get("scope") {
	case "", "node":
		writeJSON(w, http.StatusOK, s.localStats())
	case "cluster":
		writeJSON(w, http.StatusOK, s.clusterStats(r.Context(), r.Header.Get("Authorization")))
	default:
		writeError(w, badRequest("bad_scope", "scope must be node or cluster"))
	}
}

func (s *Server) localStats() statsJSON {
	v := s.node.LocalView() // one state: the digest is of the keys counted, at applied_index
	st := v.Stats()
	rs := s.node.ReadStats()
	return statsJSON{
		NodeID: s.node.ID(), Keys: st.Keys, Bytes: st.Bytes, MaxMemory: s.node.MaxMemory(),
		Hits: st.Hits, Misses: st.Misses, Evictions: st.Evictions, Expirations: st.Expirations,
		Sets: st.Sets, Deletes: st.Deletes, AppliedIndex: v.Index(), Digest: v.Digest(),
		StrongReadRounds: rs.Rounds, StrongReads: rs.Reads, RequestIDs: st.RequestIDs, RequestIDBytes: st.RequestIDBytes,
	}
}

// clusterStats asks every member, passing on the caller's own credentials
// (never this node's): a member answers only what the caller may see.
func (s *Server) clusterStats(ctx context.Context, authz string) clusterStatsJSON {
	out := clusterStatsJSON{Scope: "cluster", Errors: map[string]string{}}
	members, err := s.node.Members()
	if err != nil {
		out.Errors[s.node.ID()] = err.Error()
		return out
	}
	results := make([]statsJSON, len(members))
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		if m.ID == s.node.ID() {
			results[i] = s.localStats()
			continue
		}
		wg.Add(1)
		go func(i int, m node.Member) {
			defer wg.Done()
			errs[i] = s.fetchStats(ctx, m, authz, &results[i])
		}(i, m)
	}
	wg.Wait()
	for i, m := range members {
		if errs[i] != nil {
			out.Errors[m.ID] = errs[i].Error()
			continue
		}
		out.Hits += results[i].Hits
		out.Misses += results[i].Misses
		out.Nodes = append(out.Nodes, results[i])
	}
	if len(out.Errors) == 0 {
		out.Errors = nil
	}
	return out
}

func (s *Server) fetchStats(ctx context.Context, m node.Member, authz string, out *statsJSON) error {
	if m.HTTPAddr == "" {
		return errors.New("no HTTP address registered")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.scheme()+"://"+m.HTTPAddr+"/v1/stats", nil)
	if err != nil {
		return err
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := s.peers.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New("status " + resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// handleNode says what this node's binary is; the leader asks it of every
// member before raising the cluster's feature level. A binary from before
// levels answers 404, which the asker takes for level 1.
func (s *Server) handleNode(w http.ResponseWriter, r *http.Request) {
	info := s.node.Info()
	b := node.BuildInfo()
	out := nodeJSON{ID: info.ID, FeatureLevel: info.Level, Incarnation: info.Incarnation, State: info.State, AppliedIndex: info.AppliedIndex,
		Version: b.Version, Revision: b.Revision, ClusterID: s.node.ClusterID(), MaxMemory: info.MaxMemory, Registered: !info.Unregistered}
	if err := s.node.RemovedReason(); err != nil {
		out.Removed = err.Error()
	}
	writeJSON(w, http.StatusOK, out)
}

// handleFormation answers a founder of a --bootstrap-expect cluster: this
// node's id, Raft address, incarnation, whether it holds Raft state, its
// cluster id, and the founders list it formed with if it did
// (cli/formation.go decides from every founder's answer).
func (s *Server) handleFormation(w http.ResponseWriter, r *http.Request) {
	f := s.node.Formation()
	out := formationJSON{ID: f.ID, RaftAddr: f.RaftAddr, HTTPAddr: f.HTTPAddr, Incarnation: f.Incarnation,
		HasState: f.HasState, ClusterID: f.ClusterID, FeatureLevel: f.Level, Version: node.BuildInfo().String()}
	for _, m := range f.Founders {
		out.Founders = append(out.Founders, founderJSON{ID: m.ID, RaftAddr: m.RaftAddr, Incarnation: m.Incarnation, FeatureLevel: m.Level})
	}
	writeJSON(w, http.StatusOK, out)
}

// forceParam reads ?force=true|false (default false).
func forceParam(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("force")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("bad_force", "force must be true or false, not "+strconv.Quote(v))
	}
	return b, nil
}

func (s *Server) handleLivez(w http.ResponseWriter, r *http.Request) {
	if err := s.node.RemovedReason(); err != nil {
		// Removed: the process is about to exit (cli); never pretend.
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: err.Error(), Code: "removed"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if err := s.node.RemovedReason(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: err.Error(), Code: "removed"})
		return
	}
	if err := s.node.Poisoned(); err != nil {
		// Alive (livez stays 200: restarting the same binary would stop
		// at the same entry) but never ready: it needs a newer binary.
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: err.Error(), Code: "poisoned"})
		return
	}
	// Readiness, not Ready: a busy leader stays ready, and a follower is
	// judged against the leader's commit index (node/ready.go).
	if ok, why := s.node.Readiness(); !ok {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "not ready: " + why, Code: "not_ready"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
