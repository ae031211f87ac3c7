package fsm

import (
	"encoding/binary"

	"github.com/benbjohnson/immutable"
)

// The list kind: a persistent (copy-on-write) sequence of byte strings,
// github.com/benbjohnson/immutable's List, a 32-way radix trie with an
// origin offset (a relaxed "persistent vector" that grows at both ends).
//
// Why this structure: a clone is a pointer copy (O(1)), as the typed
// values need; index access, LSET and a push or pop at either end touch
// one root-to-leaf path, O(log32 n) (about five nodes at a million
// elements), which is what queues (LPUSH/RPOP, RPUSH/BLPOP) and LINDEX
// need on big lists. It is a plain data structure: no maps, no hashing,
// no randomness, so every member builds the same list from the same
// commands. What it lacks, insertion and removal in the middle, is done
// here by splice: the elements on the shorter side of the edit are taken
// off and put back, O(min(i, n-i) log n) for an edit at i; Redis's
// LINSERT and LREM are O(n) scans already.
//
// Each persistent step allocates its path copy (about 2.5 KB at a
// million elements), so a command that pushes many elements makes
// garbage in proportion; the benchmarks in docs/benchmarks.md measure it.

// ListElemOverhead is the memory accounted to each list element beyond
// its bytes: the 16-byte string header in its trie leaf, the element's own
// allocation (header and size-class rounding), and the trie's branch
// nodes amortized. Measured (fsm/bench_list_test.go) and compared with
// Redis in docs/api.md. A replicated constant: it must never change
// meaning.
const ListElemOverhead = 24

type listObj struct {
	l     *immutable.List[string]
	bytes int64 // the elements' bytes
}

func newList() object { return &listObj{l: immutable.NewList[string]()} }

func (o *listObj) kind() ValueType { return TypeList }
func (o *listObj) length() int     { return o.l.Len() }
func (o *listObj) size() int64     { return o.bytes + int64(o.l.Len())*ListElemOverhead }
func (o *listObj) clone() object   { c := *o; return &c }

// appendTo writes the element count, then each element.
func (o *listObj) appendTo(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(o.l.Len()))
	it := o.l.Iterator()
	for !it.Done() {
		_, v := it.Next()
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

func decodeList(b []byte) (object, error) {
	d := decoder{b: b}
	n := d.uvarint()
	bld := immutable.NewListBuilder[string]()
	var bytes int64
	for i := uint64(0); i < n && d.err == nil; i++ {
		v := d.bytes()
		bld.Append(string(v))
		bytes += int64(len(v))
	}
	if d.err == nil && len(d.b) != 0 {
		d.failf("%d bytes after the list", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return &listObj{l: bld.List(), bytes: bytes}, nil
}

func init() { registerKind(TypeList, decodeList) }

func (o *listObj) get(i int) string { return o.l.Get(i) }

func (o *listObj) set(i int, v string) {
	o.bytes += int64(len(v) - len(o.l.Get(i)))
	o.l = o.l.Set(i, v)
}

func (o *listObj) push(v string, left bool) {
	o.bytes += int64(len(v))
	if left {
		o.l = o.l.Prepend(v)
	} else {
		o.l = o.l.Append(v)
	}
}

// pop removes and returns the first (left) or last element; the list
// must not be empty.
func (o *listObj) pop(left bool) string {
	n := o.l.Len()
	var v string
	if left {
		v = o.l.Get(0)
		o.l = o.l.Slice(1, n)
	} else {
		v = o.l.Get(n - 1)
		o.l = o.l.Slice(0, n-1)
	}
	o.bytes -= int64(len(v))
	return v
}

// keep keeps elements [lo, hi) and drops the rest (LTRIM).
func (o *listObj) keep(lo, hi int) {
	n := o.l.Len()
	if lo == 0 && hi == n {
		return
	}
	if hi-lo < lo+n-hi {
		o.bytes = 0
		o.each(lo, hi, func(_ int, v string) bool { o.bytes += int64(len(v)); return true })
	} else {
		o.each(0, lo, func(_ int, v string) bool { o.bytes -= int64(len(v)); return true })
		o.each(hi, n, func(_ int, v string) bool { o.bytes -= int64(len(v)); return true })
	}
	o.l = o.l.Slice(lo, hi)
}

// splice replaces elements [lo, hi) by with: it takes the elements on
// the shorter side of the edit off the list and puts them back around
// with, so its cost follows the smaller side, not the list.
func (o *listObj) splice(lo, hi int, with []string) {
	n := o.l.Len()
	o.each(lo, hi, func(_ int, v string) bool { o.bytes -= int64(len(v)); return true })
	for _, v := range with {
		o.bytes += int64(len(v))
	}
	if lo <= n-hi {
		head := o.slice(0, lo)
		l := o.l.Slice(hi, n)
		for i := len(with) - 1; i >= 0; i-- {
			l = l.Prepend(with[i])
		}
		for i := len(head) - 1; i >= 0; i-- {
			l = l.Prepend(head[i])
		}
		o.l = l
		return
	}
	tail := o.slice(hi, n)
	l := o.l.Slice(0, lo)
	for _, v := range with {
		l = l.Append(v)
	}
	for _, v := range tail {
		l = l.Append(v)
	}
	o.l = l
}

// each calls f on elements [lo, hi) in order until f returns false.
func (o *listObj) each(lo, hi int, f func(i int, v string) bool) {
	if lo >= hi {
		return
	}
	it := o.l.Iterator()
	it.Seek(lo)
	for i := lo; i < hi; i++ {
		_, v := it.Next()
		if !f(i, v) {
			return
		}
	}
}

// eachReverse calls f on elements [lo, hi) from hi-1 down until f
// returns false.
func (o *listObj) eachReverse(lo, hi int, f func(i int, v string) bool) {
	if lo >= hi {
		return
	}
	it := o.l.Iterator()
	it.Seek(hi - 1)
	for i := hi - 1; i >= lo; i-- {
		_, v := it.Prev()
		if !f(i, v) {
			return
		}
	}
}

// slice copies elements [lo, hi) out.
func (o *listObj) slice(lo, hi int) []string {
	out := make([]string, 0, max(hi-lo, 0))
	o.each(lo, hi, func(_ int, v string) bool { out = append(out, v); return true })
	return out
}
