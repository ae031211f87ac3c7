package fsm

import (
	"errors"
	"time"
)

// Lowering: while a cluster's feature level is below LevelExec, some
// member may run a binary that knows only the first command format (ops
// 1 to 11), so the leader must not propose OpExec. The commonest commands
// can be written in that format; LowerUnit does so, and turns the legacy
// results back into the replies the engine would have given, so clients
// keep working through a rolling upgrade. Anything else waits for the
// level to rise.

// lowered is one command in the first format and its reply.
type lowered struct {
	cmds  []*Command
	reply func(rs []Result) Reply
}

// LowerUnit expresses u in the first command format, stamped with now:
// one command (a lone single-key write or a flush) or an OpBatch. replies
// turns the applied result back into the unit's result. ok is false when
// some command of u has no such form.
func LowerUnit(u *Unit, now int64) (cmd *Command, replies func(*Result) Result, ok bool) {
	if u.Watch != nil {
		return nil, nil, false // the first format has no conditional units: never drop a watch
	}
	var parts []lowered
	for _, args := range u.Cmds {
		l, ok := lowerCmd(args, now)
		if !ok {
			return nil, nil, false
		}
		parts = append(parts, l)
	}
	var subs []*Command
	for _, p := range parts {
		subs = append(subs, p.cmds...)
	}
	if len(subs) == 0 || len(subs) > MaxBatch {
		return nil, nil, false
	}
	atomic := u.Mode == UnitAtomic
	switch {
	case len(subs) == 1 && (subs[0].Op == OpDeletePrefix || !atomic):
		cmd = subs[0]
		cmd.ReqID = u.ReqID
	default:
		for _, s := range subs {
			if s.Op == OpDeletePrefix {
				return nil, nil, false
			}
		}
		cmd = &Command{Op: OpBatch, Atomic: atomic, Cmds: subs, ReqID: u.ReqID}
	}
	cmd.Now = now
	replies = func(res *Result) Result {
		rs := []Result{*res}
		if cmd.Op == OpBatch {
			rs = res.Results
		}
		out := Result{Index: res.Index, Duplicate: res.Duplicate, Err: res.Err}
		for _, p := range parts {
			n := len(p.cmds)
			if len(rs) < n { // an atomic batch stops at its first failure
				break
			}
			out.Replies = append(out.Replies, p.reply(rs[:n]))
			rs = rs[n:]
		}
		return out
	}
	return cmd, replies, true
}

// legacyErr is the reply for a result error of the first format.
func legacyErr(r Result) Reply {
	if errors.Is(r.Err, ErrConditionFailed) {
		return errReply(&Error{Code: ErrConditionFailed, Msg: "ERR condition failed", Current: r.Current})
	}
	return errReply(r.Err)
}

func lowerCmd(a [][]byte, now int64) (lowered, bool) {
	spec := Lookup(a[0])
	if spec == nil || !spec.ArityOK(len(a)) {
		return lowered{}, false
	}
	one := func(c *Command, reply func(Result) Reply) (lowered, bool) {
		return lowered{cmds: []*Command{c}, reply: func(rs []Result) Reply {
			if rs[0].Err != nil && !errors.Is(rs[0].Err, ErrConditionFailed) && !errors.Is(rs[0].Err, ErrNotFound) {
				return legacyErr(rs[0])
			}
			return reply(rs[0])
		}}, true
	}
	t := &Tx{now: now}
	switch spec.Name {
	case "set":
		o, _, ok := parseSet(t, a)
		if !ok || o.get && (o.nx || o.xx) {
			return lowered{}, false
		}
		c := &Command{Op: OpSet, Key: a[1], Value: a[2], ExpireAt: o.expireAt}
		if o.nx {
			c.Cond = CondAbsent
		} else if o.xx {
			c.Cond = CondExists
		}
		if o.keepTTL {
			c.Flags |= FlagKeepTTL
		}
		if o.get {
			c.Flags |= FlagReturnPrev
		}
		return one(c, func(r Result) Reply {
			switch {
			case r.Err != nil:
				return replyNull
			case o.get && r.PrevFound:
				return bulkReply(r.Prev)
			case o.get:
				return replyNull
			}
			return replyOK
		})
	case "setnx":
		return one(&Command{Op: OpSet, Key: a[1], Value: a[2], Cond: CondAbsent}, func(r Result) Reply { return boolReply(r.Err == nil) })
	case "setex", "psetex":
		unit := time.Second
		if spec.Name == "psetex" {
			unit = time.Millisecond
		}
		at, _, ok := expireIn(a[2], unit, false, now, spec.Name)
		if !ok {
			return lowered{}, false
		}
		return one(&Command{Op: OpSet, Key: a[1], Value: a[3], ExpireAt: at}, func(Result) Reply { return replyOK })
	case "getset":
		return one(&Command{Op: OpSet, Key: a[1], Value: a[2], Flags: FlagReturnPrev}, func(r Result) Reply {
			if r.PrevFound {
				return bulkReply(r.Prev)
			}
			return replyNull
		})
	case "mset":
		if len(a)%2 != 1 {
			return lowered{}, false
		}
		var l lowered
		for i := 1; i < len(a); i += 2 {
			l.cmds = append(l.cmds, &Command{Op: OpSet, Key: a[i], Value: a[i+1]})
		}
		l.reply = func([]Result) Reply { return replyOK }
		return l, true
	case "del", "unlink":
		var l lowered
		for _, k := range a[1:] {
			l.cmds = append(l.cmds, &Command{Op: OpDelete, Key: k})
		}
		l.reply = func(rs []Result) Reply {
			n := 0
			for _, r := range rs {
				if r.Deleted {
					n++
				}
			}
			return intReply(int64(n))
		}
		return l, true
	case "incr", "decr", "incrby", "decrby":
		by := int64(1)
		if len(a) == 3 {
			n, ok := ParseInt(a[2])
			if !ok || n == -n && n != 0 {
				return lowered{}, false
			}
			by = n
		}
		if spec.Name[0] == 'd' {
			by = -by
		}
		return one(&Command{Op: OpIncr, Key: a[1], By: by}, func(r Result) Reply { return intReply(r.Value) })
	case "expire", "pexpire", "expireat", "pexpireat":
		if len(a) != 3 {
			return lowered{}, false
		}
		unit := time.Second
		if spec.Name[0] == 'p' {
			unit = time.Millisecond
		}
		at, _, ok := expireIn(a[2], unit, len(spec.Name) > 7, now, spec.Name)
		if !ok || at <= now {
			return lowered{}, false
		}
		return one(&Command{Op: OpTouch, Key: a[1], ExpireAt: at}, func(r Result) Reply { return boolReply(r.Err == nil && r.Deleted) })
	case "flushdb", "flushall":
		if len(a) > 1 && !eq(a[1], "async") && !eq(a[1], "sync") {
			return lowered{}, false
		}
		return one(&Command{Op: OpDeletePrefix}, func(Result) Reply { return replyOK })
	case "rc.set":
		n, ok := nums(a[3], a[4], a[5], a[6])
		if !ok {
			return lowered{}, false
		}
		c := &Command{Op: OpSet, Key: a[1], Value: a[2], Cond: Cond(n[1]), Version: uint64(n[2]), Flags: uint8(n[3])}
		if n[0] > 0 {
			c.ExpireAt = now + n[0]
		}
		return one(c, func(r Result) Reply {
			if r.Err != nil {
				return legacyErr(r)
			}
			prev := replyNull
			if r.PrevFound {
				prev = bulkReply(r.Prev)
			}
			return arrayReply([]Reply{intReply(int64(r.Version)), prev})
		})
	case "rc.del":
		n, ok := nums(a[2], a[3])
		if !ok {
			return lowered{}, false
		}
		return one(&Command{Op: OpDelete, Key: a[1], Cond: Cond(n[0]), Version: uint64(n[1])}, func(r Result) Reply {
			if r.Err != nil {
				return legacyErr(r)
			}
			return boolReply(r.Deleted)
		})
	case "rc.incr":
		n, ok := nums(a[2], a[3])
		if !ok {
			return lowered{}, false
		}
		c := &Command{Op: OpIncr, Key: a[1], By: n[0]}
		if n[1] > 0 {
			c.ExpireAt = now + n[1]
		}
		return one(c, func(r Result) Reply {
			return arrayReply([]Reply{intReply(r.Value), intReply(int64(r.Version))})
		})
	case "rc.touch":
		n, ok := nums(a[2])
		if !ok {
			return lowered{}, false
		}
		c := &Command{Op: OpTouch, Key: a[1]}
		if n[0] > 0 {
			c.ExpireAt = now + n[0]
		}
		return one(c, func(r Result) Reply {
			if r.Err != nil {
				return legacyErr(r)
			}
			return intReply(int64(r.Version))
		})
	}
	return lowered{}, false
}
