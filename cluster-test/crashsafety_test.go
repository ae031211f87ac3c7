package clustertest

// Crash safety of the log store with real processes: kill -9 of leaders
// and followers under write load, and a truncated pebble WAL. Every write
// the cluster acknowledged (200) must be there at the end; writes with an
// ambiguous answer may or may not be. The in-process tests on pebble's
// strict in-memory filesystem (internal/pebblestore) cover power cuts,
// which a kill -9 cannot (the kernel keeps what was written).
//
// RAFTCACHE_KILLS (default 10) and RAFTCACHE_KILL_SEED (default 19) set
// the kill test's length and seed; scripts/kill-test.sh runs 100 kills.
// RAFTCACHE_KILL_STORE picks the log store (default: the default, pebble).

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ackLog records the writes the cluster acknowledged.
type ackLog struct {
	mu        sync.Mutex
	acked     map[string]string
	ambiguous atomic.Int64
}

// crashWriters writes unique keys through random running nodes until stop
// is closed. Each key is written once: an acknowledged one must survive;
// one whose answer was lost or ambiguous is not counted either way.
func crashWriters(c *Cluster, acks *ackLog, stop <-chan struct{}, wg *sync.WaitGroup) {
	hc := &http.Client{Timeout: 5 * time.Second} // follows redirects to the leader
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := c.Nodes[(w+i)%len(c.Nodes)]
				if !n.Running() {
					continue
				}
				key, val := fmt.Sprintf("w%d-%06d", w, i), fmt.Sprintf("v%d-%d", w, i)
				r, err := Do(context.Background(), hc, http.MethodPut, n.URL()+"/v1/kv/"+key, []byte(val))
				if err == nil && r.Status == http.StatusOK {
					acks.mu.Lock()
					acks.acked[key] = val
					acks.mu.Unlock()
					continue
				}
				acks.ambiguous.Add(1)
				time.Sleep(20 * time.Millisecond) // an election: let it finish
			}
		}()
	}
}

// checkAcked reads every acknowledged key strongly from the leader, then
// stale from every node once all have converged.
func checkAcked(t *testing.T, c *Cluster, acks map[string]string) {
	t.Helper()
	c.WaitConverged()
	keys := make([]string, 0, len(acks))
	for k := range acks {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	l := c.WaitForLeader()
	lost := 0
	for _, k := range keys {
		var r *Response
		Eventually(t, "strong GET "+k, func() error {
			var err error
			r, err = Do(context.Background(), plainClient, http.MethodGet, l.URL()+"/v1/kv/"+k, nil)
			if err == nil && (r.Status == http.StatusServiceUnavailable || r.Status == http.StatusTemporaryRedirect) {
				l = c.WaitForLeader()
				err = fmt.Errorf("%d", r.Status)
			}
			return err
		})
		if r.Status != http.StatusOK || string(r.Body) != acks[k] {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged %s=%s, strong read on %s: %d %q", k, acks[k], l.ID, r.Status, r.Body)
			}
		}
	}
	for _, n := range c.Nodes {
		for _, k := range keys {
			r, err := Do(context.Background(), plainClient, http.MethodGet, n.URL()+"/v1/kv/"+k+"?consistency=stale", nil)
			if err != nil || r.Status != http.StatusOK || string(r.Body) != acks[k] {
				t.Fatalf("after convergence, stale read of acknowledged %s on %s: %v %+v", k, n.ID, err, r)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", lost, len(keys))
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// crashArgs: small snapshots, so log compaction (DeleteRange) runs often
// during the test, and the store under test.
func crashArgs() []string {
	args := []string{"--snapshot-threshold", "512", "--trailing-logs", "256", "--snapshot-interval", "500ms",
		"--catch-up-hold", catchUpHold}
	if s := os.Getenv("RAFTCACHE_KILL_STORE"); s != "" {
		args = append(args, "--log-store", s)
	}
	return args
}

func TestKillNineUnderLoad(t *testing.T) {
	kills, seed := envInt("RAFTCACHE_KILLS", 10), int64(envInt("RAFTCACHE_KILL_SEED", 19))
	rng := rand.New(rand.NewSource(seed))
	start := time.Now()
	c := NewCluster(t, Options{Args: crashArgs()})
	acks := &ackLog{acked: map[string]string{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	crashWriters(c, acks, stop, &wg)
	stopped := false
	stopWriters := func() {
		if !stopped {
			close(stop)
			wg.Wait()
			stopped = true
		}
	}
	defer stopWriters()

	count := func() int { acks.mu.Lock(); defer acks.mu.Unlock(); return len(acks.acked) }
	leaders, caughtUp := 0, 0
	for i := range kills {
		// Some acknowledged writes before each kill, so every kill lands
		// under load.
		before := count()
		Eventually(t, "writes acknowledged before a kill", func() error {
			if count() < before+20 {
				return fmt.Errorf("%d new", count()-before)
			}
			return nil
		})
		time.Sleep(time.Duration(rng.Intn(400)) * time.Millisecond) // a random point in the load
		l := c.WaitForLeader()
		victim := l
		if rng.Intn(2) == 0 {
			fs := c.Followers(l)
			victim = fs[rng.Intn(len(fs))]
		} else {
			leaders++
		}
		victim.Kill()
		t.Logf("kill %d: %s (leader %v) after %d acknowledged writes", i+1, victim.ID, victim == l, count())
		time.Sleep(time.Duration(100+rng.Intn(700)) * time.Millisecond) // down while the others go on
		fndRestart(c, victim)
		c.WaitReady(victim)
		// Caught up: it has applied what the leader had committed when it
		// came back.
		nl := c.WaitForLeader()
		v, err := nl.View()
		if err != nil {
			t.Fatal(err)
		}
		c.WaitForIndex(victim, v.CommitIndex)
		if strings.Contains(heldVote(t, victim), "caught up") {
			caughtUp++
		}
	}
	stopWriters()
	checkAcked(t, c, acks.acked)
	t.Logf("RESULT kills=%d leaders=%d followers=%d seed=%d acknowledged=%d ambiguous=%d lost=0 held-votes-until-caught-up=%d elapsed=%s",
		kills, leaders, kills-leaders, seed, count(), acks.ambiguous.Load(), caughtUp, time.Since(start).Round(time.Second))
}

// catchUpHold is the crash tests' --catch-up-hold: longer than the
// default, so that no held node's hold runs out while the others elect.
const catchUpHold = "10s"

// heldVote waits until n, started again after a kill, votes again, and
// returns why it does: it must have held its vote since its start
// (node/catchup.go).
func heldVote(t *testing.T, n *Node) string {
	t.Helper()
	var why string
	Eventually(t, n.ID+" voting again", func() error {
		log := fndLog(t, n)
		if !strings.Contains(log, "did not stop cleanly") || !strings.Contains(log, "or_after="+catchUpHold) {
			t.Fatalf("%s started after a kill without holding its vote for up to --catch-up-hold %s:\n%s", n.ID, catchUpHold, log)
		}
		i := strings.Index(log, "voting from now on")
		if i < 0 {
			return fmt.Errorf("still holding its vote")
		}
		why = strings.SplitN(log[i:], "\n", 2)[0]
		return nil
	})
	return why
}

// newestWAL is the newest pebble WAL file of n's data directory.
func newestWAL(t *testing.T, n *Node) string {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(n.DataDir, "pebble", "*.log"))
	if len(logs) == 0 {
		t.Fatalf("%s has no pebble WAL (is pebble its store?)", n.ID)
	}
	sort.Strings(logs) // numbered, zero-padded: the last is the newest
	return logs[len(logs)-1]
}

// walDataEnd returns the size of a WAL file and where the zeros written
// ahead of its data begin (pebblestore's walfile.go): a cut among them
// would take nothing away. (A recycled file's stale tail counts as data.)
func walDataEnd(t *testing.T, path string) (size, end int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	end = int64(len(b))
	for end > 0 && b[end-1] == 0 {
		end--
	}
	return int64(len(b)), end
}

// zeroFrom writes zeros over path from off to size.
func zeroFrom(path string, off, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(make([]byte, size-off), off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readMark is the log index of n's high-water mark (node/watermark.go),
// 0 if it has none yet.
func readMark(t *testing.T, n *Node) uint64 {
	b, err := os.ReadFile(filepath.Join(n.DataDir, "log-watermark"))
	if err != nil {
		return 0
	}
	var term, index uint64
	if _, err := fmt.Sscan(string(b), &term, &index); err != nil {
		t.Fatalf("%s's log-watermark %q: %v", n.ID, b, err)
	}
	return index
}

// TestTruncatedWAL truncates the newest pebble WAL of a killed follower,
// then of a killed leader (twice each), at a random offset before the
// zeros written ahead of its data, or writes zeros over it from there,
// and starts it again. The node must either refuse to start with an
// error that names the problem (then it is wiped and rejoins, the
// documented way back), or start, catch up from its peers, and lose no
// acknowledged write. Pebble reads a damaged tail of its newest WAL as
// the end of the log; what keeps a node from starting on a log cut back
// is its high-water mark (node/watermark.go), which the last, deep cut
// must meet.
//
// The writers run throughout, and the first rounds damage the victim
// under load: the cut may take synced entries that the mark, written
// once a second, does not cover yet. Such a node starts; what keeps its
// vote from electing a leader without a write it had acknowledged for
// the cluster is the hold after an unclean stop (node/catchup.go). An
// earlier version of this test, without the hold, lost an acknowledged
// write in about 1 run in 8.
func TestTruncatedWAL(t *testing.T) {
	if s := os.Getenv("RAFTCACHE_KILL_STORE"); s != "" && s != "pebble" {
		t.Skip("the WAL truncated here is pebble's")
	}
	rng := rand.New(rand.NewSource(int64(envInt("RAFTCACHE_KILL_SEED", 19))))
	c := NewCluster(t, Options{Args: crashArgs()})
	acks := &ackLog{acked: map[string]string{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	crashWriters(c, acks, stop, &wg)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	count := func() int { acks.mu.Lock(); defer acks.mu.Unlock(); return len(acks.acked) }
	for i, role := range []string{"follower", "leader", "follower", "leader"} {
		// The last round damages deep: the newest WAL cut back to its
		// first KiB, once the node's high-water mark is well past where
		// that WAL began, and its snapshots lost with it (else one taken
		// after the mark's last update could rightly cover what the cut
		// took). Started, it could hold a configuration in which it was
		// the only voter; it must refuse instead.
		deep := i == 3
		before := count()
		Eventually(t, "writes acknowledged", func() error {
			if count() < before+200 {
				return fmt.Errorf("%d new", count()-before)
			}
			return nil
		})
		l := c.WaitForLeader()
		victim := l
		if role == "follower" {
			victim = c.Followers(l)[0]
		}
		var walBefore string
		if deep {
			walBefore = newestWAL(t, victim)
			st, err := victim.Stats()
			if err != nil {
				t.Fatal(err)
			}
			Eventually(t, victim.ID+"'s mark well past its applied index", func() error {
				if m := readMark(t, victim); m < st.AppliedIndex+100 {
					return fmt.Errorf("mark at %d, applied %d", m, st.AppliedIndex)
				}
				return nil
			})
		}
		victim.Kill()
		wal := newestWAL(t, victim)
		size, end := walDataEnd(t, wal)
		cut := rng.Int63n(end + 1)
		if rng.Intn(2) == 0 {
			// Within the newest 8 KiB: what the mark may not cover yet,
			// where the node starts and only its hold protects the writes
			// it lost.
			cut = end - rng.Int63n(min(end, 8<<10)+1)
		}
		if deep && wal != walBefore {
			// Pebble started another WAL meanwhile (not with this test's
			// volume and 16 MiB memtables): its first KiB may be past the
			// mark, so the cut proves nothing.
			t.Logf("%s: %s began after the mark was taken; an ordinary cut instead", victim.ID, filepath.Base(wal))
			deep = false
		}
		if deep {
			cut = rng.Int63n(min(end, 1024) + 1)
			if err := os.RemoveAll(filepath.Join(victim.DataDir, "snapshots")); err != nil {
				t.Fatal(err)
			}
		}
		how := "truncated"
		var err error
		if rng.Intn(2) == 0 {
			// What a power cut can leave with the zeros written ahead: a
			// torn record, then zeros.
			how = "zeroed"
			err = zeroFrom(wal, cut, size)
		} else {
			err = os.Truncate(wal, cut)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s (%s): %s (%d bytes, data before the zeros up to %d) %s from %d", victim.ID, role, filepath.Base(wal), size, end, how, cut)
		victim.Start(c.Nodes[0].URL())
		// Ready, or gone: /livez answers while the node is still opening
		// its stores, before it may refuse them.
		Eventually(t, victim.ID+" ready or exited", func() error {
			if !victim.Running() {
				return nil
			}
			resp, err := plainClient.Get(victim.URL() + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("readyz %d", resp.StatusCode)
			}
			return nil
		})
		if deep && victim.Running() {
			t.Fatalf("%s started from a WAL cut back to %d bytes, far below its high-water mark", victim.ID, cut)
		}
		refused := !victim.Running()
		if refused {
			// Refusing is allowed, but only with a clear reason; then the
			// documented way back: wipe and rejoin.
			log := fndLog(t, victim)
			if !strings.Contains(log, "pebble") {
				t.Fatalf("%s exited without naming its store:\n%s", victim.ID, log)
			}
			t.Logf("%s refused to start: %s", victim.ID, log[max(0, len(log)-400):])
			if err := os.RemoveAll(victim.DataDir); err != nil {
				t.Fatal(err)
			}
			fndStart(t, victim, c.Nodes[0].URL())
		}
		c.WaitReady(victim)
		if !refused {
			t.Logf("%s: %s", victim.ID, heldVote(t, victim))
		}
		// A wiped node rejoins as a learner: it must be a voter again
		// before the next round kills another, or two voters are left
		// with one of them down.
		c.WaitMembers(len(c.Nodes))
		v, err := c.WaitForLeader().View()
		if err != nil {
			t.Fatal(err)
		}
		c.WaitForIndex(victim, v.CommitIndex)
	}
	close(stop)
	wg.Wait()
	checkAcked(t, c, acks.acked)
	t.Logf("acknowledged=%d ambiguous=%d lost=0", count(), acks.ambiguous.Load())
}
