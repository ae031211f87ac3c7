package pebblestore

import (
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/vfs"
)

// Zeroed space ahead of the write-ahead log.
//
// Every Raft append waits for one fdatasync of pebble's WAL. When the
// append grows the file, that fdatasync must also commit the file's new
// size and block allocation through the filesystem's journal; when it
// lands on blocks the file already holds, it writes the data alone.
// Measured on the test machine's ext4 disk with three processes syncing at
// once, as three nodes on one disk do: 4 KiB appends took 0.86 ms per
// write and fdatasync on average, and the same writes over zeros written
// ahead 0.32 ms (docs/benchmarks.md, "Log stores"). Pebble recycles
// old WAL files for exactly this reason, but only files of the running
// process: after every start, and for the first memtables' worth of log,
// each append grows a new file, and a cache with a modest write rate can
// spend hours there.
//
// So every WAL file pebble writes is kept zeroed ahead of its data: when
// a write comes within a quarter of the fill of the zeroed end, the next
// fill's bytes (a quarter of a memtable, at most maxFillAhead: a WAL holds
// about one memtable) are written as zeros beyond the data and their
// writeback is started at once (sync_file_range, where there is a file
// descriptor). A file carries at most 1.25 fills of zeros beyond its data.
// The price: the fdatasync right after a fill writes the fill too, a few
// milliseconds once per fill (once per 4 MiB of log with the defaults).
//
// Why this is safe: pebble's WAL reader takes an all-zero chunk header as
// record.ErrZeroedChunk ("usually occurs due to log file preallocation")
// and a record torn over zeros as a bad checksum, so zeros are never
// replayed as data, and the zeros are written only beyond the data, never
// over it, so every record pebble synced is still before the first zero.
// Pebble accepts those errors as the end of the log only for the newest
// WAL it replays (a strict tail for older ones). Older WALs never end in
// zeros when read: pebble closes a WAL before it starts the next one,
// writing an end-of-file trailer that the reader takes as the end, and at
// open it records the replayed WALs as done before it creates a new one.
// The crash tests run on a filesystem wrapped the same way, and
// TestStoreCrashImage replays a WAL copied with its zeros from a live store.
const (
	maxFillAhead = 4 << 20
	minFillAhead = 64 << 10
)

// fillAheadFor is the fill for a store whose memtables hold memTable bytes.
func fillAheadFor(memTable uint64) int64 {
	return min(max(int64(memTable/4), minFillAhead), maxFillAhead)
}

// walFS wraps pebble's filesystem so that the WAL files it creates or
// recycles keep zeroed space ahead of their data.
type walFS struct {
	vfs.FS
	ahead int64 // bytes of zeros a fill writes
}

func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

// Create is where pebble makes a new WAL (at open, and when no recycled
// file is available).
func (fs walFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil || !isWAL(name) {
		return f, err
	}
	return &walFile{File: f, ahead: fs.ahead}, nil
}

// ReuseForWrite is where pebble writes a new WAL over a recycled one: the
// old file's length is already there to be written over.
func (fs walFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname)
	if err != nil || !isWAL(newname) {
		return f, err
	}
	w := &walFile{File: f, ahead: fs.ahead}
	if st, err := f.Stat(); err == nil {
		w.filled = st.Size()
	}
	return w, nil
}

// walFile is one WAL file: pebble writes it front to back with Write.
type walFile struct {
	vfs.File

	ahead int64

	mu     sync.Mutex
	off    int64 // where the next Write lands
	filled int64 // the file holds data or zeros up to here
	failed bool  // a fill failed (a full disk): stop trying, writes go on
}

func (f *walFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.File.Write(p)
	f.off += int64(n)
	if f.off > f.filled {
		f.filled = f.off
	}
	if err == nil && !f.failed && f.off+f.ahead/4 > f.filled {
		f.fill()
	}
	return n, err
}

// WriteAt is not how pebble writes a WAL; it is kept from ever having its
// data written over by a later fill.
func (f *walFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.File.WriteAt(p, off)
	if end := off + int64(n); end > f.filled {
		f.filled = end
	}
	return n, err
}

// fill writes f.ahead bytes of zeros from the zeroed end and starts
// their writeback. A failure only ends the filling: the log's own writes
// and syncs report their errors as they always did.
func (f *walFile) fill() {
	from := f.filled
	for done := int64(0); done < f.ahead; {
		n, err := f.File.WriteAt(zeros[:min(int64(len(zeros)), f.ahead-done)], from+done)
		done += int64(n)
		f.filled = from + done
		if err != nil {
			f.failed = true
			return
		}
	}
	if fd := f.File.Fd(); fd != vfs.InvalidFd {
		startWriteback(fd, from, f.ahead)
	}
}

// zeros is what fill writes, a chunk at a time; never written to.
var zeros = make([]byte, 256<<10)
