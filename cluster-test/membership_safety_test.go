package clustertest

// Membership changes that cannot take the quorum away or break Raft's
// safety (issue 14), on real processes: the three steps of the issue
// (remove the leader, add it back as a voter, kill another node), a wiped
// follower that comes back with its usual flags, and the quorum check.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftcache/raftcache/fsm"
)

// msMember is id's entry in the leader's view, or an error.
func msMember(c *Cluster, id string) (state string, voter bool, incarnation string, err error) {
	l, err := c.leader()
	if err != nil {
		return "", false, "", err
	}
	v, err := l.View()
	if err != nil {
		return "", false, "", err
	}
	for _, m := range v.Members {
		if m.ID == id {
			return m.State, m.Voter, m.Incarnation, nil
		}
	}
	return "", false, "", fmt.Errorf("%s is not a member in %s's view", id, l.ID)
}

// msWaitVoter waits until the leader counts id as a voter.
func msWaitVoter(t testing.TB, c *Cluster, id string) {
	t.Helper()
	Eventually(t, id+" a voter again", func() error {
		st, voter, _, err := msMember(c, id)
		if err != nil {
			return err
		}
		if !voter {
			return fmt.Errorf("%s is %s", id, st)
		}
		return nil
	})
}

// msWaitExit waits until n's process has exited and returns its status.
func msWaitExit(t testing.TB, n *Node) int {
	t.Helper()
	Eventually(t, n.ID+" exits by itself", func() error {
		if n.Running() {
			return fmt.Errorf("%s still runs", n.ID)
		}
		return nil
	})
	return fndExitCode(n)
}

// msAddBody is a POST /v1/cluster/members body for n as a voter.
func msAddBody(n *Node) []byte {
	b, _ := json.Marshal(map[string]any{"id": n.ID, "raft_addr": n.RaftAdvertise, "http_addr": n.HTTPAddr, "voter": true, "feature_level": fsm.FeatureLevel})
	return b
}

// msAdd adds n back through via (redirects followed), retrying on 503,
// and returns the answer's state.
func msAdd(t testing.TB, via *Node, n *Node) (state string, voter bool) {
	t.Helper()
	Eventually(t, "POST member "+n.ID+" via "+via.ID, func() error {
		r, err := Do(context.Background(), followClient, http.MethodPost, via.URL()+"/v1/cluster/members", msAddBody(n))
		switch {
		case err != nil:
			return err
		case r.Status == http.StatusServiceUnavailable || r.Status == http.StatusGatewayTimeout:
			return fmt.Errorf("%d %s", r.Status, r.Body)
		case r.Status != http.StatusOK:
			t.Fatalf("POST member %s: %d %s", n.ID, r.Status, r.Body)
		}
		var out struct {
			State string `json:"state"`
			Voter bool   `json:"voter"`
		}
		if err := json.Unmarshal(r.Body, &out); err != nil {
			t.Fatalf("POST member %s: %v in %s", n.ID, err, r.Body)
		}
		state, voter = out.State, out.Voter
		return nil
	})
	return state, voter
}

// TestMembershipIssueSteps: the issue's three steps on the documented API.
// Removing the leader makes it exit (status 4, a reason in its log);
// adding it back as a voter makes it a learner that is not a voter until
// it runs again and catches up; restarted with its usual flags it is
// promoted; then kill -9 of another node leaves a quorum of two running
// voters: a leader, and writes are accepted.
func TestMembershipIssueSteps(t *testing.T) {
	c := NewCluster(t, Options{})
	a := c.WaitForLeader()
	fndPut(t, a, "before", "removal")

	// 1. DELETE the leader on itself.
	r := fndDo(t, plainClient, http.MethodDelete, a.URL()+"/v1/cluster/members/"+a.ID, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("DELETE %s on itself: %d %s", a.ID, r.Status, r.Body)
	}
	if code := msWaitExit(t, a); code != 4 {
		t.Fatalf("removed %s exited with status %d, want 4", a.ID, code)
	}
	if log := fndLog(t, a); !strings.Contains(log, "removed from the cluster") {
		t.Fatalf("%s's log does not say it was removed:\n%s", a.ID, log)
	}
	b := c.WaitForLeader()

	// 2. POST it back as a voter: a learner, catching up, not a voter
	// while its process is down.
	state, voter := msAdd(t, b, a)
	if voter || state != "catching_up" {
		t.Fatalf("re-adding the stopped %s answered state %q voter %v, want catching_up, not a voter", a.ID, state, voter)
	}
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if st, voter, _, err := msMember(c, a.ID); err == nil && (voter || st != "catching_up") {
			t.Fatalf("%s, not running, is %s (voter %v)", a.ID, st, voter)
		}
	}
	fndRestart(c, a) // its usual flags
	msWaitVoter(t, c, a.ID)
	c.WaitReady(a)

	// 3. kill -9 another node: two voters run, so there is a leader.
	var victim *Node
	for _, n := range c.Nodes {
		if n != a && n != b {
			victim = n
		}
	}
	victim.Kill()
	l := c.WaitForLeader()
	idx := fndPut(t, l, "after", "kill")
	c.WaitForIndex(a, idx)
	fndRestart(c, victim)
	c.WaitMembers(3)
	c.WaitConverged()
}

// TestMembershipWipedFollower: a follower's data directory is deleted and
// it is started again with its usual flags. It refuses to vote until the
// cluster registers its new incarnation; the leader re-adds it as a
// non-voter; it catches up and is promoted. It is never a voter under
// its new incarnation before it has been a learner.
func TestMembershipWipedFollower(t *testing.T) {
	c := NewCluster(t, Options{})
	l := c.WaitForLeader()
	var f *Node
	for _, n := range c.Followers(l) {
		if n != c.Nodes[0] {
			f = n // its usual flags have --join
		}
	}
	var last uint64
	for i := 0; i < 20; i++ {
		last = fndPut(t, l, fmt.Sprintf("w%02d", i), "before the wipe")
	}
	c.WaitForIndex(f, last)
	old, err := os.ReadFile(filepath.Join(f.DataDir, "incarnation"))
	if err != nil {
		t.Fatal(err)
	}
	f.Kill()
	if err := os.RemoveAll(f.DataDir); err != nil {
		t.Fatal(err)
	}
	fndRestart(c, f)
	cur, err := os.ReadFile(filepath.Join(f.DataDir, "incarnation"))
	if err != nil {
		t.Fatal(err)
	}
	newInc := strings.TrimSpace(string(cur))
	if newInc == strings.TrimSpace(string(old)) {
		t.Fatal("a new data directory has the old incarnation")
	}
	learner := false
	Eventually(t, f.ID+" a voter under its new incarnation", func() error {
		st, voter, inc, err := msMember(c, f.ID)
		if err != nil {
			return err
		}
		if inc == newInc && !voter {
			learner = true
		}
		if voter && inc == newInc && !learner {
			t.Fatalf("%s is a voter under its new incarnation without having been a learner (%s)", f.ID, st)
		}
		if !voter || inc != newInc {
			return fmt.Errorf("%s is %s under incarnation %q", f.ID, st, inc)
		}
		return nil
	})
	log := fndLog(t, f)
	if !strings.Contains(log, "not registered in the cluster yet") || !strings.Contains(log, "the cluster registered this data directory") {
		t.Fatalf("%s's log does not show it waited for registration before voting:\n%s", f.ID, log)
	}
	if strings.Index(log, "entering candidate state") >= 0 && strings.Index(log, "entering candidate state") < strings.Index(log, "the cluster registered this data directory") {
		t.Fatalf("%s started an election before it was registered:\n%s", f.ID, log)
	}
	c.WaitForIndex(f, last)
	for i := 0; i < 20; i += 7 {
		k := fmt.Sprintf("w%02d", i)
		r := fndDo(t, plainClient, http.MethodGet, f.URL()+"/v1/kv/"+k+"?consistency=stale", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("stale GET %s on the wiped %s: %d %s", k, f.ID, r.Status, r.Body)
		}
	}
	// The cluster survives the loss of another node with the new voter.
	l = c.WaitForLeader()
	for _, n := range c.Followers(l) {
		if n != f {
			n.Kill()
			break
		}
	}
	fndPut(t, c.WaitForLeader(), "after", "wipe")
}

// TestMembershipQuorumRefusal: with one voter stopped, removing another
// voter is refused (409 quorum_at_risk naming the stopped one, over HTTP
// and in the CLI); removing the stopped voter itself is allowed.
func TestMembershipQuorumRefusal(t *testing.T) {
	c := NewCluster(t, Options{})
	l := c.WaitForLeader()
	fs := c.Followers(l)
	stopped, other := fs[0], fs[1]
	stopped.Stop()
	var r *Response
	Eventually(t, "DELETE "+other.ID+" refused", func() error {
		var err error
		r, err = Do(context.Background(), followClient, http.MethodDelete, l.URL()+"/v1/cluster/members/"+other.ID, nil)
		if err != nil {
			return err
		}
		if r.Status == http.StatusServiceUnavailable {
			return fmt.Errorf("%d %s", r.Status, r.Body)
		}
		return nil
	})
	if r.Status != http.StatusConflict || fndCode(r) != "quorum_at_risk" || !strings.Contains(string(r.Body), `"unreachable":["`+stopped.ID+`"]`) {
		t.Fatalf("DELETE %s with %s stopped: %d %s, want 409 quorum_at_risk naming %s", other.ID, stopped.ID, r.Status, r.Body, stopped.ID)
	}
	code, _, stderr := opsCLI(t, "-e", l.URL(), "members", "remove", other.ID)
	if code != 1 || !strings.Contains(stderr, "quorum") || !strings.Contains(stderr, stopped.ID) {
		t.Fatalf("members remove %s: exit %d, stderr %s; want 1 naming %s", other.ID, code, stderr, stopped.ID)
	}
	if _, voter, _, err := msMember(c, other.ID); err != nil || !voter {
		t.Fatalf("%s after refused removals: voter %v, %v", other.ID, voter, err)
	}
	// status lists the stopped voter as dead once the leader has not heard
	// from it for longer than --dead-after.
	Eventually(t, "status lists "+stopped.ID+" as a dead voter", func() error {
		code, stdout, stderr := opsCLI(t, "-e", l.URL(), "-o", "json", "status", "--dead-after", "1s")
		if code != 0 {
			return fmt.Errorf("status: exit %d: %s", code, stderr)
		}
		var st struct {
			DeadVoters []struct {
				ID string `json:"id"`
			} `json:"dead_voters"`
		}
		if err := json.Unmarshal([]byte(stdout), &st); err != nil {
			return err
		}
		if len(st.DeadVoters) != 1 || st.DeadVoters[0].ID != stopped.ID {
			return fmt.Errorf("dead voters %+v", st.DeadVoters)
		}
		return nil
	})
	fndRemoveMember(t, l, stopped.ID) // the dead voter itself may go
	fndPut(t, c.WaitForLeader(), "after", "refusal")
}

// TestMembershipWipedBootstrapNode: the node that bootstrapped the cluster
// loses its disk and is started again with its usual flags, --bootstrap:
// on an empty data directory it forms a cluster of its own. It refuses to
// follow the old cluster's leader (their logs share indexes and terms but
// not contents), and the old cluster drops it as a voter and goes on.
// Started again on an empty directory with --join, it comes back as a
// learner and is promoted.
func TestMembershipWipedBootstrapNode(t *testing.T) {
	c := NewCluster(t, Options{})
	n1 := c.Nodes[0]
	l := c.WaitForLeader()
	fndPut(t, l, "old", "cluster")
	n1.Kill()
	if err := os.RemoveAll(n1.DataDir); err != nil {
		t.Fatal(err)
	}
	fndStart(t, n1) // --bootstrap, as the Procfile line
	n2 := c.Nodes[1]
	Eventually(t, "the old cluster no longer counts "+n1.ID+" as a voter", func() error {
		v, err := n2.View()
		if err != nil {
			return err
		}
		if v.Leader == nil || v.Leader.ID == n1.ID {
			return fmt.Errorf("%s's view: leader %+v", n2.ID, v.Leader)
		}
		for _, m := range v.Members {
			if m.ID == n1.ID && m.Voter {
				return fmt.Errorf("%s is still a voter", n1.ID)
			}
		}
		return nil
	})
	Eventually(t, n1.ID+" refuses the old cluster's leader", func() error {
		// Refused at the Raft handshake (a new cluster id), or, for a
		// cluster without ids, when the old leader's entries arrive.
		if lg := fndLog(t, n1); !strings.Contains(lg, "refused a Raft connection from a node of another cluster") &&
			!strings.Contains(lg, "refusing to follow a leader of another cluster") {
			return fmt.Errorf("not in %s's log yet", n1.ID)
		}
		return nil
	})
	// The old cluster serves; the new one never received its data.
	var old *Node
	for _, n := range c.Nodes[1:] {
		if v, err := n.View(); err == nil && v.State == "Leader" {
			old = n
		}
	}
	if old == nil {
		t.Fatal("no leader among the old cluster's nodes")
	}
	fndPut(t, old, "still", "serving")
	if r := fndDo(t, plainClient, http.MethodGet, n1.URL()+"/v1/kv/old?consistency=stale", nil); r.Status != http.StatusNotFound {
		t.Fatalf("the wiped %s (its own cluster) has the old cluster's key: %d %s", n1.ID, r.Status, r.Body)
	}

	// The fix the logs advise: an empty data directory and --join.
	n1.Kill()
	if err := os.RemoveAll(n1.DataDir); err != nil {
		t.Fatal(err)
	}
	fndStart(t, n1, old.URL())
	Eventually(t, n1.ID+" a voter of the old cluster again", func() error {
		v, err := old.View()
		if err != nil {
			return err
		}
		for _, m := range v.Members {
			if m.ID == n1.ID && m.Voter {
				return nil
			}
		}
		return fmt.Errorf("%s is not a voter in %s's view", n1.ID, old.ID)
	})
	c.WaitForIndex(n1, fndPut(t, old, "after", "fix"))
	if r := fndDo(t, plainClient, http.MethodGet, n1.URL()+"/v1/kv/old?consistency=stale", nil); r.Status != http.StatusOK {
		t.Fatalf("%s back in the old cluster lacks its key: %d %s", n1.ID, r.Status, r.Body)
	}
}

// TestMembershipRemovedWhilePaused: a follower removed while it is frozen
// (SIGSTOP) may never receive the change: the leader stops replicating to
// a removed member. Thawed, it either finds the change in its log, or
// finds itself in its own configuration with no leader talking to it and
// asks the members it knows, learns that the leader does not list it; in
// both cases it exits with status 4 instead of campaigning forever.
func TestMembershipRemovedWhilePaused(t *testing.T) {
	c := NewCluster(t, Options{})
	l := c.WaitForLeader()
	f := c.Followers(l)[0]
	f.Pause()
	fndRemoveMember(t, l, f.ID) // the unreachable voter itself: allowed
	fndPut(t, l, "after", "removal")
	f.Resume()
	if code := msWaitExit(t, f); code != 4 {
		t.Fatalf("%s, removed while paused, exited with status %d, want 4", f.ID, code)
	}
	// Depending on what the kernel buffered for the frozen process, it
	// may also have received the change itself.
	if log := fndLog(t, f); !strings.Contains(log, "this node was removed from the cluster") {
		t.Fatalf("%s's log does not say why it stopped:\n%s", f.ID, log)
	}
}
