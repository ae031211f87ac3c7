package fsm

import "time"

// Stream commands as far as queue libraries use them (rq keeps job
// results in streams: XADD with MAXLEN ~, XREVRANGE, XLEN), with Redis
// 7.0's replies, errors and events (t_stream.c).
//
// IDs that XADD generates (`*`) come from the entry's leader time in
// milliseconds and the stream's last ID, so every member generates the
// same ID. Trimming is always exact: `~` is accepted and trims to exactly
// the bound (Redis may keep up to a whole node more); LIMIT still caps
// the entries one call removes (docs/api.md).

func init() {
	one := func(s *Spec) *Spec { s.FirstKey, s.LastKey, s.Step, s.Level = 1, 1, 1, LevelTypes; return s }
	register(
		one(&Spec{Name: "xadd", Arity: -5, Flags: FlagWrite | FlagDenyOOM | FlagFast, run: cmdXAdd}),
		one(&Spec{Name: "xrange", Arity: -4, Flags: FlagReadOnly, run: cmdXRange(false)}),
		one(&Spec{Name: "xrevrange", Arity: -4, Flags: FlagReadOnly, run: cmdXRange(true)}),
		one(&Spec{Name: "xlen", Arity: 2, Flags: FlagReadOnly | FlagFast, run: cardinality(TypeStream)}),
		one(&Spec{Name: "xtrim", Arity: -4, Flags: FlagWrite, run: cmdXTrim}),
		one(&Spec{Name: "xdel", Arity: -3, Flags: FlagWrite | FlagFast, run: cmdXDel}),
	)
}

var (
	replyInvalidStreamID = cmdErr(ErrSyntax, "ERR Invalid stream ID specified as stream command argument")
	replyXAddTooSmall    = cmdErr(ErrSyntax, "ERR The ID specified in XADD is equal or smaller than the target stream top item")
)

// approxTrimLimit is the LIMIT a `~` trim gets by default, Redis's
// 100 * stream-node-max-entries.
const approxTrimLimit = 10000

const (
	trimNone = iota
	trimMaxLen
	trimMinID
)

// xaddArgs are XADD's or XTRIM's options once parsed.
type xaddArgs struct {
	trim       int
	approx     bool
	maxLen     int64
	minID      streamID
	limit      int64
	noMkStream bool
	id         streamID // XADD's ID, when idGiven
	idGiven    bool     // false: `*`
	seqGiven   bool     // false: `<ms>-*`
	idPos      int      // XADD's ID argument (len(a) if none)
}

// parseAddTrim reads the options of XADD (xadd) or XTRIM from a[2:] in
// Redis's order (streamParseAddOrTrimArgsOrReply): for XADD, up to and
// including the ID.
//
// once (cluster level 6 on, LevelRedisFixes) refuses a second MAXLEN or
// MINID as Redis does; below, a second one of the same kind replaced the
// first.
func parseAddTrim(a [][]byte, xadd, once bool) (x xaddArgs, rep Reply, ok bool) {
	limitGiven := false
	i := 2
	for ; i < len(a); i++ {
		more := len(a) - 1 - i
		opt := a[i]
		switch {
		case xadd && len(opt) == 1 && opt[0] == '*':
			x.idPos = i
			goto done
		case (eq(opt, "maxlen") || eq(opt, "minid")) && more > 0:
			maxLen := eq(opt, "maxlen")
			if x.trim == trimMinID && maxLen || x.trim == trimMaxLen && !maxLen || once && x.trim != trimNone {
				return x, cmdErr(ErrSyntax, "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"), false
			}
			x.approx = false
			if next := a[i+1]; more >= 2 && len(next) == 1 && (next[0] == '~' || next[0] == '=') {
				x.approx = next[0] == '~'
				i++
			}
			i++
			if maxLen {
				n, ok := ParseInt(a[i])
				if !ok {
					return x, replyNotInteger, false
				}
				if n < 0 {
					return x, cmdErr(ErrSyntax, "ERR The MAXLEN argument must be >= 0."), false
				}
				x.trim, x.maxLen = trimMaxLen, n
			} else {
				id, _, ok := parseStreamID(a[i], true, 0, false)
				if !ok {
					return x, replyInvalidStreamID, false
				}
				x.trim, x.minID = trimMinID, id
			}
		case eq(opt, "limit") && more > 0:
			n, ok := ParseInt(a[i+1])
			if !ok {
				return x, replyNotInteger, false
			}
			if n < 0 {
				return x, cmdErr(ErrSyntax, "ERR The LIMIT argument must be >= 0."), false
			}
			x.limit, limitGiven = n, true
			i++
		case xadd && eq(opt, "nomkstream"):
			x.noMkStream = true
		case xadd:
			id, seqGiven, ok := parseStreamID(opt, true, 0, true)
			if !ok {
				return x, replyInvalidStreamID, false
			}
			x.id, x.idGiven, x.seqGiven, x.idPos = id, true, seqGiven, i
			goto done
		default:
			return x, replySyntax, false
		}
	}
	x.idPos = i
done:
	switch {
	case x.limit != 0 && x.trim == trimNone:
		return x, cmdErr(ErrSyntax, "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"), false
	case !xadd && x.trim == trimNone:
		return x, cmdErr(ErrSyntax, "ERR syntax error, XTRIM must be called with a trimming strategy"), false
	case limitGiven && !x.approx:
		return x, cmdErr(ErrSyntax, "ERR syntax error, LIMIT cannot be used without the special ~ option"), false
	case !limitGiven && x.approx:
		x.limit = approxTrimLimit
	}
	return x, Reply{}, true
}

// trim applies the parsed trimming to s and returns how many entries
// it removed.
func (x *xaddArgs) trimStream(s *streamObj) int64 {
	switch x.trim {
	case trimMaxLen:
		return s.trim(x.maxLen, streamID{}, x.limit)
	case trimMinID:
		return s.trim(-1, x.minID, x.limit)
	}
	return 0
}

func cmdXAdd(t *Tx, a [][]byte) Reply {
	x, rep, ok := parseAddTrim(a, true, t.s.clusterLevel() >= LevelRedisFixes)
	if !ok {
		return rep
	}
	fields := a[min(x.idPos+1, len(a)):]
	if len(fields) < 2 || len(fields)%2 == 1 {
		return replyArity("xadd")
	}
	if x.idGiven && x.seqGiven && x.id == (streamID{}) {
		return cmdErr(ErrSyntax, "ERR The ID specified in XADD must be greater than 0-0")
	}
	create := newStream
	if x.noMkStream {
		create = nil
	}
	it, found, wrong := t.mutable(a[1], TypeStream, create)
	switch {
	case wrong:
		return replyWrongType
	case !found && x.noMkStream:
		return replyNull
	}
	s := it.obj.(*streamObj)
	if s.last == maxStreamID {
		return cmdErr(ErrSyntax, "ERR The stream has exhausted the last possible ID, unable to add more items")
	}
	id := x.id
	switch {
	case x.idGiven && !x.seqGiven && id.ms == s.last.ms:
		if s.last.seq == maxStreamID.seq {
			return replyXAddTooSmall
		}
		id.seq = s.last.seq + 1
	case !x.idGiven:
		// The leader's time of the entry, as every member sees it.
		ms := uint64(max(t.now, 0) / int64(time.Millisecond))
		if ms > s.last.ms {
			id = streamID{ms, 0}
		} else {
			id, _ = s.last.incr()
		}
	}
	if id.cmp(s.last) <= 0 {
		return replyXAddTooSmall
	}
	e := &streamEntry{id: id, fields: make([]string, len(fields))}
	for i, f := range fields {
		e.fields[i] = string(f)
	}
	s.insert(e)
	trimmed := x.trimStream(s)
	t.save(it)
	t.event("xadd", it.key)
	if trimmed > 0 {
		t.event("xtrim", it.key)
	}
	return bulkReply([]byte(id.String()))
}

// parseRangeID reads an XRANGE bound: an ID, or "(" and an ID for an
// exclusive bound (moved to the next or previous ID, as Redis does).
func parseRangeID(arg []byte, end bool) (streamID, Reply, bool) {
	missing := uint64(0)
	if end {
		missing = maxStreamID.seq
	}
	exclusive := len(arg) > 1 && arg[0] == '('
	if exclusive {
		arg = arg[1:]
	}
	id, _, ok := parseStreamID(arg, exclusive, missing, false)
	if !ok {
		return id, replyInvalidStreamID, false
	}
	switch {
	case exclusive && !end:
		if id, ok = id.incr(); !ok {
			return id, cmdErr(ErrSyntax, "ERR invalid start ID for the interval"), false
		}
	case exclusive && end:
		if id, ok = id.decr(); !ok {
			return id, cmdErr(ErrSyntax, "ERR invalid end ID for the interval"), false
		}
	}
	return id, Reply{}, true
}

func entryReply(e *streamEntry) Reply {
	fields := make([]Reply, len(e.fields))
	for i, f := range e.fields {
		fields[i] = elemReply(f)
	}
	return arrayReply([]Reply{bulkReply([]byte(e.id.String())), arrayReply(fields)})
}

// cmdXRange is XRANGE key start end [COUNT n], or XREVRANGE key end
// start [COUNT n] (rev).
func cmdXRange(rev bool) func(t *Tx, a [][]byte) Reply {
	return func(t *Tx, a [][]byte) Reply {
		startArg, endArg := a[2], a[3]
		if rev {
			startArg, endArg = endArg, startArg
		}
		start, rep, ok := parseRangeID(startArg, false)
		if !ok {
			return rep
		}
		end, rep, ok := parseRangeID(endArg, true)
		if !ok {
			return rep
		}
		count := int64(-1)
		for j := 4; j < len(a); j++ {
			if !eq(a[j], "count") || j+1 >= len(a) {
				return replySyntax
			}
			j++
			if count, ok = ParseInt(a[j]); !ok {
				return replyNotInteger
			}
			count = max(count, 0)
		}
		it, found, wrong := t.readTyped(a[1], TypeStream)
		switch {
		case wrong:
			return replyWrongType
		case !found:
			return listEmptyArray
		case count == 0:
			return listNullArray
		}
		s := it.obj.(*streamObj)
		out := []Reply{}
		if start.cmp(end) > 0 {
			return arrayReply(out)
		}
		visit := func(e *streamEntry) bool {
			if rev && e.id.cmp(start) < 0 || !rev && e.id.cmp(end) > 0 {
				return false
			}
			out = append(out, entryReply(e))
			return count < 0 || int64(len(out)) < count
		}
		if rev {
			s.entries.DescendLessOrEqual(&streamEntry{id: end}, visit)
		} else {
			s.entries.AscendGreaterOrEqual(&streamEntry{id: start}, visit)
		}
		return arrayReply(out)
	}
}

func cmdXTrim(t *Tx, a [][]byte) Reply {
	x, rep, ok := parseAddTrim(a, false, t.s.clusterLevel() >= LevelRedisFixes)
	if !ok {
		return rep
	}
	it, found, wrong := t.mutable(a[1], TypeStream, nil)
	switch {
	case wrong:
		return replyWrongType
	case !found:
		return intReply(0)
	}
	n := x.trimStream(it.obj.(*streamObj))
	if n > 0 {
		t.save(it)
		t.event("xtrim", it.key)
	}
	return intReply(n)
}

func cmdXDel(t *Tx, a [][]byte) Reply {
	it, found, wrong := t.mutable(a[1], TypeStream, nil)
	switch {
	case wrong:
		return replyWrongType
	case !found:
		return intReply(0)
	}
	ids := make([]streamID, len(a)-2)
	for i, arg := range a[2:] {
		id, _, ok := parseStreamID(arg, true, 0, false)
		if !ok {
			return replyInvalidStreamID
		}
		ids[i] = id
	}
	s := it.obj.(*streamObj)
	var n int64
	for _, id := range ids {
		if s.remove(id) {
			n++
			if id.cmp(s.maxDeleted) > 0 {
				s.maxDeleted = id
			}
		}
	}
	if n > 0 {
		t.save(it)
		t.event("xdel", it.key)
	}
	return intReply(n)
}
