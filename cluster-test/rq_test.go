package clustertest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRQ runs rq (Debian's python3-rq 1.13, unchanged) on a three-node
// cluster: jobs enqueued through one follower, a burst worker on the
// other, the leader killed and restarted while the worker runs. Every job
// must finish with its result kept, and the failing job must be in
// rq's failed registry: an acknowledged enqueue survives the leader's
// loss. (A worker that quits between popping a job and starting it, as
// rq 1.13's does on the "write outcome unknown" error of a write in
// flight when the leader dies, drops that job, on Redis too; the driver
// puts such jobs back, as a supervisor must with rq 1.13. When that error
// meets the EXEC that records a job's success, rq files the job as
// failed though it ran; the driver requeues it, as `rq requeue` would,
// and it runs again.) rq uses lists, hashes, sets, sorted sets, streams (job results),
// MULTI/WATCH pipelines, Lua scripts and pub/sub.
func TestRQ(t *testing.T) {
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	if err := exec.Command(python, "-c", "import rq, redis").Run(); err != nil {
		t.Skip("python3-rq is not installed (.ci/run installs it)")
	}
	dir := t.TempDir()
	for _, f := range []string{"rqdrive.py", "rqjobs.py"} {
		b, err := os.ReadFile(filepath.Join("testdata", "rq", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, addrs := respCluster(t)
	leader := c.WaitForLeader()
	fs := c.Followers(leader)
	port := func(n *Node) string { _, p := respHostPort(t, addrs[n.ID]); return p }
	py := func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, python, append([]string{filepath.Join(dir, "rqdrive.py")}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PYTHONPATH="+dir)
		return cmd
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	const jobs = 60
	out, err := py(ctx, "enqueue", port(fs[0]), "60").Output()
	if err != nil {
		t.Fatalf("enqueue: %v\n%s", err, exitText(err))
	}
	var ids []string
	if err := json.Unmarshal(out, &ids); err != nil || len(ids) != jobs+1 {
		t.Fatalf("enqueue printed %q (%v)", out, err)
	}

	worker := py(ctx, "work", port(fs[1]))
	var wout, werr strings.Builder
	worker.Stdout, worker.Stderr = &wout, &werr
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	leader.Kill()
	t.Logf("killed the leader %s while the worker ran", leader.ID)
	time.Sleep(2 * time.Second)
	if leader == c.Nodes[0] {
		leader.Start()
	} else {
		leader.Start(c.Nodes[0].URL())
	}
	c.WaitReady(leader)
	if err := worker.Wait(); err != nil {
		t.Fatalf("the worker: %v\nstdout: %s\nstderr: %s", err, wout.String(), tail(werr.String(), 3000))
	}
	t.Logf("worker: %s", strings.TrimSpace(wout.String()))
	if e := strings.TrimSpace(werr.String()); e != "" {
		t.Logf("worker's stderr: %s", tail(e, 3000))
	}

	idsJSON, _ := json.Marshal(ids)
	out, err = py(ctx, "check", port(leader), string(idsJSON)).Output()
	if err != nil {
		t.Fatalf("check: %v\n%s", err, exitText(err))
	}
	var got map[string]struct {
		Status   string `json:"status"`
		Result   any    `json:"result"`
		Func     string `json:"func"`
		Args     []int  `json:"args"`
		InFailed bool   `json:"in_failed"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("check printed %q: %v", out, err)
	}
	for i, id := range ids {
		j, ok := got[id]
		switch {
		case !ok:
			t.Errorf("job %s is lost", id)
		case i == jobs:
			if j.Status != "failed" || !j.InFailed {
				t.Errorf("the failing job: %+v, want failed and in the failed registry", j)
			}
		case j.Status != "finished" || j.Result != float64(2*i):
			t.Errorf("job %d (%s): %+v, want finished with %d", i, id, j, 2*i)
		}
	}
}

func exitText(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return tail(string(ee.Stderr), 3000)
	}
	return ""
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
