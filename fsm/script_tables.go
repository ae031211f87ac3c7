package fsm

import (
	"reflect"
	"sort"

	lua "github.com/yuin/gopher-lua"
)

// The length operator and the table library on Lua 5.1's border search,
// in O(log n): gopher-lua's LTable.Len scans the array part from its end
// past every trailing nil (`t[131000] = 1; t[131000] = nil` makes each
// `#t` scan 131000 slots), and sees only the array part, which scripts
// keep below lua.MaxArrayIndex (see script_lua.go). `#e` is compiled into
// a call of vm.length (compileScript's rewriter).

// arrayField is the index of LTable's array slice (gopher-lua v1.1.1),
// read through reflection for its length only.
var arrayField = func() int {
	f, ok := reflect.TypeOf(lua.LTable{}).FieldByName("array")
	if !ok {
		panic("fsm: gopher-lua's LTable has no array field: is it still v1.1.1?")
	}
	return f.Index[0]
}()

func arrayLen(t *lua.LTable) int { return reflect.ValueOf(t).Elem().Field(arrayField).Len() }

// border is Lua 5.1's luaH_getn: a binary search in the array part when
// its last slot is nil, else an unbound search beyond it.
func border(t *lua.LTable) int {
	j := arrayLen(t)
	if j > 0 && rawGeti(t, j) == lua.LNil {
		i := 0
		for j-i > 1 {
			m := (i + j) / 2
			if rawGeti(t, m) == lua.LNil {
				j = m
			} else {
				i = m
			}
		}
		return i
	}
	i := j
	j++
	for rawGeti(t, j) != lua.LNil {
		i = j
		if j > 1<<40 {
			return i
		}
		j *= 2
	}
	for j-i > 1 {
		m := (i + j) / 2
		if rawGeti(t, m) == lua.LNil {
			j = m
		} else {
			i = m
		}
	}
	return i
}

// length is the `#` operator.
func (vm *luaVM) length(L *lua.LState) int {
	switch v := L.Get(1).(type) {
	case lua.LString:
		L.Push(lua.LNumber(len(v)))
	case *lua.LTable:
		L.Push(lua.LNumber(border(v)))
	default:
		if mm := L.GetMetaField(v, "__len"); mm != lua.LNil {
			L.Push(mm)
			L.Push(v)
			L.Call(1, 1)
			return 1
		}
		L.RaiseError("attempt to get length of a %s value", v.Type().String())
	}
	return 1
}

func (vm *luaVM) tableLib(tbl *lua.LTable) {
	L := vm.L
	aux := L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		i := L.CheckInt(2) + 1
		v := rawGeti(t, i)
		if v == lua.LNil {
			return 0
		}
		L.Push(lua.LNumber(i))
		L.Push(v)
		return 2
	})
	vm.realG.RawSetString("ipairs", L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		L.Push(aux)
		L.Push(t)
		L.Push(lua.LNumber(0))
		return 3
	}))
	tbl.RawSetString("getn", L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LNumber(border(L.CheckTable(1))))
		return 1
	}))
	tbl.RawSetString("maxn", L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		var m float64
		n := int64(0)
		for k, _ := t.Next(lua.LNil); k != lua.LNil; k, _ = t.Next(k) {
			n++
			if f, ok := k.(lua.LNumber); ok && float64(f) > m {
				m = float64(f)
			}
		}
		vm.charge(n/8, 0)
		L.Push(lua.LNumber(m))
		return 1
	}))
	tbl.RawSetString("insert", L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		n := border(t)
		switch L.GetTop() {
		case 2:
			t.RawSetInt(n+1, L.Get(2))
		case 3:
			pos := L.CheckInt(2)
			if pos > n+1 || pos < 1 {
				n = max(n, pos-1) // Lua 5.1 grows to pos
			}
			vm.charge(int64(n-pos+1), 0)
			for i := n + 1; i > pos; i-- {
				t.RawSetInt(i, rawGeti(t, i-1))
			}
			t.RawSetInt(pos, L.Get(3))
		default:
			L.RaiseError("wrong number of arguments to 'insert'")
		}
		return 0
	}))
	tbl.RawSetString("remove", L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		n := border(t)
		if n == 0 {
			return 0
		}
		pos := L.OptInt(2, n)
		v := rawGeti(t, pos)
		vm.charge(int64(n-pos), 0)
		for i := pos; i < n; i++ {
			t.RawSetInt(i, rawGeti(t, i+1))
		}
		t.RawSetInt(n, lua.LNil)
		L.Push(v)
		return 1
	}))
	tbl.RawSetString("sort", L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		var fn *lua.LFunction
		if L.GetTop() >= 2 && L.Get(2) != lua.LNil {
			fn = L.CheckFunction(2)
		}
		n := border(t)
		vm.charge(int64(n)*int64(bitsLen(int64(n))+1), int64(n)*16)
		vals := make([]lua.LValue, n)
		for i := range vals {
			vals[i] = rawGeti(t, i+1)
		}
		sort.Slice(vals, func(a, b int) bool {
			if fn == nil {
				return L.LessThan(vals[a], vals[b])
			}
			L.Push(fn)
			L.Push(vals[a])
			L.Push(vals[b])
			L.Call(2, 1)
			r := L.Get(-1)
			L.Pop(1)
			return lua.LVAsBool(r)
		})
		for i, v := range vals {
			t.RawSetInt(i+1, v)
		}
		return 0
	}))
}

// rawGeti is t[i] without metamethods, in the array part or the hash
// part (LTable.RawGetInt looks in the array part only).
func rawGeti(t *lua.LTable, i int) lua.LValue { return t.RawGet(lua.LNumber(i)) }
