package fsm

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"

	"github.com/hashicorp/raft"
)

// Snapshot formats. The magic's last byte is the format; Restore reads
// every format, and an FSM writes the newest one its cluster's level
// allows, so a member of the previous level can still install a snapshot
// sent by a newer leader until the cluster moves on.
const (
	// snapshotV1 (level 1): a fixed sequence of fields, members as
	// {id http-address redis-address}.
	snapshotV1 byte = 1
	// snapshotV2 (level 2): tagged sections (see writeV2), members as
	// full records, and the cluster level.
	snapshotV2 byte = 2
	// snapshotV3 (level 3): format 2 whose items carry their kind, with
	// a collection's encoding in place of a string's value (types.go).
	snapshotV3 byte = 3
	// snapshotV4 (level 4): format 3 unchanged. Its number keeps it from
	// binaries of level 3 (a member rolled back in place): they would
	// keep every reply for request ids, unbounded (dedup.go), and drift
	// from the others.
	snapshotV4 byte = 4
	// snapshotV5 (level 5): format 4, and the request-id section ends
	// with dedupTable.forgot. Its number keeps it from binaries of level
	// 4, which would count the kept error texts of request ids by level
	// 4's rule (dedup.go) and drift from the others.
	snapshotV5 byte = 5
	// snapshotV6 (level 6): format 5 unchanged. Its number keeps it from
	// binaries of level 5, which would read a tagged request id
	// (TagRequestID) as a plain one and apply a reused key's request that
	// the others refuse.
	snapshotV6 byte = 6
)

var snapshotMagic = [3]byte{'R', 'C', 'S'}

// snapshotFormat is the newest format a binary of level may write at a
// cluster level of clusterLevel.
func snapshotFormat(level, clusterLevel uint32) byte {
	switch l := min(level, clusterLevel); {
	case l >= LevelRequestDigest:
		return snapshotV6
	case l >= LevelStoredBudget:
		return snapshotV5
	case l >= LevelReplyBudget:
		return snapshotV4
	case l >= LevelTypes:
		return snapshotV3
	case l >= 2:
		return snapshotV2
	}
	return snapshotV1
}

// Sections of format 2, each its tag byte and its body, in this order;
// the stream ends with secEnd. A reader refuses a tag it does not know, so
// a later level adds a section with a new tag written only once the
// cluster has reached that level: no older binary ever meets it.
const (
	secEnd     byte = 0
	secHeader  byte = 1 // index clock lastVersion counters(4) clusterLevel
	secMembers byte = 2 // the member records
	secItems   byte = 3 // the cache
	secDedup   byte = 4 // recent request ids and their results
	secScripts byte = 5 // the replicated script cache (script.go)
	secChanges byte = 6 // WATCH's per-key change record (watch.go)
	// Format 3 on:
	secNotify byte = 7 // notify-keyspace-events (pubsub.go)
)

// snapshot is a point-in-time view. Because published trees are never
// modified, holding the root is enough: no copy is made when Raft asks for
// a snapshot, and writes go on while Persist streams it. The root holds
// the member records and the cluster level too.
type snapshot struct {
	root   *state
	clock  int64
	format byte
}

// Snapshot implements raft.FSM. It is called on the FSM goroutine, so the
// root, index and clock it reads belong to the same applied batch. A
// poisoned FSM refuses: its state is not the log's.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.Poisoned(); err != nil {
		return nil, err
	}
	return f.snapshot(), nil
}

func (f *FSM) snapshot() *snapshot {
	root := f.root.Load()
	return &snapshot{root: root, clock: f.clock.Load(), format: snapshotFormat(f.level, root.clusterLevel())}
}

// Persist writes the stream. Format 1:
//
//	'RCS' 1 index(uvarint) clock(varint) lastVersion(uvarint)
//	sets deletes expirations evictions(uvarint) nmembers(uvarint) {id http redis}
//	nitems(uvarint) {key value version(uvarint) expireAt(varint)}
//	ndedup(uvarint) {id at(varint) result}
//
// Format 2:
//
//	'RCS' 2
//	1 index(uvarint) clock(varint) lastVersion(uvarint) sets deletes expirations evictions(uvarint) clusterLevel(uvarint)
//	2 nmembers(uvarint) {id incarnation level(uvarint) naddrs(uvarint) {name addr}}
//	3 nitems(uvarint) {key value version(uvarint) expireAt(varint)}
//	4 ndedup(uvarint) {id at(varint) result}
//	0
//
// with byte strings as uvarint length + bytes, items in key order,
// members by id and their addresses by name.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

// snapWriter gathers encoded fields and writes them out in large pieces;
// it remembers the first write error.
type snapWriter struct {
	w   *bufio.Writer
	buf []byte
	err error
}

func (w *snapWriter) maybeFlush() {
	if len(w.buf) >= 64<<10 {
		w.flush()
	}
}

func (w *snapWriter) flush() {
	if w.err == nil {
		_, w.err = w.w.Write(w.buf)
	}
	w.buf = w.buf[:0]
}

func (s *snapshot) write(out io.Writer) error {
	w := &snapWriter{w: bufio.NewWriterSize(out, 256<<10)}
	w.buf = append(append(w.buf, snapshotMagic[:]...), s.format)
	if s.format == snapshotV1 {
		s.writeV1(w)
	} else {
		s.writeV2(w)
	}
	w.flush()
	if w.err != nil {
		return w.err
	}
	return w.w.Flush()
}

// writeV1 is format 1 exactly as level-1 binaries write and read it.
func (s *snapshot) writeV1(w *snapWriter) {
	s.writeHeader(w)
	ms := s.root.sortedMembers()
	w.buf = binary.AppendUvarint(w.buf, uint64(len(ms)))
	for _, m := range ms {
		w.buf = appendBytes(w.buf, []byte(m.ID))
		w.buf = appendBytes(w.buf, []byte(m.Addrs[AddrHTTP]))
		w.buf = appendBytes(w.buf, []byte(m.Addrs[AddrRedis]))
	}
	s.writeItems(w)
	writeDedup(w, s.root.dedup, s.format)
}

// writeV2 writes the sections of format 2 in order. A new section is one
// more line here and one more case in readV2.
func (s *snapshot) writeV2(w *snapWriter) {
	type section struct {
		tag   byte
		write func(*snapWriter)
	}
	secs := []section{
		{secHeader, s.writeHeader},
		{secMembers, s.writeMembers},
		{secItems, s.writeItems},
		{secDedup, func(w *snapWriter) { writeDedup(w, s.root.dedup, s.format) }},
		{secScripts, func(w *snapWriter) { w.buf = appendScripts(w.buf, &s.root.scripts) }},
		{secChanges, func(w *snapWriter) { w.buf = appendChangeLog(w.buf, &s.root.changes) }},
	}
	if s.format >= snapshotV3 {
		secs = append(secs,
			section{secNotify, func(w *snapWriter) { w.buf = appendNotify(w.buf, s.root.notify) }},
		)
	}
	for _, sec := range secs {
		w.buf = append(w.buf, sec.tag)
		sec.write(w)
	}
	w.buf = append(w.buf, secEnd)
}

func (s *snapshot) writeHeader(w *snapWriter) {
	w.buf = binary.AppendUvarint(w.buf, s.root.index)
	w.buf = binary.AppendVarint(w.buf, s.clock)
	w.buf = binary.AppendUvarint(w.buf, s.root.lastVersion)
	for _, c := range s.root.counters.list() {
		w.buf = binary.AppendUvarint(w.buf, *c)
	}
	if s.format >= snapshotV2 {
		w.buf = binary.AppendUvarint(w.buf, uint64(s.root.level))
	}
}

func (s *snapshot) writeMembers(w *snapWriter) {
	ms := s.root.sortedMembers()
	w.buf = binary.AppendUvarint(w.buf, uint64(len(ms)))
	for _, m := range ms {
		w.buf = appendBytes(w.buf, []byte(m.ID))
		w.buf = appendBytes(w.buf, []byte(m.Incarnation))
		w.buf = binary.AppendUvarint(w.buf, uint64(m.Level))
		w.buf = binary.AppendUvarint(w.buf, uint64(len(m.Addrs)))
		for _, name := range sortedKeys(m.Addrs) {
			w.buf = appendBytes(w.buf, []byte(name))
			w.buf = appendBytes(w.buf, []byte(m.Addrs[name]))
		}
	}
}

func (s *snapshot) writeItems(w *snapWriter) {
	w.buf = binary.AppendUvarint(w.buf, uint64(s.root.tree.Len()))
	s.root.tree.Ascend(func(it *item) bool {
		w.buf = appendBytes(w.buf, []byte(it.key))
		if s.format >= snapshotV3 {
			w.buf = appendItemValue(w.buf, it)
		} else {
			w.buf = appendBytes(w.buf, it.value)
		}
		w.buf = binary.AppendUvarint(w.buf, it.version)
		w.buf = binary.AppendVarint(w.buf, it.expireAt)
		w.maybeFlush()
		return w.err == nil
	})
}

// writeDedup writes the request-id section; format says which one (the
// stored results may grow fields in a later format, here and in readDedup).
func writeDedup(w *snapWriter, d dedupTable, format byte) {
	w.buf = binary.AppendUvarint(w.buf, uint64(d.byID.Len()))
	d.byID.Ascend(func(e *dedupEntry) bool {
		w.buf = appendBytes(w.buf, []byte(e.id))
		w.buf = binary.AppendVarint(w.buf, e.at)
		if format >= snapshotV2 {
			// The stored encoding is this format's, but for its last
			// byte (encodeStored): a unit's replies, and its error when
			// the first format's codes cannot name it.
			w.buf = append(w.buf, e.enc[:len(e.enc)-1]...)
		} else {
			w.buf = appendResult(w.buf, decodeStored(e.enc))
		}
		w.maybeFlush()
		return w.err == nil
	})
	if format >= snapshotV5 {
		w.buf = binary.AppendUvarint(w.buf, d.forgot)
	}
}

// Release implements raft.FSMSnapshot; there is nothing to free.
func (s *snapshot) Release() {}

// Restore implements raft.FSM. The new state is built aside and then
// replaces the old one in a single atomic publish, so a concurrent reader
// sees either the whole old cache or the whole new one. A poisoned FSM
// refuses it: it stays stopped until a newer binary replays the log.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.Poisoned(); err != nil {
		return err
	}
	snap, err := readSnapshot(bufio.NewReaderSize(rc, 256<<10), snapshotFormat(f.level, f.level))
	if err != nil {
		return err
	}
	f.clock.Store(snap.clock)
	f.root.Store(snap.root)
	f.notify()
	// Every key may have changed, and the entries between what this FSM
	// held and the snapshot will never be reported: change streams
	// start over from the snapshot's index.
	f.tellChange(Change{Index: snap.root.index, All: true, Restored: true, Notify: snap.root.notify})
	return nil
}

// snapReader reads a snapshot stream; fail wraps what went wrong.
type snapReader struct {
	r *bufio.Reader
}

func (sr *snapReader) fail(what string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrBadSnapshot, what, err)
}

func (sr *snapReader) uvarint(what string) (uint64, error) {
	v, err := binary.ReadUvarint(sr.r)
	if err != nil {
		return 0, sr.fail(what, err)
	}
	return v, nil
}

// readSnapshot parses a stream of any format up to maxFormat.
func readSnapshot(r *bufio.Reader, maxFormat byte) (*snapshot, error) {
	sr := &snapReader{r: r}
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, sr.fail("header", err)
	}
	if [3]byte(magic[:3]) != snapshotMagic || magic[3] < snapshotV1 || magic[3] > maxFormat {
		return nil, sr.fail("header", fmt.Errorf("unknown magic %q", magic[:]))
	}
	s := &snapshot{root: newState(), format: magic[3]}
	var err error
	if s.format == snapshotV1 {
		err = sr.readV1(s)
	} else {
		err = sr.readV2(s)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (sr *snapReader) readV1(s *snapshot) error {
	if err := sr.readHeader(s); err != nil {
		return err
	}
	n, err := sr.uvarint("member count")
	if err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		id, err1 := readBytes(sr.r)
		addr, err2 := readBytes(sr.r)
		resp, err3 := readBytes(sr.r)
		if err := errors.Join(err1, err2, err3); err != nil {
			return sr.fail("member", err)
		}
		rec := &Member{ID: string(id), Addrs: map[string]string{AddrHTTP: string(addr)}}
		if len(resp) > 0 {
			rec.Addrs[AddrRedis] = string(resp)
		}
		s.root.members[rec.ID] = rec
	}
	if err := sr.readItems(s); err != nil {
		return err
	}
	return sr.readDedup(s)
}

func (sr *snapReader) readV2(s *snapshot) error {
	read := map[byte]func(*snapshot) error{
		secHeader: sr.readHeader, secMembers: sr.readMembers, secItems: sr.readItems, secDedup: sr.readDedup,
		secScripts: func(s *snapshot) error {
			if err := readScripts(sr.r, &s.root.scripts); err != nil {
				return sr.fail("scripts", err)
			}
			return nil
		},
		secChanges: func(s *snapshot) error {
			if err := readChangeLog(sr.r, &s.root.changes); err != nil {
				return sr.fail("change log", err)
			}
			return nil
		},
	}
	if s.format >= snapshotV3 {
		read[secNotify] = func(s *snapshot) error {
			f, err := sr.uvarint("notify flags")
			if err == nil && f > 0xffffffff {
				err = sr.fail("notify flags", fmt.Errorf("%d", f))
			}
			s.root.notify = uint32(f)
			return err
		}
	}
	seen := map[byte]bool{}
	for {
		tag, err := sr.r.ReadByte()
		if err != nil {
			return sr.fail("section", err)
		}
		if tag == secEnd {
			break
		}
		f, ok := read[tag]
		switch {
		case !ok:
			return sr.fail("section", fmt.Errorf("unknown section %d", tag))
		case seen[tag]:
			return sr.fail("section", fmt.Errorf("section %d twice", tag))
		case !seen[secHeader] && tag != secHeader:
			return sr.fail("section", fmt.Errorf("section %d before the header", tag))
		}
		seen[tag] = true
		if err := f(s); err != nil {
			return err
		}
	}
	for tag := range read {
		if !seen[tag] {
			return sr.fail("section", fmt.Errorf("section %d missing", tag))
		}
	}
	return nil
}

func (sr *snapReader) readHeader(s *snapshot) error {
	root := s.root
	var err error
	if root.index, err = sr.uvarint("index"); err != nil {
		return err
	}
	if s.clock, err = binary.ReadVarint(sr.r); err != nil {
		return sr.fail("clock", err)
	}
	if root.lastVersion, err = sr.uvarint("last version"); err != nil {
		return err
	}
	for _, c := range root.counters.list() {
		if *c, err = sr.uvarint("counters"); err != nil {
			return err
		}
	}
	if s.format >= snapshotV2 {
		level, err := sr.uvarint("cluster level")
		if err != nil {
			return err
		}
		if level > math.MaxUint32 {
			return sr.fail("cluster level", fmt.Errorf("%d", level))
		}
		root.level = uint32(level)
	}
	return nil
}

func (sr *snapReader) readMembers(s *snapshot) error {
	n, err := sr.uvarint("member count")
	if err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		id, err1 := readBytes(sr.r)
		inc, err2 := readBytes(sr.r)
		level, err3 := binary.ReadUvarint(sr.r)
		naddrs, err4 := binary.ReadUvarint(sr.r)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return sr.fail("member", err)
		}
		if level > math.MaxUint32 || naddrs > MaxMemberAddrs {
			return sr.fail("member", fmt.Errorf("level %d, %d addresses", level, naddrs))
		}
		rec := &Member{ID: string(id), Incarnation: string(inc), Level: uint32(level), Addrs: make(map[string]string, naddrs)}
		for j := uint64(0); j < naddrs; j++ {
			name, err1 := readBytes(sr.r)
			addr, err2 := readBytes(sr.r)
			if err := errors.Join(err1, err2); err != nil {
				return sr.fail("member address", err)
			}
			rec.Addrs[string(name)] = string(addr)
		}
		if _, dup := s.root.members[rec.ID]; dup {
			return sr.fail("members", fmt.Errorf("member %q twice", rec.ID))
		}
		s.root.members[rec.ID] = rec
	}
	return nil
}

func (sr *snapReader) readItems(s *snapshot) error {
	root := s.root
	n, err := sr.uvarint("item count")
	if err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		key, err := readBytes(sr.r)
		if err != nil {
			return sr.fail("key", err)
		}
		it := &item{key: string(key)}
		if s.format >= snapshotV3 {
			err = readItemValue(sr.r, it)
		} else {
			it.value, err = readBytes(sr.r)
		}
		if err != nil {
			return sr.fail("value of "+strconv.Quote(it.key), err)
		}
		if it.version, err = sr.uvarint("version"); err != nil {
			return err
		}
		if it.expireAt, err = binary.ReadVarint(sr.r); err != nil {
			return sr.fail("expiry", err)
		}
		if _, dup := root.tree.ReplaceOrInsert(it); dup {
			return sr.fail("items", fmt.Errorf("duplicate key %q", it.key))
		}
		it.acct = it.size()
		root.bytes += it.acct
		if it.expireAt != 0 {
			root.ttl.ReplaceOrInsert(ttlKey{it.expireAt, it.key})
		}
	}
	return nil
}

// readDedup reads what writeDedup wrote, in s.format.
func (sr *snapReader) readDedup(s *snapshot) error {
	n, err := sr.uvarint("request id count")
	if err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		id, err := readBytes(sr.r)
		if err != nil {
			return sr.fail("request id", err)
		}
		at, err := binary.ReadVarint(sr.r)
		if err != nil {
			return sr.fail("request time", err)
		}
		var res *Result
		if s.format >= snapshotV2 {
			res, err = readStored(sr.r)
		} else {
			res, err = readResult(sr.r, 0)
		}
		if err != nil {
			return sr.fail("request result", err)
		}
		s.root.dedup.insert(newEntry(string(id), at, res, s.root.level))
	}
	switch {
	case s.format >= snapshotV5:
		if s.root.dedup.forgot, err = sr.uvarint("forgotten index"); err != nil {
			return err
		}
	case s.root.level >= LevelStoredBudget:
		// Never written so (snapshotFormat): if it were, nothing says
		// what was forgotten before the snapshot's index.
		s.root.dedup.forgot = s.root.index
	}
	return nil
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
	// RequestIDs and RequestIDBytes are the request-id table (dedup.go):
	// ids remembered and the memory they hold with their results, which
	// is not in Bytes (at most DedupMaxBytes).
	RequestIDs     int
	RequestIDBytes int64
	Counters
}

// Stats returns the current statistics. It is cheap: no scan.
func (f *FSM) Stats() Stats { return f.statsOf(f.root.Load()) }

// statsOf is the statistics of state s with this node's hit counts.
func (f *FSM) statsOf(s *state) Stats {
	return Stats{
		Keys:           s.tree.Len(),
		Bytes:          s.bytes + s.scripts.bytes,
		Hits:           f.hits.Load(),
		Misses:         f.misses.Load(),
		AppliedIndex:   s.index,
		RequestIDs:     s.dedup.byID.Len(),
		RequestIDBytes: s.dedup.bytes,
		Counters:       s.counters,
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
		if it.obj != nil { // strings hash as before typed values existed
			buf = appendItemValue(buf, it)
		} else {
			buf = appendBytes(buf, it.value)
		}
		buf = binary.AppendUvarint(buf, it.version)
		buf = binary.AppendVarint(buf, it.expireAt)
		h.Write(buf)
		return true
	})
	digestExt(h, s)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
