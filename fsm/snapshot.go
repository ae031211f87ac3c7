package fsm

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/hashicorp/raft"
)

// snapshotMagic opens every snapshot stream; the last byte is the format
// version, so a later format can be told apart and still restored.
var snapshotMagic = [4]byte{'R', 'C', 'S', 1}

// snapshot is a point-in-time view. Because published trees are never
// modified, holding the root is enough: no copy is made when Raft asks for
// a snapshot, and writes go on while Persist streams it.
type snapshot struct {
	root    *state
	clock   int64
	members map[string]string
	resp    map[string]string
}

// Snapshot implements raft.FSM. It is called on the FSM goroutine, so the
// root, index and clock it reads belong to the same applied batch.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{
		root:    f.root.Load(),
		clock:   f.clock.Load(),
		members: f.Members(),
		resp:    f.respMembers(),
	}, nil
}

// Persist writes the stream:
//
//	magic(4) index(uvarint) clock(varint) lastVersion(uvarint)
//	sets deletes expirations evictions(uvarint) nmembers(uvarint) {id http resp}
//	nitems(uvarint) {key value version(uvarint) expireAt(varint)}
//	ndedup(uvarint) {id at(varint) result}
//
// with byte strings as uvarint length + bytes, items in key order.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	var buf []byte
	buf = append(buf, snapshotMagic[:]...)
	buf = binary.AppendUvarint(buf, s.root.index)
	buf = binary.AppendVarint(buf, s.clock)
	buf = binary.AppendUvarint(buf, s.root.lastVersion)
	for _, c := range s.root.counters.list() {
		buf = binary.AppendUvarint(buf, *c)
	}
	ids := sortedKeys(s.members)
	buf = binary.AppendUvarint(buf, uint64(len(ids)))
	for _, id := range ids {
		buf = appendBytes(buf, []byte(id))
		buf = appendBytes(buf, []byte(s.members[id]))
		buf = appendBytes(buf, []byte(s.resp[id]))
	}
	buf = binary.AppendUvarint(buf, uint64(s.root.tree.Len()))
	var err error
	s.root.tree.Ascend(func(it *item) bool {
		buf = appendBytes(buf, []byte(it.key))
		buf = appendBytes(buf, it.value)
		buf = binary.AppendUvarint(buf, it.version)
		buf = binary.AppendVarint(buf, it.expireAt)
		if len(buf) >= 64<<10 {
			_, err = bw.Write(buf)
			buf = buf[:0]
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	buf = binary.AppendUvarint(buf, uint64(s.root.dedup.byID.Len()))
	s.root.dedup.byID.Ascend(func(e dedupEntry) bool {
		buf = appendBytes(buf, []byte(e.id))
		buf = binary.AppendVarint(buf, e.at)
		buf = appendResult(buf, e.res)
		return true
	})
	buf = appendSnapshotExt(buf, s.root)
	if _, err := bw.Write(buf); err != nil {
		return err
	}
	return bw.Flush()
}

// Release implements raft.FSMSnapshot; there is nothing to free.
func (s *snapshot) Release() {}

// Restore implements raft.FSM. The new state is built aside and then
// replaces the old one in a single atomic publish, so a concurrent reader
// sees either the whole old cache or the whole new one.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	snap, err := readSnapshot(bufio.NewReaderSize(rc, 256<<10))
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.members, f.resp = snap.members, snap.resp
	f.mu.Unlock()
	f.clock.Store(snap.clock)
	f.root.Store(snap.root)
	f.notify()
	return nil
}

func readSnapshot(r *bufio.Reader) (*snapshot, error) {
	fail := func(what string, err error) (*snapshot, error) {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadSnapshot, what, err)
	}
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return fail("header", err)
	}
	if magic != snapshotMagic {
		return fail("header", fmt.Errorf("unknown magic %q", magic[:]))
	}
	s := &snapshot{members: map[string]string{}, resp: map[string]string{}}
	index, err := binary.ReadUvarint(r)
	if err != nil {
		return fail("index", err)
	}
	if s.clock, err = binary.ReadVarint(r); err != nil {
		return fail("clock", err)
	}
	root := newState()
	root.index = index
	if root.lastVersion, err = binary.ReadUvarint(r); err != nil {
		return fail("last version", err)
	}
	for _, c := range root.counters.list() {
		if *c, err = binary.ReadUvarint(r); err != nil {
			return fail("counters", err)
		}
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return fail("member count", err)
	}
	for i := uint64(0); i < n; i++ {
		id, err1 := readBytes(r)
		addr, err2 := readBytes(r)
		resp, err3 := readBytes(r)
		if err := errors.Join(err1, err2, err3); err != nil {
			return fail("member", err)
		}
		s.members[string(id)] = string(addr)
		if len(resp) > 0 {
			s.resp[string(id)] = string(resp)
		}
	}
	if n, err = binary.ReadUvarint(r); err != nil {
		return fail("item count", err)
	}
	for i := uint64(0); i < n; i++ {
		key, err := readBytes(r)
		if err != nil {
			return fail("key", err)
		}
		val, err := readBytes(r)
		if err != nil {
			return fail("value", err)
		}
		it := &item{key: string(key), value: val}
		if it.version, err = binary.ReadUvarint(r); err != nil {
			return fail("version", err)
		}
		if it.expireAt, err = binary.ReadVarint(r); err != nil {
			return fail("expiry", err)
		}
		if _, dup := root.tree.ReplaceOrInsert(it); dup {
			return fail("items", fmt.Errorf("duplicate key %q", it.key))
		}
		root.bytes += it.size()
		if it.expireAt != 0 {
			root.ttl.ReplaceOrInsert(ttlKey{it.expireAt, it.key})
		}
	}
	if n, err = binary.ReadUvarint(r); err != nil {
		return fail("request id count", err)
	}
	for i := uint64(0); i < n; i++ {
		id, err := readBytes(r)
		if err != nil {
			return fail("request id", err)
		}
		at, err := binary.ReadVarint(r)
		if err != nil {
			return fail("request time", err)
		}
		res, err := readResult(r, 0)
		if err != nil {
			return fail("request result", err)
		}
		e := dedupEntry{id: string(id), at: at, res: res}
		root.dedup.byID.ReplaceOrInsert(e)
		root.dedup.byTime.ReplaceOrInsert(e)
	}
	if err := readSnapshotExt(r, root); err != nil {
		return fail("extension", err)
	}
	s.root = root
	return s, nil
}

// maxSnapshotString bounds one length prefix, so a corrupt stream cannot
// make Restore allocate without limit.
const maxSnapshotString = 1 << 30

func readBytes(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > maxSnapshotString {
		return nil, fmt.Errorf("length %d too large", n)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *Counters) list() []*uint64 {
	return []*uint64{&c.Sets, &c.Deletes, &c.Expirations, &c.Evictions}
}

// Stats describes the local copy of the cache. Keys, Bytes and Counters
// are replicated state (equal on nodes at the same index); Hits and
// Misses count this node's reads only.
type Stats struct {
	Keys         int
	Bytes        int64
	Hits         uint64
	Misses       uint64
	AppliedIndex uint64
	Counters
}

// Stats returns the current statistics. It is cheap: no scan.
func (f *FSM) Stats() Stats {
	s := f.root.Load()
	return Stats{
		Keys:         s.tree.Len(),
		Bytes:        s.bytes + s.scripts.bytes,
		Hits:         f.hits.Load(),
		Misses:       f.misses.Load(),
		AppliedIndex: s.index,
		Counters:     s.counters,
	}
}

// Digest hashes every item in key order (the tree's order, so no sort is
// needed) and returns it with the applied index it describes: two nodes
// at the same index report the same digest. It scans the whole cache.
func (f *FSM) Digest() (string, uint64) {
	s := f.root.Load()
	return digest(s), s.index
}

func digest(s *state) string {
	t := s.tree
	h := sha256.New()
	var buf []byte
	t.Ascend(func(it *item) bool {
		buf = appendBytes(buf[:0], []byte(it.key))
		buf = appendBytes(buf, it.value)
		buf = binary.AppendUvarint(buf, it.version)
		buf = binary.AppendVarint(buf, it.expireAt)
		h.Write(buf)
		return true
	})
	digestExt(h, s)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
