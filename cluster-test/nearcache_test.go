package clustertest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/raftcache/raftcache/client"
)

// The near cache's promise (client.NearCache, docs/consistency.md): a hit
// never returns a value older than the bound after the acknowledgement of
// a newer write, and a client never reads its own write back stale. These
// tests check what near-cache clients, one fed by each node, return while
// the leader is killed and a follower is cut off from the others.

// nearBound is the documented bound for these clusters: MaxSilence (1s)
// + the nodes' contact bound (half the 500 ms heartbeat timeout) + the
// commit delay (hashicorp/raft's CommitTimeout, at most 100 ms), plus
// a second for the scheduling of this loaded test process.
const (
	nearMaxSilence = time.Second
	nearBound      = nearMaxSilence + heartbeat/2 + 100*time.Millisecond + time.Second
)

// nearRead is one Get of the shared key: when it began and what it saw.
type nearRead struct {
	client string
	at     time.Time
	seq    int
}

// nearStale returns the reads that saw a value older than a write
// acknowledged more than bound before they began. acked[s] is when the
// write of sequence number s was acknowledged (zero: unknown outcome).
func nearStale(acked []time.Time, reads []nearRead, bound time.Duration) []string {
	var bad []string
	for _, r := range reads {
		for s := len(acked) - 1; s > r.seq; s-- {
			if !acked[s].IsZero() && acked[s].Before(r.at.Add(-bound)) {
				bad = append(bad, fmt.Sprintf("%s read seq %d at %s, but seq %d was acknowledged %v before",
					r.client, r.seq, r.at.Format("15:04:05.000"), s, r.at.Sub(acked[s]).Round(time.Millisecond)))
				break
			}
		}
	}
	return bad
}

// TestNearCacheCheckerCatchesStaleness: the checker is not vacuous.
func TestNearCacheCheckerCatchesStaleness(t *testing.T) {
	t0 := time.Now()
	acked := []time.Time{t0, t0.Add(time.Second), t0.Add(2 * time.Second)}
	ok := []nearRead{{"a", t0.Add(2 * time.Second), 1}, {"a", t0.Add(5 * time.Second), 2}}
	if bad := nearStale(acked, ok, 1500*time.Millisecond); len(bad) != 0 {
		t.Fatalf("fresh reads judged stale: %v", bad)
	}
	stale := []nearRead{{"a", t0.Add(4 * time.Second), 1}}
	if bad := nearStale(acked, stale, 1500*time.Millisecond); len(bad) != 1 {
		t.Fatalf("a stale read passed: %v", bad)
	}
}

func TestNearCacheStaleness(t *testing.T) {
	pn := newProxyNet(t)
	c := NewCluster(t, pn.Options(Options{}))
	leader := c.WaitForLeader()

	var urls []string
	for _, n := range c.Nodes {
		urls = append(urls, n.URL())
	}
	writer, err := client.New(client.Config{Endpoints: urls, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	ctx := context.Background()

	var (
		mu    sync.Mutex
		acked = []time.Time{time.Now()} // seq 0: the initial value
		reads []nearRead
		bad   []string
	)
	if _, err := writer.Set(ctx, "nc", []byte("0")); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// One near-cache client per node: each one's stream comes from it.
	nears := make([]*client.Client, len(c.Nodes))
	for i, n := range c.Nodes {
		nc, err := client.New(client.Config{Endpoints: []string{n.URL()}, RefreshInterval: -1, Timeout: 3 * time.Second,
			NearCache: &client.NearCache{MaxBytes: 1 << 20, MaxSilence: nearMaxSilence}})
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nears[i] = nc
		name := n.ID
		wg.Add(2)
		go func() { // readers of the shared key
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				time.Sleep(2 * time.Millisecond) // a reader, not a CPU hog
				at := time.Now()
				it, err := nc.Get(ctx, "nc")
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				seq, _ := strconv.Atoi(string(it.Value))
				mu.Lock()
				reads = append(reads, nearRead{name, at, seq})
				mu.Unlock()
			}
		}()
		go func() { // own writes, read back at once
			defer wg.Done()
			key := "own:" + name
			for v := 1; ; v++ {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if _, err := nc.Set(ctx, key, []byte(strconv.Itoa(v))); err != nil {
					continue
				}
				it, err := nc.Get(ctx, key)
				if err != nil {
					continue
				}
				if string(it.Value) != strconv.Itoa(v) {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s read its own write %d back as %s", name, v, it.Value))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // the writer
		defer wg.Done()
		for seq := 1; ; seq++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			_, err := writer.Set(ctx, "nc", []byte(strconv.Itoa(seq)))
			mu.Lock()
			if err == nil {
				acked = append(acked, time.Now())
			} else {
				acked = append(acked, time.Time{}) // unknown outcome
			}
			mu.Unlock()
		}
	}()

	// Faults: kill the leader and bring it back; then cut a follower off.
	time.Sleep(2 * time.Second)
	leader.Kill()
	t.Logf("killed the leader %s", leader.ID)
	time.Sleep(3 * time.Second)
	if linIndex(c, leader) == 0 {
		leader.Start() // --bootstrap, a no-op on existing state
	} else {
		leader.Start(c.Nodes[0].URL())
	}
	c.WaitReady(leader)
	time.Sleep(2 * time.Second)
	l2 := c.WaitForLeader()
	cut := c.Followers(l2)[0]
	pn.Isolate(linIndex(c, cut))
	t.Logf("cut %s off (leader %s)", cut.ID, l2.ID)
	time.Sleep(4 * time.Second)
	pn.Heal()
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	bad = append(bad, nearStale(acked, reads, nearBound)...)
	for i, nc := range nears {
		st := nc.NearCacheStats()
		t.Logf("%s: %+v", c.Nodes[i].ID, st)
		if st.Hits == 0 {
			t.Errorf("%s's near cache served no hits: the test checked nothing", c.Nodes[i].ID)
		}
	}
	t.Logf("%d writes, %d reads checked against a bound of %v", len(acked), len(reads), nearBound)
	if len(bad) > 0 {
		if len(bad) > 20 {
			bad = bad[:20]
		}
		t.Fatalf("the near cache broke its promise:\n%s", fmt.Sprint(bad))
	}
}
