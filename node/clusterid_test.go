package node

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestStreamClusterHandshake checks the handshake on every Raft
// connection: peers of one cluster talk; a peer of another cluster is
// refused on both sides; a node with a cluster id refuses a peer without
// one; a node without one accepts either, and one without Raft state
// takes the dialler's id.
func TestStreamClusterHandshake(t *testing.T) {
	stream := func(cluster *string, adopt func(string) string) *tcpStream {
		t.Helper()
		s, err := newTCPStream("127.0.0.1:0", "", nil, func() (string, string) { return *cluster, "n" }, adopt, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	// exchange dials srv from cli, sends a byte of Raft's and reads what the
	// server side gets.
	exchange := func(cli, srv *tcpStream) (dialErr, readErr error) {
		t.Helper()
		got := make(chan error, 1)
		go func() {
			c, err := srv.Accept()
			if err != nil {
				got <- err
				return
			}
			defer c.Close()
			var b [1]byte
			if _, err := io.ReadFull(c, b[:]); err != nil {
				got <- err
				return
			}
			if b[0] != 7 {
				got <- errors.New("wrong byte")
				return
			}
			got <- nil
		}()
		c, err := cli.Dial(raft.ServerAddress(srv.Addr().String()), 2*time.Second)
		if err == nil {
			c.Write([]byte{7})
			defer c.Close()
		}
		select {
		case readErr = <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("the server side never finished")
		}
		return err, readErr
	}
	a, a2, b, none := "cluster-a", "cluster-a", "cluster-b", ""
	if d, r := exchange(stream(&a, nil), stream(&a2, nil)); d != nil || r != nil {
		t.Errorf("same cluster: dial %v, read %v", d, r)
	}
	if d, r := exchange(stream(&a, nil), stream(&b, nil)); !errors.Is(d, ErrOtherCluster) || !errors.Is(r, ErrOtherCluster) {
		t.Errorf("other cluster: dial %v, read %v; want both refused", d, r)
	}
	if _, r := exchange(stream(&none, nil), stream(&a, nil)); !errors.Is(r, ErrOtherCluster) {
		t.Errorf("a peer without a cluster id dialling a node with one: read %v, want refused", r)
	}
	if d, r := exchange(stream(&none, nil), stream(&none, nil)); d != nil || r != nil {
		t.Errorf("neither has an id: dial %v, read %v", d, r)
	}
	// A node without an id that keeps none (it has state), then one that
	// adopts the dialler's.
	keep := ""
	if d, r := exchange(stream(&a, nil), stream(&keep, nil)); d != nil || r != nil || keep != "" {
		t.Errorf("dialling a node without an id: dial %v, read %v, its id %q", d, r, keep)
	}
	fresh := ""
	srv := stream(&fresh, func(id string) string { fresh = id; return id })
	if d, r := exchange(stream(&a, nil), srv); d != nil || r != nil || fresh != a {
		t.Errorf("a fresh node dialled by its cluster: dial %v, read %v, adopted %q", d, r, fresh)
	}
	if d, r := exchange(stream(&b, nil), srv); !errors.Is(d, ErrOtherCluster) || !errors.Is(r, ErrOtherCluster) {
		t.Errorf("after adopting, another cluster: dial %v, read %v; want refused", d, r)
	}
}

func TestAdvertiseAddr(t *testing.T) {
	for _, tc := range []struct{ bound, adv, want string }{
		{"127.0.0.1:80", "", "127.0.0.1:80"},
		{"10.0.0.1:80", "rc1:8000", "rc1:8000"},
		{"[::]:80", "rc1.svc.cluster.local:80", "rc1.svc.cluster.local:80"},
		{"[::]:80", "10.1.2.3:80", "10.1.2.3:80"},
	} {
		if got, err := AdvertiseAddr(tc.bound, tc.adv); err != nil || got != tc.want {
			t.Errorf("AdvertiseAddr(%q, %q) = %q, %v; want %q", tc.bound, tc.adv, got, err, tc.want)
		}
	}
	for _, bad := range []string{"0.0.0.0:80", "[::]:80", ":80", "rc1:0", "rc1:99999", "rc1"} {
		if err := CheckAdvertisable(bad); !errors.Is(err, ErrUnadvertisable) {
			t.Errorf("CheckAdvertisable(%q) = %v, want ErrUnadvertisable", bad, err)
		}
	}
	if got, err := AdvertiseAddr("0.0.0.0:80", ""); err != nil || got == "0.0.0.0:80" {
		t.Errorf("a wildcard bind advertises %q, %v; want the host name", got, err)
	}
}

func TestFoundersClusterID(t *testing.T) {
	fs := []Founder{{"n1", "a:1", "i1"}, {"n2", "b:1", "i2"}, {"n3", "c:1", "i3"}}
	rev := []Founder{fs[2], fs[0], fs[1]}
	if FoundersClusterID(fs) != FoundersClusterID(rev) {
		t.Error("the founders' cluster id depends on the order they are listed in")
	}
	wiped := append([]Founder(nil), fs...)
	wiped[1].Incarnation = "i2-new"
	if FoundersClusterID(fs) == FoundersClusterID(wiped) {
		t.Error("a re-formed cluster (a new incarnation) derives the same cluster id")
	}
}

// A node refused at start after Raft started (here: a data directory that
// joined a cluster but holds no Raft state, started with --bootstrap)
// stops Raft before it closes its stores, and leaves the directory and
// its lock free for the next start.
func TestStartRefusedAfterRaftStarts(t *testing.T) {
	cfg := testConfig(t, "n1", true)
	if err := WriteClusterID(cfg.DataDir, "c0ffee"); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for range 3 {
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), "will not bootstrap") {
			t.Fatalf("New = %v, want a refusal to bootstrap", err)
		}
	}
	// Raft's goroutines are gone (they would run on the closed stores),
	// and the log's syncer (durable.go).
	waitFor(t, "Raft's goroutines to stop", func() bool { return runtime.NumGoroutine() <= before+2 })
	if err := os.Remove(filepath.Join(cfg.DataDir, clusterIDFile)); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, cfg)
	waitForLeader(t, n)
}
