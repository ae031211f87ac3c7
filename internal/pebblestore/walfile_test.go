package pebblestore

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/hashicorp/raft"
)

// checkWAL reads path and checks that it starts with want and holds only
// zeros after it, at least minZeros of them.
func checkWAL(t *testing.T, path string, want []byte, minZeros int64) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
		t.Fatalf("%s: the data written is not what the file holds (%d bytes written, %d in the file)", path, len(want), len(got))
	}
	tail := got[len(want):]
	if int64(len(tail)) < minZeros {
		t.Fatalf("%s: %d bytes ahead of the data, want at least %d", path, len(tail), minZeros)
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
	for range 200 {
		p := make([]byte, 1+rng.Intn(3000))
		for i := range p {
			p[i] = byte(1 + rng.Intn(255)) // no zeros, so a zero after the data is a fill's
		}
		if _, err := f.Write(p); err != nil {
			t.Fatal(err)
		}
		written = append(written, p...)
		checkWAL(t, path, written, ahead/4)
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
	checkWAL(t, path, written, ahead/4)
}

// TestStoreOnDiskReopens: a store on the real filesystem, its WAL zeroed
// ahead, keeps every entry across reopening.
func TestStoreOnDiskReopens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	s, err := Open(dir, Options{MemTableSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	for i := uint64(1); i <= n; i += 10 {
		var logs []*raft.Log
		for j := i; j < i+10; j++ {
			logs = append(logs, &raft.Log{Index: j, Term: 1, Data: bytes.Repeat([]byte{byte(j)}, 200)})
		}
		if err := s.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{MemTableSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	last, err := s.LastIndex()
	if err != nil || last != n {
		t.Fatalf("last index %d, %v; want %d", last, err, n)
	}
	for i := uint64(1); i <= n; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil || !bytes.Equal(l.Data, bytes.Repeat([]byte{byte(i)}, 200)) {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
}
