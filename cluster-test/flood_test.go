package clustertest

// A flood of 10,000 concurrent slow connections against a real node
// process (issue 9, item 4): half never send a byte, half trickle a
// request's headers a byte at a time (slowloris). While they are open,
// /livez and a PUT/GET on fresh connections are answered, and the node's
// RSS stays under a stated bound; once the header timeout cuts them, the
// node's connections, goroutines and RSS come back down.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	floodConns = 10000
	// floodHeaderTimeout must outlast opening the flood and measuring it
	// on a busy machine; it is also how long the test waits for the cut.
	floodHeaderTimeout = 20 * time.Second
	// floodRSSBound is what the node may use with 10,000 slow
	// connections open: measured 133 MiB (18 MiB idle + 11.8 KiB per
	// connection), see the log line "figures"; the bound leaves room for
	// a busier node, not for a per-connection cost gone astray.
	floodRSSBound = 400 << 20
	// floodProbeBound is how long /livez may take on a fresh connection
	// under the flood: generous for a loaded 2-core machine.
	floodProbeBound = 5 * time.Second
)

func TestFloodOfSlowConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connections: not in -short")
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < floodConns+1000 {
		t.Skipf("needs ulimit -n of at least %d in this process (and the node's), have %d (%v)", floodConns+1000, rl.Cur, err)
	}
	c := NewCluster(t, Options{Nodes: 1, Args: []string{
		"--http-read-header-timeout", floodHeaderTimeout.String(),
		"--http-read-timeout", (floodHeaderTimeout + 5*time.Second).String(),
		"--http-idle-timeout", floodHeaderTimeout.String(),
		// --max-connections is the default (10,000): with the test's own
		// probes the cap is reached, so probes get in by reclaiming the
		// longest-waiting slow connection.
	}})
	n := c.Nodes[0]
	pid := n.cmd.Process.Pid
	c.Put(n, "before", "flood")

	base := readNodeMetrics(t, n)
	baseRSS := rssOf(t, pid)
	t.Logf("before the flood: RSS %s, %v goroutines, %v open connections", mb(baseRSS), base["go_goroutines"], base["raftcache_http_connections_open"])

	// Sample the node's RSS every 50ms until the end of the flood.
	var peakRSS atomic.Int64
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if v, err := readRSS(pid); err == nil && v > peakRSS.Load() {
				peakRSS.Store(v)
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() {
		select {
		case <-stopSampling:
		default:
			close(stopSampling)
		}
		sampler.Wait()
	}()

	f := openFlood(t, n.HTTPAddr, floodConns)
	defer f.closeAll()
	openTook := f.opened.Sub(f.started)
	t.Logf("opened %d slow connections (%d idle, %d trickling headers) in %v (%d dials failed)",
		len(f.conns), len(f.conns)-len(f.slow), len(f.slow), openTook.Round(time.Millisecond), f.dialErrors)
	if len(f.conns) < floodConns*95/100 {
		t.Fatalf("only %d of %d connections opened", len(f.conns), floodConns)
	}
	if openTook > floodHeaderTimeout/2 {
		t.Fatalf("opening the flood took %v, too close to the %v header timeout for the measurement to mean anything", openTook, floodHeaderTimeout)
	}
	stopTrickle := f.trickle()

	// Under the flood: probes and a write and a read on fresh connections.
	fresh := &http.Client{Timeout: floodProbeBound, Transport: &http.Transport{DisableKeepAlives: true}}
	var worstProbe time.Duration
	for i := 0; i < 5; i++ {
		start := time.Now()
		r, err := Do(context.Background(), fresh, http.MethodGet, n.URL()+"/livez", nil)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("/livez under the flood (probe %d): %v after %v", i, err, took)
		}
		if r.Status != http.StatusOK {
			t.Fatalf("/livez under the flood: %d %s", r.Status, r.Body)
		}
		worstProbe = max(worstProbe, took)
	}
	// The design promises service, not a refusal, to a fresh connection
	// while the connections filling the cap are slow ones: a 503 here
	// (with Retry-After) would mean every connection was in a handler.
	for _, req := range []struct{ method, path, body string }{
		{http.MethodPut, "/v1/kv/during", "flood"},
		{http.MethodGet, "/v1/kv/during", ""},
		{http.MethodGet, "/v1/kv/before", ""},
	} {
		var body []byte
		if req.body != "" {
			body = []byte(req.body)
		}
		r, err := Do(context.Background(), fresh, req.method, n.URL()+req.path, body)
		if err != nil {
			t.Fatalf("%s %s under the flood: %v", req.method, req.path, err)
		}
		if r.Status != http.StatusOK {
			t.Fatalf("%s %s under the flood: %d %s (Retry-After %q)", req.method, req.path, r.Status, r.Body, r.Header.Get("Retry-After"))
		}
	}
	during := readNodeMetrics(t, n)
	duringRSS := rssOf(t, pid)
	peak := max(peakRSS.Load(), duringRSS)
	heldOpen := during["raftcache_http_connections_open"]
	perConn := float64(peak-baseRSS) / max(heldOpen, 1)
	t.Logf("figures: with the flood open: RSS %s (peak %s, bound %s), %v goroutines, %v connections open on the node, %v evicted, %v refused; "+
		"%.1f KiB of RSS per slow connection; /livez on a fresh connection within %v (worst of 5)",
		mb(duringRSS), mb(peak), mb(floodRSSBound), during["go_goroutines"], heldOpen,
		during["raftcache_http_connections_evicted_total"], during["raftcache_http_connections_refused_total"],
		perConn/1024, worstProbe.Round(time.Millisecond))
	if heldOpen < floodConns*9/10 {
		t.Errorf("the node holds only %v connections: the flood did not reach it", heldOpen)
	}
	if peak > floodRSSBound {
		t.Errorf("peak RSS %s with %d slow connections, over the bound of %s", mb(peak), floodConns, mb(floodRSSBound))
	}

	// The header timeout cuts every slow connection: the server closes
	// them (the client sees EOF or a reset), without our help.
	cutBy := f.started.Add(floodHeaderTimeout + deadline)
	closedByServer := f.waitClosedByServer(t, cutBy)
	stopTrickle()
	close(stopSampling)
	sampler.Wait()
	t.Logf("%d of %d slow connections were closed by the node, %v after the first was opened", closedByServer, len(f.conns), time.Since(f.started).Round(time.Millisecond))
	if closedByServer != len(f.conns) {
		t.Fatalf("%d slow connections are still open %v after the flood began (header timeout %v)", len(f.conns)-closedByServer, time.Since(f.started).Round(time.Second), floodHeaderTimeout)
	}
	f.closeAll()

	// Back down: connections, goroutines and RSS.
	var after map[string]float64
	var afterRSS int64
	Eventually(t, "the node's connections, goroutines and memory to come back down", func() error {
		after = readNodeMetrics(t, n)
		afterRSS = rssOf(t, pid)
		switch {
		case after["raftcache_http_connections_open"] > 20:
			return fmt.Errorf("%v connections open", after["raftcache_http_connections_open"])
		case after["go_goroutines"] > base["go_goroutines"]+50:
			return fmt.Errorf("%v goroutines, %v before", after["go_goroutines"], base["go_goroutines"])
		case afterRSS > baseRSS+(peak-baseRSS)/4:
			return fmt.Errorf("RSS %s, %s before and %s at the peak", mb(afterRSS), mb(baseRSS), mb(peak))
		}
		return nil
	})
	t.Logf("figures: after the flood: RSS %s (was %s before, %s at the peak), %v goroutines (%v before)",
		mb(afterRSS), mb(baseRSS), mb(peak), after["go_goroutines"], base["go_goroutines"])
	cacheMust(t, fresh, http.StatusOK, http.MethodGet, n.URL()+"/v1/kv/during", nil)
}

// flood is the client side: many connections to one address.
type flood struct {
	t          *testing.T
	conns      []net.Conn
	slow       []net.Conn // the ones trickling headers
	dialErrors int
	started    time.Time
	opened     time.Time
	closeOnce  sync.Once
}

// openFlood opens count connections in batches of 250 concurrent dials,
// each with a deadline. Every other one starts a request and will trickle
// the rest of its headers; the others never send anything.
func openFlood(t *testing.T, addr string, count int) *flood {
	f := &flood{t: t, started: time.Now()}
	const batch = 250
	d := net.Dialer{Timeout: 5 * time.Second}
	for i := 0; i < count; i += batch {
		if time.Since(f.started) > floodHeaderTimeout/2 {
			break // measured and reported by the caller
		}
		k := min(batch, count-i)
		conns := make([]net.Conn, k)
		var wg sync.WaitGroup
		for j := range k {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := d.Dial("tcp", addr)
				if err != nil {
					return
				}
				if (i+j)%2 == 1 {
					_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
					if _, err := io.WriteString(c, "GET /v1/kv/slow HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
						c.Close()
						return
					}
				}
				conns[j] = c
			}()
		}
		wg.Wait()
		for j, c := range conns {
			switch {
			case c == nil:
				f.dialErrors++
			case (i+j)%2 == 1:
				f.slow = append(f.slow, c)
				f.conns = append(f.conns, c)
			default:
				f.conns = append(f.conns, c)
			}
		}
	}
	f.opened = time.Now()
	return f
}

// trickle sends one more header byte on every slow connection each
// second, until stopped; errors (the server cut it) are ignored.
func (f *flood) trickle() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			for _, c := range f.slow {
				select {
				case <-done:
					return
				default:
				}
				_ = c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
				_, _ = c.Write([]byte{'a'})
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// waitClosedByServer reads from every connection until the server closes
// it or until the deadline, and returns how many it closed. A connection
// may get an answer first (a 408 for a header that timed out): the read
// goes on until EOF.
func (f *flood) waitClosedByServer(t *testing.T, until time.Time) int {
	var closed atomic.Int64
	sem := make(chan struct{}, 512) // bounded readers at a time
	var wg sync.WaitGroup
	for _, c := range f.conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_ = c.SetReadDeadline(until)
			_, err := io.Copy(io.Discard, c)
			var ne net.Error
			if err == nil || !(errors.As(err, &ne) && ne.Timeout()) {
				closed.Add(1) // EOF (nil from Copy) or a reset
			}
		}()
	}
	wg.Wait()
	return int(closed.Load())
}

func (f *flood) closeAll() {
	f.closeOnce.Do(func() {
		for _, c := range f.conns {
			c.Close()
		}
	})
}

// readNodeMetrics reads the node's /metrics as name -> value (series with
// labels are skipped).
func readNodeMetrics(t *testing.T, n *Node) map[string]float64 {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var out map[string]float64
	Eventually(t, "GET /metrics of "+n.ID, func() error {
		resp, err := hc.Get(n.URL() + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/metrics: %d", resp.StatusCode)
		}
		out = map[string]float64{}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			name, val, ok := strings.Cut(sc.Text(), " ")
			if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
				continue
			}
			if v, err := strconv.ParseFloat(val, 64); err == nil {
				out[name] = v
			}
		}
		return sc.Err()
	})
	return out
}

// readRSS is VmRSS of a process, in bytes.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS line")
}

func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	v, err := readRSS(pid)
	if err != nil {
		t.Fatalf("RSS of the node: %v", err)
	}
	return v
}

func mb(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
