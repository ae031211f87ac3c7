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

// AddMember asks the cluster to add a voting member (ID, RaftAddr and
// HTTPAddr are required). Adding a member that is already present with
// the same addresses succeeds and changes nothing, so it is retried
// freely.
func (c *Client) AddMember(ctx context.Context, m Member) error {
	return c.addMember(ctx, m, true)
}

func (c *Client) addMember(ctx context.Context, m Member, voter bool) error {
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
		return err
	}
	_, err = c.doJSON(ctx, &call{method: http.MethodPost, path: "/v1/cluster/members", body: body, write: true,
		header: http.Header{"Content-Type": {"application/json"}}}, nil)
	return err
}

// RemoveMember removes a member by id. A missing id returns
// ErrUnknownMember, except when a previous attempt of this call may have
// removed it already.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	res, err := c.doJSON(ctx, &call{method: http.MethodDelete, path: "/v1/cluster/members/" + url.PathEscape(id), write: true}, nil)
	if err != nil && res != nil && res.ambiguous && errors.Is(err, ErrUnknownMember) {
		return nil
	}
	return err
}
