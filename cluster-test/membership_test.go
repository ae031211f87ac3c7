package clustertest

// Membership and catch-up on real processes: a node joins through a
// follower (which redirects the join to the leader), receives the existing
// data, is removed through a follower; unknown members give 404; a member
// asking to join again after a restart changes nothing. A follower that
// fell behind a compacted log catches up by installing a snapshot.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fndMembers is a node's member list as a canonical string.
func fndMembers(v *ClusterView) string {
	var out []string
	for _, m := range v.Members {
		out = append(out, fmt.Sprintf("%s raft=%s http=%s voter=%v", m.ID, m.RaftAddr, m.HTTPAddr, m.Voter))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// fndExpectMembers is the member list nodes should report.
func fndExpectMembers(nodes ...*Node) string {
	var out []string
	for _, n := range nodes {
		out = append(out, fmt.Sprintf("%s raft=%s http=%s voter=%v", n.ID, n.RaftAdvertise, n.HTTPAddr, true))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// fndWaitMemberList waits until every node in on lists exactly members.
func fndWaitMemberList(t testing.TB, on []*Node, members []*Node) {
	t.Helper()
	want := fndExpectMembers(members...)
	for _, n := range on {
		Eventually(t, fmt.Sprintf("%s lists %d members", n.ID, len(members)), func() error {
			v, err := n.View()
			if err != nil {
				return err
			}
			if got := fndMembers(v); got != want {
				return fmt.Errorf("members %s, want %s", got, want)
			}
			return nil
		})
	}
}

// fndRejoin restarts n with join and waits until its join request (it is
// already a member) has been answered.
func fndRejoin(t testing.TB, n *Node, join string) {
	t.Helper()
	n.Stop()
	fndStart(t, n, join)
	Eventually(t, n.ID+" asks to join again", func() error {
		if !strings.Contains(fndLog(t, n), "joined the cluster") {
			return fmt.Errorf("no \"joined the cluster\" in %s's log since its restart", n.ID)
		}
		return nil
	})
}

// fndRemoveMember removes id through via, following the redirect to the
// leader. A 503, or a 504 after which the removal may have happened, is
// asked again; 404 unknown_member then means the earlier attempt did it.
func fndRemoveMember(t testing.TB, via *Node, id string) {
	t.Helper()
	ambiguous := false
	Eventually(t, "remove member "+id+" via "+via.ID, func() error {
		r, err := Do(context.Background(), followClient, http.MethodDelete, via.URL()+"/v1/cluster/members/"+id, nil)
		switch {
		case err != nil:
			return err
		case r.Status == http.StatusOK && strings.Contains(string(r.Body), `"removed":"`+id+`"`):
			return nil
		case r.Status == http.StatusNotFound && fndCode(r) == "unknown_member" && ambiguous:
			return nil
		case r.Status == http.StatusServiceUnavailable || fndCode(r) == "unknown_outcome":
			ambiguous = ambiguous || r.Status != http.StatusServiceUnavailable
			return fmt.Errorf("%d %s", r.Status, r.Body)
		}
		t.Fatalf("DELETE member %s via %s: %d %s", id, via.ID, r.Status, r.Body)
		return nil
	})
}

// fndStart starts n and waits until it serves /livez (both its ports are
// bound). Its ports come from the kernel's ephemeral range, so while n was
// down an outgoing connection on this busy machine may have taken one (or
// left it in TIME_WAIT); the process then exits with "address already in
// use". fndStart logs who holds the port and starts n again, for at most
// two minutes: the kernel, not Raft, is what it waits for.
func fndStart(t testing.TB, n *Node, join ...string) {
	t.Helper()
	for end := time.Now().Add(2 * time.Minute); ; {
		n.Start(join...)
		exited := false
		Eventually(t, n.ID+" serves /livez", func() error {
			if !n.Running() {
				exited = true
				return nil
			}
			resp, err := plainClient.Get(n.URL() + "/livez")
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		})
		if !exited {
			return
		}
		log := fndLog(t, n)
		if !strings.Contains(log, "address already in use") || time.Now().After(end) {
			t.Fatalf("%s exited at start with status %d:\n%s", n.ID, fndExitCode(n), log)
		}
		out, _ := exec.Command("ss", "-tanpo", "( sport = :"+fndPort(n.HTTPAddr)+" or sport = :"+fndPort(n.RaftAddr)+" )").CombinedOutput()
		t.Logf("%s could not bind its ports; starting it again in 5s. Log:\n%s\nss:\n%s", n.ID, log, out)
		time.Sleep(5 * time.Second)
	}
}

func fndPort(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

func TestMembershipJoinRemoveRejoin(t *testing.T) {
	c := NewCluster(t, Options{})
	l := c.WaitForLeader()
	want := map[string]string{}
	var last uint64
	for i := 0; i < 20; i++ {
		k := fmt.Sprintf("m%02d", i)
		want[k] = "member data " + k
		last = fndPut(t, l, k, want[k])
	}
	orig := append([]*Node(nil), c.Nodes...)
	f := c.Followers(l)[0]
	n4 := c.AddNode(Options{}, 3)

	// A follower answers a join with 307 to the leader, before reading the
	// body; n4 joins through that follower.
	body, _ := json.Marshal(map[string]string{"id": n4.ID, "raft_addr": n4.RaftAdvertise, "http_addr": n4.HTTPAddr})
	fndRedirects(t, c, f, http.MethodPost, "/v1/cluster/members", body)
	fndStart(t, n4, f.URL())
	c.WaitMembers(4)
	fndWaitMemberList(t, c.Nodes, c.Nodes)
	c.WaitReady(n4)
	c.WaitForIndex(n4, last)
	c.WaitConverged()
	for k, v := range want {
		r := fndDo(t, plainClient, http.MethodGet, n4.URL()+"/v1/kv/"+k+"?consistency=stale", nil)
		if r.Status != http.StatusOK || string(r.Body) != v {
			t.Fatalf("stale GET %s on %s: %d %q, want %q", k, n4.ID, r.Status, r.Body, v)
		}
	}

	// n4, already a member, restarts and asks to join again: nothing changes.
	fndRejoin(t, n4, f.URL())
	fndWaitMemberList(t, c.Nodes, c.Nodes)
	c.WaitForIndex(n4, last)

	// Removal through a follower, redirected to the leader.
	l = c.WaitForLeader()
	via := c.Followers(l)[0]
	if via == n4 {
		via = c.Followers(l)[1]
	}
	fndRedirects(t, c, via, http.MethodDelete, "/v1/cluster/members/n4", nil)
	fndRemoveMember(t, via, "n4")
	fndWaitMemberList(t, orig, orig)
	// A removed node does not pretend to be alive: it exits, status 4.
	Eventually(t, "removed "+n4.ID+" exits by itself", func() error {
		if n4.Running() {
			return fmt.Errorf("%s still runs", n4.ID)
		}
		return nil
	})
	if code := fndExitCode(n4); code != 4 {
		t.Errorf("removed %s exited with status %d, want 4", n4.ID, code)
	}
	c.WaitMembers(3)

	Eventually(t, "DELETE of an unknown member answers 404", func() error {
		r, err := Do(context.Background(), followClient, http.MethodDelete, via.URL()+"/v1/cluster/members/nope", nil)
		switch {
		case err != nil:
			return err
		case r.Status == http.StatusServiceUnavailable:
			return fmt.Errorf("%d %s", r.Status, r.Body)
		case r.Status != http.StatusNotFound || fndCode(r) != "unknown_member":
			t.Fatalf("DELETE unknown member: %d %s, want 404 unknown_member", r.Status, r.Body)
		}
		return nil
	})
	fndWaitMemberList(t, orig, orig)

	// An original follower restarts with its join flag: still three members.
	l = c.WaitForLeader()
	g := orig[1]
	if g == l {
		g = orig[2]
	}
	fndRejoin(t, g, orig[0].URL())
	fndWaitMemberList(t, orig, orig)
	c.WaitForIndex(g, fndPut(t, g, "after", "rejoin"))
	c.WaitConverged()
}

func TestSnapshotInstallOnLaggingFollower(t *testing.T) {
	c := NewCluster(t, Options{Args: []string{"--snapshot-threshold", "20", "--snapshot-interval", "200ms", "--trailing-logs", "10", "--wal-segment-size", "2048"}})
	l := c.WaitForLeader()
	f := c.Followers(l)[0]
	lv, err := l.View()
	if err != nil {
		t.Fatal(err)
	}
	f.Kill()

	want := map[string]string{}
	var last uint64
	for i := 0; i < 300; i++ {
		k, v := fmt.Sprintf("s%03d", i), strings.Repeat(strconv.Itoa(i), 1+i%7)
		last = fndPut(t, l, k, v)
		want[k] = v
	}

	// The leader snapshots well past what f has, and compacts its log, so
	// f can only catch up through a snapshot.
	l = c.WaitForLeader()
	past := lv.CommitIndex + 100
	Eventually(t, fmt.Sprintf("%s snapshots past index %d", l.ID, past), func() error {
		idx, err := fndLatestSnapshot(l)
		if err != nil {
			return err
		}
		if idx < past {
			return fmt.Errorf("latest snapshot at index %d", idx)
		}
		return nil
	})
	Eventually(t, l.ID+" compacts its log", func() error {
		if !strings.Contains(fndLog(t, l), "compacting logs") {
			return fmt.Errorf("no \"compacting logs\" in %s's log", l.ID)
		}
		return nil
	})

	fndRestart(c, f)
	c.WaitForIndex(f, last)
	c.WaitConverged()
	if log := fndLog(t, f); !strings.Contains(log, "Installed remote snapshot") {
		t.Fatalf("%s caught up without installing a snapshot; its log:\n%s", f.ID, log)
	}
	for i := 0; i < 300; i += 37 {
		k := fmt.Sprintf("s%03d", i)
		r := fndDo(t, plainClient, http.MethodGet, f.URL()+"/v1/kv/"+k+"?consistency=stale", nil)
		if r.Status != http.StatusOK || string(r.Body) != want[k] {
			t.Fatalf("stale GET %s on %s: %d %q, want %q", k, f.ID, r.Status, r.Body, want[k])
		}
	}
	if _, err := fndLatestSnapshot(f); err != nil {
		t.Fatalf("%s kept no copy of the installed snapshot: %v", f.ID, err)
	}
}

// fndLatestSnapshot is the highest index among the snapshots raft's file
// snapshot store keeps in n's data dir (<data-dir>/snapshots/*/meta.json).
func fndLatestSnapshot(n *Node) (uint64, error) {
	metas, err := filepath.Glob(filepath.Join(n.DataDir, "snapshots", "*", "meta.json"))
	if err != nil {
		return 0, err
	}
	var best uint64
	for _, p := range metas {
		if strings.HasSuffix(filepath.Dir(p), ".tmp") {
			continue // being written
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var m struct{ Index uint64 }
		if json.Unmarshal(b, &m) == nil && m.Index > best {
			best = m.Index
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("no snapshot under %s (found %v)", filepath.Join(n.DataDir, "snapshots"), metas)
	}
	return best, nil
}
