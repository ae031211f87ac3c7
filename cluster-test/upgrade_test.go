package clustertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// previousRelease is the last revision before feature levels: its binary
// applies entry types 1 to 11 and writes snapshot format 1 only, so a
// cluster that still runs it must never see an OpExec entry.
const previousRelease = "2038a1bdb6fd3a26ae7727607f273072a5309304"

// buildPrevious builds previousRelease from this clone's history.
func buildPrevious(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("git", "-C", root, "cat-file", "-e", previousRelease+"^{commit}").Run(); err != nil {
		t.Skipf("revision %s is not in this clone (no git, or a shallow clone): %v", previousRelease[:12], err)
	}
	src := t.TempDir()
	archive := exec.Command("sh", "-c", "git -C '"+root+"' archive "+previousRelease+" | tar -x -C '"+src+"'")
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", previousRelease, err, out)
	}
	bin := filepath.Join(src, "raftcache-previous")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", previousRelease, err, out)
	}
	return bin
}

// A rolling upgrade from the previous release, followers first and the
// leader last, as the README says, under writes over HTTP and the Redis
// port: the cluster keeps serving at every step (while an old member
// remains, the new leader writes entries the old binary understands),
// no acknowledged write is lost, and once every member runs this binary
// the cluster's feature level rises and transactions run in the engine.
func TestRollingUpgradeFromPreviousRelease(t *testing.T) {
	prev := buildPrevious(t)
	c, addrs := respClusterWith(t, func(n *Node) { n.Binary = prev })
	leader := c.WaitForLeader()
	if lvl := clusterLevel(t, leader); lvl > 1 {
		t.Fatalf("a cluster of previous-release nodes reports feature level %d", lvl)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu       sync.Mutex
		acked    = map[string]string{} // key -> value acknowledged
		okWrites atomic.Int64
		wg       sync.WaitGroup
	)
	ack := func(k, v string) {
		mu.Lock()
		acked[k] = v
		mu.Unlock()
		okWrites.Add(1)
	}
	// An HTTP writer through every node in turn, following redirects.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			n := c.Nodes[i%len(c.Nodes)]
			k, v := "h"+strconv.Itoa(i), strconv.Itoa(i)
			r, err := Do(ctx, followClient, http.MethodPut, n.URL()+"/v1/kv/"+k, []byte(v))
			if err == nil && r.Status == http.StatusOK {
				ack(k, v)
			}
			time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
		}
	}()
	// A Redis-protocol writer on each node (a follower relays).
	for _, n := range c.Nodes {
		wg.Add(1)
		go func(addr, id string) {
			defer wg.Done()
			rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 5 * time.Second})
			defer rdb.Close()
			for i := 0; ctx.Err() == nil; i++ {
				k, v := "r"+id+"-"+strconv.Itoa(i), strconv.Itoa(i)
				if rdb.Set(ctx, k, v, time.Hour).Err() == nil {
					ack(k, v)
				} else {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}(addrs[n.ID], n.ID)
	}
	// progress waits until writes are acknowledged after a step: the
	// cluster serves.
	progress := func(step string) {
		t.Helper()
		from := okWrites.Load()
		Eventually(t, "writes acknowledged after "+step, func() error {
			if n := okWrites.Load() - from; n < 20 {
				return fmt.Errorf("%d writes acknowledged since", n)
			}
			return nil
		})
	}
	progress("start")

	upgrade := func(n *Node) {
		t.Helper()
		n.Stop()
		n.Binary = "" // this work tree's build
		var others []string
		for _, o := range c.Nodes {
			if o != n {
				others = append(others, o.URL())
			}
		}
		n.Start(others...)
		c.WaitReady(n)
		progress("upgrading " + n.ID)
	}
	for _, f := range c.Followers(leader) {
		upgrade(f)
	}
	// Two new members and an old leader: still level 1.
	if lvl := clusterLevel(t, c.WaitForLeader()); lvl > 1 {
		t.Fatalf("feature level %d while %s still runs the previous release", lvl, leader.ID)
	}
	upgrade(leader)
	// The previous release made bolt stores; the new binary, asked for no
	// store, keeps them (pebble is only for new data directories).
	for _, n := range c.Nodes {
		if _, err := os.Stat(filepath.Join(n.DataDir, "raft.db")); err != nil {
			t.Fatalf("%s after the upgrade: %v", n.ID, err)
		}
		if _, err := os.Stat(filepath.Join(n.DataDir, "pebble")); err == nil {
			t.Fatalf("%s after the upgrade: a pebble store beside its bolt one", n.ID)
		}
	}

	newLeader := c.WaitForLeader()
	Eventually(t, "the cluster's feature level to reach 2", func() error {
		if lvl := clusterLevel(t, newLeader); lvl < 2 {
			return fmt.Errorf("cluster feature level %d", lvl)
		}
		return nil
	})
	progress("the level rose")

	// Transactions now run in the engine: reads see the transaction's writes.
	rdb := redis.NewClient(&redis.Options{Addr: addrs[c.Followers(newLeader)[0].ID], MaxRetries: 3})
	defer rdb.Close()
	var get *redis.StringCmd
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "upgraded", "1", 0)
		p.Incr(ctx, "upgraded")
		get = p.Get(ctx, "upgraded")
		return nil
	}); err != nil || get.Val() != "2" {
		t.Fatalf("MULTI SET INCR GET after the upgrade: %q, %v (want \"2\")", get.Val(), err)
	}

	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d writes acknowledged during the upgrade", len(acked))
	check := redis.NewClient(&redis.Options{Addr: addrs[newLeader.ID], MaxRetries: 3})
	defer check.Close()
	lost := 0
	for k, v := range acked {
		got, err := check.Get(context.Background(), k).Result()
		if err != nil || got != v {
			lost++
			if lost < 5 {
				t.Errorf("acknowledged write %s=%s reads back %q, %v", k, v, got, err)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged writes lost across the upgrade", lost, len(acked))
	}
}

// clusterLevel is the cluster feature level n reports (1 for a node from
// before levels, which does not report one).
func clusterLevel(t *testing.T, n *Node) uint32 {
	t.Helper()
	var v struct {
		Level uint32 `json:"cluster_feature_level"`
	}
	if err := n.getJSON("/v1/cluster", &v); err != nil {
		t.Fatalf("GET /v1/cluster on %s: %v", n.ID, err)
	}
	return max(v.Level, 1)
}
