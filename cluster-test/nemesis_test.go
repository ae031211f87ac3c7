package clustertest

// Nemeses: faults injected repeatedly on the current leader while the
// linearizability workload runs, each followed by a check of the history.
// Every loop is bounded in count and time.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// linFault is one kind of fault, applied to the leader of the moment.
type linFault struct {
	name    string
	cycles  int                                            // how many times
	healthy time.Duration                                  // healthy time before each fault
	hold    time.Duration                                  // how long the fault lasts
	inject  func(e *nemesisEnv, l *Node, cycle int) string // returns a description
	undo    func(e *nemesisEnv, l *Node)
}

// nemesisEnv is a cluster under a workload, plus what the faults need.
type nemesisEnv struct {
	t  *testing.T
	c  *Cluster
	pn *proxyNet // nil unless the fault needs proxies
	w  *linWorkload

	mu     sync.Mutex
	paused map[*Node]bool
	vc     *http.Client
}

// nemesisView asks n for its cluster view with a short timeout.
func (e *nemesisEnv) view(n *Node) (*ClusterView, error) {
	resp, err := e.vc.Get(n.URL() + "/v1/cluster")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	var v ClusterView
	return &v, json.Unmarshal(b, &v)
}

// leader returns the node that says it leads in the highest term, among
// running nodes that are not paused, or nil if none does within wait.
// Unlike Cluster.WaitForLeader it never blocks on a paused node nor fails
// the test.
func (e *nemesisEnv) leader(wait time.Duration) *Node {
	for end := time.Now().Add(wait); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		var best *Node
		var term uint64
		for _, n := range e.c.Nodes {
			e.mu.Lock()
			paused := e.paused[n]
			e.mu.Unlock()
			if paused || !n.Running() {
				continue
			}
			if v, err := e.view(n); err == nil && v.State == "Leader" && v.Term > term {
				best, term = n, v.Term
			}
		}
		if best != nil {
			return best
		}
	}
	return nil
}

// restart starts a killed node again with the flags NewCluster gave it.
func (e *nemesisEnv) restart(n *Node) {
	if linIndex(e.c, n) == 0 {
		n.Start() // --bootstrap, a no-op on existing state
	} else {
		n.Start(e.c.Nodes[0].URL())
	}
}

func (e *nemesisEnv) pause(n *Node) {
	e.mu.Lock()
	e.paused[n] = true
	e.mu.Unlock()
	n.Pause()
}

func (e *nemesisEnv) resume(n *Node) {
	n.Resume()
	e.mu.Lock()
	delete(e.paused, n)
	e.mu.Unlock()
}

// recoverAll undoes every fault: resumes paused nodes, restarts dead ones,
// heals partitions.
func (e *nemesisEnv) recoverAll() {
	e.mu.Lock()
	var paused []*Node
	for n := range e.paused {
		paused = append(paused, n)
	}
	e.mu.Unlock()
	for _, n := range paused {
		e.resume(n)
	}
	if e.pn != nil {
		e.pn.Heal()
	}
	for _, n := range e.c.Nodes {
		if !n.Running() {
			e.restart(n)
		}
	}
}

// runNemesis starts a cluster, runs the workload while f is applied to the
// leader f.cycles times, recovers, and checks the history.
func runNemesis(t *testing.T, f linFault, proxies bool) {
	began := time.Now()
	var pn *proxyNet
	opt := Options{}
	if proxies {
		pn = newProxyNet(t)
		opt = pn.Options(opt)
	}
	c := NewCluster(t, opt)
	c.WaitForLeader()
	e := &nemesisEnv{t: t, c: c, pn: pn, w: newLinWorkload(t, c), paused: map[*Node]bool{},
		vc: &http.Client{Timeout: time.Second}}
	budget := time.Duration(f.cycles)*(f.healthy+f.hold+2*time.Second) + 5*time.Second
	e.w.RetryAmbiguous = true
	e.w.Run(linClients, linKeys, nil, budget)

	injected := 0
	for i := 0; i < f.cycles; i++ {
		time.Sleep(f.healthy)
		l := e.leader(5 * time.Second)
		if l == nil {
			t.Logf("cycle %d: no leader within 5s; skipping the fault", i)
			continue
		}
		t0 := e.w.Now()
		desc := f.inject(e, l, i)
		time.Sleep(f.hold)
		f.undo(e, l)
		e.w.Note(desc, t0, e.w.Now())
		injected++
		next := e.leader(5 * time.Second)
		nextID := "none"
		if next != nil {
			nextID = next.ID
		}
		t.Logf("cycle %d at %v: %s for %v; leader afterwards %s; so far %s",
			i, time.Duration(t0).Round(time.Millisecond), desc, f.hold, nextID, e.w.Counts())
	}
	time.Sleep(2 * time.Second) // a healthy tail: the cluster serves again
	e.w.Stop()
	counts := e.w.Counts()
	e.recoverAll()

	e.w.FinalReads(linKeys)
	c.WaitConverged()
	t.Logf("%s: %d faults in %v; %s", f.name, injected, time.Since(began).Round(100*time.Millisecond), counts)
	if injected < f.cycles-1 {
		t.Errorf("only %d of %d faults were injected", injected, f.cycles)
	}
	if counts.PutOK < 20 || counts.GetOK < 20 {
		t.Errorf("too little progress to mean anything: %s", counts)
	}
	e.w.Check()
}

// TestLinNemesisKill: kill -9 the leader, restart it with the same flags
// a while later.
func TestLinNemesisKill(t *testing.T) {
	runNemesis(t, linFault{
		name: "kill -9", cycles: 3, healthy: 2 * time.Second, hold: 2500 * time.Millisecond,
		inject: func(e *nemesisEnv, l *Node, _ int) string { l.Kill(); return "kill -9 " + l.ID },
		undo:   func(e *nemesisEnv, l *Node) { e.restart(l) },
	}, false)
}

// TestLinNemesisPause: SIGSTOP the leader for 2s (four election timeouts),
// then SIGCONT.
func TestLinNemesisPause(t *testing.T) {
	runNemesis(t, linFault{
		name: "SIGSTOP", cycles: 4, healthy: 1500 * time.Millisecond, hold: 2 * time.Second,
		inject: func(e *nemesisEnv, l *Node, _ int) string { e.pause(l); return "SIGSTOP " + l.ID },
		undo:   func(e *nemesisEnv, l *Node) { e.resume(l) },
	}, false)
}

// TestLinNemesisPartition: cut the leader off from both followers through
// the proxies, then heal. Even cycles close the connections (the leader
// sees errors at once), odd ones blackhole them (it sees only silence).
func TestLinNemesisPartition(t *testing.T) {
	runNemesis(t, linFault{
		name: "isolate", cycles: 4, healthy: 1500 * time.Millisecond, hold: 2500 * time.Millisecond,
		inject: func(e *nemesisEnv, l *Node, cycle int) string {
			if cycle%2 == 1 {
				e.pn.IsolateSilently(linIndex(e.c, l))
				return "blackhole " + l.ID + " (" + e.pn.Blocked() + ")"
			}
			e.pn.Isolate(linIndex(e.c, l))
			return "isolate " + l.ID + " (" + e.pn.Blocked() + ")"
		},
		undo: func(e *nemesisEnv, l *Node) { e.pn.Heal() },
	}, true)
}

// TestLinNemesisGracefulRestart: SIGTERM the leader (it hands leadership
// over, finishes in-flight requests and exits), restart it a moment later.
func TestLinNemesisGracefulRestart(t *testing.T) {
	runNemesis(t, linFault{
		name: "SIGTERM", cycles: 3, healthy: 2 * time.Second, hold: time.Second,
		inject: func(e *nemesisEnv, l *Node, _ int) string {
			start := time.Now()
			l.Stop()
			return fmt.Sprintf("SIGTERM %s (exited after %v)", l.ID, time.Since(start).Round(time.Millisecond))
		},
		undo: func(e *nemesisEnv, l *Node) { e.restart(l) },
	}, false)
}

// TestLinNemesisKillMajority: kill -9 the leader and a follower at once,
// so no quorum survives, and restart both: acknowledged writes must
// survive the crash of a majority (the log is fsynced).
func TestLinNemesisKillMajority(t *testing.T) {
	var victims []*Node
	runNemesis(t, linFault{
		name: "kill -9 majority", cycles: 2, healthy: 2 * time.Second, hold: 1500 * time.Millisecond,
		inject: func(e *nemesisEnv, l *Node, _ int) string {
			f := e.c.Followers(l)[0]
			victims = []*Node{l, f}
			l.Kill()
			f.Kill()
			return "kill -9 " + l.ID + " and " + f.ID
		},
		undo: func(e *nemesisEnv, l *Node) {
			for _, n := range victims {
				e.restart(n)
			}
		},
	}, false)
}

// TestLinNemesisElectionReadRace aims at the first moments of a new
// leader: a write is acknowledged, the leader is killed at once (the
// followers have the entry but may not know it is committed yet), and
// readers hammer the followers with strong reads so that the new leader is
// asked the instant it wins. A new leader that answered before applying an
// entry of its own term would return the value before the acknowledged
// write (RedisRaft's stale reads after elections). Each cycle uses its own
// key, so the checker works on small independent histories.
func TestLinNemesisElectionReadRace(t *testing.T) {
	const cycles, readers = 4, 6
	c := NewCluster(t, Options{})
	e := &nemesisEnv{t: t, c: c, w: newLinWorkload(t, c), paused: map[*Node]bool{},
		vc: &http.Client{Timeout: time.Second}}
	w := e.w
	acked := 0
	var keys []string
	for i := 0; i < cycles; i++ {
		key := fmt.Sprintf("race-%d", i)
		keys = append(keys, key)
		l := e.leader(10 * time.Second)
		if l == nil {
			t.Fatalf("cycle %d: no leader", i)
		}
		followers := c.Followers(l)
		// A burst of writes straight to the leader; the leader dies right
		// after the last one is acknowledged.
		var last linResult
		for j := 0; j < 10; j++ {
			last = w.Put(0, l, key, w.value(0))
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for r := 0; r < readers; r++ {
			wg.Add(1)
			go func(client int) {
				defer wg.Done()
				for n := 0; n < 20000; n++ {
					select {
					case <-stop:
						return
					default:
					}
					res := w.Get(client, followers[client%len(followers)], key, false)
					if res.err != nil || res.status >= 500 {
						time.Sleep(time.Millisecond) // refused by the dead leader: retry at once
					}
				}
			}(r + 1)
		}
		if last.err == nil && last.status == 200 {
			acked++
		}
		t0 := w.Now()
		l.Kill()
		nl := e.leader(10 * time.Second)
		time.Sleep(300 * time.Millisecond) // the readers keep reading from the new leader
		close(stop)
		wg.Wait()
		e.restart(l)
		w.Note("kill -9 "+l.ID+" right after an acknowledged write to "+key, t0, w.Now())
		nlID := "none"
		if nl != nil {
			nlID = nl.ID
		}
		t.Logf("cycle %d: killed %s after write %s; new leader %s; %s", i, l.ID, last.describe(), nlID, w.Counts())
		c.WaitReady(l)
	}
	if acked < cycles-1 {
		t.Errorf("only %d of %d cycles killed the leader right after an acknowledged write", acked, cycles)
	}
	w.FinalReads(keys)
	c.WaitConverged()
	w.Check()
}

// membershipFault removes a member through the API under load (the
// leader, or with follower a follower of the moment), waits for the
// removed process to exit (status 4), adds it back through the API as a
// voter and starts it again with its usual flags; undo waits until it is
// a voter again and the cluster has a leader.
func membershipFault(follower bool) linFault {
	var target *Node
	return linFault{
		name: "membership", cycles: 3, healthy: 1500 * time.Millisecond, hold: 2 * time.Second,
		inject: func(e *nemesisEnv, l *Node, cycle int) string {
			target = l
			via := l
			if follower {
				target = e.c.Followers(l)[cycle%2]
			}
			start := time.Now()
			msRemoveVia(e, via, target)
			code := -1
			for end := time.Now().Add(deadline); time.Now().Before(end) && target.Running(); time.Sleep(50 * time.Millisecond) {
			}
			if !target.Running() {
				code = fndExitCode(target)
			} else {
				log := fndLog(e.t, target)
				if len(log) > 6000 {
					log = log[len(log)-6000:]
				}
				e.t.Errorf("removed %s still runs after %v; its log ends:\n%s", target.ID, deadline, log)
				target.Kill()
			}
			if code != 4 {
				e.t.Errorf("removed %s exited with status %d, want 4", target.ID, code)
			}
			next := e.leader(10 * time.Second)
			if next == nil {
				e.t.Errorf("cycle %d: no leader after removing %s", cycle, target.ID)
				next = l
			}
			msAdd(e.t, next, target)
			e.restart(target)
			return fmt.Sprintf("remove %s via the API (it exited after %v), add it back", target.ID, time.Since(start).Round(time.Millisecond))
		},
		undo: func(e *nemesisEnv, l *Node) {
			Eventually(e.t, target.ID+" a voter again", func() error {
				n := e.leader(time.Second)
				if n == nil {
					return fmt.Errorf("no leader")
				}
				v, err := e.view(n)
				if err != nil {
					return err
				}
				for _, m := range v.Members {
					if m.ID == target.ID && m.Voter {
						return nil
					}
				}
				return fmt.Errorf("%s is not a voter in %s's view", target.ID, n.ID)
			})
		},
	}
}

// msRemoveVia removes target through via (redirects followed), retrying
// while the cluster answers 503 (an election) or may have done it.
func msRemoveVia(e *nemesisEnv, via, target *Node) {
	ambiguous := false
	Eventually(e.t, "remove "+target.ID, func() error {
		if !via.Running() {
			if via = e.leader(time.Second); via == nil {
				return fmt.Errorf("no leader")
			}
		}
		r, err := Do(context.Background(), followClient, http.MethodDelete, via.URL()+"/v1/cluster/members/"+target.ID, nil)
		switch {
		case err != nil:
			ambiguous = true
			return err
		case r.Status == http.StatusOK:
			return nil
		case r.Status == http.StatusNotFound && ambiguous:
			return nil
		case r.Status == http.StatusServiceUnavailable || r.Status == http.StatusGatewayTimeout || fndCode(r) == "quorum_at_risk":
			ambiguous = ambiguous || r.Status == http.StatusGatewayTimeout
			return fmt.Errorf("%d %s", r.Status, r.Body)
		}
		e.t.Fatalf("DELETE %s: %d %s", target.ID, r.Status, r.Body)
		return nil
	})
}

// TestLinNemesisMembershipLeader: under load, remove the leader through
// the API and add it back, three times; porcupine checks the history.
func TestLinNemesisMembershipLeader(t *testing.T) { runNemesis(t, membershipFault(false), false) }

// TestLinNemesisMembershipFollower: the same with a follower.
func TestLinNemesisMembershipFollower(t *testing.T) { runNemesis(t, membershipFault(true), false) }
