package fsm

import (
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/raftcache/raftcache/fsm/luapm"
)

// string.find, match, gmatch and gsub on luapm (gopher-lua's matcher with
// a step budget and an explicit backtracking stack): every step counts
// against the script's instruction budget, and gsub builds its result in
// one pass (gopher-lua's copies the string once per match).

// maxCaptures is Lua 5.1's LUA_MAXCAPTURES.
const maxCaptures = 32

// patternFind runs luapm.Find with the script's budget.
func (vm *luaVM) patternFind(pattern, str string, offset, limit int) []*luapm.MatchData {
	L := vm.L
	depth, caps := 0, 0
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '%':
			i++
		case '(':
			depth++
			caps++
		case ')':
			depth--
		}
	}
	if caps > maxCaptures {
		L.RaiseError("too many captures")
	}
	steps := vm.ctx.left
	mds, err := func() (mds []*luapm.MatchData, err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == luapm.ErrSteps {
					err = luapm.ErrSteps
					return
				}
				panic(r)
			}
		}()
		return luapm.Find(pattern, []byte(str), offset, limit, &steps)
	}()
	used := vm.ctx.left - steps
	if err == luapm.ErrSteps {
		used = vm.ctx.left + 1
	}
	vm.charge(used, int64(len(mds))*48)
	if err != nil {
		L.RaiseError("%s", err.Error())
	}
	return mds
}

// luaStrIndex converts Lua's 1-based (negative: from the end) init to a
// 0-based offset, as gopher-lua's luaIndex2StringIndex.
func luaStrIndex(str string, i int, start bool) int {
	if start && i != 0 {
		i--
	}
	l := len(str)
	if i < 0 {
		i = l + i + 1
		if i < 0 {
			i = 0
		}
	} else if i > l {
		i = l
	}
	return i
}

func pushCaptures(L *lua.LState, md *luapm.MatchData, str string, whole bool) int {
	if md.CaptureLength() == 2 {
		if whole {
			L.Push(lua.LString(str[md.Capture(0):md.Capture(1)]))
			return 1
		}
		return 0
	}
	n := 0
	for i := 2; i < md.CaptureLength(); i += 2 {
		if md.IsPosCapture(i) {
			L.Push(lua.LNumber(md.Capture(i)))
		} else {
			L.Push(lua.LString(str[md.Capture(i):md.Capture(i+1)]))
		}
		n++
	}
	return n
}

func (vm *luaVM) strFind(L *lua.LState) int {
	str := L.CheckString(1)
	pattern := L.CheckString(2)
	init := luaStrIndex(str, L.OptInt(3, 1), true)
	if init > len(str) {
		L.Push(lua.LNil)
		return 1
	}
	plain := L.GetTop() >= 4 && lua.LVAsBool(L.Get(4))
	if plain || !strings.ContainsAny(pattern, "^$*+?.([%-") {
		vm.charge(int64(len(str)-init)/64, 0)
		pos := strings.Index(str[init:], pattern)
		if pos < 0 {
			L.Push(lua.LNil)
			return 1
		}
		L.Push(lua.LNumber(init + pos + 1))
		L.Push(lua.LNumber(init + pos + len(pattern)))
		return 2
	}
	mds := vm.patternFind(pattern, str, init, 1)
	if len(mds) == 0 {
		L.Push(lua.LNil)
		return 1
	}
	md := mds[0]
	L.Push(lua.LNumber(md.Capture(0) + 1))
	L.Push(lua.LNumber(md.Capture(1)))
	return 2 + pushCaptures(L, md, str, false)
}

func (vm *luaVM) strMatch(L *lua.LState) int {
	str := L.CheckString(1)
	pattern := L.CheckString(2)
	offset := luaStrIndex(str, L.OptInt(3, 1), true)
	if offset > len(str) {
		L.Push(lua.LNil)
		return 1
	}
	mds := vm.patternFind(pattern, str, offset, 1)
	if len(mds) == 0 {
		L.Push(lua.LNil)
		return 1
	}
	return pushCaptures(L, mds[0], str, true)
}

func (vm *luaVM) strGmatch(L *lua.LState) int {
	str := L.CheckString(1)
	pattern := L.CheckString(2)
	mds := vm.patternFind(pattern, str, 0, -1)
	i := 0
	L.Push(L.NewFunction(func(L *lua.LState) int {
		if i >= len(mds) {
			return 0
		}
		md := mds[i]
		i++
		return pushCaptures(L, md, str, true)
	}))
	return 1
}

// capture is capture n (0: the whole match, or 1 when there are none) of
// md as a string, for gsub's replacements.
func capture(L *lua.LState, md *luapm.MatchData, str string, n int) lua.LValue {
	if n == 0 || n == 1 && md.CaptureLength() == 2 {
		return lua.LString(str[md.Capture(0):md.Capture(1)])
	}
	i := 2 * n
	if i >= md.CaptureLength() {
		L.RaiseError("invalid capture index")
	}
	if md.IsPosCapture(i) {
		return lua.LNumber(md.Capture(i))
	}
	return lua.LString(str[md.Capture(i):md.Capture(i+1)])
}

func (vm *luaVM) strGsub(L *lua.LState) int {
	str := L.CheckString(1)
	pattern := L.CheckString(2)
	L.CheckTypes(3, lua.LTString, lua.LTNumber, lua.LTTable, lua.LTFunction)
	repl := L.Get(3)
	limit := L.OptInt(4, -1)
	if limit < 0 {
		limit = -1
	}
	var mds []*luapm.MatchData
	if limit != 0 {
		mds = vm.patternFind(pattern, str, 0, limit)
	}
	var b strings.Builder
	last := 0
	for _, md := range mds {
		start, end := md.Capture(0), md.Capture(1)
		b.WriteString(str[last:start])
		last = end
		var value lua.LValue
		switch r := repl.(type) {
		case lua.LString, lua.LNumber:
			s, _ := luaStr(r)
			for i := 0; i < len(s); i++ {
				c := s[i]
				if c != '%' || i+1 == len(s) {
					b.WriteByte(c)
					continue
				}
				i++
				if d := s[i]; d >= '0' && d <= '9' {
					v, _ := luaStr(capture(L, md, str, int(d-'0')))
					b.WriteString(v)
				} else {
					b.WriteByte(d)
				}
			}
			value = nil
		case *lua.LTable:
			value = L.GetTable(r, capture(L, md, str, 1))
		case *lua.LFunction:
			L.Push(r)
			n := 1
			if md.CaptureLength() > 2 {
				n = pushCaptures(L, md, str, false)
			} else {
				L.Push(capture(L, md, str, 0))
			}
			L.Call(n, 1)
			value = L.Get(-1)
			L.Pop(1)
		}
		if value != nil {
			if lua.LVIsFalse(value) {
				b.WriteString(str[start:end])
			} else if s, ok := luaStr(value); ok {
				b.WriteString(s)
			} else {
				L.RaiseError("invalid replacement value (a %s)", value.Type().String())
			}
		}
		if int64(b.Len()) > vm.ctx.alloc {
			vm.charge(0, int64(b.Len()))
		}
	}
	b.WriteString(str[last:])
	vm.charge(int64(len(mds)), 0)
	L.Push(lua.LString(b.String()))
	L.Push(lua.LNumber(len(mds)))
	return 2
}
