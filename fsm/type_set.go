package fsm

import (
	"encoding/binary"
	"errors"

	"github.com/google/btree"
)

// The set kind: members in a copy-on-write B-tree (O(1) clone, O(log n)
// membership), ordered by bytes so that every node iterates alike.

// SetMemberOverhead is the memory accounted per set member beyond its
// bytes. Measured against Redis 7.0's MEMORY USAGE of sets in their
// hashtable encoding (docs/api.md, "Memory"): 40 to 43 bytes per member
// of 13-byte members. A replicated constant: never change its meaning.
const SetMemberOverhead = 40

func strLess(a, b string) bool { return a < b }

type setObj struct {
	t     *btree.BTreeG[string]
	bytes int64
	// big: Redis would hold this set as a hashtable, not an intset (a
	// member that is not an integer, or over 512 members); it never
	// converts back, so neither does this flag (OBJECT ENCODING).
	big bool
}

func newSet() object { return &setObj{t: btree.NewG(16, strLess)} }

func (s *setObj) kind() ValueType { return TypeSet }
func (s *setObj) length() int     { return s.t.Len() }
func (s *setObj) size() int64     { return s.bytes }
func (s *setObj) clone() object   { c := *s; c.t = s.t.Clone(); return &c }

func (s *setObj) has(m string) bool { return s.t.Has(m) }

func isIntMember(m string) bool { _, ok := ParseInt([]byte(m)); return ok }

// add inserts m and says whether it is new.
func (s *setObj) add(m string) bool {
	if _, replaced := s.t.ReplaceOrInsert(m); replaced {
		return false
	}
	s.bytes += int64(len(m)) + SetMemberOverhead
	if !s.big && (s.t.Len() > 512 || !isIntMember(m)) {
		s.big = true
	}
	return true
}

func (s *setObj) remove(m string) bool {
	if _, ok := s.t.Delete(m); !ok {
		return false
	}
	s.bytes -= int64(len(m)) + SetMemberOverhead
	return true
}

func (s *setObj) members() []string {
	out := make([]string, 0, s.t.Len())
	s.t.Ascend(func(m string) bool { out = append(out, m); return true })
	return out
}

// appendTo encodes a flags byte (1: big), the count, then the members in
// order.
func (s *setObj) appendTo(b []byte) []byte {
	b = append(b, boolByte(s.big))
	b = binary.AppendUvarint(b, uint64(s.t.Len()))
	s.t.Ascend(func(m string) bool {
		b = appendBytes(b, []byte(m))
		return true
	})
	return b
}

func decodeSet(b []byte) (object, error) {
	d := decoder{b: b}
	flags := d.byte()
	n := d.countN(len(b))
	s := newSet().(*setObj)
	for i := 0; i < n && d.err == nil; i++ {
		m := d.bytes()
		if d.err == nil && !s.add(string(m)) {
			return nil, errors.New("member repeated")
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 || flags > 1 {
		return nil, errors.New("trailing bytes or unknown flags")
	}
	s.big = s.big || flags == 1
	return s, nil
}

func init() { registerKind(TypeSet, decodeSet) }

// encoding is what OBJECT ENCODING answers, as Redis 7.0 would
// (set-max-intset-entries 512; Redis 7.0 has no listpack sets).
func (s *setObj) encoding() string {
	if s.big {
		return "hashtable"
	}
	return "intset"
}
