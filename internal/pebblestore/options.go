package pebblestore

import (
	"io"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/hashicorp/go-hclog"
)

// Options size and place a store. Zero fields take the defaults below.
type Options struct {
	// FS is where the files live; nil = the real filesystem. Crash tests
	// pass vfs.NewStrictMem().
	FS vfs.FS
	// MemTableSize is one memtable's size; default DefaultMemTableSize.
	MemTableSize uint64
	// CacheSize is the block cache; default DefaultCacheSize.
	CacheSize int64
	// Logger receives pebble's messages; nil discards them.
	Logger hclog.Logger
	// DiskSlowThreshold is how long a write or sync may take before the
	// store logs "disk slow"; default DefaultDiskSlowThreshold.
	DiskSlowThreshold time.Duration
}

// Tuning for a Raft log: sequential keys appended at the tail, read back
// mostly while still recent (replication, from memory), and deleted from
// the head in whole ranges after each snapshot.
const (
	// DefaultMemTableSize holds a whole snapshot interval of ordinary
	// entries (8192 entries between snapshots plus 10240 trailing ones, a
	// few hundred bytes each), so most entries are deleted by the range
	// tombstone of a log compaction while still in the memtable and are
	// dropped when it is flushed: they never reach an sstable.
	DefaultMemTableSize = 16 << 20
	// memTableStopWrites is how many full memtables may wait for a flush
	// before writes stall: the one being written and one being flushed.
	memTableStopWrites = 2
	// DefaultCacheSize is the block cache. Raft reads back entries from
	// sstables only for a follower far behind (and raft.LogCache keeps
	// the newest 1024 in memory), so a small cache is enough.
	DefaultCacheSize = 8 << 20
	// minMemTableSize keeps a tight memory bound from making pebble flush
	// on every few writes.
	minMemTableSize = 4 << 20
	// DefaultDiskSlowThreshold is pebble's own default: a disk that takes
	// this long for one write or sync is failing or badly overloaded, and
	// every Raft append waits on it.
	DefaultDiskSlowThreshold = 5 * time.Second
)

// Budget sizes a store for a node bounded to maxMemory bytes of cached
// data (0: unbounded): at most a sixteenth of the bound, between the
// minimum and the defaults, so a small node does not spend most of its
// memory on the log.
func Budget(maxMemory int64) Options {
	o := Options{MemTableSize: DefaultMemTableSize, CacheSize: DefaultCacheSize}
	if maxMemory <= 0 {
		return o
	}
	share := maxMemory / 16
	for int64(o.MemTableSize)*memTableStopWrites+o.CacheSize > share && o.MemTableSize > minMemTableSize {
		o.MemTableSize /= 2
		o.CacheSize /= 2
	}
	return o
}

// Memory is the most the store holds in memory: the block cache and the
// memtables that may be queued before writes stall. Pebble's own
// bookkeeping (table cache, iterators) is small next to it and not counted.
func (o Options) Memory() int64 {
	o = o.withDefaults()
	return o.CacheSize + int64(o.MemTableSize)*memTableStopWrites
}

func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = defaultFS
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.DiskSlowThreshold <= 0 {
		o.DiskSlowThreshold = DefaultDiskSlowThreshold
	}
	return o
}

// pebbleOptions returns pebble's options for o, and what to close after
// the database: the filesystem's disk-health checker. Pebble adds that
// checker itself only when it is given no filesystem; we always give one
// (the zeroed WAL tail, walfile.go), so it is added here, around ours,
// or the "disk slow" events below would never fire.
func (o Options) pebbleOptions(cache *pebble.Cache) (*pebble.Options, io.Closer) {
	diskSlow := func(info pebble.DiskSlowInfo) {
		o.Logger.Named("pebble").Warn("disk slow", "op", info.OpType.String(), "path", info.Path, "duration", info.Duration)
	}
	fs, closer := vfs.WithDiskHealthChecks(walFS{FS: o.FS, ahead: fillAheadFor(o.MemTableSize)}, o.DiskSlowThreshold, diskSlow)
	po := &pebble.Options{
		FS:                          fs,
		Cache:                       cache,
		MemTableSize:                o.MemTableSize,
		MemTableStopWritesThreshold: memTableStopWrites,
		// Pinned rather than "newest", so a pebble upgrade never ratchets
		// the format by itself; pebble v2 opens this version.
		FormatMajorVersion: pebble.FormatVirtualSSTables,
		// Flushed log tables overlap nothing but range tombstones: compact
		// L0 early (cheap, small tables), so deleted entries and their
		// tombstones go away and reads of old entries touch few files.
		L0CompactionThreshold: 2,
		L0StopWritesThreshold: 16,
		LBaseMaxBytes:         64 << 20,
		// One compaction at a time: the machines this runs on are small
		// and the log's compactions are small; Raft's fsyncs come first.
		MaxConcurrentCompactions: func() int { return 1 },
		// The node's file descriptors go to clients first
		// (cli/limits.go keeps 512 aside for Raft and the stores).
		MaxOpenFiles: 128,
		// Spread the writeback of flushed tables instead of one burst
		// that delays the WAL's fdatasync behind it.
		BytesPerSync: 512 << 10,
		Logger:       hclogAdapter{o.Logger.Named("pebble")},
		// What an operator of a Raft log needs to hear about: failures
		// in the background, a disk slow to answer (every Raft append
		// waits on it) and stalled writes.
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) { o.Logger.Named("pebble").Error("background error", "error", err) },
			DiskSlow:        diskSlow,
			WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
				o.Logger.Named("pebble").Warn("writes stalled", "reason", info.Reason)
			},
		},
	}
	po.EnsureDefaults()
	return po, closer
}
