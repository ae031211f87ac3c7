package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftcache/raftcache/fsm"
)

// Tests of issue 15's cluster formation and recovery, on real processes:
// three nodes started with identical cluster flags (--bootstrap-expect 3
// and the same --join list) form one cluster; a wiped member started
// again with the same flags comes back as a learner, never as a second
// cluster; a node of another cluster is refused at the Raft handshake;
// and a survivor of a lost quorum is recovered with `raftcache recover`.

// deployView is the part of GET /v1/cluster these tests read.
type deployView struct {
	NodeID    string `json:"node_id"`
	State     string `json:"state"`
	ClusterID string `json:"cluster_id"`
	Version   string `json:"version"`
	Leader    *struct {
		ID string `json:"id"`
	} `json:"leader"`
	Members []struct {
		ID          string `json:"id"`
		Voter       bool   `json:"voter"`
		State       string `json:"state"`
		Incarnation string `json:"incarnation"`
		Version     string `json:"version"`
	} `json:"members"`
}

func (n *Node) deployView() (*deployView, error) {
	var v deployView
	if err := n.getJSON("/v1/cluster", &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// staleGet reads key from n's own state; "" if absent.
func staleGet(n *Node, key string) (string, error) {
	r, err := n.Request(context.Background(), http.MethodGet, "/v1/kv/"+key+"?consistency=stale", n.Token, nil)
	if err != nil {
		return "", err
	}
	switch r.Status {
	case http.StatusOK:
		return string(r.Body), nil
	case http.StatusNotFound:
		return "", nil
	}
	return "", fmt.Errorf("GET %s on %s: %d %s", key, n.ID, r.Status, r.Body)
}

// logHas says whether n's log contains s.
func (n *Node) logHas(s string) bool {
	b, _ := os.ReadFile(n.logPath)
	return bytes.Contains(b, []byte(s))
}

// newFormationCluster creates three nodes with identical cluster flags
// and starts them all at once.
func newFormationCluster(t *testing.T, extra ...string) (*Cluster, []string) {
	c := &Cluster{t: t, dir: t.TempDir()}
	t.Cleanup(c.cleanup)
	args := append([]string{"--bootstrap-expect", "3"}, extra...)
	for i := 0; i < 3; i++ {
		c.AddNode(Options{Args: args}, i)
	}
	var urls []string
	for _, n := range c.Nodes {
		urls = append(urls, n.URL())
	}
	for _, n := range c.Nodes {
		n.Start(urls...)
	}
	return c, urls
}

func TestDeployFormationWipedNodeAndForeignCluster(t *testing.T) {
	// Promotion takes a while here, so the wiped node is seen as a learner.
	c, urls := newFormationCluster(t, "--promote-after", "3s")
	c.WaitMembers(3)
	leader := c.WaitForLeader()
	cid := ""
	Eventually(t, "every member has the same cluster id and a version", func() error {
		for _, n := range c.Nodes {
			v, err := n.deployView()
			if err != nil {
				return err
			}
			if v.ClusterID == "" || (cid != "" && v.ClusterID != cid) {
				return fmt.Errorf("%s: cluster id %q, another %q", n.ID, v.ClusterID, cid)
			}
			cid = v.ClusterID
			if v.Version == "" {
				return fmt.Errorf("%s reports no version", n.ID)
			}
		}
		return nil
	})
	formed := 0
	for _, n := range c.Nodes {
		if n.logHas("bootstrapping a new cluster") {
			t.Errorf("%s bootstrapped a cluster on its own", n.ID)
		}
		// A founder that the others' leader reached before it had heard
		// from every founder follows that leader instead of forming.
		if n.logHas("forming a new cluster with the expected members") {
			formed++
		}
	}
	if formed < 2 {
		t.Errorf("%d founders formed the cluster, want at least a majority", formed)
	}
	c.Put(c.Nodes[0], "formed", "yes")
	Eventually(t, "read through another node", func() error {
		v, err := staleGet(c.Nodes[2], "formed")
		if err != nil || v != "yes" {
			return fmt.Errorf("%q, %v", v, err)
		}
		return nil
	})

	// A wiped follower, started again with the same flags, joins as a
	// learner (no second cluster, no old vote) and is promoted later.
	f := c.Followers(leader)[0]
	var oldInc string
	Eventually(t, "the leader records every member's incarnation (at feature level 2)", func() error {
		v, err := leader.deployView()
		if err != nil {
			return err
		}
		for _, m := range v.Members {
			if m.Incarnation == "" {
				return fmt.Errorf("%s has no incarnation recorded", m.ID)
			}
			if m.ID == f.ID {
				oldInc = m.Incarnation
			}
		}
		return nil
	})
	f.Kill()
	if err := os.RemoveAll(f.DataDir); err != nil {
		t.Fatal(err)
	}
	f.Start(urls...)
	sawLearner := false
	Eventually(t, "the wiped node is a voter again under a new incarnation", func() error {
		v, err := leader.deployView()
		if err != nil {
			return err
		}
		for _, m := range v.Members {
			if m.ID != f.ID {
				continue
			}
			if !m.Voter {
				sawLearner = true
			}
			if m.Incarnation == oldInc || !m.Voter {
				return fmt.Errorf("%s: voter %v, incarnation %s (old %s)", m.ID, m.Voter, m.Incarnation, oldInc)
			}
			return nil
		}
		return fmt.Errorf("%s not listed", f.ID)
	})
	if !sawLearner {
		for _, l := range strings.Split(readLog(leader), "\n") {
			if strings.Contains(l, "member") && !strings.Contains(l, "DEBUG") {
				t.Log(l)
			}
		}
		t.Errorf("%s was never seen as a non-voter after its data directory was wiped", f.ID)
	}
	fv, err := f.deployView()
	if err != nil {
		t.Fatal(err)
	}
	if fv.ClusterID != cid || fv.Leader == nil || fv.Leader.ID != leader.ID || len(fv.Members) != 3 {
		t.Fatalf("the wiped node's view: cluster %s (want %s), leader %+v, %d members", fv.ClusterID, cid, fv.Leader, len(fv.Members))
	}
	if f.logHas("forming a new cluster") && strings.Count(readLog(f), "forming a new cluster") > 1 {
		t.Errorf("%s formed a cluster again after its data directory was wiped", f.ID)
	}
	Eventually(t, "the wiped node caught up", func() error {
		v, err := staleGet(f, "formed")
		if err != nil || v != "yes" {
			return fmt.Errorf("%q, %v", v, err)
		}
		return nil
	})

	// A node of another cluster, added by mistake, is refused at the Raft
	// handshake, with an error in both logs.
	x := c.AddNode(Options{}, 3)
	x.ID = "x"
	x.Start() // --bootstrap: a cluster of its own
	c.WaitReady(x)
	body, _ := json.Marshal(map[string]any{"id": "x", "raft_addr": x.RaftAddr, "http_addr": x.HTTPAddr, "voter": false, "feature_level": fsm.FeatureLevel})
	r, err := leader.Request(context.Background(), http.MethodPost, "/v1/cluster/members", "", body)
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("adding the foreign node as a learner: %v %+v", err, r)
	}
	Eventually(t, "the refusal in both logs", func() error {
		if !x.logHas("refused a Raft connection from a node of another cluster") {
			return fmt.Errorf("not in the foreign node's log")
		}
		if !leader.logHas("refused by a Raft peer of another cluster") {
			return fmt.Errorf("not in the leader's log")
		}
		return nil
	})
	if v, err := staleGet(x, "formed"); err != nil || v != "" {
		t.Fatalf("the foreign node got the cluster's data: %q, %v", v, err)
	}
}

func readLog(n *Node) string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// recoverCmd runs `raftcache recover` on dir.
func recoverCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(binary, append([]string{"recover", "-o", "json"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func TestDeployRecoverLostQuorum(t *testing.T) {
	c := NewCluster(t, Options{})
	n1 := c.Nodes[0]
	for i := 0; i < 20; i++ {
		c.Put(n1, fmt.Sprintf("k%d", i), "v")
	}
	before, err := n1.deployView()
	if err != nil {
		t.Fatal(err)
	}
	mark := filepath.Join(n1.DataDir, "log-watermark")
	Eventually(t, "n1's high-water mark", func() error {
		_, err := os.Stat(mark)
		return err
	})
	// Two of three are lost for good; a copy of one's data directory
	// comes back later, as a lost member might.
	old := filepath.Join(c.dir, "n2.old")
	for _, n := range c.Nodes[1:] {
		n.Kill()
	}
	if out, err := exec.Command("cp", "-a", c.Nodes[1].DataDir, old).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	for _, n := range c.Nodes[1:] {
		os.RemoveAll(n.DataDir)
	}

	if out, err := recoverCmd(t, "--data-dir", n1.DataDir); err == nil || !strings.Contains(out, "in use") {
		t.Fatalf("recover on a running node's data directory: %v, %s; want refused (in use)", err, out)
	}
	n1.Stop()
	// A founders list, as a --bootstrap-expect formation leaves in the
	// data directory (node/formation.go): it names the old configuration.
	founders := filepath.Join(n1.DataDir, "founders")
	if err := os.WriteFile(founders, []byte(`[{"ID":"n1","RaftAddr":"`+n1.RaftAddr+`","Incarnation":"x"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := recoverCmd(t, "--data-dir", n1.DataDir) // finds n1 by its incarnation
	if err != nil {
		t.Fatalf("recover: %v: %s", err, out)
	}
	var res struct {
		ID           string   `json:"id"`
		NewClusterID string   `json:"new_cluster_id"`
		OldClusterID string   `json:"old_cluster_id"`
		Previous     []string `json:"previous_voters"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("recover output: %v: %s", err, out)
	}
	if before.ClusterID == "" || res.ID != "n1" || res.OldClusterID != before.ClusterID || res.NewClusterID == "" || res.NewClusterID == before.ClusterID || len(res.Previous) != 3 {
		t.Fatalf("recover: %+v, cluster id before %q", res, before.ClusterID)
	}

	// The mark of the old history goes with it (node/watermark.go), and
	// so does the founders list.
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("recover left the high-water mark: %v", err)
	}
	if _, err := os.Stat(founders); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("recover left the founders list: %v", err)
	}

	// The survivor starts alone with its data, under the new cluster id.
	n1.Start()
	c.WaitReady(n1)
	for i := 0; i < 20; i++ {
		if v, err := staleGet(n1, fmt.Sprintf("k%d", i)); err != nil || v != "v" {
			t.Fatalf("k%d after recovery: %q, %v", i, v, err)
		}
	}
	c.Put(n1, "after", "recovery")

	// A lost member returning with its old data is of the old cluster: the
	// survivor refuses it at the Raft handshake.
	ghost := c.AddNode(Options{}, 3)
	ghost.ID, ghost.DataDir = "n2", old
	ghost.Start(n1.URL())
	Eventually(t, "the returning old member refused at the handshake", func() error {
		if !n1.logHas("refused a Raft connection from a node of another cluster") {
			return fmt.Errorf("no refusal in the survivor's log yet")
		}
		return nil
	})
	ghost.Kill()
	c.Nodes = c.Nodes[:3]

	// Grow back with joins, on empty data directories.
	for _, n := range c.Nodes[1:] {
		n.Start(n1.URL())
	}
	c.WaitMembers(3)
	for _, n := range c.Nodes {
		c.WaitReady(n)
		Eventually(t, n.ID+" has the data and the new cluster id", func() error {
			v, err := n.deployView()
			if err != nil {
				return err
			}
			if v.ClusterID != res.NewClusterID {
				return fmt.Errorf("cluster id %s", v.ClusterID)
			}
			if got, err := staleGet(n, "after"); err != nil || got != "recovery" {
				return fmt.Errorf("after = %q, %v", got, err)
			}
			return nil
		})
	}
}

// TestDeployAdvertisedNames: a node bound to 0.0.0.0 without advertise
// flags registers this host's name; nodes given --http-advertise and
// --raft-advertise names register those; names stay names in the member
// records and in Raft's configuration, Raft dials them, and a follower's
// redirect names the leader's advertised HTTP address.
func TestDeployAdvertisedNames(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no host name:", err)
	}
	c := &Cluster{t: t, dir: t.TempDir()}
	t.Cleanup(c.cleanup)
	for i := 0; i < 3; i++ {
		n := c.AddNode(Options{Args: []string{"--bootstrap-expect", "3"}}, i)
		_, hport, _ := strings.Cut(n.HTTPAddr, ":")
		_, rport, _ := strings.Cut(n.RaftAddr, ":")
		if i == 0 {
			n.Args = append(n.Args, "--http-addr", "0.0.0.0:"+hport, "--raft-addr", "0.0.0.0:"+rport)
		} else {
			n.Args = append(n.Args, "--http-advertise", "localhost:"+hport, "--raft-advertise", "localhost:"+rport)
		}
	}
	var urls []string
	for _, n := range c.Nodes {
		urls = append(urls, n.URL())
	}
	for _, n := range c.Nodes {
		n.Start(urls...)
	}
	c.WaitMembers(3)
	leader := c.WaitForLeader()
	want := map[string][2]string{}
	for i, n := range c.Nodes {
		_, hport, _ := strings.Cut(n.HTTPAddr, ":")
		_, rport, _ := strings.Cut(n.RaftAddr, ":")
		name := "localhost"
		if i == 0 {
			name = host
		}
		want[n.ID] = [2]string{name + ":" + hport, name + ":" + rport}
	}
	v, err := leader.View()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range v.Members {
		if got := [2]string{m.HTTPAddr, m.RaftAddr}; got != want[m.ID] {
			t.Errorf("%s registered %v, want %v", m.ID, got, want[m.ID])
		}
	}
	c.Put(c.Nodes[1], "named", "yes")
	f := c.Followers(leader)[0]
	r, err := f.Request(context.Background(), http.MethodPut, "/v1/kv/named", "", []byte("again"))
	if err != nil {
		t.Fatal(err)
	}
	if loc := r.Header.Get("Location"); r.Status != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, "http://"+want[leader.ID][0]+"/") {
		t.Fatalf("PUT on follower %s: %d, Location %q; want a redirect to http://%s/", f.ID, r.Status, loc, want[leader.ID][0])
	}
}
