package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/node"
)

// Addresses and formation: what `raftcache node` needs so that every
// member of a cluster can start with identical flags (containers,
// StatefulSets): advertised names, a default id from the host name, and
// --bootstrap-expect (node/formation.go says what a founder decides).

// splitURLs splits comma-separated --join values and drops blanks.
func splitURLs(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				out = append(out, u)
			}
		}
	}
	return out
}

func checkFormationFlags(c *cli.Context, join []string, expect int) error {
	switch {
	case c.Bool("bootstrap") && len(join) > 0:
		return usagef("--bootstrap with --join would form a cluster of one beside the members it lists when the data directory is empty; use --join alone, or --bootstrap-expect N with the same --join list on every member")
	case expect < 0:
		return usagef("--bootstrap-expect must be 0 or more, not %d", expect)
	case expect == 0:
		return nil
	case c.Bool("bootstrap"):
		return usagef("--bootstrap-expect and --bootstrap exclude each other: --bootstrap forms a cluster of one on its own")
	case c.Bool("non-voter"):
		return usagef("--bootstrap-expect makes every founder a voter; start non-voters with --join only")
	case len(join) != expect:
		return usagef("--bootstrap-expect %d needs --join listing exactly the %d members, this one included (got %d URLs)", expect, expect, len(join))
	}
	return nil
}

// defaultID is --id, or its default: this host's name for a node that
// joins or forms a cluster or binds Raft to a wildcard address (so
// containers and pods can share flags), else the Raft address (the no-flag
// single node, and nodes that always had that id).
func defaultID(c *cli.Context, join []string, expect int) (string, error) {
	if id := c.String("id"); id != "" {
		return id, nil
	}
	host, _, err := net.SplitHostPort(c.String("raft-addr"))
	if err != nil {
		return "", usagef("--raft-addr: %v", err)
	}
	ip := net.ParseIP(host)
	if len(join) == 0 && expect == 0 && host != "" && (ip == nil || !ip.IsUnspecified()) {
		return c.String("raft-addr"), nil
	}
	name, err := os.Hostname()
	if err != nil || name == "" {
		return "", usagef("--id is needed: the host name is unknown (%v)", err)
	}
	return name, nil
}

// advertised returns the HTTP and Redis addresses this node registers.
func advertised(c *cli.Context, ln, respLn net.Listener) (string, string, error) {
	httpAddr, err := node.AdvertiseAddr(ln.Addr().String(), c.String("http-advertise"))
	if err != nil {
		return "", "", usagef("--http-advertise: %v", err)
	}
	if respLn == nil {
		if c.String("resp-advertise") != "" {
			return "", "", usagef("--resp-advertise needs --resp-addr")
		}
		return httpAddr, "", nil
	}
	respAddr, err := node.AdvertiseAddr(respLn.Addr().String(), c.String("resp-advertise"))
	if err != nil {
		return "", "", usagef("--resp-advertise: %v", err)
	}
	return httpAddr, respAddr, nil
}

// formationJSON is a member's answer to GET /v1/cluster/formation.
type formationJSON struct {
	ID          string `json:"id"`
	RaftAddr    string `json:"raft_addr"`
	Incarnation string `json:"incarnation"`
	HasState    bool   `json:"has_state"`
	ClusterID   string `json:"cluster_id"`
	// FeatureLevel is the member's binary's level; absent (0) from a
	// binary that does not report one, which counts as level 1.
	FeatureLevel uint32 `json:"feature_level,omitempty"`
}

// formCluster is --bootstrap-expect: it asks every listed member (this
// one included) for its formation facts until all answer, then either
// bootstraps the configuration of all of them (none holds Raft state, or
// the state they hold is this very cluster) or, when a member holds the
// state of a cluster already formed without this data directory (a wiped
// or replaced member), joins it learner first. Either way it then runs
// joinCluster, which registers this node's addresses (a founder is a voter
// already; the leader only records it).
func formCluster(ctx context.Context, logger hclog.Logger, n *node.Node, urls []string, cfg client.Config, self client.Member, nonVoter bool) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg.TLS},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer hc.CloseIdleConnections()
	var fatal error
	formed := false
	ok := retry(ctx, logger, "forming the cluster (waiting for every --join member to answer)", func() error {
		if n.HasState() {
			return nil // joined meanwhile: nothing to form
		}
		infos, err := fetchFormation(ctx, hc, cfg.Token, urls)
		if err != nil {
			return err
		}
		founders, selfSeen, err := founders(infos, self)
		if err != nil {
			fatal = err
			return nil
		}
		if !selfSeen {
			fatal = fmt.Errorf("this node (%s, incarnation %s) is not among the members --join lists: list every member, this one included", self.ID, self.Incarnation)
			return nil
		}
		derived := node.FoundersClusterID(founders)
		for _, f := range infos {
			if f.HasState && f.ClusterID != derived {
				logger.Info("a listed member holds the state of a cluster formed without this data directory: joining it instead of forming one",
					"member", f.ID, "its_cluster_id", f.ClusterID)
				return nil
			}
		}
		if err := n.Form(founders, founderLevels(infos)); err != nil && !errors.Is(err, node.ErrHasState) {
			return err
		}
		formed = true
		return nil
	})
	if !ok {
		return
	}
	if fatal != nil {
		logger.Error("cannot form the cluster; fix the flags and restart this node", "error", fatal)
		return
	}
	if formed {
		logger.Info("formed the cluster with the expected members", "members", len(urls), "cluster_id", n.ClusterID())
	}
	joinCluster(ctx, logger, urls, cfg, self, nonVoter, n.Ready, n.AdoptClusterID)
}

// founders turns every member's answer into the founders list, refusing
// a list in which two members share an id; selfSeen says whether this
// node (its id and incarnation) answered.
func founders(infos []formationJSON, self client.Member) ([]node.Founder, bool, error) {
	var out []node.Founder
	seen, selfSeen := map[string]bool{}, false
	for _, f := range infos {
		if seen[f.ID] {
			return nil, false, fmt.Errorf("two members listed in --join answer as %q: give each member its own --id (or host name)", f.ID)
		}
		seen[f.ID] = true
		selfSeen = selfSeen || (f.ID == self.ID && f.Incarnation == self.Incarnation)
		out = append(out, node.Founder{ID: f.ID, RaftAddr: f.RaftAddr, Incarnation: f.Incarnation})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, selfSeen, nil
}

// founderLevels is each member's feature level as it answered (0: it
// reported none; Form counts that as 1).
func founderLevels(infos []formationJSON) map[string]uint32 {
	out := make(map[string]uint32, len(infos))
	for _, f := range infos {
		out[f.ID] = f.FeatureLevel
	}
	return out
}

// fetchFormation asks every URL, in parallel; all must answer.
func fetchFormation(ctx context.Context, hc *http.Client, token string, urls []string) ([]formationJSON, error) {
	out := make([]formationJSON, len(urls))
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = getFormation(ctx, hc, token, strings.TrimRight(u, "/"), &out[i])
		}()
	}
	wg.Wait()
	var missing []string
	for i, err := range errs {
		if err != nil {
			missing = append(missing, urls[i]+": "+err.Error())
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%d of %d members did not answer: %s", len(missing), len(urls), strings.Join(missing, "; "))
	}
	return out, nil
}

func getFormation(ctx context.Context, hc *http.Client, token, base string, out *formationJSON) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/cluster/formation", nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET /v1/cluster/formation: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(out); err != nil {
		return err
	}
	if out.ID == "" || out.RaftAddr == "" || out.Incarnation == "" {
		return errors.New("GET /v1/cluster/formation: incomplete answer")
	}
	return nil
}
