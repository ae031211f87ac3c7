// Package fuzznode starts the one real node that a fuzz target's inputs
// share: a single-member cluster on loopback with its bolt files in a
// temporary directory. Fuzzing runs the target in several worker
// processes; each starts its own node once and removes it at the end.
package fuzznode

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftcache/raftcache/internal/testcluster/timing"
	"github.com/raftcache/raftcache/node"
)

var (
	once sync.Once
	n    *node.Node
)

// Get returns the shared node, starting it on first use and waiting until
// it leads and serves.
func Get(f *testing.F) *node.Node {
	once.Do(func() {
		dir, err := os.MkdirTemp("", "raftcache-fuzz-")
		if err != nil {
			f.Fatal(err)
		}
		n, err = node.New(node.Config{ID: "fuzz", RaftAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:1", DataDir: dir,
			MaxValueSize: 1 << 16, Bootstrap: true, Logger: hclog.NewNullLogger(), HeartbeatTimeout: timing.HeartbeatTimeout, ElectionTimeout: timing.ElectionTimeout})
		if err != nil {
			f.Fatal(err)
		}
		_ = timing.ElectNow(n.RaftAddr(), n.ClusterID()) // or it elects itself after its heartbeat timeout
		f.Cleanup(func() {
			n.Close()
			os.RemoveAll(dir)
		})
		for end := time.Now().Add(timing.Wait); !n.Ready() && time.Now().Before(end); time.Sleep(timing.Poll) {
		}
	})
	return n
}
