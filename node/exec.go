package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/raftcache/raftcache/fsm"
)

// The fronts' way into the command engine: Exec proposes units of
// commands (writes, and transactions whose reads must see their writes),
// View pins one state for reads. Limits that do not depend on a command's
// result are checked here, before anything is proposed, so no front keeps
// its own copy of them.

// Limits on what a command may carry.
const (
	// MaxKeySize bounds a key, in bytes.
	MaxKeySize = 1024
	// DefaultMaxValueSize is Config.MaxValueSize's default, in bytes.
	DefaultMaxValueSize = 4 << 20
	// MaxMessageSize bounds a published message (PUBLISH's payload is
	// written to the Raft log like a value, and queued once per
	// subscriber on every node); its channel is bounded as a key.
	MaxMessageSize = 1 << 20
)

// LimitError is a command refused by a limit before it was proposed. Its
// Err is ErrKeyTooLarge, ErrValueTooLarge or ErrTooLarge.
type LimitError struct {
	Err   error
	Limit int64
	Size  int64
}

func (e *LimitError) Error() string {
	switch {
	case errors.Is(e.Err, ErrKeyTooLarge):
		return "key is longer than " + strconv.FormatInt(e.Limit, 10) + " bytes"
	case errors.Is(e.Err, ErrValueTooLarge):
		return "value is larger than the limit of " + strconv.FormatInt(e.Limit, 10) + " bytes"
	}
	return fmt.Sprintf("%d bytes with key and overhead can never fit under max memory %d", e.Size, e.Limit)
}

func (e *LimitError) Unwrap() error { return e.Err }

// CheckCommand checks a command against the node's limits and the command
// table (name and arity), as Exec does before proposing: fronts call it
// when they queue a command (MULTI), so a refused command aborts the
// transaction. It returns an *fsm.Error for an unknown command or a wrong
// arity, a *LimitError for a limit.
func (n *Node) CheckCommand(args [][]byte) error {
	if len(args) == 0 {
		return &fsm.Error{Code: fsm.ErrUnknownCommand, Msg: "ERR empty command"}
	}
	spec := fsm.Lookup(args[0])
	if spec == nil {
		return &fsm.Error{Code: fsm.ErrUnknownCommand, Msg: fsm.UnknownCommandText(args)}
	}
	if !spec.ArityOK(len(args)) {
		return &fsm.Error{Code: fsm.ErrArity, Msg: "ERR wrong number of arguments for '" + spec.Name + "' command"}
	}
	if err := spec.Check(args); err != nil {
		return err
	}
	if spec.Level > 1 {
		if cl := n.ClusterLevel(); cl < spec.Level {
			return fmt.Errorf("%w: %s", ErrFeatureLevel, fsm.LevelText(spec, cl))
		}
	}
	if spec.Name == "publish" || spec.Name == "spublish" {
		if err := CheckKey(args[1]); err != nil {
			return err
		}
		if len(args[2]) > MaxMessageSize {
			return &LimitError{Err: ErrValueTooLarge, Limit: MaxMessageSize, Size: int64(len(args[2]))}
		}
	}
	var kb [4][]byte
	keys := spec.AppendKeys(kb[:0], args)
	for _, k := range keys {
		if err := CheckKey(k); err != nil {
			return err
		}
	}
	if !spec.Write() {
		return nil
	}
	if err := n.checkOOM(spec.Flags&fsm.FlagDenyOOM != 0); err != nil {
		return err
	}
	if spec.Flags&fsm.FlagDenyOOM != 0 {
		if err := n.checkMemory(); err != nil {
			return err
		}
	}
	var key int
	if len(keys) > 0 {
		key = len(keys[0])
	}
	for _, a := range args[1:] {
		if int64(len(a)) > n.cfg.MaxValueSize {
			return &LimitError{Err: ErrValueTooLarge, Limit: n.cfg.MaxValueSize, Size: int64(len(a))}
		}
		if mm := n.MaxMemory(); mm > 0 && spec.Flags&fsm.FlagDenyOOM != 0 {
			if size := int64(key+len(a)) + fsm.EntryOverhead; size > mm {
				return &LimitError{Err: ErrTooLarge, Limit: mm, Size: size}
			}
		}
	}
	return nil
}

// CheckKey checks a key (or a key prefix) against MaxKeySize, as
// CheckCommand does for every key of a command: a *LimitError wrapping
// ErrKeyTooLarge, or nil.
func CheckKey(key []byte) error {
	if len(key) > MaxKeySize {
		return &LimitError{Err: ErrKeyTooLarge, Limit: MaxKeySize, Size: int64(len(key))}
	}
	return nil
}

// MaxValueSize is the largest argument a write command may carry
// (Config.MaxValueSize), for fronts that bound request bodies by it.
func (n *Node) MaxValueSize() int64 { return n.cfg.MaxValueSize }

// Exec runs units of commands through the log: each unit's commands run
// in order inside one entry, seeing each other's writes, and the entry is
// shared with other clients' units (group commit). It returns one result
// per unit (Replies, and Err for an atomic unit that failed). Reads inside
// a unit are answered as of their place in the log: linearizable.
func (n *Node) Exec(ctx context.Context, units ...fsm.Unit) ([]fsm.Result, error) {
	if n.Poisoned() != nil {
		return nil, n.Poisoned()
	}
	if len(units) == 0 {
		return nil, nil
	}
	ops := 0
	for i := range units {
		for _, args := range units[i].Cmds {
			if err := n.CheckCommand(args); err != nil {
				return nil, err
			}
			ops++
		}
	}
	if ops > fsm.MaxBatch {
		return nil, fmt.Errorf("%w: %d commands, at most %d in one entry", ErrTooMany, ops, fsm.MaxBatch)
	}
	if !n.IsLeader() {
		return nil, ErrNotLeader
	}
	now := n.now()
	if n.ClusterLevel() < fsm.LevelExec {
		return n.execLegacy(ctx, now, units)
	}
	units = forLevel(units, n.ClusterLevel())
	cmd := &fsm.Command{Op: fsm.OpExec, Now: now, Units: units, Limits: fsm.Limits{MaxValueSize: n.cfg.MaxValueSize}}
	res, err := n.propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if len(res.Results) != len(units) {
		return nil, fmt.Errorf("%w: %d results for %d units at index %d", ErrUnknownOutcome, len(res.Results), len(units), res.Index)
	}
	return res.Results, nil
}

// View waits until this node may answer a read at the requested
// consistency (a leadership round for strong reads; min index and
// staleness bounds for stale ones), then pins one state to read from.
// Everything read from the view is from that one state; View.Index is
// its applied index.
func (n *Node) View(ctx context.Context, opt ReadOptions) (*fsm.View, error) {
	if err := n.Poisoned(); err != nil {
		return nil, err
	}
	var res ReadResult
	if err := n.prepareRead(ctx, opt, &res); err != nil {
		return nil, err
	}
	return n.fsm.View(n.cfg.Clock().UnixNano()), nil
}

// LastContact is how long ago this node last heard from a leader: 0 on
// the leader, very large on a node that never has. A stale read with
// ReadOptions.MaxStale is refused when it exceeds MaxStale.
func (n *Node) LastContact() time.Duration {
	if n.IsLeader() {
		return 0
	}
	return n.lastContact()
}

// LocalView pins this node's current state without any consistency gate:
// for statistics and for commands that read no keys.
func (n *Node) LocalView() *fsm.View { return n.fsm.View(n.cfg.Clock().UnixNano()) }

// WaitForLeader blocks until the cluster has a leader that can serve (this
// node, ready in its term, or another node with a registered address), or
// ctx ends. It returns nil, or ErrNoLeader / ErrClosed.
func (n *Node) WaitForLeader(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if n.IsLeader() {
			if n.leaderReady() {
				return nil
			}
		} else if m, ok := n.Leader(); ok && m.ID != n.cfg.ID {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrNoLeader, ctx.Err())
		case <-n.closing:
			return ErrClosed
		}
	}
}

// execLegacy runs units at a cluster level below fsm.LevelExec, where a
// member may still run a binary that knows only the first command format:
// units the engine can express in that format (fsm.LowerUnit) are
// proposed that way; anything else is refused with ErrFeatureLevel. Plain
// units without a request id (a pipeline's writes) share one batch entry,
// in order, as they would share an OpExec entry.
func (n *Node) execLegacy(ctx context.Context, now int64, units []fsm.Unit) ([]fsm.Result, error) {
	type part struct {
		cmd     *fsm.Command
		replies func(*fsm.Result) fsm.Result
	}
	parts := make([]part, len(units))
	for i := range units {
		cmd, replies, ok := fsm.LowerUnit(&units[i], now)
		if !ok {
			return nil, fmt.Errorf("%w: cluster feature level %d, this command needs %d: upgrade every member",
				ErrFeatureLevel, n.ClusterLevel(), fsm.LevelExec)
		}
		parts[i] = part{cmd, replies}
	}
	out := make([]fsm.Result, len(units))
	for i := 0; i < len(parts); {
		// A run of plain units without request ids becomes one batch.
		j, subs := i, []*fsm.Command(nil)
		for ; j < len(parts) && units[j].Mode == fsm.UnitPlain && units[j].ReqID == nil && parts[j].cmd.Op != fsm.OpDeletePrefix; j++ {
			c := parts[j].cmd
			add := []*fsm.Command{c}
			if c.Op == fsm.OpBatch {
				add = c.Cmds
			}
			if len(subs) > 0 && len(subs)+len(add) > fsm.MaxBatch {
				break
			}
			subs = append(subs, add...)
		}
		if j-i < 2 {
			res, err := n.propose(ctx, parts[i].cmd)
			if err != nil {
				return nil, err
			}
			out[i] = parts[i].replies(res)
			i++
			continue
		}
		res, err := n.propose(ctx, &fsm.Command{Op: fsm.OpBatch, Now: now, Cmds: subs})
		if err != nil {
			return nil, err
		}
		at := 0
		for k := i; k < j; k++ {
			c, cnt := parts[k].cmd, 1
			if c.Op == fsm.OpBatch {
				cnt = len(c.Cmds)
			}
			sub := &fsm.Result{Index: res.Index, Results: res.Results[at : at+cnt]}
			if c.Op != fsm.OpBatch {
				sub = &res.Results[at]
			}
			out[k] = parts[k].replies(sub)
			at += cnt
		}
		i = j
	}
	return out, nil
}

// WaitScript blocks until this node's state holds the script sha (a
// SCRIPT LOAD relayed to the leader, so the EVALSHA that follows on the
// same connection finds it here too), or ctx ends.
func (n *Node) WaitScript(ctx context.Context, sha string) error {
	for {
		changed := n.fsm.Changed()
		if n.LocalView().HasScript(sha) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: script %s not applied here yet", ErrIndexTimeout, sha)
		case <-n.closing:
			return ErrClosed
		}
	}
}

// checkOOM refuses a write that may grow memory while the cache is over
// MaxMemory and the policy evicts nothing (noeviction, or a volatile
// policy with no key that has an expiry), as Redis answers OOM. Under the
// other policies the leader's housekeeping evicts instead.
func (n *Node) checkOOM(grows bool) error {
	mm, p := n.MaxMemory(), n.cfg.MaxMemoryPolicy
	if mm <= 0 || !grows || n.fsm.Bytes() <= mm {
		return nil
	}
	if p == fsm.EvictNone || p.Volatile() && !n.fsm.HasVolatile() {
		return ErrOOM
	}
	return nil
}

// forLevel clears what the cluster's level cannot carry yet (a copy, if
// anything was set): Unit.Resend below level 4 and Unit.After below level
// 5, whose bits a member's older decoder would refuse.
func forLevel(units []fsm.Unit, level uint32) []fsm.Unit {
	resend, after := level < fsm.LevelReplyBudget, level < fsm.LevelStoredBudget
	for i := range units {
		if resend && units[i].Resend || after && units[i].After != 0 {
			out := slices.Clone(units)
			for j := range out {
				if resend {
					out[j].Resend = false
				}
				if after {
					out[j].After = 0
				}
			}
			return out
		}
	}
	return units
}
