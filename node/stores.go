package node

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"go.etcd.io/bbolt"
)

// Log store kinds for Config.LogStore.
const (
	// LogStoreBolt keeps the Raft log and stable store in one bolt file
	// (raft.db). Each append costs about two fdatasyncs, in Raft's leader
	// loop, so writes measured about 1.0-1.3x etcd here against 1.3-1.4x
	// with the WAL. The default: see LogStoreWAL.
	LogStoreBolt = "bolt"
	// LogStoreWAL keeps them in hashicorp/raft-wal segment files (wal/):
	// one fsync per append, as Consul uses. Not the default: v0.4.0 (the
	// only version the module proxy serves here) has hashicorp/raft-wal#31,
	// a node whose log tail was truncated after a crash may fail to start
	// again ("sealed segment has no index block"), seen in our kill tests.
	LogStoreWAL = "wal"
)

// raftStore is what Raft needs from a log and stable store, and Close.
type raftStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// openStore opens the configured log and stable store under dir. Both keep
// fsync on: without it Raft could forget entries it acknowledged. A data
// directory that already holds the other kind is refused rather than
// silently started empty.
//
// The WAL drops log entries a snapshot made unnecessary only a whole
// segment at a time (segmentSize bytes, 0 = raft-wal's 64 MiB default), so a
// follower that was down may still catch up from the log rather than by
// installing a snapshot.
func openStore(kind, dir string, segmentSize int) (raftStore, error) {
	boltPath, walDir := filepath.Join(dir, "raft.db"), filepath.Join(dir, "wal")
	switch kind {
	case "", LogStoreBolt:
		if exists(walDir) {
			return nil, fmt.Errorf("%s holds a wal log store; start with --log-store wal", dir)
		}
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
	case LogStoreWAL:
		if exists(boltPath) {
			return nil, fmt.Errorf("%s holds a bolt log store; start with --log-store bolt", dir)
		}
		if err := os.MkdirAll(walDir, 0o755); err != nil {
			return nil, err
		}
		meta := &metadb.BoltMetaDB{}
		open := func() (*raftwal.WAL, error) { return raftwal.Open(walDir, raftwal.WithMetaStore(meta)) }
		if segmentSize > 0 {
			open = func() (*raftwal.WAL, error) {
				return raftwal.Open(walDir, raftwal.WithMetaStore(meta), raftwal.WithSegmentSize(segmentSize))
			}
		}
		w, err := open()
		if err != nil {
			meta.Close()
			return nil, fmt.Errorf("open wal store: %w", err)
		}
		return &walStore{WAL: w, meta: meta}, nil
	}
	return nil, fmt.Errorf("unknown log store %q: use %s or %s", kind, LogStoreBolt, LogStoreWAL)
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
	switch {
	case exists(filepath.Join(dir, "wal")):
		return openStore(LogStoreWAL, dir, 0)
	case exists(filepath.Join(dir, "raft.db")):
		return openStore(LogStoreBolt, dir, 0)
	}
	return nil, fmt.Errorf("%s holds no Raft log store", dir)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
