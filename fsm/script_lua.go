package fsm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// The Lua runtime of EVAL and friends (gopher-lua v1.1.1, Lua 5.1, as in
// Redis). A script runs inside the state machine on every node, so every
// run must be a function of the log alone:
//
//   - time is the entry's leader time (Tx.now), frozen for the whole run;
//   - math.random is a generator seeded from the entry's index and the
//     script's position in it (Tx.seed), never Go's global one;
//   - globals and library tables are read-only (as in Redis 7): a script
//     writes neither to them nor, through rawset or metatables, to the
//     tables behind them, and a pooled interpreter is checked back to its
//     pristine state after every run;
//   - the budget is an instruction count, not a clock: gopher-lua v1.1.1's
//     VM loop calls ctx.Done() once per instruction after SetContext, and
//     budgetCtx.Done counts the calls (TestScriptBudgetCount pins it);
//   - builtins that do unbounded work or allocate in one instruction
//     (string.rep, concatenation, table.concat, unpack, string.format
//     widths, table.sort, cjson) are charged against the instruction
//     budget and a per-run allocation budget before they run;
//   - os, io, load*, dofile, require, debug, coroutines, getfenv/setfenv
//     and print are not there.
//
// The runtime is therefore part of the replicated state machine: its
// version belongs to the cluster's feature level, and the members of a
// cluster must run one CPU architecture (floating point may differ).

// Script limits. They are part of the state machine's semantics (a
// script stopped on one node is stopped on every node at the same
// instruction): changing one needs a new feature level.
const (
	// ScriptMaxInstructions is a run's instruction budget.
	ScriptMaxInstructions = 20_000_000
	// ScriptMaxAlloc bounds the bytes of strings and tables a run builds
	// through builtins and concatenation.
	ScriptMaxAlloc = 32 << 20
	// ScriptMaxBody bounds a script's source, in bytes.
	ScriptMaxBody = 1 << 20
	// ScriptMaxDepth bounds the nesting of a script's syntax tree, so the
	// compiler's recursion never overflows the Go stack.
	ScriptMaxDepth = 200
	// scriptMaxStack bounds the Lua value stack (unpack, deep recursion).
	scriptMaxStack = 1 << 18
	// scriptMaxCallDepth bounds Lua call depth.
	scriptMaxCallDepth = 200
	// scriptMaxJSONDepth bounds cjson nesting, as lua-cjson's default.
	scriptMaxJSONDepth = 1000
)

// Error texts for stopped scripts: identical on every node.
const (
	msgScriptBudget = "ERR script exceeded its instruction budget (" + "20000000" + " instructions) and was stopped; nothing it wrote was kept"
	msgScriptAlloc  = "ERR script exceeded its memory budget (32 MiB) and was stopped; nothing it wrote was kept"
)

func init() {
	// An integer key past the end of a table's array part makes gopher-lua
	// fill the gap with nils in one instruction: vm.set charges the gap
	// before the store, and keys beyond this index go to the hash part.
	lua.MaxArrayIndex = 1 << 22
}

// errBudget is the error the VM raises when the budget is spent.
var errBudget = errors.New("script budget exhausted")

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// budgetCtx is a context.Context whose Done counts the VM's instructions:
// gopher-lua's mainLoopWithContext selects on Done() before each one.
type budgetCtx struct {
	left    int64 // instructions left
	alloc   int64 // bytes left
	stopped string
}

func (c *budgetCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *budgetCtx) Value(any) any               { return nil }
func (c *budgetCtx) Err() error                  { return errBudget }

func (c *budgetCtx) Done() <-chan struct{} {
	c.left--
	if c.left < 0 || c.stopped != "" {
		if c.stopped == "" {
			c.stopped = msgScriptBudget
		}
		return closedChan
	}
	return nil
}

var _ context.Context = (*budgetCtx)(nil)

// charge takes n instructions and bytes allocated by a builtin, raising
// the script's stop when either budget is spent. Once stopped, every
// following instruction fails too, so pcall cannot swallow the stop.
func (vm *luaVM) charge(instr, bytes int64) {
	c := vm.ctx
	c.left -= instr
	c.alloc -= bytes
	switch {
	case c.alloc < 0:
		c.stopped = msgScriptAlloc
	case c.left < 0 && c.stopped == "":
		c.stopped = msgScriptBudget
	}
	if c.stopped != "" {
		vm.L.RaiseError("%s", c.stopped)
	}
}

// luaVM is one pooled interpreter with its protected environment.
type luaVM struct {
	L       *lua.LState
	ctx     *budgetCtx
	realG   *lua.LTable   // the globals behind the read-only proxy
	proxies []*lua.LTable // read-only views handed to scripts (globals, libraries)
	metas   []*lua.LTable // their metatables, in the same order
	strMeta *lua.LTable   // the string metatable, and its pristine fields
	strIdx  lua.LValue

	run     *scriptRun     // the run in progress
	null    *lua.LUserData // cjson.null
	helpers []lua.LValue   // concat, length, set, newValue: every chunk's hidden locals
}

// scriptRun is what one execution needs from outside the VM.
type scriptRun struct {
	t        *Tx
	sha      string
	readOnly bool // no writes allowed (EVAL_RO, no-writes flag, a view)
	resp     int  // protocol of redis.call replies (redis.setresp)
	rng      uint64
	errLine  string             // where redis.call raised its error (user_script:N:)
	ids      map[lua.LValue]int // objects tostring printed (objectID)
}

var vmPool = sync.Pool{New: func() any { return newVM() }}

// newVM builds an interpreter with the libraries a Redis script sees.
func newVM() *luaVM {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:     true,
		CallStackSize:    scriptMaxCallDepth,
		RegistrySize:     1024,
		RegistryMaxSize:  scriptMaxStack,
		RegistryGrowStep: 1024,
	})
	vm := &luaVM{L: L, ctx: &budgetCtx{}}
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	g := L.G.Global
	vm.realG = g
	for _, name := range []string{"dofile", "loadfile", "load", "loadstring", "require", "module", "getfenv", "setfenv",
		"_printregs", "newproxy", "_GOPHER_LUA_VERSION", "package", "os", "io", "debug", "coroutine", "channel"} {
		g.RawSetString(name, lua.LNil)
	}
	g.RawSetString("print", L.NewFunction(func(L *lua.LState) int { return 0 }))
	g.RawSetString("collectgarbage", L.NewFunction(func(L *lua.LState) int { L.Push(lua.LNumber(0)); return 1 }))
	g.RawSetString("getmetatable", L.NewFunction(luaGetMetatable))
	g.RawSetString("tostring", L.NewFunction(vm.toString))
	g.RawSetString("unpack", L.NewFunction(vm.unpack))
	g.RawSetString("tonumber", L.NewFunction(luaToNumber))
	origError := g.RawGetString("error").(*lua.LFunction)
	g.RawSetString("error", L.NewFunction(func(L *lua.LState) int {
		if _, ok := L.Get(1).(*lua.LTable); ok && vm.run != nil {
			vm.run.errLine = L.Where(max(L.OptInt(2, 1), 1))
		}
		return vm.callOrig(origError)
	}))
	// As Redis's: an error table caught by pcall comes back as its message.
	for _, name := range []string{"pcall", "xpcall"} {
		orig := g.RawGetString(name).(*lua.LFunction)
		g.RawSetString(name, L.NewFunction(func(L *lua.LState) int {
			vm.charge(costPcall, 0)
			n := vm.callOrig(orig)
			if n >= 1 && L.Get(1) == lua.LFalse {
				vm.charge(costCaught, 0) // unwinding a Lua error is a Go panic and recover
			}
			if n >= 2 && L.Get(1) == lua.LFalse {
				switch e := L.Get(2).(type) {
				case *lua.LTable:
					if msg, ok := e.RawGetString("err").(lua.LString); ok {
						L.Replace(2, msg)
					}
				case lua.LString:
					L.Replace(2, lua.LString(noAddresses(string(e))))
				}
			}
			return n
		}))
	}

	str := g.RawGetString("string").(*lua.LTable)
	str.RawSetString("find", L.NewFunction(vm.strFind))
	str.RawSetString("match", L.NewFunction(vm.strMatch))
	str.RawSetString("gmatch", L.NewFunction(vm.strGmatch))
	str.RawSetString("gsub", L.NewFunction(vm.strGsub))
	vm.wrapString(str)
	tbl := g.RawGetString("table").(*lua.LTable)
	tbl.RawSetString("concat", L.NewFunction(vm.tableConcat))
	vm.tableLib(tbl)
	m := g.RawGetString("math").(*lua.LTable)
	m.RawSetString("random", L.NewFunction(vm.mathRandom))
	m.RawSetString("randomseed", L.NewFunction(vm.mathRandomSeed))
	g.RawSetString("redis", vm.redisLib())
	g.RawSetString("cjson", vm.cjsonLib())
	g.RawSetString("bit", vm.bitLib())

	// Every builtin call costs instructions beyond its CALL: a Go call is
	// worth some twenty VM instructions.
	for _, name := range []string{"", "string", "table", "math", "redis", "cjson", "bit"} {
		lib := g
		if name != "" {
			lib = g.RawGetString(name).(*lua.LTable)
		}
		vm.chargeCalls(lib, costCall)
	}

	// Read-only views: every library table a script can name is reached
	// through an empty proxy whose metatable refuses writes and is itself
	// protected; the globals too, which also refuse unknown names.
	ro := L.NewFunction(func(L *lua.LState) int { L.RaiseError("Attempt to modify a readonly table"); return 0 })
	for _, name := range []string{"string", "table", "math", "redis", "cjson", "bit"} {
		lib := g.RawGetString(name).(*lua.LTable)
		p, mt := L.NewTable(), L.NewTable()
		mt.RawSetString("__index", lib)
		mt.RawSetString("__newindex", ro)
		mt.RawSetString("__metatable", lua.LFalse)
		L.SetMetatable(p, mt)
		g.RawSetString(name, p)
		vm.proxies, vm.metas = append(vm.proxies, p), append(vm.metas, mt)
	}
	gp, gmt := L.NewTable(), L.NewTable()
	// A global is found in the real table through a table __index (no Go
	// call per access); only a missing one reaches the Go function that
	// raises Redis's error.
	gmt.RawSetString("__index", g)
	missing := L.NewTable()
	missing.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("Script attempted to access nonexistent global variable '%s'", lua.LVAsString(L.Get(2)))
		return 0
	}))
	L.SetMetatable(g, missing)
	gmt.RawSetString("__newindex", ro)
	gmt.RawSetString("__metatable", lua.LFalse)
	L.SetMetatable(gp, gmt)
	g.RawSetString("_G", gp)
	vm.proxies, vm.metas = append(vm.proxies, gp), append(vm.metas, gmt)
	if mt, ok := L.GetMetatable(lua.LString("")).(*lua.LTable); ok {
		vm.strMeta, vm.strIdx = mt, mt.RawGetString("__index")
		mt.RawSetString("__metatable", lua.LFalse)
	}
	vm.helpers = []lua.LValue{L.NewFunction(vm.concat), L.NewFunction(vm.length), L.NewFunction(vm.set), L.NewFunction(vm.newValue)}
	rawset := g.RawGetString("rawset").(*lua.LFunction)
	g.RawSetString("rawset", L.NewFunction(func(L *lua.LState) int {
		if t, ok := L.Get(1).(*lua.LTable); ok {
			vm.chargeStore(t, L.Get(2), L.Get(3))
		}
		return vm.callOrig(rawset)
	}))
	L.SetContext(vm.ctx)
	return vm
}

// Instruction costs of calls that do more than one instruction's work.
const (
	costCall   = 20   // any builtin
	costPcall  = 100  // pcall, xpcall
	costCaught = 1000 // an error caught by pcall
	costRedis  = 100  // redis.call, redis.pcall
	// costRedisWrite is added for a write command (a copy-on-write store).
	costRedisWrite = 200
)

// chargeCalls makes every Go function of lib (without upvalues) cost
// cost instructions per call.
func (vm *luaVM) chargeCalls(lib *lua.LTable, cost int64) {
	var names []string
	lib.ForEach(func(k, v lua.LValue) {
		if f, ok := v.(*lua.LFunction); ok && f.IsG && len(f.Upvalues) == 0 {
			if s, ok := k.(lua.LString); ok {
				names = append(names, string(s))
			}
		}
	})
	for _, name := range names {
		fn := lib.RawGetString(name).(*lua.LFunction).GFunction
		lib.RawSetString(name, vm.L.NewFunction(func(L *lua.LState) int {
			vm.ctx.left -= cost
			return fn(L)
		}))
	}
}

// callChunk runs a compiled script in the read-only globals, with the
// hidden helpers as the chunk's varargs (compileScript's prologue makes
// them its locals).
func (vm *luaVM) callChunk(proto *lua.FunctionProto) error {
	L := vm.L
	fn := L.NewFunctionFromProto(proto)
	fn.Env = vm.globals()
	L.Push(fn)
	for _, h := range vm.helpers {
		L.Push(h)
	}
	return L.PCall(len(vm.helpers), 1, nil)
}

// Bytes charged per table entry, table, closure: rough, but every node
// counts alike, and they bound what a script can hold.
const (
	costSlot  = 16  // an integer key appended to the array part
	costEntry = 100 // a key of the hash part (gopher-lua keeps it in two maps and a slice)
	costTable = 64
	costFunc  = 128
)

// chargeStore charges t[k] = v before it is made: a new entry, and the
// nil slots gopher-lua fills when an integer key lands past the end of
// the array part.
func (vm *luaVM) chargeStore(t *lua.LTable, k, v lua.LValue) {
	if v == lua.LNil || t.RawGet(k) != lua.LNil {
		return
	}
	cost := int64(costEntry)
	if n, ok := k.(lua.LNumber); ok && float64(n) >= 1 && float64(n) < float64(lua.MaxArrayIndex) && float64(n) == math.Floor(float64(n)) {
		cost = costSlot
		if gap := int64(n) - int64(arrayLen(t)) - 1; gap > 0 {
			cost += gap * costSlot
		}
	}
	vm.charge(0, cost)
}

// set is `obj[key] = v` (compileScript rewrites table stores into it).
func (vm *luaVM) set(L *lua.LState) int {
	obj, k, v := L.Get(1), L.Get(2), L.Get(3)
	if t, ok := obj.(*lua.LTable); ok {
		if t.Metatable == lua.LNil {
			switch x := k.(type) {
			case *lua.LNilType:
				L.RaiseError("table index is nil")
			case lua.LNumber:
				if math.IsNaN(float64(x)) {
					L.RaiseError("table index is NaN")
				}
			}
			vm.chargeStore(t, k, v)
			t.RawSet(k, v)
			return 0
		}
		vm.chargeStore(t, k, v)
	}
	L.SetTable(obj, k, v)
	return 0
}

// newValue charges a table constructor or a closure and returns it.
func (vm *luaVM) newValue(L *lua.LState) int {
	v := L.Get(1)
	switch x := v.(type) {
	case *lua.LTable:
		vm.charge(0, costTable+int64(arrayLen(x))*16)
	case *lua.LFunction:
		vm.charge(0, costFunc)
	}
	L.Push(v)
	return 1
}

// globals is the environment scripts run in: the read-only proxy.
func (vm *luaVM) globals() *lua.LTable { return vm.proxies[len(vm.proxies)-1] }

// reset brings the VM back to its pristine state after a run: proxies
// empty (rawset reaches them) with their own metatables, the string
// metatable as built, the stack empty. It says false if the VM cannot be
// trusted again (then it is dropped, not pooled).
func (vm *luaVM) reset() bool {
	L := vm.L
	L.SetTop(0)
	for i, p := range vm.proxies {
		if k, _ := p.Next(lua.LNil); k != lua.LNil {
			return false
		}
		if p.Metatable != lua.LValue(vm.metas[i]) {
			return false
		}
	}
	if vm.strMeta != nil && (vm.strMeta.RawGetString("__index") != vm.strIdx || vm.strMeta.RawGetString("__metatable") != lua.LFalse) {
		return false
	}
	vm.realG.RawSetString("KEYS", lua.LNil)
	vm.realG.RawSetString("ARGV", lua.LNil)
	vm.run = nil
	return true
}

func bitsLen(n int64) int {
	b := 0
	for n > 0 {
		b++
		n >>= 1
	}
	return b
}

// callOrig calls a library's own Go function with the current arguments.
func (vm *luaVM) callOrig(fn *lua.LFunction) int {
	L := vm.L
	top := L.GetTop()
	L.Insert(fn, 1)
	L.Call(top, lua.MultRet)
	return L.GetTop()
}

// luaGetMetatable honours __metatable, as Lua 5.1's getmetatable does.
func luaGetMetatable(L *lua.LState) int {
	mt := L.GetMetatable(L.CheckAny(1))
	if t, ok := mt.(*lua.LTable); ok {
		if p := t.RawGetString("__metatable"); p != lua.LNil {
			L.Push(p)
			return 1
		}
	}
	L.Push(mt)
	return 1
}

var addressRE = regexp.MustCompile(`(table|function|userdata|thread|channel): 0x[0-9a-f]+`)

// noAddresses takes the Go addresses out of an interpreter's error
// message (gopher-lua prints a table key's address): they differ between
// nodes, and a script may store the message.
func noAddresses(msg string) string {
	if !strings.Contains(msg, ": 0x") {
		return msg
	}
	return addressRE.ReplaceAllString(msg, "$1")
}

// luaNumber formats a number as Lua 5.1 does (%.14g).
func luaNumber(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	return strconv.FormatFloat(f, 'g', 14, 64)
}

// luaStr is tostring for strings and numbers (Lua's formatting).
func luaStr(v lua.LValue) (string, bool) {
	switch x := v.(type) {
	case lua.LString:
		return string(x), true
	case lua.LNumber:
		return luaNumber(float64(x)), true
	}
	return "", false
}

// luaToNumber is tonumber as Lua 5.1's (strtod: exponents, hex, spaces).
func luaToNumber(L *lua.LState) int {
	v := L.CheckAny(1)
	base := L.OptInt(2, 10)
	if n, ok := v.(lua.LNumber); ok && base == 10 {
		L.Push(n)
		return 1
	}
	s, ok := luaStr(v)
	if !ok {
		L.Push(lua.LNil)
		return 1
	}
	s = strings.TrimSpace(s)
	if base != 10 {
		if base < 2 || base > 36 {
			L.ArgError(2, "base out of range")
		}
		n, err := strconv.ParseInt(s, base, 64)
		if err != nil {
			L.Push(lua.LNil)
		} else {
			L.Push(lua.LNumber(n))
		}
		return 1
	}
	neg := false
	h := s
	if strings.HasPrefix(h, "-") {
		neg, h = true, h[1:]
	}
	if strings.HasPrefix(h, "0x") || strings.HasPrefix(h, "0X") {
		n, err := strconv.ParseUint(h[2:], 16, 64)
		if err != nil || strings.ContainsAny(h[2:], "_+-") {
			L.Push(lua.LNil)
			return 1
		}
		f := float64(n)
		if neg {
			f = -f
		}
		L.Push(lua.LNumber(f))
		return 1
	}
	if s == "" || strings.ContainsAny(s, "_xXpP") {
		L.Push(lua.LNil)
		return 1
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(lua.LNumber(f))
	return 1
}

// toString is tostring. A table, function or userdata prints as Lua's
// "table: 0x..." with a number counted per run instead of its address,
// which differs between nodes (a script that stored it would diverge).
func (vm *luaVM) toString(L *lua.LState) int {
	v := L.CheckAny(1)
	if s, ok := luaStr(v); ok {
		L.Push(lua.LString(s))
		return 1
	}
	if mm := L.GetMetaField(v, "__tostring"); mm != lua.LNil {
		L.Push(mm)
		L.Push(v)
		L.Call(1, 1)
		return 1
	}
	switch v.(type) {
	case lua.LBool, *lua.LNilType:
		L.Push(lua.LString(v.String()))
		return 1
	}
	L.Push(lua.LString(fmt.Sprintf("%s: 0x%08x", v.Type().String(), vm.objectID(v))))
	return 1
}

// objectID numbers the objects a run prints, in the order it prints them.
func (vm *luaVM) objectID(v lua.LValue) int {
	r := vm.run
	if r == nil {
		return 0
	}
	if r.ids == nil {
		r.ids = map[lua.LValue]int{}
	}
	id, ok := r.ids[v]
	if !ok {
		id = len(r.ids) + 1
		r.ids[v] = id
	}
	return id
}

// concat is the `..` operator (the compiler's concatenations are
// rewritten into calls of it, see compileScript): Lua's semantics, with
// the result charged to the allocation budget before it is built.
func (vm *luaVM) concat(L *lua.LState) int {
	a, b := L.Get(1), L.Get(2)
	sa, oka := luaStr(a)
	sb, okb := luaStr(b)
	if !oka || !okb {
		for _, v := range []lua.LValue{a, b} {
			if mm := L.GetMetaField(v, "__concat"); mm != lua.LNil {
				L.Push(mm)
				L.Push(a)
				L.Push(b)
				L.Call(2, 1)
				return 1
			}
		}
		bad := a
		if oka {
			bad = b
		}
		L.RaiseError("attempt to concatenate a %s value", bad.Type().String())
	}
	n := int64(len(sa) + len(sb))
	vm.charge(n/256, n)
	L.Push(lua.LString(sa + sb))
	return 1
}

func (vm *luaVM) unpack(L *lua.LState) int {
	tb := L.CheckTable(1)
	start := L.OptInt(2, 1)
	end := L.OptInt(3, border(tb))
	if end < start {
		return 0
	}
	if int64(end)-int64(start) >= 8000 {
		L.RaiseError("too many results to unpack")
	}
	vm.charge(int64(end-start)/8, 0)
	for i := start; i <= end; i++ {
		L.Push(rawGeti(tb, i))
	}
	return end - start + 1
}

func (vm *luaVM) tableConcat(L *lua.LState) int {
	tb := L.CheckTable(1)
	sep := L.OptString(2, "")
	i := L.OptInt(3, 1)
	j := L.OptInt(4, border(tb))
	if j < i {
		L.Push(lua.LString(""))
		return 1
	}
	if int64(j)-int64(i) > int64(ScriptMaxAlloc) {
		vm.charge(0, ScriptMaxAlloc+1)
	}
	var n int64
	parts := make([]string, 0, min(j-i+1, 1024))
	for k := i; k <= j; k++ {
		s, ok := luaStr(rawGeti(tb, k))
		if !ok {
			L.RaiseError("invalid value (at index %d) in table for 'concat'", k)
		}
		n += int64(len(s) + len(sep))
		if n > vm.ctx.alloc {
			vm.charge(0, n)
		}
		parts = append(parts, s)
	}
	vm.charge(int64(len(parts))/8+n/256, n)
	L.Push(lua.LString(strings.Join(parts, sep)))
	return 1
}

// wrapString charges the string library: string.rep and string.format
// are checked before they run; every function's string results are
// charged to the allocation budget, its input to the instruction budget.
func (vm *luaVM) wrapString(str *lua.LTable) {
	L := vm.L
	var names []string
	str.ForEach(func(k, v lua.LValue) {
		if _, ok := v.(*lua.LFunction); ok {
			names = append(names, lua.LVAsString(k))
		}
	})
	for _, name := range names {
		orig := str.RawGetString(name).(*lua.LFunction)
		name := name
		str.RawSetString(name, L.NewFunction(func(L *lua.LState) int {
			var in int64
			for i := 1; i <= L.GetTop(); i++ {
				if s, ok := L.Get(i).(lua.LString); ok {
					in += int64(len(s))
				}
			}
			switch name {
			case "rep":
				s := L.CheckString(1)
				n := L.CheckInt(2)
				if n > 0 {
					total := int64(len(s)) * int64(n)
					if len(s) > 0 && total/int64(len(s)) != int64(n) {
						total = math.MaxInt64
					}
					if total > vm.ctx.alloc {
						vm.charge(0, total)
					}
				}
			case "format":
				checkFormatWidths(L, L.CheckString(1))
				for i := 2; i <= L.GetTop(); i++ {
					switch L.Get(i).(type) {
					case *lua.LTable, *lua.LFunction, *lua.LUserData, *lua.LState:
						// gopher-lua would print its address, which differs between nodes
						L.ArgError(i, "string expected, got "+L.Get(i).Type().String())
					}
				}
			}
			vm.charge(in/256, 0)
			n := vm.callOrig(orig)
			var out int64
			for i := 1; i <= n; i++ {
				if s, ok := L.Get(i).(lua.LString); ok {
					out += int64(len(s))
				}
			}
			vm.charge(out/256, out)
			return n
		}))
	}
}

// checkFormatWidths refuses widths and precisions over two digits, as
// Lua 5.1's string.format does (Go's fmt would honour any width).
func checkFormatWidths(L *lua.LState, f string) {
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		i++
		if i < len(f) && f[i] == '%' {
			continue
		}
		for i < len(f) && strings.IndexByte("-+ #0", f[i]) >= 0 {
			i++
		}
		digits := 0
		for i < len(f) && f[i] >= '0' && f[i] <= '9' {
			i++
			digits++
		}
		if i < len(f) && f[i] == '.' {
			i++
			p := 0
			for i < len(f) && f[i] >= '0' && f[i] <= '9' {
				i++
				p++
			}
			digits = max(digits, p)
		}
		if digits > 2 {
			L.RaiseError("invalid format (width or precision too long)")
		}
	}
}

// The generator behind math.random: splitmix64, seeded per run from the
// entry index and the script's position in the entry.
func (r *scriptRun) next() uint64 {
	r.rng += 0x9e3779b97f4a7c15
	z := r.rng
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (vm *luaVM) mathRandom(L *lua.LState) int {
	r := vm.run
	f := float64(r.next()>>11) / (1 << 53)
	switch L.GetTop() {
	case 0:
		L.Push(lua.LNumber(f))
	case 1:
		u := L.CheckInt64(1)
		if u < 1 {
			L.ArgError(1, "interval is empty")
		}
		L.Push(lua.LNumber(math.Floor(f*float64(u)) + 1))
	default:
		l, u := L.CheckInt64(1), L.CheckInt64(2)
		if l > u {
			L.ArgError(2, "interval is empty")
		}
		L.Push(lua.LNumber(math.Floor(f*float64(u-l+1)) + float64(l)))
	}
	return 1
}

func (vm *luaVM) mathRandomSeed(L *lua.LState) int {
	vm.run.rng = uint64(L.CheckInt64(1))
	return 0
}
