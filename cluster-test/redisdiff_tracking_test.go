package clustertest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRedisDiffTracking is the differential test of client-side caching
// (CLIENT TRACKING): each scenario below is sent, command for command, to
// a redis-server started here (Redis 7, the specification) and to a
// three-node raftcache cluster, and the invalidations the tracking client
// receives are compared as multisets of keys (a key invalidated twice
// counts twice; "(flush)" stands for the flush-everything invalidation, a
// null key list). The replies of the commands are compared too.
//
// Collecting: after its commands, a scenario registers a fence key (read
// by the tracking client, or under its BCAST prefix) and the writer
// writes it. Both servers deliver one connection's invalidations in the
// order of the changes (raftcache: one dispatcher per node, in log order),
// so once the fence's invalidation is in, every earlier write's is too.
// Redis sends them at once; raftcache after it applies the change,
// asynchronously, so the test polls, bounded by trkCollectWait, until the
// fence and every key Redis reported have arrived. Nothing is slept on.
//
// raftcache's documented deliberate differences (docs/api.md,
// "Client-side caching") are handled where they can show:
//
//   - NOLOOP is accepted but hides nothing: the tracking client's own
//     writes are invalidated too (scenario "noloop" expects Redis's keys
//     plus the own-write keys on raftcache).
//   - A node that cannot vouch for its state for a moment (a follower that
//     has not heard from its leader within half the heartbeat timeout, or
//     any node whose applying is a tick behind its commits: node/feed.go)
//     sends its tracking clients the flush-everything invalidation and
//     forgets what they read. On this busy machine that can happen at any
//     moment; a raftcache run that receives more flushes than Redis sent
//     is therefore inconclusive, not a difference: it is logged and run
//     again with fresh keys (at most trkAttempts times).
//   - A follower registers a read it relays to the leader at its own
//     applied index, so a change its read already saw may be reported: the
//     test waits until the tracking client's node has applied everything
//     the leader committed before the tracked reads (a "sync" step).
//
// Run: go test ./cluster-test/ -run TestRedisDiffTracking -v
func TestRedisDiffTracking(t *testing.T) {
	redisAddr := diffStartRedis(t)
	start := time.Now()
	c, addrs := respCluster(t)
	leader := c.WaitForLeader()
	follower := c.Followers(leader)[0]
	t.Logf("cluster up in %v: leader %s, follower %s", time.Since(start).Round(time.Millisecond), leader.ID, follower.ID)

	nodeAt := map[string]*Node{}
	for id, a := range addrs {
		nodeAt[a] = c.Node(id)
	}
	// syncFor waits until the node serving addr has applied what the
	// current leader had committed when it was called.
	syncFor := func(addr string) func() error {
		return func() error {
			n := nodeAt[addr]
			var want uint64
			var lastErr error
			for end := time.Now().Add(trkCollectWait); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
				if want == 0 {
					l, err := c.leader()
					if err != nil {
						lastErr = err
						continue
					}
					v, err := l.View()
					if err != nil {
						lastErr = err
						continue
					}
					want = v.CommitIndex
				}
				v, err := n.View()
				if err != nil {
					lastErr = err
					continue
				}
				if v.AppliedIndex >= want {
					return nil
				}
				lastErr = fmt.Errorf("%s applied %d, leader committed %d", n.ID, v.AppliedIndex, want)
			}
			return fmt.Errorf("sync: not within %v: %v", trkCollectWait, lastErr)
		}
	}
	redisSide := trkSide{name: "redis", trackAddr: redisAddr, writeAddr: redisAddr}
	leaderSide := trkSide{name: "raftcache, tracking on the leader " + leader.ID, trackAddr: addrs[leader.ID],
		writeAddr: addrs[leader.ID], sync: syncFor(addrs[leader.ID]), node: leader}
	followerSide := trkSide{name: "raftcache, tracking on the follower " + follower.ID + ", writes to the leader " + leader.ID,
		trackAddr: addrs[follower.ID], writeAddr: addrs[leader.ID], sync: syncFor(addrs[follower.ID]), node: follower}

	inconclusive, ran := 0, 0
	for _, sc := range trkScenarios {
		t.Run(sc.name, func(t *testing.T) {
			ran++
			scStart := time.Now()
			rcSide := leaderSide
			if sc.onFollower {
				rcSide = followerSide
			}
			want := &trkRun{sc: sc, side: redisSide, prefix: "trk:" + sc.name + ":redis:"}
			if err := want.run(); err != nil {
				t.Fatalf("redis-server: %v\n%s", err, want.transcript())
			}
			if sc.want != nil && !slices.Equal(trkSorted(want.got), trkSorted(sc.want)) {
				// The scenario does not test what it says: the test is wrong.
				t.Fatalf("redis-server reported %v, the scenario expects %v\n%s", trkSorted(want.got), trkSorted(sc.want), want.transcript())
			}
			expect := append(slices.Clone(want.got), sc.ownWrites...)
			for attempt := 1; ; attempt++ {
				got := &trkRun{sc: sc, side: rcSide, prefix: fmt.Sprintf("trk:%s:%d:", sc.name, attempt), expect: expect,
					flushes: trkCount(want.got, trkFlush)}
				err := got.run()
				if err == nil && got.strayFlush {
					err = errors.New("a flush-everything invalidation Redis did not send (the node could not vouch for its state for a moment: deliberate, see docs/api.md)")
				}
				if err != nil {
					inconclusive++
					if attempt >= trkAttempts {
						t.Fatalf("%s: attempt %d of %d inconclusive, giving up: %v\n%s", rcSide.name, attempt, trkAttempts, err, got.transcript())
					}
					t.Logf("%s: attempt %d inconclusive, running again with fresh keys: %v", rcSide.name, attempt, err)
					continue
				}
				same := true
				if why := got.compareReplies(want); why != "" {
					same = false
					t.Errorf("replies differ: %s\n--- redis-server:\n%s--- %s:\n%s", why, want.transcript(), rcSide.name, got.transcript())
				}
				if g, w := trkSorted(got.got), trkSorted(expect); !slices.Equal(g, w) {
					same = false
					extra, missing := trkDiff(g, w)
					t.Errorf("invalidations differ: redis-server %v (expected on raftcache: %v), %s %v\n  missing on raftcache: %v\n  extra on raftcache: %v\n--- redis-server:\n%s--- %s:\n%s",
						trkSorted(want.got), w, rcSide.name, g, missing, extra, want.transcript(), rcSide.name, got.transcript())
				}
				if same {
					t.Logf("invalidations %v from redis-server, %v from %s (%s); %v", trkSorted(want.got), trkSorted(got.got),
						rcSide.name, rcSide.role(), time.Since(scStart).Round(time.Millisecond))
					for _, n := range got.notes {
						t.Logf("note: %s", n)
					}
				}
				return
			}
		})
	}
	t.Logf("%d scenarios in %v (cluster start included); %d inconclusive raftcache attempts rerun", ran,
		time.Since(start).Round(time.Millisecond), inconclusive)
}

// Bounds. The machine has 2 cores and is busy: generous, but every wait
// is bounded.
const (
	trkCollectWait = 10 * time.Second // for a scenario's invalidations, a sync, an await step
	trkReplyWait   = 20 * time.Second // for one reply
	trkAttempts    = 4                // raftcache runs of a scenario before an inconclusive one fails
	trkFlush       = "(flush)"        // the flush-everything invalidation in a multiset of keys
)

// trkStep is one command of a scenario, or a wait.
//
//	on 'w': the writer (another connection); 't': the tracking client;
//	'x': the REDIRECT target; 's': sync (raftcache: wait until the
//	tracking client's node has applied what the leader committed; Redis:
//	nothing); 'a': wait until each key of argv has been invalidated at
//	least once (bounded), as a client refetches after an invalidation.
//
// In argv, "@name" is the key name with the run's prefix (keys are unique
// per scenario and run) and "$ID" the REDIRECT target's CLIENT ID.
type trkStep struct {
	on   byte
	argv []string
}

func trkW(argv ...string) trkStep { return trkStep{'w', argv} }
func trkT(argv ...string) trkStep { return trkStep{'t', argv} }
func trkX(argv ...string) trkStep { return trkStep{'x', argv} }
func trkAwait(keys ...string) trkStep {
	return trkStep{'a', keys}
}

var trkSync = trkStep{on: 's'}

type trkScenario struct {
	name       string
	onFollower bool // raftcache: the tracking client on a follower, the writer on the leader
	resp2      bool // the tracking client stays in RESP2 (else HELLO 3)
	// redirect: 0 none; 2 a RESP2 target subscribed to
	// __redis__:invalidate; 3 a RESP3 target with no subscription, which
	// sends nothing while the invalidations are collected.
	redirect int
	steps    []trkStep
	// fence registers @fenceKey for the tracking client (nil: GET
	// @fenceKey); fenceKey defaults to "fence".
	fence    [][]string
	fenceKey string
	// ownWrites: keys raftcache reports beyond Redis's, by design (NOLOOP).
	ownWrites []string
	// want: what Redis must report, fence included (a check of the
	// scenario itself against the specification).
	want []string
}

var trkScenarios = []*trkScenario{
	{
		// Reads of present and missing keys register them; another
		// connection's writes of every kind invalidate them; keys read
		// but not written (s3, m2) and written but not read (u1) are not
		// reported.
		name: "default",
		steps: []trkStep{
			trkW("MSET", "@s1", "v", "@s2", "v", "@s3", "v", "@e1", "v", "@n1", "5", "@r1", "v", "@r2", "w", "@u1", "v"),
			trkW("HSET", "@h1", "f", "v"),
			trkSync,
			trkT("CLIENT", "TRACKING", "ON"),
			trkT("GET", "@s1"), trkT("GET", "@m1"), trkT("MGET", "@s2", "@m2", "@s3"), trkT("HGET", "@h1", "f"),
			trkT("HGET", "@hm", "f"), trkT("EXISTS", "@e1", "@l1"), trkT("STRLEN", "@n1"), trkT("STRLEN", "@m3"),
			trkT("GET", "@r1"), trkT("GET", "@r2"),
			trkW("SET", "@s1", "x"), trkW("DEL", "@s2"), trkW("EXPIRE", "@e1", "100"), trkW("INCR", "@n1"),
			trkW("HSET", "@h1", "f", "w"), trkW("RENAME", "@r1", "@r2"), trkW("LPUSH", "@l1", "a"), trkW("SET", "@m1", "x"),
			trkW("HSET", "@hm", "f", "v"), trkW("INCR", "@m3"), trkW("SET", "@u1", "x"),
		},
		want: []string{"s1", "s2", "e1", "n1", "h1", "r1", "r2", "l1", "m1", "hm", "m3", "fence"},
	},
	{
		// A registration is consumed by the first change: k, read once
		// and written twice, is reported once. j, read again after its
		// invalidation arrived (as a caching client refetches), is
		// registered again and reported again.
		name: "once",
		steps: []trkStep{
			trkW("MSET", "@k", "v", "@j", "v"),
			trkSync,
			trkT("CLIENT", "TRACKING", "ON"),
			trkT("GET", "@k"), trkT("GET", "@j"),
			trkW("SET", "@k", "1"), trkW("SET", "@k", "2"), trkW("SET", "@j", "1"),
			trkAwait("j"),
			trkT("GET", "@j"),
			trkW("SET", "@j", "2"), trkW("SET", "@j", "3"),
		},
		want: []string{"k", "j", "j", "fence"},
	},
	{
		// BCAST: every change under a prefix, read or not; nothing else,
		// even a key this client read (reads register nothing in BCAST).
		name: "bcast",
		steps: []trkStep{
			trkT("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "@a:", "PREFIX", "@c:"),
			trkT("GET", "@b:2"),
			trkW("SET", "@a:1", "x"), trkW("SET", "@b:1", "x"), trkW("SET", "@b:2", "x"), trkW("SET", "@c:1", "x"),
			trkW("DEL", "@a:1"), trkW("HSET", "@a:h", "f", "v"), trkW("SET", "@ab", "x"),
		},
		fence:    [][]string{},
		fenceKey: "a:fence",
		want:     []string{"a:1", "c:1", "a:1", "a:h", "a:fence"},
	},
	{
		// OPTIN: only the command right after CLIENT CACHING YES
		// registers its keys.
		name: "optin",
		steps: []trkStep{
			trkT("CLIENT", "TRACKING", "ON", "OPTIN"),
			trkT("GET", "@o1"), trkT("CLIENT", "CACHING", "YES"), trkT("GET", "@o2"), trkT("GET", "@o3"),
			trkT("CLIENT", "CACHING", "YES"), trkT("MGET", "@o4", "@o5"),
			trkW("MSET", "@o1", "x", "@o2", "x", "@o3", "x"), trkW("SET", "@o4", "x"), trkW("SET", "@o5", "x"),
		},
		fence: [][]string{{"CLIENT", "CACHING", "YES"}, {"GET", "@fence"}},
		want:  []string{"o2", "o4", "o5", "fence"},
	},
	{
		// Tracking turned on again keeps what was read: in the same
		// mode, and switched from the default mode to OPTIN (allowed);
		// OPTIN straight to OPTOUT is refused. In OPTIN, k4, read
		// without CLIENT CACHING YES, is not registered.
		name: "on-again",
		steps: []trkStep{
			trkW("MSET", "@k1", "v", "@k2", "v", "@k3", "v", "@k4", "v"),
			trkSync,
			trkT("CLIENT", "TRACKING", "ON"),
			trkT("GET", "@k1"),
			trkT("CLIENT", "TRACKING", "ON"),
			trkT("GET", "@k2"),
			trkT("CLIENT", "TRACKING", "ON", "OPTIN"),
			trkT("CLIENT", "TRACKING", "ON", "OPTOUT"),
			trkT("CLIENT", "CACHING", "YES"), trkT("GET", "@k3"), trkT("GET", "@k4"),
			trkW("SET", "@k1", "x"), trkW("SET", "@k2", "x"), trkW("SET", "@k3", "x"), trkW("SET", "@k4", "x"),
		},
		fence: [][]string{{"CLIENT", "CACHING", "YES"}, {"GET", "@fence"}},
		want:  []string{"k1", "k2", "k3", "fence"},
	},
	{
		// BCAST turned on again adds its prefixes to those it has;
		// prefixes that overlap, an old and a new one or two new ones,
		// are refused.
		name: "bcast-again",
		steps: []trkStep{
			trkT("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "@x", "PREFIX", "@xy"),
			trkT("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "@a:"),
			trkT("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "@b:"),
			trkT("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "@a:1"),
			trkT("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "@b:"),
			trkW("SET", "@a:1", "x"), trkW("SET", "@b:1", "x"), trkW("SET", "@c:1", "x"),
		},
		fence:    [][]string{},
		fenceKey: "a:fence",
		want:     []string{"a:1", "b:1", "a:fence"},
	},
	{
		// OPTOUT: every read registers but the one right after CLIENT
		// CACHING NO.
		name: "optout",
		steps: []trkStep{
			trkT("CLIENT", "TRACKING", "ON", "OPTOUT"),
			trkT("GET", "@p1"), trkT("CLIENT", "CACHING", "NO"), trkT("GET", "@p2"), trkT("GET", "@p3"),
			trkW("SET", "@p1", "x"), trkW("SET", "@p2", "x"), trkW("SET", "@p3", "x"),
		},
		want: []string{"p1", "p3", "fence"},
	},
	{
		// RESP2 with REDIRECT to a connection subscribed to
		// __redis__:invalidate (on raftcache, both on the same node): the
		// invalidations arrive there as messages.
		name:     "redirect-resp2",
		resp2:    true,
		redirect: 2,
		steps: []trkStep{
			trkW("SET", "@q2", "v"),
			trkSync,
			trkX("SUBSCRIBE", "__redis__:invalidate"),
			trkT("CLIENT", "TRACKING", "ON", "REDIRECT", "$ID"), trkT("CLIENT", "GETREDIR"),
			trkT("GET", "@q1"), trkT("MGET", "@q2", "@q3"),
			trkW("SET", "@q1", "x"), trkW("DEL", "@q2"), trkW("SET", "@q4", "x"),
		},
		want: []string{"q1", "q2", "fence"},
	},
	{
		// RESP2 with REDIRECT to a RESP3 connection that subscribed to
		// nothing and stays idle: both push to it at once (raftcache
		// wakes it in redcon's loop: resp/wake.go).
		name:     "redirect-resp3",
		resp2:    true,
		redirect: 3,
		steps: []trkStep{
			trkT("CLIENT", "TRACKING", "ON", "REDIRECT", "$ID"),
			trkT("GET", "@q1"), trkT("GET", "@q2"),
			trkW("SET", "@q1", "x"), trkW("SET", "@q3", "x"),
		},
		want: []string{"q1", "fence"},
	},
	{
		// FLUSHALL sends every tracking client the flush-everything
		// invalidation (a null key list) and forgets every registration:
		// f1's later write is not reported.
		name: "flushall",
		steps: []trkStep{
			trkT("CLIENT", "TRACKING", "ON"),
			trkT("GET", "@f1"), trkT("GET", "@f2"),
			trkW("FLUSHALL"), trkW("SET", "@f1", "x"),
		},
		want: []string{trkFlush, "fence"},
	},
	{
		// The tracking client's own write of a key it read is reported
		// to it (no NOLOOP).
		name: "own-write",
		steps: []trkStep{
			trkT("CLIENT", "TRACKING", "ON"),
			trkT("GET", "@w1"), trkT("GET", "@w2"),
			trkT("SET", "@w1", "x"), trkW("SET", "@w2", "x"),
		},
		want: []string{"w1", "w2", "fence"},
	},
	{
		// BCAST: the client's own write under its prefix is reported to
		// it (o:1), as another client's is (o:2). Deliberate difference
		// (docs/api.md): raftcache reports the own write twice, once
		// right after its reply (before the client's next command can
		// read it from its cache, also on a follower that applies it
		// later) and once when applied (BCAST registers nothing that the
		// first could consume): one refetch more.
		name: "bcast-own-write",
		steps: []trkStep{
			trkT("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "@o:"),
			trkT("SET", "@o:1", "x"), trkW("SET", "@o:2", "x"), trkW("SET", "@p:1", "x"),
		},
		fence:     [][]string{},
		fenceKey:  "o:fence",
		ownWrites: []string{"o:1"},
		want:      []string{"o:1", "o:2", "o:fence"},
	},
	{
		// NOLOOP: Redis hides the client's own write (n1). Deliberate
		// difference (docs/api.md): raftcache reports it too, since it
		// cannot tell it from another client's write of n1 applied in
		// the same window, and hiding that one would leave the cache
		// stale for good.
		name: "noloop",
		steps: []trkStep{
			trkT("CLIENT", "TRACKING", "ON", "NOLOOP"),
			trkT("GET", "@n1"), trkT("GET", "@n2"),
			trkT("SET", "@n1", "x"), trkW("SET", "@n2", "x"),
		},
		ownWrites: []string{"n1"},
		want:      []string{"n2", "fence"},
	},
	{
		// Writes that change nothing: Redis reports none of them (SET
		// k3 to its own value is a change to Redis: it is reported).
		name: "noop-writes",
		steps: []trkStep{
			trkW("MSET", "@k1", "v", "@k2", "v", "@k3", "v"), trkW("SADD", "@s1", "a"), trkW("HSET", "@h1", "f", "v"),
			trkW("RPUSH", "@l1", "a"),
			trkSync,
			trkT("CLIENT", "TRACKING", "ON"),
			trkT("MGET", "@k1", "@k2", "@k3", "@m1", "@m2"), trkT("SISMEMBER", "@s1", "a"), trkT("HGET", "@h1", "g"),
			trkT("LLEN", "@l1"),
			trkW("SET", "@k1", "w", "NX"), trkW("DEL", "@m1"), trkW("EXPIRE", "@m2", "100"), trkW("PERSIST", "@k2"),
			trkW("SADD", "@s1", "a"), trkW("HDEL", "@h1", "g"), trkW("LREM", "@l1", "0", "zz"), trkW("SET", "@k3", "v"),
		},
		want: []string{"k3", "fence"},
	},
	{
		// A key that expires is reported when the server removes it
		// (Redis's active expiry; raftcache's reaper, through the log).
		name: "expiry",
		steps: []trkStep{
			trkW("SET", "@x1", "v", "PX", "1500"), trkW("SET", "@x2", "v"),
			trkSync,
			trkT("CLIENT", "TRACKING", "ON"),
			trkT("GET", "@x1"), trkT("GET", "@x2"),
			trkAwait("x1"),
		},
		want: []string{"x1", "fence"},
	},
	{
		// Invalidations are pushed by the node the client is connected
		// to, follower included (docs/api.md): the tracking client on a
		// follower, the writer on the leader.
		name:       "follower",
		onFollower: true,
		steps: []trkStep{
			trkW("MSET", "@s1", "v", "@s2", "v", "@s3", "v"),
			trkW("HSET", "@h1", "f", "v"),
			trkSync,
			trkT("CLIENT", "TRACKING", "ON"),
			trkT("GET", "@s1"), trkT("MGET", "@s2", "@s3", "@m1"), trkT("HGET", "@h1", "f"), trkT("EXISTS", "@m2"),
			trkW("SET", "@s1", "x"), trkW("DEL", "@s2"), trkW("HSET", "@h1", "f", "w"), trkW("LPUSH", "@m2", "a"),
			trkW("SET", "@u1", "x"),
		},
		want: []string{"s1", "s2", "h1", "m2", "fence"},
	},
}

// trkSide is one server under test.
type trkSide struct {
	name      string
	trackAddr string       // the tracking client's and the REDIRECT target's
	writeAddr string       // the writer's
	sync      func() error // nil: nothing to wait for (Redis)
	node      *Node        // raftcache: the tracking client's node
}

// role is the tracking client's node's Raft state now (the leader may
// have changed since the side was named).
func (s trkSide) role() string {
	if s.node == nil {
		return "-"
	}
	v, err := s.node.View()
	if err != nil {
		return "state unknown: " + err.Error()
	}
	return "now " + v.State
}

// trkRecord is one command of a run and its reply, for the comparison and
// the transcript.
type trkRecord struct {
	on    byte
	argv  []string // as the scenario names it (logical keys)
	reply *reply
}

// trkRun is one run of a scenario against one side.
type trkRun struct {
	sc     *trkScenario
	side   trkSide
	prefix string
	// expect: the keys to wait for besides the fence (raftcache: Redis's
	// keys); flushes: how many flush-everything invalidations Redis sent.
	expect  []string
	flushes int

	tracker, target *trkConn
	writer          *respConn
	targetID        string
	got             []string // invalidated keys (logical names), trkFlush for a null list
	log             []string // what was received, in order
	records         []trkRecord
	strayFlush      bool
	notes           []string
}

func (r *trkRun) key(arg string) string {
	if name, ok := strings.CutPrefix(arg, "@"); ok {
		return r.prefix + name
	}
	if arg == "$ID" {
		return r.targetID
	}
	return arg
}

func (r *trkRun) expand(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = r.key(a)
	}
	return out
}

// run runs the scenario. An error means the run could not be carried out
// (a connection failed, a reply or a wait timed out).
func (r *trkRun) run() error {
	var err error
	if r.writer, err = dialResp(r.side.writeAddr); err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	defer r.writer.Close()
	if r.tracker, err = dialTrk(r.side.trackAddr); err != nil {
		return fmt.Errorf("tracking client: %w", err)
	}
	defer r.tracker.Close()
	r.target = r.tracker
	if !r.sc.resp2 {
		if _, err := r.do('t', "HELLO", "3"); err != nil {
			return err
		}
	}
	if r.sc.redirect != 0 {
		if r.target, err = dialTrk(r.side.trackAddr); err != nil {
			return fmt.Errorf("redirect target: %w", err)
		}
		defer r.target.Close()
		if r.sc.redirect == 3 {
			if _, err := r.do('x', "HELLO", "3"); err != nil {
				return err
			}
		}
		id, err := r.do('x', "CLIENT", "ID")
		if err != nil {
			return err
		}
		if id.Kind != kInt {
			return fmt.Errorf("CLIENT ID answered %s", id)
		}
		r.targetID = strconv.FormatInt(id.Int, 10)
	}
	for _, st := range r.sc.steps {
		switch st.on {
		case 's':
			if r.side.sync != nil {
				if err := r.side.sync(); err != nil {
					return err
				}
			}
		case 'a':
			if err := r.collect(func() bool {
				for _, k := range st.argv {
					if !slices.Contains(r.got, k) {
						return false
					}
				}
				return true
			}); err != nil {
				return fmt.Errorf("waiting for the invalidation of %v: %w", st.argv, err)
			}
		default:
			if _, err := r.do(st.on, st.argv...); err != nil {
				return err
			}
		}
	}
	// The fence: registered last, written last; its invalidation comes
	// after every earlier one.
	fenceKey := r.sc.fenceKey
	if fenceKey == "" {
		fenceKey = "fence"
	}
	fence := r.sc.fence
	if fence == nil {
		fence = [][]string{{"GET", "@" + fenceKey}}
	}
	for _, argv := range fence {
		if _, err := r.do('t', argv...); err != nil {
			return err
		}
	}
	if _, err := r.do('w', "SET", "@"+fenceKey, "x"); err != nil {
		return err
	}
	if err := r.collect(func() bool {
		if !slices.Contains(r.got, fenceKey) {
			return false
		}
		for _, k := range r.expect { // as many times as Redis reported it
			if trkCount(r.got, k) < trkCount(r.expect, k) {
				return false
			}
		}
		return true
	}); err != nil {
		// Not an infrastructure failure: the comparison reports what is
		// missing.
		r.notes = append(r.notes, "collecting: "+err.Error())
	}
	return nil
}

// do sends argv (logical names) on the connection st names and records
// the reply. raftcache's TRYAGAIN (not applied: a leader change) is
// retried, a bounded number of times.
func (r *trkRun) do(on byte, argv ...string) (*reply, error) {
	real := r.expand(argv)
	var rep *reply
	var err error
	for i := 0; i < 25; i++ {
		switch on {
		case 'w':
			rep, err = r.writer.do(real...)
		case 't':
			rep, err = r.tracker.do(real...)
		case 'x':
			rep, err = r.target.do(real...)
		default:
			return nil, fmt.Errorf("bad step %q", on)
		}
		if err != nil || rep.Kind != kError || rep.firstWord() != "TRYAGAIN" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("%c %s: %w", on, diffArgv(real), err)
	}
	r.records = append(r.records, trkRecord{on: on, argv: argv, reply: rep})
	r.drain(0)
	return rep, nil
}

// drain takes the invalidations received so far, waiting up to wait for
// the first.
func (r *trkRun) drain(wait time.Duration) {
	var timer <-chan time.Time
	if wait > 0 {
		timer = time.After(wait)
	}
	for i := 0; i < 10000; i++ {
		select {
		case f := <-r.target.pushes:
			r.take(f)
			timer = nil // got one: take the rest without waiting
			continue
		default:
		}
		if timer == nil {
			return
		}
		select {
		case f := <-r.target.pushes:
			r.take(f)
			timer = nil
		case <-timer:
			return
		}
	}
}

// take records one invalidation frame.
func (r *trkRun) take(f *reply) {
	r.log = append(r.log, f.String())
	var list *reply
	switch {
	case f.Kind == kPush && len(f.Elems) == 2 && f.Elems[0].Kind == kBulk && f.Elems[0].Str == "invalidate":
		list = f.Elems[1]
	case f.Kind == kArray && len(f.Elems) == 3: // RESP2 message of __redis__:invalidate
		list = f.Elems[2]
	default:
		r.got = append(r.got, "(unexpected push: "+f.String()+")")
		return
	}
	switch list.Kind {
	case kNull, kNilBulk, kNilArray:
		r.got = append(r.got, trkFlush)
		if r.side.sync != nil && trkCount(r.got, trkFlush) > r.flushes {
			r.strayFlush = true
		}
	case kArray:
		for _, k := range list.Elems {
			if k.Kind != kBulk {
				r.got = append(r.got, "(not a key: "+k.String()+")")
				continue
			}
			if name, ok := strings.CutPrefix(k.Str, r.prefix); ok {
				r.got = append(r.got, name)
			} else {
				r.got = append(r.got, "(another run's key: "+k.Str+")")
			}
		}
	default:
		r.got = append(r.got, "(not a key list: "+list.String()+")")
	}
}

// collect polls the invalidations until done says so, a stray
// flush-everything invalidation arrives (the run is then inconclusive),
// or trkCollectWait passes.
func (r *trkRun) collect(done func() bool) error {
	end := time.Now().Add(trkCollectWait)
	for {
		r.drain(0)
		if done() || r.strayFlush {
			return nil
		}
		if !time.Now().Before(end) {
			return fmt.Errorf("not within %v: received %v", trkCollectWait, trkSorted(r.got))
		}
		r.drain(100 * time.Millisecond)
	}
}

// compareReplies compares the replies of the commands to those of
// Redis's run (not CLIENT ID, HELLO nor the fence).
func (r *trkRun) compareReplies(w *trkRun) string {
	if len(r.records) != len(w.records) {
		return fmt.Sprintf("%d commands on raftcache, %d on Redis", len(r.records), len(w.records))
	}
	for i, g := range r.records {
		name := strings.ToUpper(strings.Join(g.argv[:min(2, len(g.argv))], " "))
		if name == "CLIENT ID" || strings.HasPrefix(name, "HELLO") {
			continue
		}
		got, want := g.reply, w.records[i].reply
		if got.Kind == kError && want.Kind == kError {
			// Error texts may name keys: each run's own prefix.
			g2, w2 := *got, *want
			g2.Str, w2.Str = strings.ReplaceAll(g2.Str, r.prefix, "@"), strings.ReplaceAll(w2.Str, w.prefix, "@")
			got, want = &g2, &w2
		}
		if !got.equal(want) {
			return fmt.Sprintf("command %d (%c: %s): redis %s, raftcache %s", i+1, g.on, diffArgv(g.argv), w.records[i].reply, g.reply)
		}
	}
	return ""
}

// transcript is the run's commands, replies and invalidations received.
func (r *trkRun) transcript() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  keys prefixed %q\n", r.prefix)
	who := map[byte]string{'w': "writer  ", 't': "tracking", 'x': "target  "}
	for _, rec := range r.records {
		fmt.Fprintf(&b, "  %s> %s -> %s\n", who[rec.on], diffArgv(rec.argv), rec.reply)
	}
	for _, l := range r.log {
		fmt.Fprintf(&b, "  received: %s\n", l)
	}
	for _, n := range r.notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	return b.String()
}

// trkConn is a connection whose frames a goroutine reads as they come:
// invalidations (RESP3 push frames, RESP2 messages of
// __redis__:invalidate) to pushes, everything else to replies. A tracking
// connection receives pushes between and before replies.
type trkConn struct {
	c       net.Conn
	w       *bufio.Writer
	replies chan *reply
	pushes  chan *reply
	quit    chan struct{}
	done    chan struct{} // closed when the reader stops; err says why
	err     error
	once    sync.Once
}

func dialTrk(addr string) (*trkConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	tc := &trkConn{c: c, w: bufio.NewWriter(c), replies: make(chan *reply, 64), pushes: make(chan *reply, 1024),
		quit: make(chan struct{}), done: make(chan struct{})}
	go tc.read(bufio.NewReader(c))
	return tc, nil
}

func (tc *trkConn) read(rd *bufio.Reader) {
	defer close(tc.done)
	for {
		f, err := readReply(rd)
		if err != nil {
			tc.err = err
			return
		}
		ch := tc.replies
		if f.Kind == kPush || f.Kind == kArray && len(f.Elems) == 3 && f.Elems[0].Kind == kBulk && f.Elems[0].Str == "message" &&
			f.Elems[1].Kind == kBulk && f.Elems[1].Str == "__redis__:invalidate" {
			ch = tc.pushes
		}
		select {
		case ch <- f:
		case <-tc.quit:
			return
		}
	}
}

func (tc *trkConn) Close() {
	tc.once.Do(func() {
		close(tc.quit)
		tc.c.Close()
		<-tc.done
	})
}

// do sends one command and waits for its reply (invalidations that come
// before it are kept for the reader of pushes).
func (tc *trkConn) do(argv ...string) (*reply, error) {
	tc.c.SetWriteDeadline(time.Now().Add(trkReplyWait))
	if err := writeCommand(tc.w, argv); err != nil {
		return nil, err
	}
	timer := time.NewTimer(trkReplyWait)
	defer timer.Stop()
	select {
	case r := <-tc.replies:
		return r, nil
	case <-tc.done:
		select {
		case r := <-tc.replies:
			return r, nil
		default:
		}
		return nil, fmt.Errorf("connection closed: %v", tc.err)
	case <-timer.C:
		return nil, fmt.Errorf("no reply within %v", trkReplyWait)
	}
}

func trkCount(list []string, k string) int {
	n := 0
	for _, x := range list {
		if x == k {
			n++
		}
	}
	return n
}

func trkSorted(list []string) []string {
	out := slices.Clone(list)
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// trkDiff returns the multiset differences got - want and want - got.
func trkDiff(got, want []string) (extra, missing []string) {
	count := map[string]int{}
	for _, k := range want {
		count[k]++
	}
	for _, k := range got {
		if count[k] > 0 {
			count[k]--
		} else {
			extra = append(extra, k)
		}
	}
	for _, k := range trkSorted(want) {
		if count[k] > 0 {
			missing = append(missing, k)
			count[k]--
		}
	}
	return extra, missing
}
