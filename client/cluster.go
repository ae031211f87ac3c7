package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
)

// Member is one cluster member.
type Member struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
	RESPAddr string `json:"resp_addr,omitempty"` // Redis-protocol address, if the member serves one
	Voter    bool   `json:"voter"`
	// FeatureLevel is the feature level of the member's binary (0 =
	// unknown). In AddMember, the level of the binary that runs (or will
	// run) the member: the cluster refuses a member below its own level
	// with 409 feature_level; 0 sends none, which counts as level 1.
	FeatureLevel uint32 `json:"feature_level,omitempty"`
	// Incarnation is the random id of the member's data directory.
	Incarnation string `json:"incarnation,omitempty"`
	// State is "voter", "catching_up" (a non-voter the leader promotes
	// once it has caught up and stayed healthy) or "learner" (stays a
	// non-voter). Every add is learner first.
	State string `json:"state,omitempty"`
	// LastHeardMS is, in the leader's view, how long ago the member last
	// answered the leader; nil when unknown (or asked of a follower).
	LastHeardMS *int64 `json:"last_heard_ms,omitempty"`
	// Version is the member's build as the answering node knows it (the
	// leader from its probes; every node its own); "" unknown. Never sent.
	Version string `json:"version,omitempty"`
}

// Cluster is one node's view of the cluster.
type Cluster struct {
	NodeID string `json:"node_id"`
	State  string `json:"state"`
	Leader *struct {
		ID       string `json:"id"`
		HTTPAddr string `json:"http_addr"`
		RaftAddr string `json:"raft_addr"`
	} `json:"leader"`
	Term          uint64   `json:"term"`
	CommitIndex   uint64   `json:"commit_index"`
	AppliedIndex  uint64   `json:"applied_index"`
	LastContactMS int64    `json:"last_contact_ms"`
	Members       []Member `json:"members"`
	// FeatureLevel is the answering node's binary's level;
	// ClusterFeatureLevel the cluster's (0: a node from before levels).
	FeatureLevel        uint32 `json:"feature_level"`
	ClusterFeatureLevel uint32 `json:"cluster_feature_level"`
	// Removed, if set, says why the answering node is out of the cluster.
	Removed string `json:"removed,omitempty"`
	// ClusterID is the cluster's id ("" for a cluster formed before
	// cluster ids); Version and Revision the answering node's build.
	ClusterID string `json:"cluster_id,omitempty"`
	Version   string `json:"version,omitempty"`
	Revision  string `json:"revision,omitempty"`
}

// NodeStats are one node's cache statistics.
type NodeStats struct {
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
	// RequestIDs and RequestIDBytes are the node's request-id table (the
	// ids of Idempotency-Keys and relayed writes), outside Bytes.
	RequestIDs     int   `json:"request_ids"`
	RequestIDBytes int64 `json:"request_id_bytes"`
}

// Stats is the answer of Stats. For the node scope (default) the embedded
// NodeStats are the answering node's. With WithClusterScope, Nodes holds
// every member that answered, Errors says why others are missing, and the
// embedded Hits and Misses are summed over Nodes (the other embedded
// fields are zero: replicated figures are per node, to compare).
type Stats struct {
	NodeStats
	Scope  string            `json:"scope"` // "node" or "cluster"
	Nodes  []NodeStats       `json:"nodes,omitempty"`
	Errors map[string]string `json:"errors,omitempty"` // member id -> error
}

// Cluster returns the cluster view of one member (the leader if known).
// It also refreshes the client's membership.
func (c *Client) Cluster(ctx context.Context) (*Cluster, error) {
	var out Cluster
	if _, err := c.doJSON(ctx, &call{method: http.MethodGet, path: "/v1/cluster", route: toInfo}, &out); err != nil {
		return nil, err
	}
	if len(out.Members) > 0 {
		c.applyView(&out, nil)
	}
	return &out, nil
}

// Stats returns the statistics of one member (the leader if known), or of
// every member with WithClusterScope.
func (c *Client) Stats(ctx context.Context, opts ...Option) (*Stats, error) {
	o := collect(opts)
	q := url.Values{}
	if o.clusterScope {
		q.Set("scope", "cluster")
	}
	var out Stats
	if _, err := c.doJSON(ctx, &call{method: http.MethodGet, path: "/v1/stats", query: q, route: toInfo}, &out); err != nil {
		return nil, err
	}
	if out.Scope == "" {
		out.Scope = "node"
	}
	return &out, nil
}

// AddMember asks the cluster to add a member that will vote (ID, RaftAddr
// and HTTPAddr are required). Every add is learner first: the member
// joins as a non-voter and the leader promotes it once it has caught up
// and stayed healthy for a while; AddMemberState says where it stands.
// Adding a member that is already present with the same addresses
// succeeds and changes nothing, so it is retried freely.
func (c *Client) AddMember(ctx context.Context, m Member) error {
	_, err := c.addMember(ctx, m, true)
	return err
}

// AddMemberState is AddMember returning the member's state as the leader
// answered it: "voter" if it already was one, else "catching_up".
func (c *Client) AddMemberState(ctx context.Context, m Member) (string, error) {
	return c.addMember(ctx, m, true)
}

func (c *Client) addMember(ctx context.Context, m Member, voter bool) (string, error) {
	fields := map[string]any{"id": m.ID, "raft_addr": m.RaftAddr, "http_addr": m.HTTPAddr, "voter": voter}
	if m.RESPAddr != "" {
		fields["resp_addr"] = m.RESPAddr
	}
	if m.FeatureLevel != 0 {
		fields["feature_level"] = m.FeatureLevel
	}
	if m.Incarnation != "" {
		fields["incarnation"] = m.Incarnation
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return "", err
	}
	var out Member
	_, err = c.doJSON(ctx, &call{method: http.MethodPost, path: "/v1/cluster/members", body: body, write: true,
		header: http.Header{"Content-Type": {"application/json"}}}, &out)
	if err != nil {
		return "", err
	}
	if out.State == "" { // a server from before learner-first adds
		out.State = "voter"
		if !out.Voter {
			out.State = "learner"
		}
	}
	return out.State, nil
}

// RemoveMember removes a member by id. A missing id returns
// ErrUnknownMember, except when a previous attempt of this call may have
// removed it already. Removing a voter while another voter does not
// answer, or so that the voters that answer would not be a majority,
// returns ErrQuorumAtRisk (an *Error whose Unreachable names them)
// unless WithForce is given.
func (c *Client) RemoveMember(ctx context.Context, id string, opts ...Option) error {
	var q url.Values
	if collect(opts).force {
		q = url.Values{"force": {"true"}}
	}
	res, err := c.doJSON(ctx, &call{method: http.MethodDelete, path: "/v1/cluster/members/" + url.PathEscape(id), query: q, write: true}, nil)
	if err != nil && res != nil && res.ambiguous && errors.Is(err, ErrUnknownMember) {
		return nil
	}
	return err
}
