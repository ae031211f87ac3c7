package fsm

import (
	"crypto/sha1"
	"encoding/hex"
	"math"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The redis library of scripts and the conversions between Lua values
// and replies, as Redis 7.0 documents them.

// redisLib builds the `redis` table.
func (vm *luaVM) redisLib() *lua.LTable {
	L := vm.L
	t := L.NewTable()
	L.SetFuncs(t, map[string]lua.LGFunction{
		"call":  vm.redisCall(true),
		"pcall": vm.redisCall(false),
		"error_reply": func(L *lua.LState) int {
			e := L.NewTable()
			msg := L.CheckString(1)
			if !strings.HasPrefix(msg, "-") {
				e.RawSetString("err", lua.LString(msg))
			} else {
				e.RawSetString("err", lua.LString(msg[1:]))
			}
			L.Push(e)
			return 1
		},
		"status_reply": func(L *lua.LState) int {
			s := L.NewTable()
			s.RawSetString("ok", lua.LString(L.CheckString(1)))
			L.Push(s)
			return 1
		},
		"sha1hex": func(L *lua.LState) int {
			if L.GetTop() != 1 {
				L.RaiseError("wrong number of arguments")
			}
			s, _ := luaStr(L.Get(1))
			L.Push(lua.LString(sha1hex([]byte(s))))
			return 1
		},
		"log": func(L *lua.LState) int {
			if L.GetTop() < 2 {
				L.RaiseError("redis.log() requires two arguments or more.")
			}
			if _, ok := L.Get(1).(lua.LNumber); !ok {
				L.RaiseError("First argument must be a number (log level).")
			}
			return 0 // scripts run on every node: logging would repeat on each
		},
		"setresp": func(L *lua.LState) int {
			if L.GetTop() != 1 {
				L.RaiseError("redis.setresp() requires one argument.")
			}
			n := L.CheckInt(1)
			if n != 2 && n != 3 {
				L.RaiseError("RESP version must be 2 or 3.")
			}
			vm.run.resp = n
			return 0
		},
		"replicate_commands": func(L *lua.LState) int { L.Push(lua.LTrue); return 1 },
		"set_repl": func(L *lua.LState) int {
			if L.GetTop() != 1 {
				L.RaiseError("redis.set_repl() requires one argument.")
			}
			if n := L.CheckInt(1); n < 0 || n > 3 {
				L.RaiseError("Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.")
			}
			return 0 // the effects are the script's run on every node
		},
		"breakpoint": func(L *lua.LState) int { L.Push(lua.LFalse); return 1 },
		"debug":      func(L *lua.LState) int { return 0 },
	})
	for name, v := range map[string]int{"LOG_DEBUG": 0, "LOG_VERBOSE": 1, "LOG_NOTICE": 2, "LOG_WARNING": 3,
		"REPL_NONE": 0, "REPL_AOF": 1, "REPL_SLAVE": 2, "REPL_REPLICA": 2, "REPL_ALL": 3} {
		t.RawSetString(name, lua.LNumber(v))
	}
	t.RawSetString("REDIS_VERSION", lua.LString(RedisVersion))
	t.RawSetString("REDIS_VERSION_NUM", lua.LNumber(0x070000))
	return t
}

// RedisVersion is the Redis version whose semantics the engine follows.
const RedisVersion = "7.0.0"

func sha1hex(b []byte) string {
	h := sha1.Sum(b)
	return hex.EncodeToString(h[:])
}

// Errors redis.call raises, as Redis words them.
const (
	msgScriptArgs     = "ERR Lua redis lib command arguments must be strings or integers"
	msgScriptNoArgs   = "ERR Please specify at least one argument for this redis lib call"
	msgScriptUnknown  = "ERR Unknown Redis command called from script"
	msgScriptArity    = "ERR Wrong number of args calling Redis command from script"
	msgScriptDenied   = "ERR This Redis command is not allowed from script"
	msgScriptReadOnly = "ERR Write commands are not allowed from read-only scripts."
)

// redisCall is redis.call (raise) and redis.pcall.
func (vm *luaVM) redisCall(raise bool) lua.LGFunction {
	return func(L *lua.LState) int {
		n := L.GetTop()
		fail := func(msg string) int {
			e := L.NewTable()
			e.RawSetString("err", lua.LString(msg))
			if raise {
				vm.run.errLine = L.Where(1)
				L.Error(e, 0)
			}
			L.Push(e)
			return 1
		}
		if n == 0 {
			return fail(msgScriptNoArgs)
		}
		args := make([][]byte, n)
		var size int64
		for i := 1; i <= n; i++ {
			switch v := L.Get(i).(type) {
			case lua.LString:
				args[i-1] = []byte(v)
			case lua.LNumber:
				args[i-1] = strconv.AppendFloat(nil, float64(v), 'g', 17, 64)
			default:
				return fail(msgScriptArgs)
			}
			size += int64(len(args[i-1]))
		}
		vm.charge(costRedis+size/256, size)
		spec := Lookup(args[0])
		switch {
		case spec == nil || spec.Flags&FlagInternal != 0:
			return fail(msgScriptUnknown)
		case spec.Flags&FlagNoScript != 0:
			return fail(msgScriptDenied)
		case !spec.ArityOK(n):
			return fail(msgScriptArity)
		case spec.Write() && (vm.run.readOnly || !vm.run.t.write):
			return fail(msgScriptReadOnly)
		}
		if spec.Write() {
			vm.charge(costRedisWrite, 0)
		}
		rep := spec.run(vm.run.t, args)
		if rep.IsError() {
			return fail(ErrorText(rep.Err))
		}
		L.Push(vm.toLua(rep, 0))
		return 1
	}
}

// toLua converts a command's reply to a Lua value (Redis's conversion
// for the RESP version the script chose with redis.setresp).
func (vm *luaVM) toLua(r Reply, depth int) lua.LValue {
	L := vm.L
	resp3 := vm.run.resp == 3
	switch r.Kind {
	case KindNull, KindNullArray:
		if resp3 {
			return lua.LNil
		}
		return lua.LFalse
	case KindStatus:
		t := L.CreateTable(0, 1)
		t.RawSetString("ok", lua.LString(r.Bulk))
		return t
	case KindError:
		t := L.CreateTable(0, 1)
		t.RawSetString("err", lua.LString(ErrorText(r.Err)))
		return t
	case KindInt:
		return lua.LNumber(r.Int)
	case KindBulk:
		vm.charge(int64(len(r.Bulk))/256, int64(len(r.Bulk)))
		return lua.LString(r.Bulk)
	case KindDouble:
		if resp3 {
			t := L.CreateTable(0, 1)
			t.RawSetString("double", lua.LNumber(r.Float))
			return t
		}
		return lua.LString(FormatDouble(r.Float))
	case KindMap:
		if resp3 {
			m := L.CreateTable(0, len(r.Elems)/2)
			for i := 0; i+1 < len(r.Elems); i += 2 {
				m.RawSet(vm.toLua(r.Elems[i], depth+1), vm.toLua(r.Elems[i+1], depth+1))
			}
			t := L.CreateTable(0, 1)
			t.RawSetString("map", m)
			return t
		}
	case KindSet:
		if resp3 {
			m := L.CreateTable(0, len(r.Elems))
			for _, e := range r.Elems {
				m.RawSet(vm.toLua(e, depth+1), lua.LTrue)
			}
			t := L.CreateTable(0, 1)
			t.RawSetString("set", m)
			return t
		}
	case KindPairs:
		if resp3 {
			vm.charge(int64(len(r.Elems)), int64(len(r.Elems))*16)
			t := L.CreateTable(len(r.Elems)/2, 0)
			for i := 0; i+1 < len(r.Elems); i += 2 {
				p := L.CreateTable(2, 0)
				p.RawSetInt(1, vm.toLua(r.Elems[i], depth+1))
				p.RawSetInt(2, vm.toLua(r.Elems[i+1], depth+1))
				t.RawSetInt(i/2+1, p)
			}
			return t
		}
	}
	vm.charge(int64(len(r.Elems)), int64(len(r.Elems))*16)
	t := L.CreateTable(len(r.Elems), 0)
	for i, e := range r.Elems {
		t.RawSetInt(i+1, vm.toLua(e, depth+1))
	}
	return t
}

// maxReplyDepth bounds the nesting of a script's reply (a table that
// contains itself would otherwise never end).
const maxReplyDepth = 1000

// luaReply converts what a script returned to a reply, as Redis does:
// numbers truncate to integers, true is 1, false and nil are nil, a table
// with ok or err is a status or an error, any other table an array that
// stops at the first nil.
func luaReply(v lua.LValue, depth int) Reply {
	if depth > maxReplyDepth {
		return cmdErr(ErrScript, "ERR reached lua stack limit")
	}
	switch x := v.(type) {
	case lua.LString:
		return bulkReply([]byte(x))
	case lua.LNumber:
		return intReply(luaInt(float64(x)))
	case lua.LBool:
		if x {
			return intReply(1)
		}
		return replyNull
	case *lua.LTable:
		if e, ok := x.RawGetString("err").(lua.LString); ok {
			return cmdErr(ErrScript, string(e))
		}
		if s, ok := x.RawGetString("ok").(lua.LString); ok {
			return statusReply(string(s))
		}
		if d, ok := x.RawGetString("double").(lua.LNumber); ok {
			return Reply{Kind: KindDouble, Float: float64(d)}
		}
		var out []Reply
		for i := 1; ; i++ {
			e := rawGeti(x, i)
			if e == lua.LNil {
				break
			}
			r := luaReply(e, depth+1)
			if r.IsError() && errorIs(r, "ERR reached lua stack limit") {
				return r
			}
			out = append(out, r)
		}
		return arrayReply(out)
	}
	return replyNull
}

func errorIs(r Reply, msg string) bool { return ErrorText(r.Err) == msg }

// luaInt truncates as C's (long long) cast does, saturating where C's is
// undefined, so every node converts alike.
func luaInt(f float64) int64 {
	switch {
	case math.IsNaN(f):
		return math.MinInt64
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}
