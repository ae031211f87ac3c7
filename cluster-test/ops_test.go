package clustertest

// Day-two operations with the real binary and the admin CLI: a backup
// taken while a writer writes, restored into a fresh cluster; SIGTERM to
// the leader under write load (no acknowledged write lost, exit 0, a new
// leader within 2s thanks to the hand-off); a cluster grown from three to
// five nodes and shrunk back with the CLI alone.
//
// Helpers here carry an ops prefix.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/raftcache/raftcache/client"
	"github.com/raftcache/raftcache/fsm"
)

// opsCallDeadline bounds one client call of the writers: a call may span
// a leader change on a busy machine, but must succeed within it.
const opsCallDeadline = 20 * time.Second

// opsEndpoints are the URLs of c's running nodes, for --endpoints.
func opsEndpoints(c *Cluster) string {
	var out []string
	for _, n := range c.Nodes {
		if n.Running() {
			out = append(out, n.URL())
		}
	}
	return strings.Join(out, ",")
}

// opsCLI runs the raftcache binary with args (a command against a
// cluster: pass -e) and returns its exit code, stdout and stderr. The
// environment carries no RAFTCACHE_* settings of the caller's.
func opsCLI(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RAFTCACHE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee) && ctx.Err() == nil:
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("raftcache %s: %v\nstderr: %s", strings.Join(args, " "), err, errb.String())
	return -1, "", ""
}

// opsJSON runs the CLI with -o json against endpoints, requires exit 0 and
// decodes its one JSON document into out.
func opsJSON(t testing.TB, endpoints string, out any, args ...string) {
	t.Helper()
	args = append([]string{"-e", endpoints, "-o", "json", "--timeout", "30s"}, args...)
	code, stdout, stderr := opsCLI(t, args...)
	if code != 0 {
		t.Fatalf("raftcache %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil || dec.More() {
		t.Fatalf("raftcache %s: stdout is not one JSON document (%v):\n%s", strings.Join(args, " "), err, stdout)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("raftcache %s: %v in %s", strings.Join(args, " "), err, raw)
		}
	}
}

// opsStatus is `raftcache status -o json`.
type opsStatus struct {
	Leader *struct {
		ID string `json:"id"`
	} `json:"leader"`
	Healthy bool `json:"healthy"`
	Members []struct {
		ID        string  `json:"id"`
		Voter     bool    `json:"voter"`
		Reachable bool    `json:"reachable"`
		Ready     bool    `json:"ready"`
		State     string  `json:"state"`
		Lag       *uint64 `json:"lag"`
	} `json:"members"`
}

// summary is the member list as "id:voter" in id order, e.g. "n1:v n5:nv".
func (s *opsStatus) summary() string {
	var out []string
	for _, m := range s.Members {
		role := "v"
		if !m.Voter {
			role = "nv"
		}
		out = append(out, m.ID+":"+role)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// opsWaitStatus polls `status -o json` until the cluster is healthy (a
// leader, every member reachable and ready), every member's lag is at most
// maxLag, and the member list is want (see summary).
func opsWaitStatus(t testing.TB, endpoints, want string, maxLag uint64) *opsStatus {
	t.Helper()
	var st opsStatus
	Eventually(t, "status: "+want, func() error {
		code, stdout, stderr := opsCLI(t, "-e", endpoints, "-o", "json", "--timeout", "10s", "status")
		if code != 0 {
			return fmt.Errorf("status exit %d: %s", code, stderr)
		}
		st = opsStatus{}
		if err := json.Unmarshal([]byte(stdout), &st); err != nil {
			return err
		}
		if got := st.summary(); got != want {
			return fmt.Errorf("members %s", got)
		}
		if !st.Healthy {
			return fmt.Errorf("not healthy: %s", stdout)
		}
		for _, m := range st.Members {
			if m.Lag == nil || *m.Lag > maxLag {
				return fmt.Errorf("%s lags: %s", m.ID, stdout)
			}
		}
		return nil
	})
	return &st
}

// opsWriter writes keys through the client library, sequentially, and
// records what was acknowledged. Write i sets key(i) to strconv.Itoa(i).
type opsWriter struct {
	cl  *client.Client
	key func(i int) string

	stop atomic.Bool
	done chan struct{}

	mu        sync.Mutex
	attempted int            // writes started: 0..attempted-1
	acked     map[string]int // key -> last acknowledged i
	ackCount  int
	errs      []string
	slowest   time.Duration
}

func opsStartWriter(cl *client.Client, key func(i int) string) *opsWriter {
	w := &opsWriter{cl: cl, key: key, acked: map[string]int{}, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; !w.stop.Load() && i < 1_000_000; i++ {
			k := w.key(i)
			w.mu.Lock()
			w.attempted = i + 1
			w.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), opsCallDeadline)
			t0 := time.Now()
			_, err := w.cl.Set(ctx, k, []byte(strconv.Itoa(i)))
			cancel()
			w.mu.Lock()
			w.slowest = max(w.slowest, time.Since(t0))
			if err != nil {
				w.errs = append(w.errs, fmt.Sprintf("write %d (%s): %v", i, k, err))
			} else {
				w.acked[k] = i
				w.ackCount++
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// waitAcks waits until n more writes than now have been acknowledged.
func (w *opsWriter) waitAcks(t testing.TB, n int) {
	t.Helper()
	target := w.acks() + n
	Eventually(t, fmt.Sprintf("%d acknowledged writes", target), func() error {
		if got := w.acks(); got < target {
			return fmt.Errorf("%d acknowledged", got)
		}
		return nil
	})
}

func (w *opsWriter) acks() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ackCount
}

// snapshotAcked copies the acknowledged writes and the number attempted.
func (w *opsWriter) snapshotAcked() (map[string]int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.acked))
	for k, v := range w.acked {
		out[k] = v
	}
	return out, w.attempted
}

func (w *opsWriter) halt() {
	w.stop.Store(true)
	<-w.done
}

// opsReadAll lists every key of the cluster and reads them all (strong).
func opsReadAll(t testing.TB, cl *client.Client) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var keys []string
	for cursor, pages := "", 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("more than 1000 pages of keys")
		}
		p, err := cl.Keys(ctx, "", client.WithCursor(cursor), client.WithLimit(1000))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, p.Keys...)
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	out := map[string]string{}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 1000)]
		keys = keys[len(batch):]
		res, err := cl.GetMany(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range res.Items {
			if it.Found {
				out[it.Key] = string(it.Value)
			}
		}
	}
	return out
}

func opsNewClient(t testing.TB, c *Cluster) *client.Client {
	t.Helper()
	cl, err := client.New(client.Config{Endpoints: strings.Split(opsEndpoints(c), ","), Timeout: opsCallDeadline})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// A backup is taken with the CLI while a writer writes continuously, and
// restored into a fresh cluster. The fresh cluster then holds exactly the
// backup; every write acknowledged before the backup started is in it (at
// that value or a later one of the same key); nothing in it was never
// written; TTLs keep their absolute expiry.
func TestOpsBackupUnderWritesRestoreIntoFreshCluster(t *testing.T) {
	a := NewCluster(t, Options{})
	a.WaitForLeader()
	clA := opsNewClient(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := clA.Set(ctx, "ttl:session", []byte("s"), client.WithTTL(time.Hour)); err != nil {
		t.Fatal(err)
	}
	ttlItem, err := clA.Get(ctx, "ttl:session")
	if err != nil {
		t.Fatal(err)
	}
	const hot = 400 // keys the writer cycles over: later writes overwrite earlier ones
	keyOf := func(i int) string { return fmt.Sprintf("w%04d", i%hot) }
	w := opsStartWriter(clA, keyOf)
	defer w.halt()
	w.waitAcks(t, 600) // every key written, some several times

	before, _ := w.snapshotAcked()
	acksBefore := w.acks()
	path := filepath.Join(t.TempDir(), "a.snap")
	var saved struct {
		Keys   int    `json:"keys"`
		Bytes  int64  `json:"bytes"`
		TookMS int64  `json:"took_ms"`
		SHA256 string `json:"sha256"`
	}
	saveStart := time.Now()
	opsJSON(t, opsEndpoints(a), &saved, "snapshot", "save", path)
	saveTook := time.Since(saveStart)
	duringSave := w.acks() - acksBefore
	w.waitAcks(t, 50) // the writer goes on after the save
	w.halt()
	_, attempted := w.snapshotAcked()
	t.Logf("backup: %d keys, %d bytes (%dms on the leader, %v for the CLI process); %d writes acknowledged while the CLI ran, %d attempted in all; slowest write %v",
		saved.Keys, saved.Bytes, saved.TookMS, saveTook.Round(time.Millisecond), duringSave, attempted, w.slowest)
	if len(w.errs) > 0 {
		t.Errorf("%d writes failed, first: %s", len(w.errs), w.errs[0])
	}

	// The backup itself.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	backup := map[string]string{}
	backupExpiry := map[string]int64{}
	err = fsm.ReadBackup(f, func(it fsm.BackupItem) error {
		backup[string(it.Key)] = string(it.Value)
		backupExpiry[string(it.Key)] = it.ExpireAt
		return nil
	})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(backup) != saved.Keys {
		t.Fatalf("the backup holds %d keys, the CLI reported %d", len(backup), saved.Keys)
	}

	// A fresh cluster, restored with the CLI.
	b := NewCluster(t, Options{})
	b.WaitForLeader()
	var restored struct {
		Keys int `json:"keys"`
	}
	opsJSON(t, opsEndpoints(b), &restored, "restore", path)
	if restored.Keys != len(backup) {
		t.Fatalf("restore wrote %d keys, the backup holds %d", restored.Keys, len(backup))
	}
	digest := b.WaitConverged()
	clB := opsNewClient(t, b)
	got := opsReadAll(t, clB)

	// B is the backup, exactly.
	if len(got) != len(backup) {
		t.Fatalf("the restored cluster holds %d keys, the backup %d", len(got), len(backup))
	}
	for k, v := range backup {
		if got[k] != v {
			t.Fatalf("restored %s = %q, backup has %q", k, got[k], v)
		}
	}
	// Every write acknowledged before the save started is there, at that
	// value or a later write of the same key; nothing was never written.
	for k, i := range before {
		v, ok := got[k]
		if !ok {
			t.Fatalf("acknowledged write %s=%d (before the backup) is missing", k, i)
		}
		if j, err := strconv.Atoi(v); err != nil || j < i {
			t.Fatalf("restored %s = %q, older than the write %d acknowledged before the backup", k, v, i)
		}
	}
	for k, v := range got {
		if k == "ttl:session" {
			continue
		}
		j, err := strconv.Atoi(v)
		if err != nil || j < 0 || j >= attempted || keyOf(j) != k {
			t.Fatalf("restored %s = %q was never written", k, v)
		}
	}
	item, err := clB.Get(ctx, "ttl:session")
	if err != nil || !item.ExpiresAt.Equal(ttlItem.ExpiresAt) || backupExpiry["ttl:session"]/1e6 != ttlItem.ExpiresAt.UnixMilli() {
		t.Fatalf("TTL key after restore: %+v, %v; expiry before %v", item, err, ttlItem.ExpiresAt)
	}
	t.Logf("restored %d keys into a fresh cluster; its members agree on digest %s", len(got), digest)
}

// SIGTERM to the leader under write load: the leader hands leadership over
// before it exits, so another node leads within 2s; the process exits 0;
// no acknowledged write is lost.
func TestOpsSIGTERMLeaderUnderLoad(t *testing.T) {
	c := NewCluster(t, Options{})
	l := c.WaitForLeader()
	cl := opsNewClient(t, c)
	var writers []*opsWriter
	for g := 0; g < 2; g++ {
		writers = append(writers, opsStartWriter(cl, func(i int) string { return fmt.Sprintf("g%d-%06d", g, i) }))
	}
	defer func() {
		for _, w := range writers {
			w.halt()
		}
	}()
	for _, w := range writers {
		w.waitAcks(t, 100)
	}

	// Watch the other nodes closely: the first to call itself leader.
	others := c.Followers(l)
	type seen struct {
		id string
		at time.Time
	}
	first := make(chan seen, len(others))
	watchCtx, stopWatch := context.WithTimeout(context.Background(), deadline)
	defer stopWatch()
	var watchers sync.WaitGroup
	for _, n := range others {
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			for watchCtx.Err() == nil {
				rctx, cancel := context.WithTimeout(watchCtx, 500*time.Millisecond)
				r, err := Do(rctx, plainClient, "GET", n.URL()+"/v1/cluster", nil)
				cancel()
				if err == nil && r.Status == 200 {
					var v ClusterView
					if json.Unmarshal(r.Body, &v) == nil && v.State == "Leader" {
						first <- seen{n.ID, time.Now()}
						return
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	sigAt := time.Now()
	l.signal(syscall.SIGTERM, false)
	var next seen
	select {
	case next = <-first:
	case <-watchCtx.Done():
		t.Fatalf("no other node became leader within %v of SIGTERM to %s", deadline, l.ID)
	}
	stopWatch()
	watchers.Wait()
	took := next.at.Sub(sigAt)
	t.Logf("SIGTERM to leader %s at %s; %s reported itself leader %v later", l.ID, sigAt.Format("15:04:05.000"), next.id, took)
	Eventually(t, l.ID+" exits", func() error {
		if l.Running() {
			return errors.New("still running")
		}
		return nil
	})
	log := fndLog(t, l)
	if code := fndExitCode(l); code != 0 {
		t.Fatalf("%s exited %d after SIGTERM, want 0; log:\n%s", l.ID, code, log)
	}
	if !strings.Contains(log, "handed leadership over before shutdown") {
		t.Errorf("%s did not hand leadership over; log:\n%s", l.ID, log)
	}
	if took >= 2*time.Second {
		t.Errorf("a new leader took %v after SIGTERM, want under 2s", took)
	}

	// The writers go on against the survivors.
	for _, w := range writers {
		w.waitAcks(t, 100)
	}
	for _, w := range writers {
		w.halt()
	}
	got := opsReadAll(t, cl)
	total := 0
	for _, w := range writers {
		if len(w.errs) > 0 {
			t.Errorf("%d writes failed, first: %s", len(w.errs), w.errs[0])
		}
		for k, i := range w.acked {
			total++
			if got[k] != strconv.Itoa(i) {
				t.Fatalf("acknowledged write %s=%d lost: read %q", k, i, got[k])
			}
		}
		t.Logf("writer: %d writes acknowledged, slowest %v", w.ackCount, w.slowest)
	}
	t.Logf("all %d acknowledged writes read back from the two survivors", total)
}

// A three-node cluster is grown to five and shrunk back to three with the
// CLI alone: members add (one as a non-voter, then promoted), status,
// transfer-leadership to a new node, members remove (the leader last).
func TestOpsGrowToFiveAndShrink(t *testing.T) {
	c := NewCluster(t, Options{})
	c.WaitForLeader()
	e := opsEndpoints(c)
	opsJSON(t, e, nil, "set", "before-growth", "kept")

	n4 := c.AddNode(Options{}, 3)
	n5 := c.AddNode(Options{}, 4)
	opsJSON(t, e, nil, "members", "add", "n4", "--raft-addr", n4.RaftAdvertise, "--http-addr", n4.HTTPAddr)
	fndStart(t, n4, c.Nodes[0].URL()) // --join only so that it does not bootstrap: it is a member already
	opsJSON(t, e, nil, "members", "add", "n5", "--raft-addr", n5.RaftAdvertise, "--http-addr", n5.HTTPAddr, "--non-voter")
	fndStart(t, n5, c.Nodes[0].URL())
	opsWaitStatus(t, e, "n1:v n2:v n3:v n4:v n5:nv", 0)
	opsJSON(t, e, nil, "members", "promote", "n5")
	st := opsWaitStatus(t, e, "n1:v n2:v n3:v n4:v n5:v", 0)
	t.Logf("five voters, leader %s", st.Leader.ID)

	// Written through five, read from the new nodes.
	opsJSON(t, e, nil, "set", "with-five", "yes")
	for _, n := range []*Node{n4, n5} {
		Eventually(t, "with-five on "+n.ID, func() error {
			r, err := Do(context.Background(), plainClient, "GET", n.URL()+"/v1/kv/with-five?consistency=stale", nil)
			if err != nil {
				return err
			}
			if r.Status != 200 || string(r.Body) != "yes" {
				return fmt.Errorf("%d %s", r.Status, r.Body)
			}
			return nil
		})
	}

	// Leadership to n4, then shrink: n5, then n4 (the leader) itself.
	var tr struct {
		Leader struct {
			ID string `json:"id"`
		} `json:"leader"`
	}
	opsJSON(t, e, &tr, "transfer-leadership", "--to", "n4")
	if tr.Leader.ID != "n4" {
		t.Fatalf("transfer-leadership --to n4 answered leader %q", tr.Leader.ID)
	}
	opsJSON(t, e, nil, "members", "remove", "n5")
	n5.Stop()
	opsWaitStatus(t, e, "n1:v n2:v n3:v n4:v", 0)
	opsJSON(t, e, nil, "members", "remove", "n4")
	n4.Stop()
	if code := fndExitCode(n4); code != 0 && code != 4 {
		t.Errorf("n4 exited %d after its removal and SIGTERM, want 4 (removed) or 0", code)
	}
	st = opsWaitStatus(t, e, "n1:v n2:v n3:v", 0)
	if id := st.Leader.ID; id != "n1" && id != "n2" && id != "n3" {
		t.Fatalf("leader after the shrink: %s", id)
	}
	for k, want := range map[string]string{"before-growth": "kept", "with-five": "yes"} {
		code, stdout, stderr := opsCLI(t, "-e", e, "--timeout", "30s", "get", k)
		if code != 0 || stdout != want {
			t.Fatalf("get %s after the shrink: exit %d, %q, %s", k, code, stdout, stderr)
		}
	}
	t.Logf("back to three voters, leader %s", st.Leader.ID)
}

// The real binary's exit codes and completion candidates (which urfave/cli
// reads from os.Args, so in-process tests cannot see them).
func TestOpsBinaryExitCodesAndCompletion(t *testing.T) {
	if code, _, stderr := opsCLI(t, "get"); code != 2 {
		t.Errorf("get without a key: exit %d (%s), want 2", code, stderr)
	}
	if code, _, _ := opsCLI(t, "status", "--bogus"); code != 2 {
		t.Errorf("an unknown flag: exit %d, want 2", code)
	}
	if code, _, _ := opsCLI(t, "-e", "http://127.0.0.1:1", "--timeout", "300ms", "get", "k"); code != 1 {
		t.Errorf("an unreachable cluster: exit %d, want 1", code)
	}
	if code, stdout, _ := opsCLI(t, "members", "--generate-bash-completion"); code != 0 || !strings.Contains(stdout, "promote") {
		t.Errorf("completion candidates for members: exit %d, %q", code, stdout)
	}
	if code, stdout, _ := opsCLI(t, "--generate-bash-completion"); code != 0 || !strings.Contains(stdout, "transfer-leadership") {
		t.Errorf("completion candidates for commands: exit %d, %q", code, stdout)
	}
}
