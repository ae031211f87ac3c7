package pebblestore

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/internal/testlog"
)

// checkWAL reads path and checks that it starts with want and holds only
// zeros after it, at least a quarter of a fill of them and at most 1.25
// fills.
func checkWAL(t *testing.T, path string, want []byte, ahead int64) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
		t.Fatalf("%s: the data written is not what the file holds (%d bytes written, %d in the file)", path, len(want), len(got))
	}
	tail := got[len(want):]
	if n := int64(len(tail)); n < ahead/4 || n > ahead+ahead/4 {
		t.Fatalf("%s: %d bytes ahead of the data, want %d to %d", path, n, ahead/4, ahead+ahead/4)
	}
	if i := bytes.IndexFunc(tail, func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("%s: byte %d after the data is not zero", path, len(want)+i)
	}
}

// TestWALFileZeroedAhead: a WAL created through walFS always holds zeros
// ahead of its data (at least a quarter of a fill), and they are
// never written over data; other files are left alone.
func TestWALFileZeroedAhead(t *testing.T) {
	dir := t.TempDir()
	const ahead = 64 << 10
	fs := walFS{FS: vfs.Default, ahead: ahead}
	path := filepath.Join(dir, "000001.log")
	f, err := fs.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	var written []byte
	for i := range 200 {
		size := 1 + rng.Intn(3000)
		if i == 100 {
			size = 3 * ahead // one write longer than a fill
		}
		p := make([]byte, size)
		for i := range p {
			p[i] = byte(1 + rng.Intn(255)) // no zeros, so a zero after the data is a fill's
		}
		if _, err := f.Write(p); err != nil {
			t.Fatal(err)
		}
		written = append(written, p...)
		checkWAL(t, path, written, ahead)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	other := filepath.Join(dir, "MANIFEST-000002")
	g, err := fs.Create(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Write([]byte("manifest")); err != nil {
		t.Fatal(err)
	}
	g.Close()
	if st, _ := os.Stat(other); st.Size() != int64(len("manifest")) {
		t.Fatalf("a file that is not a WAL grew to %d bytes", st.Size())
	}
}

// TestWALFileRecycled: a recycled WAL is written over its old length
// without a fill, and gets zeros only beyond it.
func TestWALFileRecycled(t *testing.T) {
	dir := t.TempDir()
	const ahead = 64 << 10
	fs := walFS{FS: vfs.Default, ahead: ahead}
	old := filepath.Join(dir, "000001.log")
	stale := bytes.Repeat([]byte{0xee}, 100<<10)
	if err := os.WriteFile(old, stale, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "000007.log")
	f, err := fs.ReuseForWrite(old, path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := bytes.Repeat([]byte{0x11}, 10<<10)
	if _, err := f.Write(p); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Size() != int64(len(stale)) {
		t.Fatalf("a write well inside the recycled length grew the file to %d bytes", st.Size())
	}
	// Up to the old length and beyond it.
	var written []byte
	written = append(written, p...)
	for len(written) < len(stale)+ahead {
		if _, err := f.Write(p); err != nil {
			t.Fatal(err)
		}
		written = append(written, p...)
	}
	checkWAL(t, path, written, ahead)
}

// TestStoreCrashImage copies the files of a live store on the real
// filesystem, as a power cut would leave them with the page cache
// written back: its newest WAL ends in the zeros written ahead, with no
// end-of-file trailer. The copy must open with every entry stored.
func TestStoreCrashImage(t *testing.T) {
	dir := t.TempDir()
	// A memtable the entries fit in: no flush, rotation or recycling runs
	// in the background while the files are copied.
	opts := Options{MemTableSize: 4 << 20}
	s, err := Open(filepath.Join(dir, "db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 2005
	data := func(i uint64) []byte { return bytes.Repeat([]byte{byte(i) | 1}, 200) }
	for i := uint64(1); i <= n; i += 5 {
		var logs []*raft.Log
		for j := i; j < i+5; j++ {
			logs = append(logs, &raft.Log{Index: j, Term: 1, Data: data(j)})
		}
		if err := s.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
	}
	image := filepath.Join(dir, "image")
	if err := os.CopyFS(image, os.DirFS(filepath.Join(dir, "db"))); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(image, "*.log"))
	if len(logs) == 0 {
		t.Fatal("no WAL in the image")
	}
	slices.Sort(logs)
	b, err := os.ReadFile(logs[len(logs)-1])
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || b[len(b)-1] != 0 {
		t.Fatalf("the newest WAL (%d bytes) does not end in zeros: the test would not exercise them", len(b))
	}

	c, err := Open(image, opts)
	if err != nil {
		t.Fatalf("open the image: %v", err)
	}
	defer c.Close()
	last, err := c.LastIndex()
	if err != nil || last != n {
		t.Fatalf("last index %d, %v; want %d", last, err, n)
	}
	for i := uint64(1); i <= n; i++ {
		var l raft.Log
		if err := c.GetLog(i, &l); err != nil || !bytes.Equal(l.Data, data(i)) {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
}

// slowFS is an in-memory filesystem whose syncs take delay once armed.
type slowFS struct {
	vfs.FS
	armed *atomic.Bool
	delay time.Duration
}

func (fs slowFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return slowFile{File: f, fs: fs}, nil
}

type slowFile struct {
	vfs.File
	fs slowFS
}

func (f slowFile) SyncData() error {
	if f.fs.armed.Load() {
		time.Sleep(f.fs.delay)
	}
	return f.File.SyncData()
}

func (f slowFile) Sync() error {
	if f.fs.armed.Load() {
		time.Sleep(f.fs.delay)
	}
	return f.File.Sync()
}

// TestDiskSlowLogged: a sync slower than the threshold is logged as
// "disk slow". Pebble checks disk health only on a filesystem it chose
// itself, so the store must add the checker around its own; without it
// this event never fires.
func TestDiskSlowLogged(t *testing.T) {
	var armed atomic.Bool
	fs := slowFS{FS: vfs.NewMem(), armed: &armed, delay: 2500 * time.Millisecond}
	var logs testlog.Buffer
	s, err := Open("db", Options{FS: fs, DiskSlowThreshold: 100 * time.Millisecond,
		Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	armed.Store(true)
	if err := s.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	armed.Store(false)
	if !strings.Contains(logs.String(), "disk slow") {
		t.Fatalf("a 2.5 s sync was not logged as a slow disk; log:\n%s", logs.String())
	}
}
