package node

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// readStats sums the strong-read counters of nodes (leadership may move
// during a test on a busy machine).
func readStats(nodes []*Node) ReadStats {
	var sum ReadStats
	for _, n := range nodes {
		rs := n.ReadStats()
		sum.Rounds += rs.Rounds
		sum.Reads += rs.Reads
		sum.LegacyRounds += rs.LegacyRounds
	}
	return sum
}

// Strong reads confirm leadership with the read fence alone while a
// quorum speaks it, and fall back to Raft's heartbeats, still serving,
// when a quorum needs members of an older binary (here: members that
// serve no fence, so that the fence's first byte reaches Raft as an
// unknown message type, exactly as in an older binary).
func TestFenceServesStrongReads(t *testing.T) {
	for _, tc := range []struct {
		name    string
		without int // members serving no fence: the last ones
		legacy  bool
	}{
		{"one binary", 0, false},
		{"one member older", 1, false}, // the other two make a quorum
		{"all older", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := 0
			nodes := newCluster(t, 3, func(c *Config) {
				i++
				c.noFenceServer = i > 3-tc.without
			})
			mustSet(t, waitForLeader(t, nodes...), "k", "v")
			for range 20 {
				if _, err := strongGet(t, nodes, "k"); err != nil {
					t.Fatal(err)
				}
			}
			rs := readStats(nodes)
			if rs.Rounds == 0 {
				t.Fatal("no strong-read round ran")
			}
			if tc.legacy && rs.LegacyRounds == 0 {
				t.Fatalf("no round of %d fell back to VerifyLeader, with no member serving the fence", rs.Rounds)
			}
			// A round may fall back when the one member serving the fence
			// was dropped for a moment on a busy machine; most must not.
			if !tc.legacy && 2*rs.LegacyRounds > rs.Rounds {
				t.Fatalf("%d of %d rounds fell back to VerifyLeader with a quorum serving the fence", rs.LegacyRounds, rs.Rounds)
			}
		})
	}
}

// fencePeerStub stands where a stopped member's Raft address was, behind
// the real stream layer (its cluster handshake, and the diversion of a
// fence connection after it), and answers the read fence as told: a
// member whose answers the test controls, in front of the real leader's
// fence. Raft's own connections are closed once past the handshake.
type fencePeerStub struct {
	st      *tcpStream
	cluster string
	id      string
	// answer turns a request (its sequence number and term) into the
	// answer sent.
	answer func(seq, term uint64) (aseq, aterm uint64, counts byte)
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
	opens  int // fence connections opened
}

func startFenceStub(t *testing.T, addr, cluster, id string, answer func(seq, term uint64) (uint64, uint64, byte)) *fencePeerStub {
	t.Helper()
	s := &fencePeerStub{cluster: cluster, id: id, answer: answer, conns: make(map[net.Conn]bool)}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		s.st, err = newTCPStream(addr, "", nil, func() (string, string) { return cluster, id }, nil, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen on the stopped member's address %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.st.fence = s.serve
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.st.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				// The handshake, and a fence connection served to its end.
				c.Read(make([]byte, 1))
			}()
		}
	}()
	t.Cleanup(func() {
		s.st.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// serve answers a fence connection past its fenceOpen byte.
func (s *fencePeerStub) serve(c net.Conn) {
	r := byteReader{c}
	if _, err := readStr(r); err != nil {
		return
	}
	s.mu.Lock()
	s.opens++
	s.mu.Unlock()
	if _, err := c.Write(appendStr(appendStr([]byte{helloOK}, s.id), s.cluster)); err != nil {
		return
	}
	var req [fenceReqLen]byte
	var ans [fenceAnsLen]byte
	for {
		if _, err := io.ReadFull(c, req[:]); err != nil {
			return
		}
		aseq, aterm, counts := s.answer(binary.BigEndian.Uint64(req[:8]), binary.BigEndian.Uint64(req[8:]))
		binary.BigEndian.PutUint64(ans[:8], aseq)
		binary.BigEndian.PutUint64(ans[8:16], aterm)
		ans[16] = counts
		if _, err := c.Write(ans[:]); err != nil {
			return
		}
	}
}

// The fence counts only answers to the round's own request. Voters that
// answer every request with the number of the one before (as a
// heartbeat's answer, written before the reads arrived, would stand for
// a round it was not asked for) never confirm a round; the same voters
// answering in step do, at the leader's term or a lower one; one at a
// higher term deposes the leader at once; one not allowed to vote
// confirms nothing. The leader keeps its configuration of three voters
// after the other two stop, and stubs take their addresses.
func TestFenceCountsOnlyItsOwnRound(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitForLeader(t, nodes...)
	var rest []*Node
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	term := leader.raft.CurrentTerm()
	cluster := leader.ClusterID()

	var mu sync.Mutex
	mode := "stale"
	staleAnswers := 0
	deposer := rest[0].ID()
	answer := func(id string) func(seq, t uint64) (uint64, uint64, byte) {
		return func(seq, t uint64) (uint64, uint64, byte) {
			mu.Lock()
			defer mu.Unlock()
			switch mode {
			case "stale":
				if seq > 0 {
					staleAnswers++
				}
				return seq - 1, t, 1
			case "deposed":
				if id == deposer {
					return seq, t + 1, 1
				}
				return seq - 1, t, 1 // silent for this round
			case "unregistered":
				return seq, t, 0
			case "lower":
				return seq, t - 1, 1
			}
			return seq, t, 1
		}
	}
	setMode := func(m string) {
		mu.Lock()
		mode = m
		mu.Unlock()
	}
	for _, n := range rest {
		addr, id := n.RaftAddr(), n.ID()
		if err := n.Close(); err != nil {
			t.Logf("close %s: %v", id, err)
		}
		startFenceStub(t, addr, cluster, id, answer(id))
	}
	f := leader.fence

	// confirmed runs rounds until one is confirmed (a stub's connection
	// may still be dialling: a round fails fast while no voter is
	// connected), and fails the test after a deadline.
	confirmed := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := f.confirm(term, 2*time.Second)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never confirmed a round (the stub is wrong, or the fence): %v", what, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Earlier answers: rounds in a row, none confirmed, though answered.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		if err := f.confirm(term, 300*time.Millisecond); err == nil {
			t.Fatalf("round %d was confirmed by answers to earlier requests", i)
		}
		mu.Lock()
		n := staleAnswers
		mu.Unlock()
		if i >= 3 && n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stubs answered %d requests in %d rounds", n, i+1)
		}
	}
	setMode("in step")
	confirmed("answers in step")
	setMode("lower")
	confirmed("answers at a lower term")

	setMode("deposed")
	deadline = time.Now().Add(30 * time.Second)
	for {
		// The deposing stub may be between connections: that round
		// times out on the silent one.
		err := f.confirm(term, 2*time.Second)
		if err == nil {
			t.Fatal("a round with a voter at a higher term was confirmed")
		}
		if errors.Is(err, errFenceDeposed) && errors.Is(err, ErrNotLeader) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a voter at a higher term: %v, want errFenceDeposed (ErrNotLeader)", err)
		}
	}
	setMode("unregistered")
	if err := f.confirm(term, 300*time.Millisecond); err == nil {
		t.Fatal("voters not allowed to vote confirmed a round")
	}
}

// A voter that takes requests and never answers them (stopped, cut off
// one way) holds no strong read: the other voter makes the quorum, and
// the leader drops the silent one's connection once its oldest request
// is fenceStall old, and dials it again.
func TestFenceSilentVoterHoldsNoRead(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitForLeader(t, nodes...)
	silent := others(nodes, leader)[1]
	live := others(nodes, silent)
	addr, id := silent.RaftAddr(), silent.ID()
	if err := silent.Close(); err != nil {
		t.Logf("close %s: %v", id, err)
	}
	// Answers numbered 0 answer no request.
	stub := startFenceStub(t, addr, leader.ClusterID(), id, func(uint64, uint64) (uint64, uint64, byte) { return 0, 0, 1 })
	mustSet(t, leader, "k", "v")
	opens := func() int {
		stub.mu.Lock()
		defer stub.mu.Unlock()
		return stub.opens
	}
	deadline := time.Now().Add(60 * time.Second)
	reads, failed := 0, 0
	for opens() < 2 || reads < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d strong reads, the silent voter's fence was opened %d times (want a drop and a redial)", reads, opens())
		}
		ctx := ctxTimeout(t, 10*time.Second)
		term := leader.raft.CurrentTerm()
		if _, err := leader.Get(ctx, []byte("k"), ReadOptions{Consistency: Strong}); err != nil {
			// A round times out (the test timing's heartbeat timeout)
			// if the live voter is starved that long: a few may.
			if leader.IsLeader() && leader.raft.CurrentTerm() == term && (!errors.Is(err, ErrNoLeader) || failed >= 10) {
				t.Fatalf("strong read %d with one voter silent: %v (%d failed before)", reads, err, failed)
			}
			failed++
			// Leadership moved on a busy machine: go on with whoever leads.
			leader = waitForLeader(t, live...)
			continue
		}
		reads++
	}
}
