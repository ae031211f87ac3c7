package resp

import (
	"errors"
	"fmt"
	"math/rand"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/redcon"

	"github.com/raftcache/raftcache/internal/testcluster/timing"
)

// fakeLeader is a leader's Redis port as a relay connection sees it: it
// accepts RAFTCACHE.FORWARDED and AUTH, and answers each command with
// answer(conn, args), written in small random pieces so that replies
// straddle the relay's reads. answer returns nil to close the connection
// (after writing half of what is pending).
type fakeLeader struct {
	t      *testing.T
	ln     net.Listener
	answer func(fc *fakeConn, args [][]byte) []byte

	mu       sync.Mutex
	conns    []*fakeConn
	maxBatch int // most commands one read carried: coalesced writes
}

type fakeConn struct {
	nc     net.Conn
	token  string
	closed atomic.Bool
}

func startFakeLeader(t *testing.T, answer func(fc *fakeConn, args [][]byte) []byte) *fakeLeader {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &fakeLeader{t: t, ln: ln, answer: answer}
	t.Cleanup(func() {
		ln.Close()
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, c := range l.conns {
			c.nc.Close()
		}
	})
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			fc := &fakeConn{nc: nc}
			l.mu.Lock()
			l.conns = append(l.conns, fc)
			l.mu.Unlock()
			go l.serve(fc)
		}
	}()
	return l
}

func (l *fakeLeader) addr() string { return l.ln.Addr().String() }

func (l *fakeLeader) serve(fc *fakeConn) {
	defer fc.closed.Store(true)
	defer fc.nc.Close()
	rd := redcon.NewReader(fc.nc)
	rng := rand.New(rand.NewSource(int64(len(fc.nc.LocalAddr().String()))))
	for {
		cmds, err := rd.ReadCommands()
		if err != nil {
			return
		}
		l.mu.Lock()
		l.maxBatch = max(l.maxBatch, len(cmds))
		l.mu.Unlock()
		var out []byte
		for _, c := range cmds {
			name := strings.ToUpper(string(c.Args[0]))
			switch {
			case name == "AUTH":
				fc.token = string(c.Args[1])
				out = append(out, "+OK\r\n"...)
			case name == forwardedCmd:
				out = append(out, "+OK\r\n"...)
			default:
				r := l.answer(fc, c.Args)
				if r == nil {
					fc.nc.Write(out[:len(out)/2])
					return
				}
				out = append(out, r...)
			}
		}
		for len(out) > 0 { // in pieces: replies cross the relay's reads
			n := min(len(out), 1+rng.Intn(700))
			if _, err := fc.nc.Write(out[:n]); err != nil {
				return
			}
			out = out[n:]
		}
	}
}

func (l *fakeLeader) connections() []*fakeConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*fakeConn(nil), l.conns...)
}

// echo answers ECHO with its argument, and WHO with the connection's
// token.
func echo(fc *fakeConn, args [][]byte) []byte {
	switch strings.ToUpper(string(args[0])) {
	case "ECHO":
		return redcon.AppendBulk(nil, args[1])
	case "WHO":
		return redcon.AppendBulkString(nil, fc.token)
	}
	return []byte("-ERR unknown\r\n")
}

func frame(args ...string) []byte {
	b := redcon.AppendArray(nil, len(args))
	for _, a := range args {
		b = redcon.AppendBulkString(b, a)
	}
	return b
}

func testForwarder(t *testing.T, conns int, timeout time.Duration, maxReply int) *forwarder {
	f := newForwarder("n2", timeout, 4, conns, nil, maxReply)
	t.Cleanup(f.close)
	return f
}

// relayOnce relays frames and returns the replies as strings (an error
// reply "!<err>" for a skipped one).
func relayOnce(f *forwarder, addr, token string, frames ...[]byte) ([]string, error) {
	var got []string
	_, err := f.relay(poolKey{addr, token, 2}, frames, func(i int, reply []byte, err error) {
		if err != nil {
			got = append(got, "!"+err.Error())
			return
		}
		got = append(got, string(reply))
	})
	return got, err
}

// TestSharedRelayMatchesReplies: many callers relaying runs of distinct
// commands over one shared connection each get their own replies, in
// order, and their frames are coalesced into shared writes.
func TestSharedRelayMatchesReplies(t *testing.T) {
	l := startFakeLeader(t, echo)
	f := testForwarder(t, 1, 20*time.Second, 1<<20)
	const callers, runs = 40, 100
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(c)))
			for r := range runs {
				var frames [][]byte
				var want []string
				for i := range 1 + rng.Intn(4) {
					v := fmt.Sprintf("c%d-r%d-%d-%s", c, r, i, strings.Repeat("x", rng.Intn(3000)))
					frames = append(frames, frame("ECHO", v))
					want = append(want, "$"+strconv.Itoa(len(v))+"\r\n"+v+"\r\n")
				}
				got, err := relayOnce(f, l.addr(), "", frames...)
				if err != nil {
					errs <- err
					return
				}
				if strings.Join(got, "|") != strings.Join(want, "|") {
					errs <- fmt.Errorf("caller %d run %d: got %.200q, want %.200q", c, r, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := len(l.connections()); n != 1 {
		t.Errorf("%d connections to the leader, want 1 shared", n)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxBatch < 2 {
		t.Errorf("no read on the leader carried more than one command: nothing coalesced")
	}
}

// TestSharedRelayLeaderClosesMidStream: when the leader closes the
// shared connection while callers wait, each one gets its own reply or
// an error, never another caller's reply, and no caller waits on; the
// callers after it dial a new connection.
func TestSharedRelayLeaderClosesMidStream(t *testing.T) {
	var answered atomic.Int64
	l := startFakeLeader(t, func(fc *fakeConn, args [][]byte) []byte {
		if answered.Add(1) == 150 {
			return nil // close, with half of the pending replies written
		}
		return echo(fc, args)
	})
	f := testForwarder(t, 1, 20*time.Second, 1<<20)
	const callers = 30
	var wg sync.WaitGroup
	var failed, ok atomic.Int64
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 20 {
				v := fmt.Sprintf("caller-%d-run-%d", c, r)
				got, err := relayOnce(f, l.addr(), "", frame("ECHO", v), frame("ECHO", v+"b"))
				want := []string{"$" + strconv.Itoa(len(v)) + "\r\n" + v + "\r\n", "$" + strconv.Itoa(len(v)+1) + "\r\n" + v + "b\r\n"}
				for i, g := range got {
					if g != want[i] {
						errs <- fmt.Errorf("caller %d run %d: reply %d is %q, want %q", c, r, i, g, want[i])
						return
					}
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("callers still waiting 15s after the leader closed the connection")
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if failed.Load() == 0 || ok.Load() == 0 {
		t.Fatalf("%d runs failed and %d succeeded; want both (the close must hit waiting callers)", failed.Load(), ok.Load())
	}
	if n := len(l.connections()); n < 2 {
		t.Errorf("%d connections: the callers after the close should have dialed a new one", n)
	}
}

// TestSharedRelayStuckLeader: a leader that reads and never answers
// holds no caller past its deadline: the connection is closed, every
// waiter fails (as sent: the outcome is unknown), and the next relay
// dials afresh.
func TestSharedRelayStuckLeader(t *testing.T) {
	var stuck atomic.Bool
	stuck.Store(true)
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	l := startFakeLeader(t, func(fc *fakeConn, args [][]byte) []byte {
		if stuck.Load() {
			<-block
			return nil
		}
		return echo(fc, args)
	})
	f := testForwarder(t, 1, 500*time.Millisecond, 1<<20)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := relayOnce(f, l.addr(), "", frame("ECHO", strconv.Itoa(i)))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil || errors.Is(err, errNotSent) {
			t.Errorf("a caller on a stuck connection: %v, want an error of unknown outcome", err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("callers waited %v for a stuck leader, with a 500ms timeout", d)
	}
	stuck.Store(false)
	if got, err := relayOnce(f, l.addr(), "", frame("ECHO", "after")); err != nil || len(got) != 1 || got[0] != "$5\r\nafter\r\n" {
		t.Fatalf("after the stuck connection: %q %v", got, err)
	}
}

// TestSharedRelayReplyBound: a reply past the bound is skipped, not held:
// its caller gets errReplyTooLarge and the other callers on the same
// connection get their replies, on the same connection.
func TestSharedRelayReplyBound(t *testing.T) {
	l := startFakeLeader(t, func(fc *fakeConn, args [][]byte) []byte {
		switch strings.ToUpper(string(args[0])) {
		case "BIG": // one bulk string of n bytes
			n, _ := strconv.Atoi(string(args[1]))
			return redcon.AppendBulkString(nil, strings.Repeat("b", n))
		case "BIGARRAY": // n bulk strings of 100 bytes, nested
			n, _ := strconv.Atoi(string(args[1]))
			b := redcon.AppendArray(nil, 2)
			b = redcon.AppendInt(b, 7)
			b = redcon.AppendArray(b, n)
			for range n {
				b = redcon.AppendBulkString(b, strings.Repeat("a", 100))
			}
			return b
		}
		return echo(fc, args)
	})
	const bound = 4 << 10
	f := testForwarder(t, 1, 20*time.Second, bound)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for c := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 30 {
				v := fmt.Sprintf("c%d-r%d", c, r)
				big := frame("BIG", strconv.Itoa(bound-100+(c*r)%300))
				if c%2 == 0 {
					big = frame("BIGARRAY", strconv.Itoa(30+(c*r)%30))
				}
				got, err := relayOnce(f, l.addr(), "", frame("ECHO", v), big, frame("ECHO", v))
				if err != nil {
					errs <- err
					return
				}
				echoed := "$" + strconv.Itoa(len(v)) + "\r\n" + v + "\r\n"
				if len(got) != 3 || got[0] != echoed || got[2] != echoed {
					errs <- fmt.Errorf("caller %d run %d: got %.300q", c, r, got)
					return
				}
				if !strings.HasPrefix(got[1], "!") && len(got[1]) > bound {
					errs <- fmt.Errorf("a reply of %d bytes passed a bound of %d", len(got[1]), bound)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := relayOnce(f, l.addr(), "", frame("BIG", strconv.Itoa(1<<20)), frame("ECHO", "x"))
	if err != nil || len(got) != 2 || got[0] != "!"+errReplyTooLarge.Error() || got[1] != "$1\r\nx\r\n" {
		t.Fatalf("a 1 MiB reply past a 4 KiB bound: %q %v", got, err)
	}
	if n := len(l.connections()); n != 1 {
		t.Errorf("%d connections: skipping a reply too large must keep the connection", n)
	}
}

// TestSharedRelayTokenPerPoolKey: callers with different tokens never
// share a connection: each connection authenticated with its callers'
// token, and an empty token sends no AUTH.
func TestSharedRelayTokenPerPoolKey(t *testing.T) {
	l := startFakeLeader(t, echo)
	f := testForwarder(t, 2, 20*time.Second, 1<<20)
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for c := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := []string{"", "tok-a", "tok-b"}[c%3]
			for range 50 {
				got, err := relayOnce(f, l.addr(), token, frame("WHO"), frame("ECHO", token))
				want := redcon.AppendBulkString(nil, token)
				if err != nil || len(got) != 2 || got[0] != string(want) || got[1] != string(want) {
					errs <- fmt.Errorf("token %q: %q %v", token, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, c := range l.connections() {
		per[c.token]++
	}
	if len(per) != 3 || per[""] > 2 || per["tok-a"] > 2 || per["tok-b"] > 2 {
		t.Errorf("connections per token: %v, want 1 or 2 for each of the three", per)
	}
}

// TestSharedRelayLeaderChange: a relay to a new leader retires the
// connections to the old one: a caller already waiting there gets its
// reply (the relay's caller may have read the leader a moment before a
// change: it must not cut the current leader's calls), and then the old
// connection is closed. The leader watch (follow) fails such callers at
// once instead (TestSharedRelayLeaderWatch).
func TestSharedRelayLeaderChange(t *testing.T) {
	old, release := slowLeader(t)
	next := startFakeLeader(t, echo)
	f := testForwarder(t, 2, 20*time.Second, 1<<20)
	if _, err := relayOnce(f, old.addr(), "", frame("ECHO", "warm")); err != nil {
		t.Fatal(err)
	}
	slow := slowCall(t, f, old.addr())
	if got, err := relayOnce(f, next.addr(), "", frame("ECHO", "new")); err != nil || got[0] != "$3\r\nnew\r\n" {
		t.Fatalf("relay to the new leader: %q %v", got, err)
	}
	for _, c := range old.connections() {
		if c.closed.Load() {
			t.Fatal("a connection to the old leader closed while a caller waited on it")
		}
	}
	release()
	if got := <-slow; len(got) != 1 || got[0] != "+slow\r\n" {
		t.Fatalf("the caller waiting on the old leader: %q", got)
	}
	waitUntil(t, "the connections to the old leader to close", func() bool {
		for _, c := range old.connections() {
			if !c.closed.Load() {
				return false
			}
		}
		return true
	})
}

// TestSharedRelayLeaderWatch: when the server's leader watch learns of a
// new leader (forwarder.follow), callers still waiting on the old one fail
// at once with errRetired (relayItems sends them again to the new leader,
// or answers UNKNOWN if they may have run and cannot be), rather than
// waiting on a leader that may have died without closing its connections.
func TestSharedRelayLeaderWatch(t *testing.T) {
	old, release := slowLeader(t)
	t.Cleanup(release)
	next := startFakeLeader(t, echo)
	f := testForwarder(t, 2, 20*time.Second, 1<<20)
	slow := slowCall(t, f, old.addr())
	f.follow(next.addr())
	if got := <-slow; len(got) != 1 || got[0] != errRetired.Error() {
		t.Fatalf("the caller waiting on the old leader: %q, want %q", got, errRetired)
	}
}

// slowLeader is a fake leader that echoes, but answers SLOW (slowCall)
// only once release is called.
func slowLeader(t *testing.T) (l *fakeLeader, release func()) {
	ch := make(chan struct{})
	l = startFakeLeader(t, func(fc *fakeConn, args [][]byte) []byte {
		if string(args[0]) == "SLOW" {
			<-ch
			return []byte("+slow\r\n")
		}
		return echo(fc, args)
	})
	return l, sync.OnceFunc(func() { close(ch) })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timing.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(timing.Poll)
	}
}

// TestSharedRelaySpill: callers fill the first connection up to
// relaySpill waiting callers before the pool opens a second one.
func TestSharedRelaySpill(t *testing.T) {
	release := make(chan struct{})
	l := startFakeLeader(t, func(fc *fakeConn, args [][]byte) []byte {
		<-release
		return echo(fc, args)
	})
	f := testForwarder(t, 2, 20*time.Second, 1<<20)
	const callers = relaySpill + 8
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := strconv.Itoa(i)
			got, err := relayOnce(f, l.addr(), "", frame("ECHO", v))
			if err != nil || len(got) != 1 || got[0] != string(redcon.AppendBulkString(nil, v)) {
				errs <- fmt.Errorf("caller %d: %q %v", i, got, err)
			}
		}()
	}
	loads := func() (n []int32) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if p := f.pools[poolKey{l.addr(), "", 2}]; p != nil {
			for _, c := range p.slots {
				if c != nil {
					n = append(n, c.load.Load())
				}
			}
		}
		return n
	}
	waitUntil(t, "every caller to wait", func() bool {
		n := loads()
		return len(n) == 2 && n[0]+n[1] == callers
	})
	// (A few callers may pick the first connection together, past the
	// spill count: choosing and queueing are not one step.)
	if n := loads(); n[0] < relaySpill {
		t.Errorf("callers per connection %v: want the first filled to %d", n, relaySpill)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// slowCall relays SLOW to addr (a fake leader holding it) and returns
// where its answer (or its error's text) will come, once the call is
// queued on a shared connection.
func slowCall(t *testing.T, f *forwarder, addr string) <-chan []string {
	t.Helper()
	slow := make(chan []string, 1)
	go func() {
		got, err := relayOnce(f, addr, "", frame("SLOW"))
		if err != nil {
			got = append(got, err.Error())
		}
		slow <- got
	}()
	waitUntil(t, "the slow call to be queued", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		p := f.pools[poolKey{addr, "", 2}]
		if p == nil {
			return false
		}
		for _, c := range p.slots {
			if c != nil && c.load.Load() > 0 {
				return true
			}
		}
		return false
	})
	return slow
}
