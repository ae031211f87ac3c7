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
	// Founders is the list the member formed the cluster with, if this
	// process of it did (absent from older binaries).
	Founders []struct {
		ID           string `json:"id"`
		RaftAddr     string `json:"raft_addr"`
		Incarnation  string `json:"incarnation"`
		FeatureLevel uint32 `json:"feature_level"`
	} `json:"founders"`
}

// info is the answer as the node reads it.
func (f *formationJSON) info() node.FormationInfo {
	out := node.FormationInfo{ID: f.ID, RaftAddr: f.RaftAddr, Incarnation: f.Incarnation, HasState: f.HasState,
		ClusterID: f.ClusterID, Level: f.FeatureLevel}
	for _, m := range f.Founders {
		out.Founders = append(out.Founders, node.FounderAt{
			Founder: node.Founder{ID: m.ID, RaftAddr: m.RaftAddr, Incarnation: m.Incarnation}, Level: m.FeatureLevel})
	}
	return out
}

// formCluster is --bootstrap-expect: it asks every listed member (this
// one included) for its formation facts until all answer, then either
// bootstraps the configuration of all of them (none holds Raft state, or
// the state they hold is this very cluster) or, when a member holds the
// state of a cluster already formed without this data directory (a wiped
// or replaced member), joins it learner first. A member that formed sends
// the founders list it formed with; a founder that list names as it is
// forms its part from it at once, without waiting for the others' answers
// (node.FormedList), so that a founder lost right after another formed
// does not leave the rest without a quorum. Either way it then runs
// joinCluster, which registers this node's addresses (a founder is a
// voter already; the leader only records it).
//
// Every decision rests on answers of this round only: an earlier answer
// cannot be checked again (the member may have been wiped and formed or
// joined since), and forming on one could make a second cluster beside
// one that holds acknowledged writes.
func formCluster(ctx context.Context, logger hclog.Logger, n *node.Node, urls []string, cfg client.Config, self client.Member, nonVoter bool) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg.TLS},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer hc.CloseIdleConnections()
	var fatal error
	formed := false
	own := n.Formation()
	me := node.Founder{ID: own.ID, RaftAddr: own.RaftAddr, Incarnation: own.Incarnation}
	ok := retry(ctx, logger, "forming the cluster (waiting for every --join member to answer)", func() error {
		if n.HasState() {
			return nil // joined meanwhile: nothing to form
		}
		fresh, err := fetchFormation(ctx, hc, cfg.Token, urls)
		if fs, levels, from := listToForm(me, fresh, len(urls)); from != nil {
			logger.Info("a listed member formed the cluster with this node among its founders: forming this node's part from its list",
				"member", from.ID, "cluster_id", from.ClusterID)
			if err := n.Form(fs, levels); err != nil && !errors.Is(err, node.ErrHasState) {
				return err
			}
			formed = true
			return nil
		}
		if err != nil {
			return err
		}
		infos := make([]formationJSON, len(fresh))
		for i, a := range fresh {
			infos[i] = *a
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

// listToForm returns a founders list that founder me may form its part
// from (node.FormedList), with its levels and the answer it came in; nil
// from if none. No list is taken while an answer of the same round holds
// the state of another cluster: the usual decision, which joins that
// cluster, waits for every answer then.
func listToForm(me node.Founder, answers []*formationJSON, want int) ([]node.Founder, map[string]uint32, *formationJSON) {
	for _, a := range answers {
		if a == nil {
			continue
		}
		fs, levels, ok := node.FormedList(me, a.info(), want)
		if !ok {
			continue
		}
		for _, b := range answers {
			if b != nil && b.HasState && b.ClusterID != a.ClusterID {
				return nil, nil, nil
			}
		}
		return fs, levels, a
	}
	return nil, nil, nil
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

// fetchFormation asks every URL, in parallel: the answers, nil where a
// member did not answer, and an error naming those.
func fetchFormation(ctx context.Context, hc *http.Client, token string, urls []string) ([]*formationJSON, error) {
	out := make([]*formationJSON, len(urls))
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var a formationJSON
			if errs[i] = getFormation(ctx, hc, token, strings.TrimRight(u, "/"), &a); errs[i] == nil {
				out[i] = &a
			}
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
		return out, fmt.Errorf("%d of %d members did not answer: %s", len(missing), len(urls), strings.Join(missing, "; "))
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
