package fsm

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/google/btree"
)

// The stream kind: entries ordered by ID in a copy-on-write B-tree
// (google/btree's Clone is lazy, O(1)), plus what Redis keeps beside
// them and never forgets while the key lives: the last ID added (XADD
// refuses anything not above it, even after the entries are deleted),
// the largest ID deleted and the count of entries ever added.
//
// A stream key outlives its last entry (XDEL or a trim to zero leaves an
// empty stream, as in Redis), so it implements keepEmpty.

// Per-entry and per-field memory accounted to a stream beyond the field
// and value bytes: the entry's struct and B-tree slot, and each field's
// or value's string header and allocation. Measured
// (fsm/bench_list_test.go) and compared with Redis in docs/api.md.
// Replicated constants: they must never change meaning.
const (
	StreamEntryOverhead = 64
	StreamFieldOverhead = 28
)

// streamID is an entry ID: milliseconds, then a sequence number.
type streamID struct{ ms, seq uint64 }

var maxStreamID = streamID{math.MaxUint64, math.MaxUint64}

func (a streamID) cmp(b streamID) int {
	switch {
	case a.ms < b.ms:
		return -1
	case a.ms > b.ms:
		return 1
	case a.seq < b.seq:
		return -1
	case a.seq > b.seq:
		return 1
	}
	return 0
}

func (a streamID) String() string {
	return strconv.FormatUint(a.ms, 10) + "-" + strconv.FormatUint(a.seq, 10)
}

// incr is Redis's streamIncrID: the next ID, false past the last one.
func (a streamID) incr() (streamID, bool) {
	switch {
	case a.seq != math.MaxUint64:
		a.seq++
	case a.ms != math.MaxUint64:
		a.ms, a.seq = a.ms+1, 0
	default:
		return streamID{}, false
	}
	return a, true
}

// decr is Redis's streamDecrID: the previous ID, false before 0-0.
func (a streamID) decr() (streamID, bool) {
	switch {
	case a.seq != 0:
		a.seq--
	case a.ms != 0:
		a.ms, a.seq = a.ms-1, math.MaxUint64
	default:
		return maxStreamID, false
	}
	return a, true
}

// parseStreamID reads an ID as Redis's streamGenericParseIDOrReply does:
// "-" and "+" (unless strict), "<ms>-<seq>", "<ms>" (seq missingSeq),
// and, with autoSeq, "<ms>-*" (seqGiven false). Numbers are read by
// string2ull: strtoull's leniency included (" 7", "+7", "007").
func parseStreamID(arg []byte, strict bool, missingSeq uint64, autoSeq bool) (id streamID, seqGiven, ok bool) {
	if len(arg) > 127 {
		return id, false, false
	}
	if len(arg) == 1 && (arg[0] == '-' || arg[0] == '+') {
		if strict {
			return id, false, false
		}
		if arg[0] == '+' {
			return maxStreamID, true, true
		}
		return streamID{}, true, true
	}
	ms, rest, dash := arg, []byte(nil), false
	for i, c := range arg {
		if c == '-' {
			ms, rest, dash = arg[:i], arg[i+1:], true
			break
		}
	}
	if id.ms, ok = string2ull(ms); !ok {
		return id, false, false
	}
	switch {
	case !dash:
		id.seq = missingSeq
	case autoSeq && len(rest) == 1 && rest[0] == '*':
		return id, false, true
	default:
		if id.seq, ok = string2ull(rest); !ok {
			return id, false, false
		}
	}
	return id, true, true
}

// string2ull is Redis's: a strict int64 that is not negative, or else
// whatever C's strtoull(s, &end, 10) reads to the end of s (leading
// spaces, a sign, leading zeros; a '-' negates modulo 2^64), refusing
// overflow and an empty or partial parse.
func string2ull(b []byte) (uint64, bool) {
	if n, ok := ParseInt(b); ok {
		return uint64(n), n >= 0
	}
	i := 0
	for i < len(b) && (b[i] == ' ' || (b[i] >= '\t' && b[i] <= '\r')) {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	if i == len(b) {
		return 0, false
	}
	var v uint64
	for ; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false // ERANGE
		}
		v = v*10 + d
	}
	if neg {
		v = -v
	}
	return v, true
}

type streamEntry struct {
	id     streamID
	fields []string // field, value, field, value...
}

func (e *streamEntry) size() int64 {
	n := int64(StreamEntryOverhead + StreamFieldOverhead*len(e.fields))
	for _, f := range e.fields {
		n += int64(len(f))
	}
	return n
}

func streamLess(a, b *streamEntry) bool { return a.id.cmp(b.id) < 0 }

type streamObj struct {
	entries    *btree.BTreeG[*streamEntry]
	last       streamID // the largest ID ever added
	maxDeleted streamID // the largest ID removed by XDEL
	added      uint64   // entries ever added
	bytes      int64    // sum of the entries' size()
}

func newStream() object { return &streamObj{entries: btree.NewG(32, streamLess)} }

func (s *streamObj) kind() ValueType { return TypeStream }
func (s *streamObj) length() int     { return s.entries.Len() }
func (s *streamObj) size() int64     { return s.bytes }
func (s *streamObj) keepEmpty() bool { return true }

func (s *streamObj) clone() object {
	c := *s
	c.entries = s.entries.Clone()
	return &c
}

// appendTo writes last, maxDeleted, added, the entry count, then each
// entry: its ID, its field count and the fields.
func (s *streamObj) appendTo(b []byte) []byte {
	for _, v := range []uint64{s.last.ms, s.last.seq, s.maxDeleted.ms, s.maxDeleted.seq, s.added, uint64(s.entries.Len())} {
		b = binary.AppendUvarint(b, v)
	}
	s.entries.Ascend(func(e *streamEntry) bool {
		b = binary.AppendUvarint(b, e.id.ms)
		b = binary.AppendUvarint(b, e.id.seq)
		b = binary.AppendUvarint(b, uint64(len(e.fields)))
		for _, f := range e.fields {
			b = binary.AppendUvarint(b, uint64(len(f)))
			b = append(b, f...)
		}
		return true
	})
	return b
}

func decodeStream(b []byte) (object, error) {
	d := decoder{b: b}
	s := newStream().(*streamObj)
	s.last = streamID{d.uvarint(), d.uvarint()}
	s.maxDeleted = streamID{d.uvarint(), d.uvarint()}
	s.added = d.uvarint()
	n := d.uvarint()
	prev, first := streamID{}, true
	for i := uint64(0); i < n && d.err == nil; i++ {
		e := &streamEntry{id: streamID{d.uvarint(), d.uvarint()}}
		nf := d.uvarint()
		if nf == 0 || nf%2 != 0 || nf > uint64(len(d.b)) {
			d.failf("entry %s with %d fields", e.id, nf)
			break
		}
		if (!first && e.id.cmp(prev) <= 0) || e.id.cmp(s.last) > 0 {
			d.failf("entry %s out of order", e.id)
			break
		}
		e.fields = make([]string, nf)
		for j := range e.fields {
			e.fields[j] = string(d.bytes())
		}
		s.entries.ReplaceOrInsert(e)
		s.bytes += e.size()
		prev, first = e.id, false
	}
	if d.err == nil && len(d.b) != 0 {
		d.failf("%d bytes after the stream", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return s, nil
}

func init() { registerKind(TypeStream, decodeStream) }

// insert adds an entry whose ID is above every ID the stream has had.
func (s *streamObj) insert(e *streamEntry) {
	s.entries.ReplaceOrInsert(e)
	s.bytes += e.size()
	s.last = e.id
	s.added++
}

// remove deletes the entry id, if present.
func (s *streamObj) remove(id streamID) bool {
	e, ok := s.entries.Delete(&streamEntry{id: id})
	if ok {
		s.bytes -= e.size()
	}
	return ok
}

// trim removes entries from the start, oldest first, while there are
// more than maxLen (maxLen >= 0) or while they are below minID (maxLen <
// 0); at most limit of them when limit > 0. It returns how many.
func (s *streamObj) trim(maxLen int64, minID streamID, limit int64) int64 {
	var n int64
	for s.entries.Len() > 0 && (limit <= 0 || n < limit) {
		e, _ := s.entries.Min()
		if maxLen >= 0 && int64(s.entries.Len()) <= maxLen || maxLen < 0 && e.id.cmp(minID) >= 0 {
			break
		}
		s.entries.DeleteMin()
		s.bytes -= e.size()
		n++
	}
	return n
}
