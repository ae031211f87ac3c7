package node

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"go.etcd.io/bbolt"

	"github.com/raftcache/raftcache/internal/pebblestore"
)

// Log store kinds for Config.LogStore.
const (
	// LogStorePebble keeps the Raft log and stable store in one pebble
	// database (pebble/, internal/pebblestore): one fdatasync per append,
	// crash-tested on pebble's strict in-memory filesystem and by kill -9
	// of real clusters. The default for new data directories.
	LogStorePebble = "pebble"
	// LogStoreBolt keeps them in one bolt file (raft.db). Each append
	// costs about two fdatasyncs, in Raft's leader loop, so writes
	// measured about 1.0-1.3x etcd here. The default before pebble: data
	// directories created then keep it.
	LogStoreBolt = "bolt"
	// LogStoreWAL keeps them in hashicorp/raft-wal segment files (wal/):
	// one fsync per append, as Consul uses. Not recommended: v0.4.0 (the
	// only version the module proxy serves here) has hashicorp/raft-wal#31,
	// a node whose log tail was truncated after a crash may fail to start
	// again ("sealed segment has no index block"), seen in our kill tests.
	LogStoreWAL = "wal"
)

// storePaths are where each kind lives under a data directory.
var storePaths = []struct{ kind, path string }{
	{LogStorePebble, "pebble"},
	{LogStoreBolt, "raft.db"},
	{LogStoreWAL, "wal"},
}

// DetectLogStore says which log store a data directory holds: one of the
// LogStore kinds, or "" if it holds none (a new node). Two kinds at once
// is an error: someone copied files by hand.
func DetectLogStore(dataDir string) (string, error) {
	found := ""
	for _, sp := range storePaths {
		if !exists(filepath.Join(dataDir, sp.path)) {
			continue
		}
		if found != "" {
			return "", fmt.Errorf("%s holds both a %s and a %s log store; keep one", dataDir, found, sp.kind)
		}
		found = sp.kind
	}
	return found, nil
}

// OpenStores opens the log and stable store of a data directory: the one it
// holds, or for a new directory the kind asked ("" = pebble). Asking for a
// kind other than the one the directory holds is an error, never a new
// empty store beside the old one. This is the one way in for the node and
// for offline tools (raftcache recover); the three results are one object.
// An offline tool should call DetectLogStore first: on a directory that
// holds no store, OpenStores creates one. A store in use by a running node
// is refused (pebble and bolt lock their files).
func OpenStores(dataDir, kind string) (raft.LogStore, raft.StableStore, io.Closer, error) {
	s, err := openStore(kind, dataDir, storeOptions{})
	if err != nil {
		return nil, nil, nil, err
	}
	return s, s, s, nil
}

// LogStoreMemory is the most memory the log store of kind keeps for a node
// bounded to maxMemory bytes of cached data ("" = pebble): a node's memory
// share must leave room for it. Bolt and the WAL keep their data in the
// page cache (mmap), which the kernel reclaims, so they count 0.
func LogStoreMemory(kind string, maxMemory int64) int64 {
	if kind == "" || kind == LogStorePebble {
		return pebblestore.Budget(maxMemory).Memory()
	}
	return 0
}

// LogStore is the kind of log store this node opened.
func (n *Node) LogStore() string { return n.cfg.LogStore }

// StoreMemory is the most memory this node's log store keeps (see
// LogStoreMemory).
func (n *Node) StoreMemory() int64 { return LogStoreMemory(n.cfg.LogStore, n.cfg.MaxMemory) }

// storeOptions are the node's settings for its store; zero is the default.
type storeOptions struct {
	walSegmentSize int // 0 = raft-wal's 64 MiB
	maxMemory      int64
	logger         hclog.Logger
}

// raftStore is what Raft needs from a log and stable store, and Close.
type raftStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// openStore opens the log and stable store under dir (see OpenStores).
// Every kind keeps fsync on: without it Raft could forget entries it
// acknowledged.
//
// The WAL drops log entries a snapshot made unnecessary only a whole
// segment at a time (walSegmentSize bytes), so a follower that was down may
// still catch up from the log rather than by installing a snapshot.
func openStore(kind, dir string, o storeOptions) (raftStore, error) {
	switch kind {
	case "", LogStorePebble, LogStoreBolt, LogStoreWAL:
	default:
		return nil, fmt.Errorf("unknown log store %q: use %s, %s or %s", kind, LogStorePebble, LogStoreBolt, LogStoreWAL)
	}
	held, err := DetectLogStore(dir)
	if err != nil {
		return nil, err
	}
	switch {
	case held != "" && kind != "" && kind != held:
		return nil, fmt.Errorf("%s holds a %s log store, not %s: start with --log-store %s (or without --log-store), "+
			"or move the node to %s by removing it from the cluster, wiping its data directory and joining again (docs/benchmarks.md, \"Log stores\")",
			dir, held, kind, held, kind)
	case held != "":
		kind = held
	case kind == "":
		kind = LogStorePebble
	}
	boltPath, walDir := filepath.Join(dir, "raft.db"), filepath.Join(dir, "wal")
	switch kind {
	case LogStorePebble:
		po := pebblestore.Budget(o.maxMemory)
		po.Logger = o.logger
		s, err := pebblestore.Open(filepath.Join(dir, "pebble"), po)
		if err != nil {
			return nil, fmt.Errorf("open pebble store: %w", err)
		}
		return s, nil
	case LogStoreBolt:
		// As etcd and Consul do: the freelist is not written on every
		// commit (fewer pages per append; it is rebuilt by a scan when the
		// file is opened), and kept as a map, which stays fast as the log
		// file grows and shrinks between snapshots.
		s, err := raftboltdb.New(raftboltdb.Options{Path: boltPath,
			BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}})
		if err != nil {
			return nil, fmt.Errorf("open bolt store: %w", err)
		}
		return s, nil
	}
	if err := os.MkdirAll(walDir, 0o755); err != nil {
		return nil, err
	}
	meta := &metadb.BoltMetaDB{}
	open := func() (*raftwal.WAL, error) { return raftwal.Open(walDir, raftwal.WithMetaStore(meta)) }
	if o.walSegmentSize > 0 {
		open = func() (*raftwal.WAL, error) {
			return raftwal.Open(walDir, raftwal.WithMetaStore(meta), raftwal.WithSegmentSize(o.walSegmentSize))
		}
	}
	w, err := open()
	if err != nil {
		meta.Close()
		return nil, fmt.Errorf("open wal store: %w", err)
	}
	return &walStore{WAL: w, meta: meta}, nil
}

// walStore is the WAL plus its metadata database, which raft-wal v0.4.0's
// Close leaves open (hashicorp/raft-wal#28 fixed that after the release):
// its bolt file lock then outlived the node, and opening the same data
// directory again in the same process blocked forever.
type walStore struct {
	*raftwal.WAL
	meta *metadb.BoltMetaDB
}

func (s *walStore) Close() error {
	err := s.WAL.Close()
	if merr := s.meta.Close(); err == nil {
		err = merr
	}
	return err
}

// openExisting opens whichever log store dir holds, for offline tools
// (recover) that must work on every kind. A new store kind adds a case.
func openExisting(dir string) (raftStore, error) {
	held, err := DetectLogStore(dir)
	if err != nil {
		return nil, err
	}
	if held == "" {
		return nil, fmt.Errorf("%s holds no Raft log store", dir)
	}
	return openStore(held, dir, storeOptions{})
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
