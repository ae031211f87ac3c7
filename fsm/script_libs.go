package fsm

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	lua "github.com/yuin/gopher-lua"
)

// cjson (as lua-cjson 2.1 with Redis's defaults) and bit (as LuaBitOp:
// signed 32-bit results), written in Go for the script runtime. Object
// keys are encoded in the table's iteration order, which in gopher-lua is
// insertion order: the same on every node (lua-cjson's is hash order).

func (vm *luaVM) cjsonLib() *lua.LTable {
	L := vm.L
	t := L.NewTable()
	null := L.NewUserData()
	vm.null = null
	L.SetFuncs(t, map[string]lua.LGFunction{
		"encode": func(L *lua.LState) int {
			if L.GetTop() != 1 {
				L.RaiseError("bad argument #1 to 'encode' (expected 1 argument)")
			}
			var b strings.Builder
			vm.jsonEncode(&b, L.Get(1), 0)
			s := b.String()
			vm.charge(int64(len(s))/64, int64(len(s)))
			L.Push(lua.LString(s))
			return 1
		},
		"decode": func(L *lua.LState) int {
			s := L.CheckString(1)
			vm.charge(int64(len(s))/16, int64(len(s))*4)
			d := jsonDecoder{vm: vm, s: s}
			d.ws()
			v := d.value(0)
			d.ws()
			if d.pos < len(d.s) {
				d.fail("the end")
			}
			L.Push(v)
			return 1
		},
		"encode_keep_buffer":         func(L *lua.LState) int { return 0 },
		"encode_max_depth":           func(L *lua.LState) int { L.Push(lua.LNumber(scriptMaxJSONDepth)); return 1 },
		"decode_max_depth":           func(L *lua.LState) int { L.Push(lua.LNumber(scriptMaxJSONDepth)); return 1 },
		"encode_number_precision":    func(L *lua.LState) int { L.Push(lua.LNumber(14)); return 1 },
		"encode_sparse_array":        func(L *lua.LState) int { return 0 },
		"decode_invalid_numbers":     func(L *lua.LState) int { return 0 },
		"encode_invalid_numbers":     func(L *lua.LState) int { return 0 },
		"decode_array_with_array_mt": func(L *lua.LState) int { return 0 },
	})
	t.RawSetString("null", null)
	t.RawSetString("_NAME", lua.LString("cjson"))
	t.RawSetString("_VERSION", lua.LString("2.1.0"))
	return t
}

func (vm *luaVM) jsonEncode(b *strings.Builder, v lua.LValue, depth int) {
	L := vm.L
	if b.Len() > int(vm.ctx.alloc) {
		vm.charge(0, int64(b.Len()))
	}
	switch x := v.(type) {
	case lua.LString:
		jsonString(b, string(x))
	case lua.LNumber:
		f := float64(x)
		if math.IsInf(f, 0) || math.IsNaN(f) {
			L.RaiseError("Cannot serialise number: must not be NaN or Inf")
		}
		b.WriteString(luaNumber(f))
	case lua.LBool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case *lua.LNilType:
		b.WriteString("null")
	case *lua.LUserData:
		if x == vm.null {
			b.WriteString("null")
			return
		}
		L.RaiseError("Cannot serialise userdata: type not supported")
	case *lua.LTable:
		if depth >= scriptMaxJSONDepth {
			L.RaiseError("Cannot serialise, excessive nesting (%d)", depth+1)
		}
		vm.charge(1, 0)
		// An array if every key is a positive integer and it is not
		// excessively sparse (lua-cjson's defaults: ratio 2, safe 10).
		max, items, array := 0, 0, true
		for k, _ := x.Next(lua.LNil); k != lua.LNil; k, _ = x.Next(k) {
			items++
			n, ok := k.(lua.LNumber)
			if !ok || float64(n) != math.Floor(float64(n)) || n < 1 {
				array = false
				continue
			}
			if int(n) > max {
				max = int(n)
			}
		}
		vm.charge(int64(items), int64(items)*8)
		if array && items > 0 && max > items*2 && max > 10 {
			L.RaiseError("Cannot serialise table: excessively sparse array")
		}
		if array && items > 0 {
			b.WriteByte('[')
			for i := 1; i <= max; i++ {
				if i > 1 {
					b.WriteByte(',')
				}
				vm.jsonEncode(b, rawGeti(x, i), depth+1)
			}
			b.WriteByte(']')
			return
		}
		b.WriteByte('{')
		first := true
		for k, e := x.Next(lua.LNil); k != lua.LNil; k, e = x.Next(k) {
			var key string
			switch kk := k.(type) {
			case lua.LString:
				key = string(kk)
			case lua.LNumber:
				key = luaNumber(float64(kk))
			default:
				L.RaiseError("Cannot serialise table: table key must be a number or string")
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			jsonString(b, key)
			b.WriteByte(':')
			vm.jsonEncode(b, e, depth+1)
		}
		b.WriteByte('}')
	default:
		L.RaiseError("Cannot serialise %s: type not supported", v.Type().String())
	}
}

// jsonString escapes as lua-cjson does (it escapes '/' too).
func jsonString(b *strings.Builder, s string) {
	const hexd = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '/':
			b.WriteString(`\/`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 || c == 0x7f {
				b.WriteString(`\u00`)
				b.WriteByte(hexd[c>>4])
				b.WriteByte(hexd[c&15])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}

type jsonDecoder struct {
	vm  *luaVM
	s   string
	pos int
}

func (d *jsonDecoder) fail(expected string) {
	found := "the end"
	if d.pos < len(d.s) {
		found = "'" + string(d.s[d.pos]) + "'"
	}
	d.vm.L.RaiseError("Expected %s but found invalid token at character %d (found %s)", expected, d.pos+1, found)
}

func (d *jsonDecoder) ws() {
	for d.pos < len(d.s) && strings.IndexByte(" \t\r\n", d.s[d.pos]) >= 0 {
		d.pos++
	}
}

func (d *jsonDecoder) value(depth int) lua.LValue {
	L := d.vm.L
	if depth >= scriptMaxJSONDepth {
		L.RaiseError("Found too many nested data structures (%d) at character %d", depth+1, d.pos+1)
	}
	if d.pos >= len(d.s) {
		d.fail("value")
	}
	switch c := d.s[d.pos]; {
	case c == '{':
		d.pos++
		t := L.NewTable()
		d.ws()
		if d.pos < len(d.s) && d.s[d.pos] == '}' {
			d.pos++
			return t
		}
		for {
			d.ws()
			if d.pos >= len(d.s) || d.s[d.pos] != '"' {
				d.fail("object key string")
			}
			k := d.str()
			d.ws()
			if d.pos >= len(d.s) || d.s[d.pos] != ':' {
				d.fail("colon")
			}
			d.pos++
			d.ws()
			t.RawSetString(k, d.value(depth+1))
			d.ws()
			if d.pos < len(d.s) && d.s[d.pos] == ',' {
				d.pos++
				continue
			}
			if d.pos < len(d.s) && d.s[d.pos] == '}' {
				d.pos++
				return t
			}
			d.fail("comma or object end")
		}
	case c == '[':
		d.pos++
		t := L.NewTable()
		d.ws()
		if d.pos < len(d.s) && d.s[d.pos] == ']' {
			d.pos++
			return t
		}
		for i := 1; ; i++ {
			d.ws()
			t.RawSetInt(i, d.value(depth+1))
			d.ws()
			if d.pos < len(d.s) && d.s[d.pos] == ',' {
				d.pos++
				continue
			}
			if d.pos < len(d.s) && d.s[d.pos] == ']' {
				d.pos++
				return t
			}
			d.fail("comma or array end")
		}
	case c == '"':
		return lua.LString(d.str())
	case c == '-' || c >= '0' && c <= '9':
		start := d.pos
		for d.pos < len(d.s) && strings.IndexByte("+-0123456789.eE", d.s[d.pos]) >= 0 {
			d.pos++
		}
		f, err := strconv.ParseFloat(d.s[start:d.pos], 64)
		if err != nil && !strings.Contains(err.Error(), "range") {
			d.pos = start
			d.fail("value")
		}
		return lua.LNumber(f)
	case strings.HasPrefix(d.s[d.pos:], "true"):
		d.pos += 4
		return lua.LTrue
	case strings.HasPrefix(d.s[d.pos:], "false"):
		d.pos += 5
		return lua.LFalse
	case strings.HasPrefix(d.s[d.pos:], "null"):
		d.pos += 4
		return d.vm.null
	}
	d.fail("value")
	return lua.LNil
}

func (d *jsonDecoder) str() string {
	d.pos++ // opening quote
	var b strings.Builder
	for {
		if d.pos >= len(d.s) {
			d.fail("string end")
		}
		c := d.s[d.pos]
		switch {
		case c == '"':
			d.pos++
			return b.String()
		case c == '\\':
			d.pos++
			if d.pos >= len(d.s) {
				d.fail("escape")
			}
			e := d.s[d.pos]
			d.pos++
			switch e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				if d.pos+4 > len(d.s) {
					d.fail("unicode escape")
				}
				n, err := strconv.ParseUint(d.s[d.pos:d.pos+4], 16, 32)
				if err != nil {
					d.fail("unicode escape")
				}
				d.pos += 4
				r := rune(n)
				if r >= 0xd800 && r < 0xdc00 && d.pos+6 <= len(d.s) && d.s[d.pos] == '\\' && d.s[d.pos+1] == 'u' {
					if lo, err := strconv.ParseUint(d.s[d.pos+2:d.pos+6], 16, 32); err == nil && lo >= 0xdc00 && lo < 0xe000 {
						r = (r-0xd800)<<10 + (rune(lo) - 0xdc00) + 0x10000
						d.pos += 6
					}
				}
				var buf [4]byte
				b.Write(buf[:utf8.EncodeRune(buf[:], r)])
			default:
				d.fail("escape")
			}
		case c < 0x20:
			d.fail("string char")
		default:
			b.WriteByte(c)
			d.pos++
		}
	}
}

// --- bit (LuaBitOp) ---------------------------------------------------------

// tobit normalizes a number to a signed 32-bit integer as LuaBitOp does
// (round to nearest, then modulo 2^32).
func tobit(f float64) int32 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return math.MinInt32 // as the double-add trick yields on x86-64
	}
	f = math.RoundToEven(f)
	m := math.Mod(f, 4294967296)
	if m < 0 {
		m += 4294967296
	}
	return int32(uint32(m))
}

func (vm *luaVM) bitLib() *lua.LTable {
	L := vm.L
	t := L.NewTable()
	arg := func(L *lua.LState, i int) int32 { return tobit(float64(L.CheckNumber(i))) }
	push := func(L *lua.LState, v int32) int { L.Push(lua.LNumber(v)); return 1 }
	fold := func(op func(a, b int32) int32) lua.LGFunction {
		return func(L *lua.LState) int {
			v := arg(L, 1)
			for i := 2; i <= L.GetTop(); i++ {
				v = op(v, arg(L, i))
			}
			return push(L, v)
		}
	}
	shift := func(op func(a int32, n uint) int32) lua.LGFunction {
		return func(L *lua.LState) int { return push(L, op(arg(L, 1), uint(arg(L, 2))&31)) }
	}
	L.SetFuncs(t, map[string]lua.LGFunction{
		"tobit":   func(L *lua.LState) int { return push(L, arg(L, 1)) },
		"bnot":    func(L *lua.LState) int { return push(L, ^arg(L, 1)) },
		"band":    fold(func(a, b int32) int32 { return a & b }),
		"bor":     fold(func(a, b int32) int32 { return a | b }),
		"bxor":    fold(func(a, b int32) int32 { return a ^ b }),
		"lshift":  shift(func(a int32, n uint) int32 { return int32(uint32(a) << n) }),
		"rshift":  shift(func(a int32, n uint) int32 { return int32(uint32(a) >> n) }),
		"arshift": shift(func(a int32, n uint) int32 { return a >> n }),
		"rol": shift(func(a int32, n uint) int32 {
			u := uint32(a)
			return int32(u<<n | u>>((32-n)&31))
		}),
		"ror": shift(func(a int32, n uint) int32 {
			u := uint32(a)
			return int32(u>>n | u<<((32-n)&31))
		}),
		"bswap": func(L *lua.LState) int {
			u := uint32(arg(L, 1))
			return push(L, int32(u>>24|(u>>8)&0xff00|(u<<8)&0xff0000|u<<24))
		},
		"tohex": func(L *lua.LState) int {
			v := uint32(arg(L, 1))
			n := int32(8)
			if L.GetTop() >= 2 {
				n = arg(L, 2)
			}
			digits := "0123456789abcdef"
			if n < 0 {
				n, digits = -n, "0123456789ABCDEF"
			}
			if n > 8 {
				n = 8
			}
			buf := make([]byte, n)
			for i := int(n) - 1; i >= 0; i-- {
				buf[i] = digits[v&15]
				v >>= 4
			}
			L.Push(lua.LString(buf))
			return 1
		},
	})
	return t
}
