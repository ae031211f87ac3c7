package fsm

import (
	"encoding/binary"
	"errors"

	"github.com/google/btree"
)

// The hash kind: fields in a copy-on-write B-tree ordered by field name,
// so a clone is O(1) (google/btree copies the nodes a writer touches,
// lazily), a command is O(log n), and iteration order is the same on
// every node.

// HashFieldOverhead is the memory accounted per hash field beyond its
// field and value bytes. Measured against Redis 7.0's MEMORY USAGE of
// hashes in their hashtable encoding (docs/api.md, "Memory"): 40 to 43
// bytes per field of 12-byte fields and values. A replicated constant:
// never change its meaning.
const HashFieldOverhead = 40

type hfield struct {
	f string
	v []byte
}

func hfieldLess(a, b hfield) bool { return a.f < b.f }

type hashObj struct {
	t     *btree.BTreeG[hfield]
	bytes int64 // element bytes + overheads, kept as fields change
	// big: Redis would hold this hash as a hashtable, not a listpack; it
	// never converts back, so neither does this flag (OBJECT ENCODING).
	big bool
}

func newHash() object { return &hashObj{t: btree.NewG(16, hfieldLess)} }

func (h *hashObj) kind() ValueType { return TypeHash }
func (h *hashObj) length() int     { return h.t.Len() }
func (h *hashObj) size() int64     { return h.bytes }
func (h *hashObj) clone() object   { c := *h; c.t = h.t.Clone(); return &c }

func fieldSize(f string, v []byte) int64 { return int64(len(f)+len(v)) + HashFieldOverhead }

func (h *hashObj) get(f string) ([]byte, bool) {
	x, ok := h.t.Get(hfield{f: f})
	return x.v, ok
}

// set stores f = v (v owned by the hash from now on) and says whether f
// is new.
func (h *hashObj) set(f string, v []byte) bool {
	old, replaced := h.t.ReplaceOrInsert(hfield{f: f, v: v})
	if replaced {
		h.bytes -= fieldSize(old.f, old.v)
	}
	h.bytes += fieldSize(f, v)
	if len(f) > 64 || len(v) > 64 || h.t.Len() > 128 {
		h.big = true
	}
	return !replaced
}

func (h *hashObj) del(f string) bool {
	old, ok := h.t.Delete(hfield{f: f})
	if ok {
		h.bytes -= fieldSize(old.f, old.v)
	}
	return ok
}

// appendTo encodes a flags byte (1: big), the count, then field and
// value of each field in order.
func (h *hashObj) appendTo(b []byte) []byte {
	b = append(b, boolByte(h.big))
	b = binary.AppendUvarint(b, uint64(h.t.Len()))
	h.t.Ascend(func(x hfield) bool {
		b = appendBytes(b, []byte(x.f))
		b = appendBytes(b, x.v)
		return true
	})
	return b
}

func decodeHash(b []byte) (object, error) {
	d := decoder{b: b}
	flags := d.byte()
	n := d.countN(len(b))
	h := newHash().(*hashObj)
	for i := 0; i < n && d.err == nil; i++ {
		f, v := d.bytes(), d.bytes()
		if d.err == nil && !h.set(string(f), append([]byte{}, v...)) {
			return nil, errors.New("field repeated")
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 || flags > 1 {
		return nil, errors.New("trailing bytes or unknown flags")
	}
	h.big = h.big || flags == 1
	return h, nil
}

func init() { registerKind(TypeHash, decodeHash) }

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// encoding is what OBJECT ENCODING answers, as Redis 7.0 would
// (hash-max-listpack-entries 128, hash-max-listpack-value 64; a hash
// that outgrew a listpack stays a hashtable).
func (h *hashObj) encoding() string {
	if h.big {
		return "hashtable"
	}
	return "listpack"
}
