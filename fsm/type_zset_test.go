package fsm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// zsetCheck verifies the tree's invariants: order, subtree sizes, AVL
// heights and balance, and agreement with the member index.
func zsetCheck(t *testing.T, z *zset) {
	t.Helper()
	var walk func(n *znode) (int, int8)
	walk = func(n *znode) (int, int8) {
		if n == nil {
			return 0, 0
		}
		ls, lh := walk(n.left)
		rs, rh := walk(n.right)
		if n.size != ls+rs+1 || n.height != max(lh, rh)+1 || lh-rh > 1 || rh-lh > 1 {
			t.Fatalf("node %q: size %d (want %d), height %d (children %d %d)", n.member, n.size, ls+rs+1, n.height, lh, rh)
		}
		return n.size, n.height
	}
	walk(z.root)
	var prev *znode
	var bytes int64
	z.ascend(0, func(n *znode) bool {
		if prev != nil && !zless(prev, n.score, n.member) {
			t.Fatalf("out of order: %q %v before %q %v", prev.member, prev.score, n.member, n.score)
		}
		if s, ok := z.score(n.member); !ok || s != n.score {
			t.Fatalf("index has %q at %v %v, tree at %v", n.member, s, ok, n.score)
		}
		bytes += int64(len(n.member))
		prev = n
		return true
	})
	if z.root.count() != z.length() || bytes != z.bytes {
		t.Fatalf("tree has %d elements, index %d; bytes %d, counted %d", z.root.count(), z.length(), bytes, z.bytes)
	}
}

// zmodel is the naive model: elements sorted by (score, member).
type zmodel []zmember

func (m zmodel) sort() {
	slices.SortFunc(m, func(a, b zmember) int {
		switch {
		case a.score < b.score:
			return -1
		case a.score > b.score:
			return 1
		case a.m < b.m:
			return -1
		case a.m > b.m:
			return 1
		}
		return 0
	})
}

func (m zmodel) find(member string) int {
	for i, e := range m {
		if e.m == member {
			return i
		}
	}
	return -1
}

func zsetElems(z *zset) zmodel {
	var out zmodel
	z.ascend(0, func(n *znode) bool { out = append(out, zmember{n.member, n.score}); return true })
	return out
}

func TestZSetTreeModel(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 1))
	scores := []float64{math.Inf(-1), -2.5, 0, 1, 1, 2, 3.25, 7, math.Inf(1)}
	type copyOf struct {
		z *zset
		m zmodel
	}
	z, m := newZSet(), zmodel{}
	var kept []copyOf
	for step := 0; step < 20000; step++ {
		member := strconv.Itoa(r.IntN(300))
		switch op := r.IntN(10); {
		case op < 4:
			s := scores[r.IntN(len(scores))]
			if i := m.find(member); i >= 0 {
				old, _ := z.score(member)
				z.update(member, old, s)
				m[i].score = s
			} else {
				z.add(member, s)
				m = append(m, zmember{member, s})
			}
			m.sort()
		case op < 6:
			_, ok := z.remove(member)
			if i := m.find(member); (i >= 0) != ok {
				t.Fatalf("remove %q: %v, model has it at %d", member, ok, i)
			} else if ok {
				m = slices.Delete(m, i, i+1)
			}
		case op < 7 && len(m) > 0:
			lo := r.IntN(len(m))
			hi := min(len(m)-1, lo+r.IntN(5))
			if n := z.removeRange(lo, hi); n != hi-lo+1 {
				t.Fatalf("removeRange %d %d removed %d", lo, hi, n)
			}
			m = slices.Delete(m, lo, hi+1)
		case op < 8:
			// Clone, keep the original with its model, go on with the copy.
			kept = append(kept, copyOf{z, slices.Clone(m)})
			z = z.clone().(*zset)
			if len(kept) > 8 {
				kept = kept[1:]
			}
		default:
			// Queries against the model.
			if i := m.find(member); i >= 0 {
				if rk, ok := z.rank(member); !ok || rk != i {
					t.Fatalf("rank %q = %d %v, want %d", member, rk, ok, i)
				}
			} else if _, ok := z.rank(member); ok {
				t.Fatalf("rank of absent %q", member)
			}
			if len(m) > 0 {
				i := r.IntN(len(m))
				if n := z.at(i); n.member != m[i].m {
					t.Fatalf("at %d = %q, want %q", i, n.member, m[i].m)
				}
			}
			s := scores[r.IntN(len(scores))]
			for _, eq := range []bool{false, true} {
				want := 0
				for _, e := range m {
					if e.score < s || eq && e.score == s {
						want++
					}
				}
				if got := z.below(s, eq); got != want {
					t.Fatalf("below(%v, %v) = %d, want %d", s, eq, got, want)
				}
			}
			// Walks from a random rank, both ways.
			from := r.IntN(len(m) + 2)
			var got []string
			z.ascend(from, func(n *znode) bool { got = append(got, n.member); return len(got) < 7 })
			var want []string
			for i := from; i < len(m) && len(want) < 7; i++ {
				want = append(want, m[i].m)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("ascend(%d) = %v, want %v", from, got, want)
			}
			to := r.IntN(len(m)+2) - 1
			got, want = nil, nil
			z.descend(to, func(n *znode) bool { got = append(got, n.member); return len(got) < 7 })
			for i := min(to, len(m)-1); i >= 0 && len(want) < 7; i-- {
				want = append(want, m[i].m)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("descend(%d) = %v, want %v", to, got, want)
			}
		}
		if step%97 == 0 {
			zsetCheck(t, z)
			if got := zsetElems(z); !slices.Equal(got, m) {
				t.Fatalf("step %d: tree %v, model %v", step, got, m)
			}
			for _, k := range kept {
				zsetCheck(t, k.z)
				if got := zsetElems(k.z); !slices.Equal(got, k.m) {
					t.Fatalf("step %d: a clone's original changed: %v, want %v", step, got, k.m)
				}
			}
		}
		// Sometimes mutate a kept original too: the copy must not see it.
		if len(kept) > 0 && r.IntN(50) == 0 {
			k := &kept[r.IntN(len(kept))]
			mem := "orig" + strconv.Itoa(r.IntN(10))
			if _, ok := k.z.score(mem); !ok {
				k.z.add(mem, 1)
				k.m = append(k.m, zmember{mem, 1})
				k.m.sort()
			}
		}
	}
	zsetCheck(t, z)

	// Encoding round trip.
	enc := z.appendTo(nil)
	d, err := decodeZSet(enc)
	if err != nil {
		t.Fatal(err)
	}
	zsetCheck(t, d.(*zset))
	if got := zsetElems(d.(*zset)); !slices.Equal(got, m) {
		t.Fatal("decoded set differs")
	}
	for _, bad := range [][]byte{enc[:len(enc)-1], append(slices.Clone(enc), 0), {2, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := decodeZSet(bad); err == nil {
			t.Errorf("corrupt encoding %x decoded", bad[:min(len(bad), 24)])
		}
	}
}

// A big set stays balanced: height within AVL's bound.
func TestZSetTreeHeight(t *testing.T) {
	z := newZSet()
	for i := range 100000 {
		z.add(fmt.Sprintf("m%07d", i), float64(i%1000))
	}
	if h := z.root.height; float64(h) > 1.45*math.Log2(100000)+2 {
		t.Fatalf("height %d for 100000 elements", h)
	}
	zsetCheck(t, z)
}
