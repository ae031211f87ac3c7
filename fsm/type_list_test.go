package fsm

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestListObjModel drives the persistent list through random edits and
// checks it against a plain slice after every step, and that every
// earlier version (a published state's view) kept its contents: the
// structure is shared between versions, so a bug in its copying shows
// up as an old version that changed.
func TestListObjModel(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		o := newList().(*listObj)
		var model []string
		type version struct {
			o    *listObj
			want []string
		}
		var versions []version
		elem := func() string {
			if r.IntN(10) == 0 {
				return "" // empty strings are elements too
			}
			return fmt.Sprint(r.IntN(1000))
		}
		steps := 3000
		if seed == 1 {
			steps = 60000 // long enough for the trie to grow and shrink levels
		}
		for step := 0; step < steps; step++ {
			n := len(model)
			// Bias towards growth at first, then towards queue use.
			switch x := r.IntN(100); {
			case x < 22:
				v := elem()
				o.push(v, true)
				model = slices.Insert(model, 0, v)
			case x < 44:
				v := elem()
				o.push(v, false)
				model = append(model, v)
			case x < 60 && n > 0:
				v := o.pop(true)
				if v != model[0] {
					t.Fatalf("seed %d step %d: pop left %q, want %q", seed, step, v, model[0])
				}
				model = model[1:]
			case x < 76 && n > 0:
				v := o.pop(false)
				if v != model[n-1] {
					t.Fatalf("seed %d step %d: pop right %q, want %q", seed, step, v, model[n-1])
				}
				model = model[:n-1]
			case x < 84 && n > 0:
				i, v := r.IntN(n), elem()
				o.set(i, v)
				model = slices.Clone(model)
				model[i] = v
			case x < 92:
				lo := r.IntN(n + 1)
				hi := lo + r.IntN(n-lo+1)
				var with []string
				for k := r.IntN(4); k > 0; k-- {
					with = append(with, elem())
				}
				o.splice(lo, hi, with)
				model = slices.Concat(model[:lo:lo], with, model[hi:])
			case x < 94 && n > 0:
				lo := r.IntN(n)
				hi := lo + r.IntN(n-lo+1)
				o.keep(lo, hi)
				model = slices.Clone(model[lo:hi])
			default:
				// Publish: keep a clone as an older state would.
				versions = append(versions, version{o, slices.Clone(model)})
				o = o.clone().(*listObj)
			}
			if step%97 == 0 || step == steps-1 {
				checkListObj(t, fmt.Sprintf("seed %d step %d", seed, step), o, model)
			}
		}
		for i, v := range versions {
			checkListObj(t, fmt.Sprintf("seed %d version %d", seed, i), v.o, v.want)
		}
	}
}

func checkListObj(t *testing.T, where string, o *listObj, want []string) {
	t.Helper()
	if o.length() != len(want) {
		t.Fatalf("%s: length %d, want %d", where, o.length(), len(want))
	}
	var bytes int64
	for _, v := range want {
		bytes += int64(len(v))
	}
	if o.bytes != bytes {
		t.Fatalf("%s: bytes %d, want %d", where, o.bytes, bytes)
	}
	if got := o.slice(0, o.length()); !slices.Equal(got, want) {
		t.Fatalf("%s: elements differ\n got %q\nwant %q", where, got, want)
	}
	for i := range want {
		if o.get(i) != want[i] {
			t.Fatalf("%s: get(%d) = %q, want %q", where, i, o.get(i), want[i])
		}
	}
	var rev []string
	o.eachReverse(0, o.length(), func(_ int, v string) bool { rev = append(rev, v); return true })
	slices.Reverse(rev)
	if !slices.Equal(rev, want) {
		t.Fatalf("%s: reverse iteration differs", where)
	}
	// The encoding reads back to the same list.
	d, err := decodeList(o.appendTo(nil))
	if err != nil {
		t.Fatalf("%s: decode: %v", where, err)
	}
	if got := d.(*listObj).slice(0, len(want)); !slices.Equal(got, want) || d.(*listObj).bytes != bytes {
		t.Fatalf("%s: decoded list differs", where)
	}
}
