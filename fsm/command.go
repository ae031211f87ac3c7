package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// Op names a command type. The set of ops only grows: a value, once
// released, keeps its meaning and its encoding forever, because old log
// entries and snapshots are replayed by newer binaries.
type Op uint8

// The command types. Append new ones at the end; never renumber.
const (
	OpSet          Op = 1  // write a key (value, optional absolute expiry, condition)
	OpDelete       Op = 2  // remove a key (optional condition)
	OpSetMember    Op = 3  // record a member's HTTP address
	OpRemoveMember Op = 4  // forget a member's HTTP address
	OpIncr         Op = 5  // add to a decimal counter, creating it with an expiry
	OpTouch        Op = 6  // set or clear the expiry of an existing key
	OpExpire       Op = 7  // remove listed keys whose expiry has passed (leader's reaper)
	OpEvict        Op = 8  // remove listed keys at listed versions (leader's eviction)
	OpDeletePrefix Op = 9  // remove every key with a prefix
	OpBatch        Op = 10 // several commands in one entry, atomic or not
	// OpDeletePrefixChunk removes at most Limit keys with a prefix, in
	// key order, so that one entry's apply time is bounded however many
	// keys share the prefix; the proposer repeats it while Result.More.
	OpDeletePrefixChunk Op = 11
	// OpExec carries units of engine commands (argument vectors), run by
	// the command engine in order (exec.go). 13 and 14 are taken by the
	// cluster level and member records.
	OpExec Op = 12

	// OpClusterLevel raises the cluster's feature level to Level (it never
	// goes down): from then on, entries and snapshot formats of that level
	// may be written. The leader proposes it once every member reports a
	// binary of at least that level.
	OpClusterLevel Op = 13
	// OpMember records a member: its named addresses, the incarnation of
	// its data directory and its feature level, replacing the previous
	// record. It supersedes OpSetMember from feature level 2 on.
	OpMember Op = 14
)

// opLevel is the feature level that introduced each op: a binary of a
// lower level does not know it, so the leader proposes it only once the
// cluster has reached that level.
var opLevel = map[Op]uint32{
	OpSet: 1, OpDelete: 1, OpSetMember: 1, OpRemoveMember: 1, OpIncr: 1, OpTouch: 1,
	OpExpire: 1, OpEvict: 1, OpDeletePrefix: 1, OpBatch: 1, OpDeletePrefixChunk: 1,
	OpClusterLevel: 2, OpMember: 2, OpExec: 2,
}

var opNames = map[Op]string{
	OpSet: "set", OpDelete: "delete", OpSetMember: "set-member", OpRemoveMember: "remove-member",
	OpIncr: "incr", OpTouch: "touch", OpExpire: "expire", OpEvict: "evict",
	OpDeletePrefix: "delete-prefix", OpBatch: "batch", OpDeletePrefixChunk: "delete-prefix-chunk",
	OpExec:         "exec",
	OpClusterLevel: "cluster-level", OpMember: "member",
}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Cond is a precondition on a key's current state, checked at apply time.
type Cond uint8

// Conditions. An expired key counts as absent.
const (
	CondNone    Cond = 0
	CondVersion Cond = 1 // the key exists with version Version
	CondAbsent  Cond = 2 // the key does not exist
	CondExists  Cond = 3 // the key exists
)

// Flags modify OpSet.
const (
	FlagKeepTTL    uint8 = 1 << 0 // keep the existing expiry instead of clearing it
	FlagReturnPrev uint8 = 1 << 1 // return the previous value in the Result
)

// formatV1 is the first byte of every encoded command. A later format
// would get a new byte, and Decode keeps reading this one.
const formatV1 byte = 1

// MaxReqID bounds a request id.
const MaxReqID = 64

// ValidRequestID says whether a front may send id, of 1 to MaxReqID
// bytes, as a unit's request id: it holds no NUL, which from cluster
// level 6 separates a key from its request's digest (TagRequestID).
func ValidRequestID(id []byte) bool {
	return len(id) > 0 && len(id) <= MaxReqID && bytes.IndexByte(id, 0) < 0
}

// MaxMemberAddrs bounds the named addresses of one member record.
const MaxMemberAddrs = 32

// MaxBatch bounds the commands in one OpBatch, the keys in one OpExpire or
// OpEvict, and the Limit of one OpDeletePrefixChunk, so one entry stays a
// reasonable size and takes a bounded time to apply.
const MaxBatch = 4096

// Command is one replicated operation. Now is the proposing leader's wall
// clock (Unix nanoseconds): the state machine never reads a clock of its
// own, so every time-dependent decision is made from values in the log.
type Command struct {
	Op       Op
	Now      int64  // leader wall clock when proposed, Unix ns
	ReqID    []byte // client's request id: a retry with the same id is answered, not re-applied
	Key      []byte // OpSet, OpDelete, OpIncr, OpTouch; the prefix of OpDeletePrefix(Chunk)
	Limit    int    // OpDeletePrefixChunk: at most this many keys (1 to MaxBatch)
	Value    []byte // OpSet
	ExpireAt int64  // OpSet, OpIncr (on create), OpTouch: absolute Unix ns; 0 = never
	Cond     Cond   // OpSet, OpDelete
	Version  uint64 // with CondVersion
	Flags    uint8  // OpSet
	By       int64  // OpIncr

	Keys     [][]byte // OpExpire, OpEvict
	Versions []uint64 // OpEvict: the version of each key when chosen

	Atomic bool       // OpBatch: all conditions must hold, or nothing is applied
	Cmds   []*Command // OpBatch; sub-commands carry no Now of their own

	Limits Limits // OpExec: the leader's limits when proposed
	Units  []Unit // OpExec

	MemberID string // OpSetMember, OpRemoveMember, OpMember
	HTTPAddr string // OpSetMember
	RESPAddr string // OpSetMember: Redis-protocol address, "" if none

	Addrs       map[string]string // OpMember: address name (AddrHTTP, AddrRedis, ...) -> host:port
	Incarnation string            // OpMember: the random id of the member's data directory
	Level       uint32            // OpMember: the member's feature level; OpClusterLevel: the new cluster level
}

// Encode appends the binary form of c to dst:
//
//	format(1) op(1) now(varint) reqid(bytes) fields...
//
// where byte strings are a uvarint length followed by the bytes, integers
// are varints, and a sub-command of a batch (set, delete, incr or touch
// only) is op(1) reqid(bytes) fields, without format byte or Now. It needs no reflection and is compact: a
// small set is a few bytes plus the key and value.
func (c *Command) Encode(dst []byte) []byte {
	dst = append(dst, formatV1)
	dst = binary.AppendVarint(append(dst, byte(c.Op)), c.Now)
	dst = appendBytes(dst, c.ReqID)
	return c.encodeBody(dst)
}

func (c *Command) encodeBody(dst []byte) []byte {
	switch c.Op {
	case OpSet:
		dst = appendBytes(dst, c.Key)
		dst = appendBytes(dst, c.Value)
		dst = binary.AppendVarint(dst, c.ExpireAt)
		dst = c.appendCond(dst)
		dst = append(dst, c.Flags)
	case OpDelete:
		dst = appendBytes(dst, c.Key)
		dst = c.appendCond(dst)
	case OpSetMember:
		dst = appendBytes(dst, []byte(c.MemberID))
		dst = appendBytes(dst, []byte(c.HTTPAddr))
		dst = appendBytes(dst, []byte(c.RESPAddr))
	case OpRemoveMember:
		dst = appendBytes(dst, []byte(c.MemberID))
	case OpClusterLevel:
		dst = binary.AppendUvarint(dst, uint64(c.Level))
	case OpMember:
		// id incarnation level(uvarint) naddrs(uvarint) {name addr}, by name
		dst = appendBytes(dst, []byte(c.MemberID))
		dst = appendBytes(dst, []byte(c.Incarnation))
		dst = binary.AppendUvarint(dst, uint64(c.Level))
		dst = binary.AppendUvarint(dst, uint64(len(c.Addrs)))
		for _, name := range sortedKeys(c.Addrs) {
			dst = appendBytes(dst, []byte(name))
			dst = appendBytes(dst, []byte(c.Addrs[name]))
		}
	case OpIncr:
		dst = appendBytes(dst, c.Key)
		dst = binary.AppendVarint(dst, c.By)
		dst = binary.AppendVarint(dst, c.ExpireAt)
	case OpTouch:
		dst = appendBytes(dst, c.Key)
		dst = binary.AppendVarint(dst, c.ExpireAt)
	case OpExpire:
		dst = binary.AppendUvarint(dst, uint64(len(c.Keys)))
		for _, k := range c.Keys {
			dst = appendBytes(dst, k)
		}
	case OpEvict:
		dst = binary.AppendUvarint(dst, uint64(len(c.Keys)))
		for i, k := range c.Keys {
			dst = appendBytes(dst, k)
			dst = binary.AppendUvarint(dst, c.Versions[i])
		}
	case OpDeletePrefix:
		dst = appendBytes(dst, c.Key)
	case OpDeletePrefixChunk:
		dst = appendBytes(dst, c.Key)
		dst = binary.AppendUvarint(dst, uint64(c.Limit))
	case OpExec:
		dst = c.encodeExec(dst)
	case OpBatch:
		atomic := byte(0)
		if c.Atomic {
			atomic = 1
		}
		dst = binary.AppendUvarint(append(dst, atomic), uint64(len(c.Cmds)))
		for _, sub := range c.Cmds {
			dst = appendBytes(append(dst, byte(sub.Op)), sub.ReqID)
			dst = sub.encodeBody(dst)
		}
	}
	return dst
}

func (c *Command) appendCond(dst []byte) []byte {
	dst = append(dst, byte(c.Cond))
	if c.Cond == CondVersion {
		dst = binary.AppendUvarint(dst, c.Version)
	}
	return dst
}

// Decode parses one command. The returned byte slices alias b: the caller
// must not modify b afterwards (Raft log data is never modified).
func Decode(b []byte) (Command, error) {
	var c Command
	d := decoder{b: b}
	if f := d.byte(); d.err == nil && f != formatV1 {
		return c, fmt.Errorf("%w: format %d", ErrBadCommand, f)
	}
	c.Op = Op(d.byte())
	c.Now = d.varint()
	if c.ReqID = d.bytes(); len(c.ReqID) == 0 {
		c.ReqID = nil
	}
	d.body(&c, true)
	if d.err != nil {
		return c, d.err
	}
	if len(d.b) != 0 {
		return c, fmt.Errorf("%w: %d trailing bytes after %v", ErrBadCommand, len(d.b), c.Op)
	}
	return c, nil
}

// body decodes the fields of c.Op; top says whether batches may appear
// (they do not nest).
func (d *decoder) body(c *Command, top bool) {
	switch c.Op {
	case OpSet:
		c.Key, c.Value, c.ExpireAt = d.bytes(), d.bytes(), d.varint()
		d.cond(c)
		c.Flags = d.byte()
	case OpDelete:
		c.Key = d.bytes()
		d.cond(c)
	case OpSetMember:
		c.MemberID, c.HTTPAddr, c.RESPAddr = string(d.bytes()), string(d.bytes()), string(d.bytes())
	case OpRemoveMember:
		c.MemberID = string(d.bytes())
	case OpClusterLevel:
		if c.Level = d.level(); c.Level == 0 && d.err == nil {
			d.failf("cluster level 0")
		}
	case OpMember:
		c.MemberID, c.Incarnation, c.Level = string(d.bytes()), string(d.bytes()), d.level()
		n := d.uvarint()
		if n > MaxMemberAddrs {
			d.failf("%d member addresses, at most %d", n, MaxMemberAddrs)
			return
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			if c.Addrs == nil {
				c.Addrs = make(map[string]string, n)
			}
			name, addr := string(d.bytes()), string(d.bytes())
			if _, dup := c.Addrs[name]; dup {
				d.failf("member address %q twice", name)
			}
			c.Addrs[name] = addr
		}
	case OpIncr:
		c.Key, c.By, c.ExpireAt = d.bytes(), d.varint(), d.varint()
	case OpTouch:
		c.Key, c.ExpireAt = d.bytes(), d.varint()
	case OpExpire, OpEvict:
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			c.Keys = append(c.Keys, d.bytes())
			if c.Op == OpEvict {
				c.Versions = append(c.Versions, d.uvarint())
			}
		}
	case OpDeletePrefix:
		c.Key = d.bytes()
	case OpDeletePrefixChunk:
		c.Key = d.bytes()
		if c.Limit = d.count(); c.Limit < 1 && d.err == nil {
			d.failf("delete-prefix-chunk limit 0")
		}
	case OpExec:
		if !top {
			d.failf("nested exec")
			return
		}
		d.exec(c)
	case OpBatch:
		if !top {
			d.failf("nested batch")
			return
		}
		c.Atomic = d.byte() == 1
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			sub := &Command{Op: Op(d.byte()), Now: c.Now}
			switch sub.Op {
			case OpSet, OpDelete, OpIncr, OpTouch:
			default:
				d.failf("%v inside a batch", sub.Op)
				return
			}
			if sub.ReqID = d.bytes(); len(sub.ReqID) == 0 {
				sub.ReqID = nil
			}
			d.body(sub, false)
			c.Cmds = append(c.Cmds, sub)
		}
	default:
		d.failf("unknown op %d", uint8(c.Op))
	}
}

func (d *decoder) cond(c *Command) {
	c.Cond = Cond(d.byte())
	switch c.Cond {
	case CondNone, CondAbsent, CondExists:
	case CondVersion:
		c.Version = d.uvarint()
	default:
		d.failf("unknown condition %d", uint8(c.Cond))
	}
}

// level reads a feature level, which fits in 32 bits.
func (d *decoder) level() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.failf("feature level %d", v)
		return 0
	}
	return uint32(v)
}

func (d *decoder) count() int {
	n := d.uvarint()
	if n > MaxBatch {
		d.failf("count %d over %d", n, MaxBatch)
		return 0
	}
	return int(n)
}

// countN reads a count of encoded things of at most limit, and at most
// what the remaining bytes could hold (each takes at least a byte), so a
// corrupt count cannot make the decoder allocate without bound.
func (d *decoder) countN(limit int) int {
	n := d.uvarint()
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.failf("count %d over %d", n, min(limit, len(d.b)))
		return 0
	}
	return int(n)
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// decoder reads fields in order and remembers the first error, so that
// Decode reads as a list of fields rather than a ladder of checks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) failf(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrBadCommand, fmt.Sprintf(format, a...))
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.failf("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.failf("truncated varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.failf("truncated uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.failf("truncated byte string")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
