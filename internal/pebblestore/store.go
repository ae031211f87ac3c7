// Package pebblestore is a Raft log store and stable store (raft.LogStore,
// raft.StableStore) on github.com/cockroachdb/pebble, the LSM engine
// CockroachDB runs on and dragonboat keeps its Raft log in.
//
// Why pebble: every write Raft asks for (StoreLogs, Set, SetUint64,
// DeleteRange) is one batch committed with Sync, that is one append to
// pebble's write-ahead log and one fdatasync, where raft-boltdb costs about
// two (its B+tree pages, then its meta page) and hashicorp/raft-wal v0.4.0,
// the only one the module proxy serves here, may fail to restart after a
// crash (hashicorp/raft-wal#31).
//
// Why v1.1.5 and not v2: v1.1.5 is the last patch of the line CockroachDB
// 23.1-23.2 shipped for years; it builds with CGO_ENABLED=0 (zstd is the
// only cgo part and pebble leaves it out without cgo; we use snappy) and
// with Go 1.26; and its strict in-memory filesystem (vfs.NewStrictMem,
// ResetToSyncedState), which drops exactly the writes that were not synced,
// is what our crash tests are written against (v2 replaced it with
// CrashClone). v2 reads the on-disk format major version we pin
// (FormatVirtualSSTables is above v2's minimum, FormatFlushableIngest), so
// a later move to v2 needs no migration.
//
// Layout: one key space, two prefixes. Log entries live under 'l' followed
// by the big-endian index, so they sort by index and hashicorp/raft's
// inclusive DeleteRange(min, max) becomes pebble's half-open range
// [min, max+1). Stable-store keys live under 's'. A metadata key records
// the layout version.
package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Errors of the store, in one block.
var (
	// ErrKeyNotFound is a stable-store key never set. hashicorp/raft tells
	// "nothing stored yet" from a failure by this exact message, as
	// raft-boltdb and raft's own InmemStore spell it.
	ErrKeyNotFound = errors.New("not found")
	// ErrCorrupt is an entry or layout the store cannot decode.
	ErrCorrupt = errors.New("pebblestore: corrupt data")
	// ErrClosed is an operation on a closed store.
	ErrClosed = errors.New("pebblestore: closed")
)

const (
	prefixLog    = 'l'
	prefixStable = 's'
	metaKey      = "\x00layout"
	layout       = "raftcache-pebblestore-1"
	// entryVersion is the first byte of an encoded log entry.
	entryVersion = 1
)

// Store is a raft.LogStore and raft.StableStore. Its methods are safe for
// concurrent use.
type Store struct {
	db     *pebble.DB
	cache  *pebble.Cache
	health io.Closer // the disk-health checker around the filesystem
	opts   Options

	mu     sync.RWMutex // held for reading by every operation, for writing by Close
	closed bool
}

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// Open opens (or creates) a store in dir.
func Open(dir string, o Options) (*Store, error) {
	o = o.withDefaults()
	cache := pebble.NewCache(o.CacheSize)
	po, health := o.pebbleOptions(cache)
	db, err := pebble.Open(dir, po)
	if err != nil {
		health.Close()
		cache.Unref()
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	s := &Store{db: db, cache: cache, health: health, opts: o}
	// pebble syncs its own directory but not the one that holds it: a
	// power cut just after the first start could otherwise lose the
	// directory entry, and with it every entry acknowledged since.
	if err := syncDir(o.FS, o.FS.PathDir(dir)); err != nil {
		s.Close()
		return nil, fmt.Errorf("pebblestore: sync the parent of %s: %w", dir, err)
	}
	if err := s.checkLayout(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// checkLayout writes the layout marker into a new store and refuses a
// store written in another layout.
func (s *Store) checkLayout() error {
	v, closer, err := s.db.Get([]byte(metaKey))
	if errors.Is(err, pebble.ErrNotFound) {
		if err := s.db.Set([]byte(metaKey), []byte(layout), pebble.Sync); err != nil {
			return fmt.Errorf("pebblestore: write layout marker: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("pebblestore: read layout marker: %w", err)
	}
	defer closer.Close()
	if string(v) != layout {
		return fmt.Errorf("%w: layout %q, this binary reads %q", ErrCorrupt, v, layout)
	}
	return nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// Close closes the store; later operations return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.db.Close()
	s.health.Close()
	s.cache.Unref()
	return err
}

// Memory is the most memory the store's caches and memtables hold.
func (s *Store) Memory() int64 { return s.opts.Memory() }

// Metrics exposes pebble's own counters (levels, compactions, WAL bytes).
func (s *Store) Metrics() *pebble.Metrics { return s.db.Metrics() }

func (s *Store) begin() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) end() { s.mu.RUnlock() }

func logKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

// logBounds are the iterator bounds of the whole log.
var logBounds = pebble.IterOptions{LowerBound: []byte{prefixLog}, UpperBound: []byte{prefixLog + 1}}

// FirstIndex returns the first index written, 0 for an empty log.
func (s *Store) FirstIndex() (uint64, error) { return s.edgeIndex(true) }

// LastIndex returns the last index written, 0 for an empty log.
func (s *Store) LastIndex() (uint64, error) { return s.edgeIndex(false) }

func (s *Store) edgeIndex(first bool) (uint64, error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	defer s.end()
	it, err := s.db.NewIter(&logBounds)
	if err != nil {
		return 0, err
	}
	ok := false
	if first {
		ok = it.First()
	} else {
		ok = it.Last()
	}
	var idx uint64
	if ok {
		if k := it.Key(); len(k) == 9 {
			idx = binary.BigEndian.Uint64(k[1:])
		} else {
			ok, err = false, fmt.Errorf("%w: log key %x", ErrCorrupt, k)
		}
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return idx, err
}

// GetLog reads the entry at index into log; raft.ErrLogNotFound if there
// is none.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	v, closer, err := s.db.Get(logKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	if err := decodeLog(v, log); err != nil {
		return fmt.Errorf("log index %d: %w", index, err)
	}
	log.Index = index
	return nil
}

// StoreLog stores one entry, synced.
func (s *Store) StoreLog(log *raft.Log) error { return s.StoreLogs([]*raft.Log{log}) }

// StoreLogs stores entries in one batch: one WAL write and one fdatasync.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	b, err := s.logBatch(logs)
	if err != nil {
		return err
	}
	defer b.Close()
	return b.Commit(pebble.Sync)
}

// StoreLogsAsync stores entries as StoreLogs does, but returns once they
// are in the WAL and readable (GetLog), before their fdatasync: wait
// blocks until they are synced, and must be called exactly once, before
// Close. Pebble syncs its WAL in order, so when wait returns every entry
// stored before these is synced too.
func (s *Store) StoreLogsAsync(logs []*raft.Log) (wait func() error, err error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	b, err := s.logBatch(logs)
	if err != nil {
		return nil, err
	}
	if err := s.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		b.Close()
		return nil, err
	}
	return func() error {
		err := b.SyncWait()
		b.Close()
		return err
	}, nil
}

// logBatch is a batch holding logs, encoded in place.
func (s *Store) logBatch(logs []*raft.Log) (*pebble.Batch, error) {
	b := s.db.NewBatch()
	for _, l := range logs {
		op := b.SetDeferred(9, encodedLen(l))
		op.Key[0] = prefixLog
		binary.BigEndian.PutUint64(op.Key[1:], l.Index)
		encodeLog(op.Value[:0], l)
		if err := op.Finish(); err != nil {
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

// Sync syncs everything written so far.
func (s *Store) Sync() error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	return s.db.LogData(nil, pebble.Sync)
}

// DeleteRange deletes the entries min..max, both included (hashicorp/raft's
// contract; pebble's end key is exclusive, hence max+1), synced.
func (s *Store) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	end := logBounds.UpperBound
	if max < math.MaxUint64 {
		end = logKey(max + 1)
	}
	// Synced although losing it would be harmless for compaction: a
	// follower truncating a conflicting suffix then relies on it, and it is
	// rare (once per snapshot or per conflict), so its cost does not show.
	return s.db.DeleteRange(logKey(min), end, pebble.Sync)
}

func stableKey(k []byte) []byte {
	out := make([]byte, 1+len(k))
	out[0] = prefixStable
	copy(out[1:], k)
	return out
}

// Set stores a stable-store value, synced (a lost term or vote could let
// this node vote twice in one term).
func (s *Store) Set(key, val []byte) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	return s.db.Set(stableKey(key), val, pebble.Sync)
}

// Get reads a stable-store value; ErrKeyNotFound if never set.
func (s *Store) Get(key []byte) ([]byte, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	v, closer, err := s.db.Get(stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

// SetUint64 stores a stable-store number, synced.
func (s *Store) SetUint64(key []byte, val uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], val)
	return s.Set(key, b[:])
}

// GetUint64 reads a stable-store number; ErrKeyNotFound if never set.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: stable key %q holds %d bytes, not a uint64", ErrCorrupt, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// An entry is: version byte, term (uvarint), type byte, appended-at
// (varint Unix nanoseconds, 0 for the zero time), data and extensions (each
// a uvarint length and the bytes). The index is the key.

func encodedLen(l *raft.Log) int {
	return 1 + uvarintLen(l.Term) + 1 + uvarintLen(zigzag(appendedAt(l))) +
		uvarintLen(uint64(len(l.Data))) + len(l.Data) + uvarintLen(uint64(len(l.Extensions))) + len(l.Extensions)
}

func encodeLog(b []byte, l *raft.Log) []byte {
	b = append(b, entryVersion)
	b = binary.AppendUvarint(b, l.Term)
	b = append(b, byte(l.Type))
	b = binary.AppendVarint(b, appendedAt(l))
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	return append(b, l.Extensions...)
}

func decodeLog(b []byte, l *raft.Log) error {
	if len(b) < 1 || b[0] != entryVersion {
		return fmt.Errorf("%w: unknown entry version", ErrCorrupt)
	}
	b = b[1:]
	term, n := binary.Uvarint(b)
	if n <= 0 || len(b) < n+1 {
		return fmt.Errorf("%w: term", ErrCorrupt)
	}
	typ := raft.LogType(b[n])
	b = b[n+1:]
	at, n := binary.Varint(b)
	if n <= 0 {
		return fmt.Errorf("%w: appended-at", ErrCorrupt)
	}
	b = b[n:]
	data, b, err := lengthPrefixed(b)
	if err != nil {
		return err
	}
	ext, b, err := lengthPrefixed(b)
	if err != nil {
		return err
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(b))
	}
	// One allocation for both; pebble's buffer is only valid until its
	// closer is closed.
	buf := make([]byte, len(data)+len(ext))
	copy(buf, data)
	copy(buf[len(data):], ext)
	*l = raft.Log{Term: term, Type: typ}
	if data != nil {
		l.Data = buf[:len(data):len(data)]
	}
	if ext != nil {
		l.Extensions = buf[len(data):]
	}
	if at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	return nil
}

// lengthPrefixed splits a uvarint-length-prefixed field off b; an empty
// field is nil, as raft-boltdb's msgpack gives it back.
func lengthPrefixed(b []byte) (field, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, nil, fmt.Errorf("%w: field length", ErrCorrupt)
	}
	if n == 0 {
		return nil, b[k:], nil
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

func appendedAt(l *raft.Log) int64 {
	if l.AppendedAt.IsZero() {
		return 0
	}
	return l.AppendedAt.UnixNano()
}

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// hclogAdapter routes pebble's log lines to the node's logger. Pebble logs
// every flush and compaction at Info: those go to Debug. The line that
// says where the replay of a WAL stopped at start stays at Info: after a
// crash or a damaged disk it tells how much of the log came back.
type hclogAdapter struct{ l hclog.Logger }

func (a hclogAdapter) Infof(format string, args ...any) {
	if strings.Contains(format, "stopped reading at offset") {
		a.l.Info(fmt.Sprintf(format, args...))
		return
	}
	a.l.Debug(fmt.Sprintf(format, args...))
}

// Fatalf is pebble's "cannot continue" (a failed WAL sync, a corrupt
// manifest). Going on could acknowledge writes that are not on disk.
func (a hclogAdapter) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.l.Error("pebble: fatal", "error", msg)
	panic("pebble: " + msg)
}

// defaultFS is the real filesystem (a variable so tests need not say it).
var defaultFS = vfs.Default
