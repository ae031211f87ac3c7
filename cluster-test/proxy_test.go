package clustertest

// A fault-injecting TCP proxy for the Raft traffic of a test cluster.
//
// Every node binds Raft on its own loopback IP (node i on 127.0.0.(i+2),
// see proxyRaftIP) and advertises a proxy listening on 127.0.0.1:0 instead
// of its bind address. The Raft stream layer dials from the node's bind IP,
// so the proxy in front of node j tells which node i is connecting by the
// source IP of the accepted connection. Partition(A, B) closes every proxied
// connection between a node of A and a node of B, in both directions, and
// refuses new ones until Heal. Blackhole(A, B) cuts the same connections
// silently instead: they stay open but every byte is dropped, as on a
// network that loses packets, so the nodes see timeouts rather than
// errors; Heal closes them (their streams have holes) and Raft redials.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxyRaftIP is node i's Raft bind IP when its traffic goes through a
// proxyNet: distinct per node so proxies can tell senders apart.
func proxyRaftIP(i int) string { return fmt.Sprintf("127.0.0.%d", i+2) }

// proxyNet is the set of proxies of one cluster and the partition state
// they share.
type proxyNet struct {
	t       testing.TB
	mu      sync.Mutex
	proxies map[int]*proxy
	byIP    map[string]int       // source IP -> node index
	blocked map[[2]int]proxyMode // {from, to} -> how its connections are cut
	conns   map[*proxyConn]struct{}
	closed  bool
	wg      sync.WaitGroup
	refused int // connections refused or cut because of a partition (for tests)
}

// proxy listens in front of one node's Raft bind address.
type proxy struct {
	to     int    // index of the node behind it
	target string // the node's Raft bind address
	ln     net.Listener
}

// proxyMode is how a partition cuts connections.
type proxyMode int

const (
	proxyOpen      proxyMode = iota
	proxyCut                 // close, and refuse new connections
	proxyBlackhole           // keep open, drop every byte
)

// proxyConn is one accepted connection and its upstream.
type proxyConn struct {
	from, to         int
	client, upstream net.Conn
	once             sync.Once
	dropping         atomic.Bool // blackholed: bytes are read and dropped
}

func (pc *proxyConn) close() {
	pc.once.Do(func() {
		pc.client.Close()
		if pc.upstream != nil {
			pc.upstream.Close()
		}
	})
}

// newProxyNet returns an empty proxy set whose proxies are closed when the
// test ends.
func newProxyNet(t testing.TB) *proxyNet {
	pn := &proxyNet{
		t:       t,
		proxies: map[int]*proxy{},
		byIP:    map[string]int{},
		blocked: map[[2]int]proxyMode{},
		conns:   map[*proxyConn]struct{}{},
	}
	t.Cleanup(pn.Close)
	return pn
}

// Options returns cluster options that put every node's Raft traffic
// through pn. It sets RaftIP and Advertise; other fields stay as given.
func (pn *proxyNet) Options(opt Options) Options {
	opt.RaftIP = proxyRaftIP
	opt.Advertise = func(i int, bind string) string { return pn.Add(i, bind) }
	return opt
}

// Add starts the proxy in front of node i, whose Raft listener is (or
// will be) at bind, and returns the proxy's address.
func (pn *proxyNet) Add(i int, bind string) string {
	pn.t.Helper()
	host, _, err := net.SplitHostPort(bind)
	if err != nil {
		pn.t.Fatalf("proxy: bad bind address %q: %v", bind, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pn.t.Fatalf("proxy: listen: %v", err)
	}
	p := &proxy{to: i, target: bind, ln: ln}
	pn.mu.Lock()
	if old := pn.proxies[i]; old != nil {
		old.ln.Close()
	}
	pn.proxies[i] = p
	pn.byIP[host] = i
	pn.mu.Unlock()
	pn.wg.Add(1)
	go pn.serve(p)
	return ln.Addr().String()
}

// from names the node a connection comes from by its source IP; -1 if the
// IP is no node's.
func (pn *proxyNet) from(c net.Conn) int {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return -1
	}
	pn.mu.Lock()
	defer pn.mu.Unlock()
	if i, ok := pn.byIP[host]; ok {
		return i
	}
	return -1
}

func (pn *proxyNet) serve(p *proxy) {
	defer pn.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. too many open files: back off
			continue
		}
		pn.wg.Add(1)
		go pn.handle(p, c)
	}
}

// handle forwards one connection unless a partition separates its ends.
func (pn *proxyNet) handle(p *proxy, c net.Conn) {
	defer pn.wg.Done()
	pc := &proxyConn{from: pn.from(c), to: p.to, client: c}
	pn.mu.Lock()
	mode := pn.blocked[[2]int{pc.from, pc.to}]
	if pn.closed || mode == proxyCut {
		pn.refused++
		pn.mu.Unlock()
		c.Close()
		return
	}
	if mode == proxyBlackhole {
		// Accept, never forward: the dialer's requests go unanswered.
		pn.refused++
		pc.dropping.Store(true)
		pn.conns[pc] = struct{}{}
		pn.mu.Unlock()
		_, _ = io.Copy(io.Discard, c)
		pc.close()
		pn.forget(pc)
		return
	}
	pn.mu.Unlock()
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		c.Close() // the node is down: the dialer sees EOF
		return
	}
	pc.upstream = up
	// Register under the lock and re-check: a partition may have been
	// placed while we dialed.
	pn.mu.Lock()
	if pn.closed || pn.blocked[[2]int{pc.from, pc.to}] != proxyOpen {
		pn.refused++
		pn.mu.Unlock()
		pc.close()
		return
	}
	pn.conns[pc] = struct{}{}
	pn.mu.Unlock()

	done := make(chan struct{}, 2)
	pump := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 && !pc.dropping.Load() {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		pc.close() // either side ending ends both: Raft redials
		done <- struct{}{}
	}
	go pump(up, c)
	go pump(c, up)
	<-done
	<-done
	pn.forget(pc)
}

func (pn *proxyNet) forget(pc *proxyConn) {
	pn.mu.Lock()
	delete(pn.conns, pc)
	pn.mu.Unlock()
}

// Partition cuts every connection between a node of a and a node of b, in
// both directions, and refuses new ones until Heal. Partitions add up:
// earlier cuts stay in place.
func (pn *proxyNet) Partition(a, b []int) { pn.partition(a, b, proxyCut) }

// Blackhole is Partition, but silent: connections between a and b stay
// open and drop every byte, and new ones are accepted and never answered,
// until Heal.
func (pn *proxyNet) Blackhole(a, b []int) { pn.partition(a, b, proxyBlackhole) }

func (pn *proxyNet) partition(a, b []int, mode proxyMode) {
	var cut []*proxyConn
	pn.mu.Lock()
	for _, i := range a {
		for _, j := range b {
			if i == j {
				continue
			}
			pn.blocked[[2]int{i, j}] = mode
			pn.blocked[[2]int{j, i}] = mode
		}
	}
	for pc := range pn.conns {
		switch pn.blocked[[2]int{pc.from, pc.to}] {
		case proxyCut:
			cut = append(cut, pc)
		case proxyBlackhole:
			if !pc.dropping.Swap(true) {
				pn.refused++
			}
		}
	}
	pn.refused += len(cut)
	pn.mu.Unlock()
	for _, pc := range cut {
		pc.close()
	}
}

// Isolate cuts node i off from every other node with a proxy.
func (pn *proxyNet) Isolate(i int) {
	pn.Partition([]int{i}, pn.others(i))
}

// IsolateSilently blackholes node i from every other node with a proxy.
func (pn *proxyNet) IsolateSilently(i int) {
	pn.Blackhole([]int{i}, pn.others(i))
}

func (pn *proxyNet) others(i int) []int {
	pn.mu.Lock()
	defer pn.mu.Unlock()
	var out []int
	for j := range pn.proxies {
		if j != i {
			out = append(out, j)
		}
	}
	sort.Ints(out)
	return out
}

// Heal lifts every partition. Cut connections stay closed, blackholed ones
// are closed now (bytes were lost in the middle of their streams); Raft
// redials.
func (pn *proxyNet) Heal() {
	var holed []*proxyConn
	pn.mu.Lock()
	pn.blocked = map[[2]int]proxyMode{}
	for pc := range pn.conns {
		if pc.dropping.Load() {
			holed = append(holed, pc)
		}
	}
	pn.mu.Unlock()
	for _, pc := range holed {
		pc.close()
	}
}

// Blocked describes the current partition, e.g. "0->1 1->0" (cut) or
// "0~>1 1~>0" (blackholed).
func (pn *proxyNet) Blocked() string {
	pn.mu.Lock()
	defer pn.mu.Unlock()
	var s []string
	for k, m := range pn.blocked {
		sep := "->"
		if m == proxyBlackhole {
			sep = "~>"
		}
		s = append(s, fmt.Sprintf("%d%s%d", k[0], sep, k[1]))
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

// Refused counts connections refused or cut by partitions so far.
func (pn *proxyNet) Refused() int {
	pn.mu.Lock()
	defer pn.mu.Unlock()
	return pn.refused
}

// Close stops every proxy and closes every connection through them.
func (pn *proxyNet) Close() {
	pn.mu.Lock()
	if pn.closed {
		pn.mu.Unlock()
		return
	}
	pn.closed = true
	for _, p := range pn.proxies {
		p.ln.Close()
	}
	var all []*proxyConn
	for pc := range pn.conns {
		all = append(all, pc)
	}
	pn.mu.Unlock()
	for _, pc := range all {
		pc.close()
	}
	pn.wg.Wait()
}

// ---- unit test of the proxy itself ----

// proxyEcho is an echo server on ip:0 that stands in for a node.
func proxyEcho(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// proxyDial connects from node from's IP to addr.
func proxyDial(from int, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(proxyRaftIP(from))}}
	return d.Dial("tcp", addr)
}

// proxyRoundTrip sends msg on c and reads the echo; an error means the
// connection is (or was made) unusable.
func proxyRoundTrip(c net.Conn, msg string) error {
	return proxyRoundTripWithin(c, msg, 2*time.Second)
}

func proxyRoundTripWithin(c net.Conn, msg string, d time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}

func TestProxyPartitionAndHeal(t *testing.T) {
	pn := newProxyNet(t)
	addr := make([]string, 3)
	for i := range addr {
		addr[i] = pn.Add(i, proxyEcho(t, proxyRaftIP(i)))
	}
	// conn[i][j] is a connection from node i through node j's proxy.
	dialAll := func() map[[2]int]net.Conn {
		t.Helper()
		m := map[[2]int]net.Conn{}
		for i := 0; i < 3; i++ {
			for j := 0; j < 3; j++ {
				if i == j {
					continue
				}
				c, err := proxyDial(i, addr[j])
				if err != nil {
					t.Fatalf("dial %d->%d: %v", i, j, err)
				}
				t.Cleanup(func() { c.Close() })
				m[[2]int{i, j}] = c
			}
		}
		return m
	}
	conns := dialAll()
	for k, c := range conns {
		if err := proxyRoundTrip(c, "hello"); err != nil {
			t.Fatalf("%d->%d before partition: %v", k[0], k[1], err)
		}
	}

	pn.Partition([]int{0}, []int{1, 2})
	if got, want := pn.Blocked(), "0->1 0->2 1->0 2->0"; got != want {
		t.Fatalf("blocked %q, want %q", got, want)
	}
	cutOff := func(k [2]int) bool { return (k[0] == 0) != (k[1] == 0) }
	for k, c := range conns {
		err := proxyRoundTrip(c, "after")
		if cutOff(k) && err == nil {
			t.Errorf("%d->%d: existing connection still forwards during the partition", k[0], k[1])
		}
		if !cutOff(k) && err != nil {
			t.Errorf("%d->%d: connection inside one side was cut: %v", k[0], k[1], err)
		}
	}
	// New connections across the cut are accepted and closed at once: the
	// dialer sees EOF, never data.
	for _, k := range [][2]int{{0, 1}, {0, 2}, {1, 0}, {2, 0}} {
		c, err := proxyDial(k[0], addr[k[1]])
		if err != nil {
			continue // refused outright is fine too
		}
		if err := proxyRoundTrip(c, "new"); err == nil {
			t.Errorf("%d->%d: new connection forwards during the partition", k[0], k[1])
		}
		c.Close()
	}
	c, err := proxyDial(1, addr[2])
	if err != nil {
		t.Fatal(err)
	}
	if err := proxyRoundTrip(c, "majority"); err != nil {
		t.Errorf("1->2 new connection during the partition: %v", err)
	}
	c.Close()
	if pn.Refused() < 8 {
		t.Errorf("refused %d connections, want at least 8 (4 cut, 4 refused)", pn.Refused())
	}

	pn.Heal()
	if pn.Blocked() != "" {
		t.Fatalf("still blocked after heal: %s", pn.Blocked())
	}
	for k, c := range dialAll() {
		if err := proxyRoundTrip(c, "healed"); err != nil {
			t.Errorf("%d->%d after heal: %v", k[0], k[1], err)
		}
	}

	// A node the proxy does not know (source 127.0.0.1) is never cut.
	pn.Isolate(1)
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err = d.Dial("tcp", addr[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := proxyRoundTrip(c, "outsider"); err != nil {
		t.Errorf("unknown source through an isolated node's proxy: %v", err)
	}
	c.Close()
}

func TestProxyBlackholeAndHeal(t *testing.T) {
	pn := newProxyNet(t)
	addr := make([]string, 3)
	for i := range addr {
		addr[i] = pn.Add(i, proxyEcho(t, proxyRaftIP(i)))
	}
	dial := func(from, to int) net.Conn {
		t.Helper()
		c, err := proxyDial(from, addr[to])
		if err != nil {
			t.Fatalf("dial %d->%d: %v", from, to, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	across, inside := dial(0, 1), dial(2, 1)
	back := dial(1, 0)
	for _, c := range []net.Conn{across, inside, back} {
		if err := proxyRoundTrip(c, "hi"); err != nil {
			t.Fatal(err)
		}
	}
	pn.IsolateSilently(0)
	if got, want := pn.Blocked(), "0~>1 0~>2 1~>0 2~>0"; got != want {
		t.Fatalf("blocked %q, want %q", got, want)
	}
	var ne net.Error
	for name, c := range map[string]net.Conn{"0->1": across, "1->0": back, "new 0->2": dial(0, 2)} {
		// Silence, not an error: the read times out.
		if err := proxyRoundTripWithin(c, "lost", 300*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%s during the blackhole: %v, want a timeout", name, err)
		}
	}
	if err := proxyRoundTrip(inside, "inside"); err != nil {
		t.Errorf("2->1 during the blackhole: %v", err)
	}
	pn.Heal()
	// The holed connections are closed; new ones work.
	if err := proxyRoundTrip(across, "again"); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("0->1 blackholed connection after heal: %v, want it closed", err)
	}
	if err := proxyRoundTrip(dial(0, 1), "healed"); err != nil {
		t.Errorf("new 0->1 after heal: %v", err)
	}
	if err := proxyRoundTrip(inside, "still"); err != nil {
		t.Errorf("2->1 after heal: %v", err)
	}
}
