package fsm

import (
	"math/bits"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/btree"
)

// Helpers shared by the hash and set commands: the random source of a
// command, random picks from an ordered tree, and the HSCAN/SSCAN
// cursor and options.

// randN returns a function drawing uniformly from [0, n). Inside Apply
// (and MULTI, scripts) it is a splitmix64 generator seeded by the entry
// (t.seed, which it advances so that later draws of the same entry
// differ); on a view nothing is replicated, so it is math/rand/v2.
func (t *Tx) randN() func(n int) int {
	if !t.write {
		return func(n int) int { return rand.IntN(n) }
	}
	return func(n int) int {
		t.seed += 0x9e3779b97f4a7c15
		z := t.seed
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		// Multiply-shift: unbiased enough for n far below 2^32, and
		// the same on every architecture.
		hi, _ := bits.Mul64(z, uint64(n))
		return int(hi)
	}
}

// randWalkMax is the size up to which a random pick walks the tree to a
// uniformly drawn index (O(n), exactly uniform, well under a millisecond).
// Above it a pick descends by bisection of the key range (bisectPick):
// O(log n) seeks for keys spread over their range, approximately uniform
// (Redis's own pick on big hash tables is approximate too; docs/api.md).
const randWalkMax = 1 << 16

// nth returns the i-th element (0-based) of tr by walking it.
func nth[T any](tr *btree.BTreeG[T], i int) T {
	var out T
	tr.Ascend(func(x T) bool {
		if i == 0 {
			out = x
			return false
		}
		i--
		return true
	})
	return out
}

// randomPick returns one element of the non-empty tree tr. key gives an
// element's sort key and probe makes an element that sorts at a key.
func randomPick[T any](tr *btree.BTreeG[T], r func(int) int, key func(T) string, probe func(string) T) T {
	if n := tr.Len(); n <= randWalkMax {
		return nth(tr, r(n))
	}
	return bisectPick(tr, r, key, probe)
}

// bisectPick halves the interval [lo, hi) of byte strings (as base-256
// fractions) that holds the elements, keeping a half at random weighted
// by its element count (counted up to k), until both halves are counted
// exactly; then it draws uniformly among them.
func bisectPick[T any](tr *btree.BTreeG[T], r func(int) int, key func(T) string, probe func(string) T) T {
	const k = 64
	// count counts the elements of [from, to), up to k+1 of them.
	count := func(from, to string) int {
		n := 0
		tr.AscendGreaterOrEqual(probe(from), func(x T) bool {
			if key(x) >= to {
				return false
			}
			n++
			return n <= k
		})
		return n
	}
	// at returns the i-th element of [from, ...).
	at := func(from string, i int) T {
		var out T
		tr.AscendGreaterOrEqual(probe(from), func(x T) bool {
			out = x
			i--
			return i >= 0
		})
		return out
	}
	mn, _ := tr.Min()
	mx, _ := tr.Max()
	lo, hi := key(mn), key(mx)+"\x00" // [lo, hi) holds every element
	for step := 0; step < 256; step++ {
		m := midString(lo, hi)
		if m <= lo || m >= hi {
			break
		}
		nl, nr := count(lo, m), count(m, hi)
		i := r(nl + nr)
		if nl <= k && nr <= k { // both halves counted: exact
			return at(lo, i)
		}
		// A half holds more than k: keep one by the counts known (at
		// least k+1 for a big half), and halve again.
		if i < nl {
			hi = m
		} else {
			lo = m
		}
	}
	return at(lo, r(max(count(lo, hi), 1)))
}

// midString is the midpoint of lo < hi read as base-256 fractions (a
// string sorting between them, or lo itself when none is shorter than
// both plus one byte).
func midString(lo, hi string) string {
	n := max(len(lo), len(hi)) + 1
	sum := make([]int, n+1) // sum[0] is the carry
	for i := n - 1; i >= 0; i-- {
		v := sum[i+1]
		if i < len(lo) {
			v += int(lo[i])
		}
		if i < len(hi) {
			v += int(hi[i])
		}
		sum[i+1] = v & 255
		sum[i] += v >> 8
	}
	out := make([]byte, n)
	rem := 0
	for i := 0; i <= n; i++ {
		v := rem*256 + sum[i]
		if i > 0 {
			out[i-1] = byte(v / 2)
		}
		rem = v % 2
	}
	for len(out) > 0 && out[len(out)-1] == 0 {
		out = out[:len(out)-1]
	}
	return string(out)
}

// distinctIndexes draws k distinct indexes of [0, n) (k <= n), in
// ascending order, for a pick of k distinct elements in one walk.
func distinctIndexes(n, k int, r func(int) int) []int {
	picked := make(map[int]bool, k)
	out := make([]int, 0, k)
	// Floyd's algorithm: k draws, no rejection loop.
	for j := n - k; j < n; j++ {
		x := r(j + 1)
		if picked[x] {
			x = j
		}
		picked[x] = true
		out = append(out, x)
	}
	sortInts(out)
	return out
}

func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// pickDistinct returns k distinct elements of tr (k < tr.Len()).
func pickDistinct[T any](tr *btree.BTreeG[T], k int, r func(int) int, key func(T) string, probe func(string) T) []T {
	n := tr.Len()
	out := make([]T, 0, k)
	if n <= randWalkMax || k*4 >= n {
		idx := distinctIndexes(n, k, r)
		i, j := 0, 0
		tr.Ascend(func(x T) bool {
			if idx[j] == i {
				out = append(out, x)
				j++
			}
			i++
			return j < len(idx)
		})
		return out
	}
	seen := make(map[string]bool, k)
	for len(out) < k {
		x := randomPick(tr, r, key, probe)
		if !seen[key(x)] {
			seen[key(x)] = true
			out = append(out, x)
		}
	}
	return out
}

// maxRandCount bounds the elements HRANDFIELD / SRANDMEMBER answer for a
// negative count (repetitions allowed), so one command cannot build an
// unbounded reply. Redis has no bound; docs/api.md lists the difference.
const maxRandCount = 1 << 20

// replyCountRange is Redis's reply to a count of -2^63.
var replyCountRange = cmdErr(ErrSyntax, "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")

func replyRandCount() Reply {
	return cmdErr(ErrSyntax, "ERR count is too large (raftcache answers at most "+strconv.Itoa(maxRandCount)+" random elements)")
}

const collCursorMark = '\x01'

// collScan is a parsed HSCAN/SSCAN: where to start and what to return.
type collScan struct {
	after   string // the last element returned before
	resume  bool   // after is set (a cursor other than 0)
	pattern []byte
	count   int
}

// scanCursor reads HSCAN/SSCAN's cursor as Redis does (strtoul: an
// optional sign, digits, no leading space; "" is 0), before it looks the
// key up (and the options only after).
func scanCursor(a [][]byte) (uint64, Reply, bool) {
	s := string(a[2])
	bad := cmdErr(ErrSyntax, "ERR invalid cursor")
	if s == "" {
		return 0, Reply{}, true
	}
	neg := s[0] == '-'
	if s[0] == '-' || s[0] == '+' {
		s = s[1:]
	}
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, bad, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, bad, false
	}
	if neg {
		n = -n
	}
	return n, Reply{}, true
}

// parseCollScan reads "key cursor [MATCH pattern] [COUNT count]". The
// cursor scheme is SCAN's (cursor.go): a number standing for the last
// element returned, kept on the node that issued it.
// whole: the collection is answered whole, and the cursor is not looked
// up (Redis ignores it for compact encodings).
func (t *Tx) parseCollScan(a [][]byte, whole bool) (collScan, Reply, bool) {
	var s collScan
	cursor, rep, ok := scanCursor(a)
	if !ok {
		return s, rep, false
	}
	s.count = 10
	for i := 3; i < len(a); i += 2 {
		if i+1 >= len(a) {
			return s, replySyntax, false
		}
		switch {
		case eq(a[i], "match"):
			s.pattern = a[i+1]
		case eq(a[i], "count"):
			n, ok := ParseInt(a[i+1])
			if !ok {
				return s, replyNotInteger, false
			}
			if n < 1 {
				return s, replySyntax, false
			}
			s.count = int(min(n, maxScanCount))
		default:
			return s, replySyntax, false
		}
	}
	if cursor != 0 && !whole {
		var pos string
		ok := t.f != nil
		if ok {
			pos, ok = t.f.cursors.get(cursor, t.now)
		}
		// Positions of collection scans carry a mark, so that the
		// empty element is a position too.
		if !ok || len(pos) == 0 || pos[0] != collCursorMark {
			return s, cmdErr(ErrSyntax, "ERR invalid cursor: unknown or expired on this node (cursors live "+
				time.Duration(cursorTTL).String()+" on the node that issued them)"), false
		}
		s.after, s.resume = pos[1:], true
	}
	return s, Reply{}, true
}

// collScanReply builds the two-element reply; more says whether the scan
// stopped before the end, last is the last element examined.
func (t *Tx) collScanReply(more bool, last string, elems []Reply) Reply {
	next := uint64(0)
	if more && t.f != nil {
		next = t.f.cursors.put(string(collCursorMark)+last, t.now)
	}
	return arrayReply([]Reply{bulkReply(strconv.AppendUint(nil, next, 10)), arrayReply(elems)})
}
