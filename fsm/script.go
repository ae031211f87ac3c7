package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/google/btree"
	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

// EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT as engine commands. A
// write script runs inside Apply on every node, in log order, on a
// copy-on-write clone of the state: it is kept only if the script
// succeeds (a script that fails or is stopped changes nothing, unlike
// Redis, which keeps a failed script's earlier writes). A read-only
// script runs on a pinned view. The script cache is replicated state:
// SCRIPT LOAD and every EVAL put the body there, so EVALSHA finds it on
// every node, after restarts, snapshots and leader changes.

// ErrScript (reply): a script failed, or returned an error.
var ErrScript = errors.New("script error")

// FlagNoScript marks commands a script may not call (EVAL inside EVAL).
const FlagNoScript Flags = 1 << 8

// Script cache bounds: the oldest loaded (or EVAL'd) script is dropped
// beyond them, and EVALSHA of it answers NOSCRIPT (clients then send the
// body again). The cache's bytes count against max memory.
const (
	ScriptCacheMax      = 5000
	ScriptCacheMaxBytes = 16 << 20
	scriptOverhead      = 96
)

const msgNoScript = "NOSCRIPT No matching script. Please use EVAL."

func init() {
	keys := func(a [][]byte) [][]byte {
		k, _, err := scriptKeys(a)
		if err != nil {
			return nil
		}
		return k
	}
	ns := FlagNoScript
	register(
		&Spec{Name: "eval", Arity: -3, Flags: FlagWrite | FlagDenyOOM | ns, keys: keys, run: cmdEval(false, false), check: checkEval},
		&Spec{Name: "evalsha", Arity: -3, Flags: FlagWrite | FlagDenyOOM | ns, keys: keys, run: cmdEval(true, false)},
		&Spec{Name: "eval_ro", Arity: -3, Flags: FlagReadOnly | ns, keys: keys, run: cmdEval(false, true), check: checkEval},
		&Spec{Name: "evalsha_ro", Arity: -3, Flags: FlagReadOnly | ns, keys: keys, run: cmdEval(true, true)},
		&Spec{Name: "script", Arity: -2, Flags: FlagWrite | ns, run: cmdScript, check: checkScriptCmd},
		&Spec{Name: "function", Arity: -2, Flags: ns, run: cmdFunction},
		&Spec{Name: "fcall", Arity: -3, Flags: ns, run: cmdFunction},
		&Spec{Name: "fcall_ro", Arity: -3, Flags: ns, run: cmdFunction},
	)
}

func cmdFunction(t *Tx, a [][]byte) Reply {
	return cmdErr(ErrUnknownCommand, "ERR FUNCTION and FCALL are not supported by raftcache: use EVAL/EVALSHA (scripts are replicated and cached on every node)")
}

// scriptKeys splits EVAL's arguments into keys and argv.
func scriptKeys(a [][]byte) (keys, argv [][]byte, err error) {
	n, ok := ParseInt(a[2])
	switch {
	case !ok:
		return nil, nil, errors.New("ERR value is not an integer or out of range")
	case n < 0:
		return nil, nil, errors.New("ERR Number of keys can't be negative")
	case n > int64(len(a)-3):
		return nil, nil, errors.New("ERR Number of keys can't be greater than number of args")
	}
	return a[3 : 3+n], a[3+n:], nil
}

// --- the replicated script cache ------------------------------------------

type scriptEntry struct {
	sha   string
	body  []byte
	stamp uint64 // index of the entry that last loaded it
}

func scriptLess(a, b *scriptEntry) bool { return a.sha < b.sha }
func scriptStampLess(a, b *scriptEntry) bool {
	return a.stamp < b.stamp || a.stamp == b.stamp && a.sha < b.sha
}

type scriptCache struct {
	bySha   *btree.BTreeG[*scriptEntry]
	byStamp *btree.BTreeG[*scriptEntry]
	bytes   int64
}

func newScriptCache() scriptCache {
	return scriptCache{bySha: btree.NewG(16, scriptLess), byStamp: btree.NewG(16, scriptStampLess)}
}

func (c scriptCache) clone() scriptCache {
	c.bySha, c.byStamp = c.bySha.Clone(), c.byStamp.Clone()
	return c
}

func (c *scriptCache) get(sha string) (*scriptEntry, bool) {
	return c.bySha.Get(&scriptEntry{sha: sha})
}

func entrySize(e *scriptEntry) int64 { return int64(len(e.body)+len(e.sha)) + scriptOverhead }

// put stores body under sha at stamp, dropping the oldest beyond the bounds.
func (c *scriptCache) put(sha string, body []byte, stamp uint64) {
	if old, ok := c.bySha.Get(&scriptEntry{sha: sha}); ok {
		if old.stamp == stamp {
			return
		}
		c.byStamp.Delete(old)
		c.bytes -= entrySize(old)
	}
	e := &scriptEntry{sha: sha, body: bytes.Clone(body), stamp: stamp}
	c.bySha.ReplaceOrInsert(e)
	c.byStamp.ReplaceOrInsert(e)
	c.bytes += entrySize(e)
	for c.bySha.Len() > ScriptCacheMax || c.bytes > ScriptCacheMaxBytes {
		o, _ := c.byStamp.DeleteMin()
		c.bySha.Delete(o)
		c.bytes -= entrySize(o)
	}
}

func (c *scriptCache) flush() { *c = newScriptCache() }

// appendScripts encodes the script cache: n(uvarint) {sha body stamp}.
// TODO(merge with level): a section of the v2 snapshot; until then it is
// written in the v1 stream's trailer (snapshot_ext.go).
func appendScripts(dst []byte, c *scriptCache) []byte {
	dst = binary.AppendUvarint(dst, uint64(c.bySha.Len()))
	c.bySha.Ascend(func(e *scriptEntry) bool {
		dst = appendBytes(dst, []byte(e.sha))
		dst = appendBytes(dst, e.body)
		dst = binary.AppendUvarint(dst, e.stamp)
		return true
	})
	return dst
}

func readScripts(r *bufio.Reader, c *scriptCache) error {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return err
	}
	if n > ScriptCacheMax {
		return fmt.Errorf("%d scripts, at most %d", n, ScriptCacheMax)
	}
	for i := uint64(0); i < n; i++ {
		sha, err := readBytes(r)
		if err != nil {
			return err
		}
		body, err := readBytes(r)
		if err != nil {
			return err
		}
		stamp, err := binary.ReadUvarint(r)
		if err != nil {
			return err
		}
		e := &scriptEntry{sha: string(sha), body: body, stamp: stamp}
		c.bySha.ReplaceOrInsert(e)
		c.byStamp.ReplaceOrInsert(e)
		c.bytes += entrySize(e)
	}
	return nil
}

func (c *scriptCache) digest(h hash.Hash) { h.Write(appendScripts(nil, c)) }

// --- compiling --------------------------------------------------------------

// compiled is a script ready to run: its prototype (immutable, shared by
// every run on this node) and its shebang flags.
type compiled struct {
	proto    *lua.FunctionProto
	noWrites bool
}

// compiledCache holds compiled scripts by SHA on this node (not
// replicated: compiling is deterministic).
var compiledCache struct {
	sync.Mutex
	m map[string]*compiled
}

const compiledCacheMax = 4096

// compileCached compiles body (whose SHA1 is sha) once per node.
func compileCached(sha string, body []byte) (*compiled, *Error) {
	compiledCache.Lock()
	c, ok := compiledCache.m[sha]
	compiledCache.Unlock()
	if ok {
		return c, nil
	}
	c, err := compileScript(body)
	if err != nil {
		return nil, err
	}
	compiledCache.Lock()
	if compiledCache.m == nil || len(compiledCache.m) >= compiledCacheMax {
		compiledCache.m = map[string]*compiled{}
	}
	compiledCache.m[sha] = c
	compiledCache.Unlock()
	return c, nil
}

func compileErr(msg string) *Error {
	return &Error{Code: ErrScript, Msg: "ERR Error compiling script (new function): " + msg}
}

// compileScript parses the shebang, checks size and nesting, rewrites
// concatenations into the charged concat builtin, and compiles.
func compileScript(body []byte) (c *compiled, e *Error) {
	if len(body) > ScriptMaxBody {
		return nil, compileErr(fmt.Sprintf("script of %d bytes exceeds the limit of %d bytes", len(body), ScriptMaxBody))
	}
	c = &compiled{}
	src := string(body)
	if strings.HasPrefix(src, "#!") {
		line, rest, _ := strings.Cut(src, "\n")
		fields := strings.Fields(line[2:])
		if len(fields) == 0 || fields[0] != "lua" {
			engine := ""
			if len(fields) > 0 {
				engine = fields[0]
			}
			return nil, &Error{Code: ErrScript, Msg: "ERR Could not find engine '" + engine + "'"}
		}
		for _, f := range fields[1:] {
			v, ok := strings.CutPrefix(f, "flags=")
			if !ok {
				return nil, &Error{Code: ErrScript, Msg: "ERR Unknown lua shebang option: " + f}
			}
			for _, flag := range strings.Split(v, ",") {
				switch flag {
				case "no-writes":
					c.noWrites = true
				case "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys", "":
				default:
					return nil, &Error{Code: ErrScript, Msg: "ERR Unexpected flag in script shebang: " + flag}
				}
			}
		}
		src = "\n" + rest // keep line numbers
	}
	defer func() {
		if r := recover(); r != nil {
			c, e = nil, compileErr(fmt.Sprint(r))
		}
	}()
	chunk, err := parse.Parse(strings.NewReader(src), "user_script")
	if err != nil {
		return nil, compileErr(strings.TrimSpace(err.Error()))
	}
	w := rewriter{}
	chunk = w.stmts(chunk, 0)
	prologue := &ast.LocalAssignStmt{Names: helperNames, Exprs: []ast.Expr{&ast.Comma3Expr{}}}
	chunk = append([]ast.Stmt{prologue}, chunk...)
	if w.tooDeep {
		return nil, compileErr(fmt.Sprintf("user_script: nesting deeper than %d levels", ScriptMaxDepth))
	}
	proto, err := lua.Compile(chunk, "user_script")
	if err != nil {
		return nil, compileErr(err.Error())
	}
	c.proto = proto
	return c, nil
}

// rewriter walks a syntax tree, bounding its depth (the compiler recurses
// on it) and turning `a .. b` into a call of the charged concat builtin.
type rewriter struct{ tooDeep bool }

func (w *rewriter) deep(d int) bool {
	if d > ScriptMaxDepth {
		w.tooDeep = true
	}
	return w.tooDeep
}

func (w *rewriter) stmts(ss []ast.Stmt, d int) []ast.Stmt {
	for i := range ss {
		ss[i] = w.stmt(ss[i], d)
	}
	return ss
}

// helperNames are the runtime's hidden helpers, locals of every chunk
// (passed as its varargs by callChunk): names no script can write.
var helperNames = []string{"\x00concat", "\x00len", "\x00set", "\x00new"}

func helperCall(name string, line, last int, args ...ast.Expr) *ast.FuncCallExpr {
	id := &ast.IdentExpr{Value: name}
	id.SetLine(line)
	id.SetLastLine(last)
	call := &ast.FuncCallExpr{Func: id, Args: args}
	call.SetLine(line)
	call.SetLastLine(last)
	return call
}

// setStmt is `obj[key] = v` as a call of the charged store.
func setStmt(a *ast.AttrGetExpr, v ast.Expr, line, last int) ast.Stmt {
	st := &ast.FuncCallStmt{Expr: helperCall("\x00set", line, last, a.Object, a.Key, v)}
	st.SetLine(line)
	st.SetLastLine(last)
	return st
}

func (w *rewriter) exprs(es []ast.Expr, d int) {
	for i := range es {
		es[i] = w.expr(es[i], d)
	}
}

func (w *rewriter) stmt(s ast.Stmt, d int) ast.Stmt {
	if w.deep(d) {
		return s
	}
	d++
	switch x := s.(type) {
	case *ast.AssignStmt:
		w.exprs(x.Lhs, d)
		w.exprs(x.Rhs, d)
		// Stores into tables go through the charged store (vm.set).
		stores := false
		for _, l := range x.Lhs {
			if _, ok := l.(*ast.AttrGetExpr); ok {
				stores = true
			}
		}
		if !stores {
			return x
		}
		line, last := x.Line(), x.LastLine()
		if len(x.Lhs) == 1 && len(x.Rhs) == 1 {
			return setStmt(x.Lhs[0].(*ast.AttrGetExpr), x.Rhs[0], line, last)
		}
		// Several targets: the values first, as Lua evaluates them.
		names := make([]string, len(x.Lhs))
		for i := range names {
			names[i] = "\x00v" + strconv.Itoa(i)
		}
		local := &ast.LocalAssignStmt{Names: names, Exprs: x.Rhs}
		local.SetLine(line)
		local.SetLastLine(last)
		out := []ast.Stmt{local}
		for i, l := range x.Lhs {
			v := &ast.IdentExpr{Value: names[i]}
			v.SetLine(line)
			if a, ok := l.(*ast.AttrGetExpr); ok {
				out = append(out, setStmt(a, v, line, last))
				continue
			}
			as := &ast.AssignStmt{Lhs: []ast.Expr{l}, Rhs: []ast.Expr{v}}
			as.SetLine(line)
			as.SetLastLine(last)
			out = append(out, as)
		}
		block := &ast.DoBlockStmt{Stmts: out}
		block.SetLine(line)
		block.SetLastLine(last)
		return block
	case *ast.LocalAssignStmt:
		w.exprs(x.Exprs, d)
	case *ast.FuncCallStmt:
		x.Expr = w.expr(x.Expr, d)
	case *ast.DoBlockStmt:
		x.Stmts = w.stmts(x.Stmts, d)
	case *ast.WhileStmt:
		x.Condition = w.expr(x.Condition, d)
		x.Stmts = w.stmts(x.Stmts, d)
	case *ast.RepeatStmt:
		x.Condition = w.expr(x.Condition, d)
		x.Stmts = w.stmts(x.Stmts, d)
	case *ast.IfStmt:
		x.Condition = w.expr(x.Condition, d)
		x.Then = w.stmts(x.Then, d)
		// elseif chains nest in the tree but not in the compiler's
		// recursion much; count them at the same depth
		x.Else = w.stmts(x.Else, d)
	case *ast.NumberForStmt:
		x.Init = w.expr(x.Init, d)
		x.Limit = w.expr(x.Limit, d)
		if x.Step != nil {
			x.Step = w.expr(x.Step, d)
		}
		x.Stmts = w.stmts(x.Stmts, d)
	case *ast.GenericForStmt:
		w.exprs(x.Exprs, d)
		x.Stmts = w.stmts(x.Stmts, d)
	case *ast.FuncDefStmt:
		if x.Name != nil && x.Name.Func != nil {
			x.Name.Func = w.expr(x.Name.Func, d)
		}
		if x.Name != nil && x.Name.Receiver != nil {
			x.Name.Receiver = w.expr(x.Name.Receiver, d)
		}
		x.Func.Stmts = w.stmts(x.Func.Stmts, d)
	case *ast.ReturnStmt:
		w.exprs(x.Exprs, d)
	}
	return s
}

func (w *rewriter) expr(e ast.Expr, d int) ast.Expr {
	if e == nil || w.deep(d) {
		return e
	}
	d++
	switch x := e.(type) {
	case *ast.AttrGetExpr:
		x.Object = w.expr(x.Object, d)
		x.Key = w.expr(x.Key, d)
	case *ast.TableExpr:
		for _, f := range x.Fields {
			f.Key = w.expr(f.Key, d)
			f.Value = w.expr(f.Value, d)
		}
		return helperCall("\x00new", x.Line(), x.LastLine(), x)
	case *ast.FuncCallExpr:
		x.Func = w.expr(x.Func, d)
		x.Receiver = w.expr(x.Receiver, d)
		w.exprs(x.Args, d)
	case *ast.LogicalOpExpr:
		x.Lhs, x.Rhs = w.expr(x.Lhs, d), w.expr(x.Rhs, d)
	case *ast.RelationalOpExpr:
		x.Lhs, x.Rhs = w.expr(x.Lhs, d), w.expr(x.Rhs, d)
	case *ast.ArithmeticOpExpr:
		x.Lhs, x.Rhs = w.expr(x.Lhs, d), w.expr(x.Rhs, d)
	case *ast.UnaryMinusOpExpr:
		x.Expr = w.expr(x.Expr, d)
	case *ast.UnaryNotOpExpr:
		x.Expr = w.expr(x.Expr, d)
	case *ast.UnaryLenOpExpr:
		return helperCall("\x00len", x.Line(), x.LastLine(), w.expr(x.Expr, d))
	case *ast.FunctionExpr:
		x.Stmts = w.stmts(x.Stmts, d)
		return helperCall("\x00new", x.Line(), x.LastLine(), x)
	case *ast.StringConcatOpExpr:
		return helperCall("\x00concat", x.Line(), x.LastLine(), w.expr(x.Lhs, d), w.expr(x.Rhs, d))
	}
	return e
}

// checkEval compiles EVAL's body before it is proposed, so a body that
// does not compile (or is too big or deep) never enters the log.
func checkEval(args [][]byte) error {
	if _, _, err := scriptKeys(args); err != nil {
		return &Error{Code: ErrSyntax, Msg: err.Error()}
	}
	if _, err := compileCached(sha1hex(args[1]), args[1]); err != nil {
		return err
	}
	return nil
}

func checkScriptCmd(args [][]byte) error {
	if eq(args[1], "load") && len(args) == 3 {
		if _, err := compileCached(sha1hex(args[2]), args[2]); err != nil {
			return err
		}
	}
	return nil
}

// --- commands ---------------------------------------------------------------

func cmdEval(bySha, ro bool) func(t *Tx, a [][]byte) Reply {
	return func(t *Tx, a [][]byte) Reply {
		var sha string
		var body []byte
		if bySha {
			sha = strings.ToLower(string(a[1]))
			e, ok := t.s.scripts.get(sha)
			if !ok {
				return cmdErr(ErrNoScript, msgNoScript)
			}
			body = e.body
		} else {
			body, sha = a[1], sha1hex(a[1])
		}
		keys, argv, err := scriptKeys(a)
		if err != nil {
			return cmdErr(ErrSyntax, err.Error())
		}
		c, cerr := compileCached(sha, body)
		if cerr != nil {
			return errReply(cerr)
		}
		if !bySha && t.write {
			t.s.scripts.put(sha, body, t.index)
		}
		return t.runScript(sha, c, keys, argv, ro || c.noWrites || !t.write)
	}
}

// ErrNoScript (reply): EVALSHA of a script not in the cache.
var ErrNoScript = errors.New("no such script")

func cmdScript(t *Tx, a [][]byte) Reply {
	switch {
	case eq(a[1], "load") && len(a) == 3:
		if !t.write {
			return errReply(ErrReadOnly)
		}
		sha := sha1hex(a[2])
		if _, err := compileCached(sha, a[2]); err != nil {
			return errReply(err)
		}
		t.s.scripts.put(sha, a[2], t.index)
		return bulkReply([]byte(sha))
	case eq(a[1], "exists") && len(a) >= 3:
		out := make([]Reply, len(a)-2)
		for i, s := range a[2:] {
			_, ok := t.s.scripts.get(strings.ToLower(string(s)))
			out[i] = boolReply(ok)
		}
		return arrayReply(out)
	case eq(a[1], "flush") && (len(a) == 2 || len(a) == 3 && (eq(a[2], "async") || eq(a[2], "sync"))):
		if !t.write {
			return errReply(ErrReadOnly)
		}
		t.s.scripts.flush()
		return replyOK
	case eq(a[1], "kill") && len(a) == 2:
		return cmdErr(ErrScript, "NOTBUSY No scripts in execution right now.")
	case eq(a[1], "help") && len(a) == 2:
		var out []Reply
		for _, l := range []string{"SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"EXISTS <sha1> [<sha1> ...]", "    Return information about the existence of the scripts in the script cache.",
			"FLUSH [ASYNC|SYNC]", "    Flush the Lua scripts cache.", "KILL", "    Kill the currently executing Lua script.",
			"LOAD <script>", "    Load a script into the scripts cache without executing it.", "HELP", "    Print this help."} {
			out = append(out, statusReply(l))
		}
		return arrayReply(out)
	}
	return cmdErr(ErrSyntax, "ERR unknown subcommand or wrong number of arguments for '"+printable(a[1])+"'. Try SCRIPT HELP.")
}

// Writes says whether args, a command of the table, may change keys:
// its flags, except for scripts, whose shebang may say no-writes (looked
// up in v for EVALSHA, when v is not nil), and SCRIPT, whose EXISTS,
// KILL and HELP only read.
func Writes(args [][]byte, v *View) bool {
	var s *state
	if v != nil {
		s = v.t.s
	}
	return s.writes(args)
}

func (s *state) writes(args [][]byte) bool {
	spec := Lookup(args[0])
	if spec == nil || !spec.Write() {
		return false
	}
	switch spec.Name {
	case "script":
		return len(args) > 1 && (eq(args[1], "load") || eq(args[1], "flush"))
	case "eval":
		if len(args) > 1 && bytes.HasPrefix(args[1], []byte("#!")) {
			if c, err := compileCached(sha1hex(args[1]), args[1]); err == nil && c.noWrites {
				return false
			}
		}
	case "evalsha":
		if s != nil && len(args) > 1 {
			if e, ok := s.scripts.get(strings.ToLower(string(args[1]))); ok && bytes.HasPrefix(e.body, []byte("#!")) {
				if c, err := compileCached(e.sha, e.body); err == nil && c.noWrites {
					return false
				}
			}
		}
	}
	return true
}

// HasScript says whether the view's script cache holds sha.
func (v *View) HasScript(sha string) bool {
	_, ok := v.t.s.scripts.get(strings.ToLower(sha))
	return ok
}

// ScriptSHA is the SHA1 a script is cached under, in hex.
func ScriptSHA(body []byte) string { return sha1hex(body) }

// --- running ----------------------------------------------------------------

// runScript runs a compiled script. A write script runs on a clone of the
// state and is kept only if its reply is not an error.
func (t *Tx) runScript(sha string, c *compiled, keys, argv [][]byte, readOnly bool) Reply {
	if readOnly {
		return t.execLua(sha, c, keys, argv, true)
	}
	saved, savedCh := t.s, t.ch
	clone := t.s.clone()
	var ch changeSet
	t.s = clone
	if savedCh != nil {
		t.ch = &ch
	}
	rep := t.execLua(sha, c, keys, argv, false)
	t.s, t.ch = saved, savedCh
	if !rep.IsError() {
		*saved = *clone
		if savedCh != nil {
			savedCh.merge(&ch)
		}
	}
	return rep
}

func (t *Tx) execLua(sha string, c *compiled, keys, argv [][]byte, readOnly bool) (rep Reply) {
	vm := vmPool.Get().(*luaVM)
	L := vm.L
	vm.ctx.left, vm.ctx.alloc, vm.ctx.stopped = ScriptMaxInstructions, ScriptMaxAlloc, ""
	vm.run = &scriptRun{t: t, sha: sha, readOnly: readOnly, resp: 2, rng: t.seed}
	trusted := true
	defer func() {
		if r := recover(); r != nil { // a bug in a builtin: the same on every node
			rep = cmdErr(ErrScript, fmt.Sprintf("ERR script failed: %v script: %s", r, sha))
			return // not pooled: its state is unknown
		}
		if vm.reset() && trusted {
			vmPool.Put(vm)
		}
	}()
	mk := func(vals [][]byte) *lua.LTable {
		tb := L.CreateTable(len(vals), 0)
		for i, v := range vals {
			tb.RawSetInt(i+1, lua.LString(v))
		}
		return tb
	}
	vm.realG.RawSetString("KEYS", mk(keys))
	vm.realG.RawSetString("ARGV", mk(argv))
	err := vm.callChunk(c.proto)
	if vm.ctx.stopped != "" {
		return cmdErr(ErrScript, vm.ctx.stopped+" script: "+sha)
	}
	if err != nil {
		var ae *lua.ApiError
		if errors.As(err, &ae) && ae.Type == lua.ApiErrorPanic {
			trusted = false // a Go panic inside the interpreter: do not reuse it
		}
		return vm.scriptError(err)
	}
	return luaReply(L.Get(-1), 0)
}

var gopherArith = regexp.MustCompile(`cannot perform \w+ operation between (\w+) and (\w+)`)

// luaArithMessage words gopher-lua's arithmetic error as Lua 5.1 does:
// the type of the operand that is not a number (the left one first,
// unless it is a string and the right one is neither number nor string).
func luaArithMessage(msg string) string {
	return gopherArith.ReplaceAllStringFunc(msg, func(m string) string {
		p := gopherArith.FindStringSubmatch(m)
		bad := p[1]
		if bad == "number" || bad == "string" && p[2] != "number" && p[2] != "string" {
			bad = p[2]
		}
		return "attempt to perform arithmetic on a " + bad + " value"
	})
}

// scriptError turns an error raised by a script into Redis's reply.
func (vm *luaVM) scriptError(err error) Reply {
	var obj lua.LValue = lua.LString(err.Error())
	var ae *lua.ApiError
	if errors.As(err, &ae) && ae.Object != nil {
		obj = ae.Object
	}
	sha := vm.run.sha
	if t, ok := obj.(*lua.LTable); ok {
		if e, ok := t.RawGetString("err").(lua.LString); ok {
			line := vm.run.errLine
			return cmdErr(ErrScript, string(e)+" script: "+sha+", on @"+strings.TrimSuffix(line, ":")+".")
		}
		obj = lua.LString("unknown error")
	}
	msg, _ := luaStr(obj)
	if msg == "" {
		msg = obj.String()
	}
	msg = noAddresses(luaArithMessage(msg))
	where := ""
	if strings.HasPrefix(msg, "user_script:") {
		if i := strings.Index(msg[len("user_script:"):], ":"); i > 0 {
			if _, err := strconv.Atoi(msg[len("user_script:") : len("user_script:")+i]); err == nil {
				where = ", on @" + msg[:len("user_script:")+i]
			}
		}
	}
	if !strings.HasPrefix(msg, "ERR ") {
		msg = "ERR " + msg
	}
	return cmdErr(ErrScript, msg+" script: "+sha+where+".")
}
