package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// Member is one cluster member.
type Member struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
	Voter    bool   `json:"voter"`
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
}

// Stats are one node's cache statistics.
type Stats struct {
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

// Cluster returns the view of whichever node answers.
func (c *Client) Cluster(ctx context.Context) (*Cluster, error) {
	var out Cluster
	if _, err := c.doJSON(ctx, request{method: http.MethodGet, path: "/v1/cluster"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Stats returns the statistics of whichever node answers.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	var out Stats
	if _, err := c.doJSON(ctx, request{method: http.MethodGet, path: "/v1/stats"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AddMember asks the cluster to add a voting member. Adding a member that
// is already present with the same addresses succeeds and changes nothing.
func (c *Client) AddMember(ctx context.Context, m Member) error {
	body, _ := json.Marshal(map[string]string{"id": m.ID, "raft_addr": m.RaftAddr, "http_addr": m.HTTPAddr})
	_, err := c.doJSON(ctx, request{method: http.MethodPost, path: "/v1/cluster/members", body: body,
		header: http.Header{"Content-Type": {"application/json"}}}, nil)
	return err
}

// RemoveMember removes a member by id.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	_, err := c.doJSON(ctx, request{method: http.MethodDelete, path: "/v1/cluster/members/" + url.PathEscape(id)}, nil)
	return err
}
