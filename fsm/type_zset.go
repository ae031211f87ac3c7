package fsm

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/google/btree"
)

// Sorted sets. A zset keeps its elements twice:
//
//   - an order-statistic AVL tree ordered by (score, member), each node
//     counting the elements of its subtree: rank, select by rank, the
//     first element at or past a score bound and range walks are
//     O(log n) (a walk then O(1) per element);
//   - a member index (google/btree, member → score) for ZSCORE and for
//     finding an element's place in the tree before changing it.
//
// Why an AVL tree with path copying rather than a treap or a counted
// B-tree: its balance is worst-case (a treap's depends on priorities,
// which would have to be replicated or derived from members an attacker
// chooses), the rebalancing is local and easy to verify (zsetCheck in the
// tests), and a node is one small allocation holding one element. A
// counted B-tree would use less memory per element but its split, merge
// and count bookkeeping is several times the code.
//
// Copy-on-write: clone is O(1). Both copies share the root, and each gets
// a new ownership token; a node carries the token of the copy that created
// it, and a copy changes in place only the nodes it owns, copying any
// other node on the path it changes (path copying: O(log n) new nodes for
// the first change of a path, none for later changes of the same nodes).
// The member index is cloned the same way by google/btree's lazy Clone.
// So a published zset is never changed, however its writer's copy is.
type zset struct {
	root    *znode
	tok     *ztoken
	members *btree.BTreeG[zmember]
	bytes   int64 // member bytes, for the accounting
}

// ztoken is a copy's ownership mark (not zero-sized: each has its own
// address).
type ztoken struct{ _ byte }

type znode struct {
	left, right *znode
	member      string
	score       float64
	size        int // elements in this subtree
	height      int8
	tok         *ztoken
}

type zmember struct {
	m     string
	score float64
}

// ZSetElemOverhead is the memory accounted to each element of a sorted
// set beyond its member's bytes: a replicated constant (it decides
// eviction and OOM) whose meaning never changes; a better estimate would
// be a new constant at a new feature level. Measured (TestZSetMemory,
// docs/api.md "Sorted sets"): an element costs about 122 bytes of Go heap
// beyond its member (tree node 64, index item with its B-tree share
// about 40, the member's string header and rounding); Redis 7.0's
// skiplist encoding costs about 92 (MEMORY USAGE).
const ZSetElemOverhead = 120

func newZSet() *zset {
	return &zset{tok: new(ztoken), members: btree.NewG(32, func(a, b zmember) bool { return a.m < b.m })}
}

func (z *zset) kind() ValueType { return TypeZSet }
func (z *zset) length() int     { return z.members.Len() }
func (z *zset) size() int64 {
	return z.bytes + int64(z.members.Len())*ZSetElemOverhead
}

// clone gives both copies new tokens: neither may change a node the other
// can see (google/btree's Clone does the same to its nodes).
func (z *zset) clone() object {
	z.tok = new(ztoken)
	return &zset{root: z.root, tok: new(ztoken), members: z.members.Clone(), bytes: z.bytes}
}

// appendTo encodes count, then each element in order: member, score bits.
func (z *zset) appendTo(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(z.length()))
	z.root.ascend(0, func(n *znode) bool {
		b = appendBytes(b, []byte(n.member))
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(n.score))
		return true
	})
	return b
}

func decodeZSet(b []byte) (object, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errors.New("bad count")
	}
	b = b[k:]
	nodes := make([]*znode, 0, n)
	z := newZSet()
	for i := uint64(0); i < n; i++ {
		m, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < m+8 {
			return nil, errors.New("bad element")
		}
		e := &znode{member: string(b[k : k+int(m)]), score: math.Float64frombits(binary.BigEndian.Uint64(b[k+int(m):])), size: 1, height: 1, tok: z.tok}
		b = b[k+int(m)+8:]
		if math.IsNaN(e.score) || len(nodes) > 0 && !zless(nodes[len(nodes)-1], e.score, e.member) {
			return nil, errors.New("elements out of order")
		}
		if _, dup := z.members.ReplaceOrInsert(zmember{e.member, e.score}); dup {
			return nil, errors.New("duplicate member")
		}
		z.bytes += int64(len(e.member))
		nodes = append(nodes, e)
	}
	if len(b) != 0 {
		return nil, errors.New("trailing bytes")
	}
	z.root = buildBalanced(nodes)
	return z, nil
}

func init() { registerKind(TypeZSet, decodeZSet) }

// buildBalanced links sorted nodes into a perfectly balanced tree.
func buildBalanced(ns []*znode) *znode {
	if len(ns) == 0 {
		return nil
	}
	mid := len(ns) / 2
	n := ns[mid]
	n.left, n.right = buildBalanced(ns[:mid]), buildBalanced(ns[mid+1:])
	n.fix()
	return n
}

// --- element operations ---------------------------------------------------

// score returns member's score.
func (z *zset) score(member string) (float64, bool) {
	e, ok := z.members.Get(zmember{m: member})
	return e.score, ok
}

// add inserts member (absent) with score.
func (z *zset) add(member string, score float64) {
	score = zkeep(score)
	z.members.ReplaceOrInsert(zmember{member, score})
	z.bytes += int64(len(member))
	z.root = z.insert(z.root, &znode{member: member, score: score, size: 1, height: 1, tok: z.tok})
}

// remove deletes member if present and returns its score.
func (z *zset) remove(member string) (float64, bool) {
	e, ok := z.members.Delete(zmember{m: member})
	if !ok {
		return 0, false
	}
	z.bytes -= int64(len(member))
	z.root = z.delete(z.root, e.score, member)
	return e.score, true
}

// update moves member (present with score old) to score s.
func (z *zset) update(member string, old, s float64) {
	s = zkeep(s)
	z.members.ReplaceOrInsert(zmember{member, s})
	z.root = z.delete(z.root, old, member)
	z.root = z.insert(z.root, &znode{member: member, score: s, size: 1, height: 1, tok: z.tok})
}

// zkeep is the score a set keeps: -0 becomes 0, as in Redis's compact
// encoding of sorted sets, which stores a score "-0" as the integer 0.
func zkeep(s float64) float64 {
	if s == 0 {
		return 0
	}
	return s
}

// rank is member's 0-based position in (score, member) order.
func (z *zset) rank(member string) (int, bool) {
	s, ok := z.score(member)
	if !ok {
		return 0, false
	}
	r := 0
	for n := z.root; n != nil; {
		switch c := zcmp(s, member, n); {
		case c < 0:
			n = n.left
		case c > 0:
			r += n.left.count() + 1
			n = n.right
		default:
			return r + n.left.count(), true
		}
	}
	return 0, false // unreachable while the index and tree agree
}

// at returns the element of rank i (0 <= i < length).
func (z *zset) at(i int) *znode {
	n := z.root
	for n != nil {
		ls := n.left.count()
		switch {
		case i < ls:
			n = n.left
		case i == ls:
			return n
		default:
			i -= ls + 1
			n = n.right
		}
	}
	return nil
}

// below counts the elements whose score is below s, or at most s when
// orEqual is set: the rank of the first element past that bound.
func (z *zset) below(s float64, orEqual bool) int {
	r := 0
	for n := z.root; n != nil; {
		if n.score < s || orEqual && n.score == s {
			r += n.left.count() + 1
			n = n.right
		} else {
			n = n.left
		}
	}
	return r
}

// belowMember counts the elements before member m in member order,
// assuming the tree's order is member order (all scores equal); orEqual
// counts m itself too.
func (z *zset) belowMember(m string, orEqual bool) int {
	r := 0
	for n := z.root; n != nil; {
		if n.member < m || orEqual && n.member == m {
			r += n.left.count() + 1
			n = n.right
		} else {
			n = n.left
		}
	}
	return r
}

// ascend calls fn on the elements of rank from, from on, in order.
func (z *zset) ascend(from int, fn func(*znode) bool) { z.root.ascend(from, fn) }

// descend calls fn on the elements of rank to and below, in reverse order.
func (z *zset) descend(to int, fn func(*znode) bool) { z.root.descend(to, fn) }

// removeRange deletes the elements of ranks lo..hi (inclusive, within
// bounds) and returns how many: one O(log n) deletion per element.
func (z *zset) removeRange(lo, hi int) int {
	var doomed []zmember
	z.ascend(lo, func(n *znode) bool {
		if lo > hi {
			return false
		}
		lo++
		doomed = append(doomed, zmember{n.member, n.score})
		return true
	})
	for _, e := range doomed {
		z.remove(e.m)
	}
	return len(doomed)
}

// --- the AVL tree -----------------------------------------------------------

func (n *znode) count() int {
	if n == nil {
		return 0
	}
	return n.size
}

func (n *znode) h() int8 {
	if n == nil {
		return 0
	}
	return n.height
}

func (n *znode) fix() {
	n.size = n.left.count() + n.right.count() + 1
	n.height = max(n.left.h(), n.right.h()) + 1
}

// zcmp orders (s, m) against n: by score, then by member bytes, as
// Redis's skiplist does.
func zcmp(s float64, m string, n *znode) int {
	switch {
	case s < n.score:
		return -1
	case s > n.score:
		return 1
	case m < n.member:
		return -1
	case m > n.member:
		return 1
	}
	return 0
}

// zless says whether a sorts strictly before (s, m).
func zless(a *znode, s float64, m string) bool { return zcmp(s, m, a) > 0 }

// own returns n itself if this copy owns it, else a copy that it owns.
func (z *zset) own(n *znode) *znode {
	if n.tok == z.tok {
		return n
	}
	c := *n
	c.tok = z.tok
	return &c
}

func (z *zset) insert(n, e *znode) *znode {
	if n == nil {
		return e
	}
	n = z.own(n)
	if zcmp(e.score, e.member, n) < 0 {
		n.left = z.insert(n.left, e)
	} else {
		n.right = z.insert(n.right, e)
	}
	return z.balance(n)
}

func (z *zset) delete(n *znode, s float64, m string) *znode {
	if n == nil {
		return nil
	}
	c := zcmp(s, m, n)
	n = z.own(n)
	switch {
	case c < 0:
		n.left = z.delete(n.left, s, m)
	case c > 0:
		n.right = z.delete(n.right, s, m)
	default:
		if n.left == nil {
			return n.right
		}
		if n.right == nil {
			return n.left
		}
		var min *znode
		right := n.right
		n.right, min = z.deleteMin(right)
		min = z.own(min)
		min.left, min.right = n.left, n.right
		return z.balance(min)
	}
	return z.balance(n)
}

// deleteMin detaches the smallest node of n's subtree.
func (z *zset) deleteMin(n *znode) (rest, min *znode) {
	if n.left == nil {
		return n.right, n
	}
	n = z.own(n)
	n.left, min = z.deleteMin(n.left)
	return z.balance(n), min
}

// balance restores the AVL invariant at an owned node whose subtrees are
// balanced and differ in height by at most 2.
func (z *zset) balance(n *znode) *znode {
	n.fix()
	switch bf := n.left.h() - n.right.h(); {
	case bf > 1:
		if n.left.left.h() < n.left.right.h() {
			n.left = z.rotateLeft(z.own(n.left))
		}
		return z.rotateRight(n)
	case bf < -1:
		if n.right.right.h() < n.right.left.h() {
			n.right = z.rotateRight(z.own(n.right))
		}
		return z.rotateLeft(n)
	}
	return n
}

func (z *zset) rotateRight(n *znode) *znode {
	l := z.own(n.left)
	n.left = l.right
	n.fix()
	l.right = n
	l.fix()
	return l
}

func (z *zset) rotateLeft(n *znode) *znode {
	r := z.own(n.right)
	n.right = r.left
	n.fix()
	r.left = n
	r.fix()
	return r
}

func (n *znode) ascend(skip int, fn func(*znode) bool) bool {
	for n != nil {
		ls := n.left.count()
		if skip < ls && !n.left.ascend(skip, fn) {
			return false
		}
		if skip <= ls && !fn(n) {
			return false
		}
		skip = max(0, skip-ls-1)
		n = n.right
	}
	return true
}

func (n *znode) descend(to int, fn func(*znode) bool) bool {
	for n != nil && to >= 0 {
		ls := n.left.count()
		if to > ls && !n.right.descend(to-ls-1, fn) {
			return false
		}
		if to >= ls && !fn(n) {
			return false
		}
		to = min(to, ls-1)
		n = n.left
	}
	return true
}
