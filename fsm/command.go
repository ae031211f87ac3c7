package fsm

import (
	"encoding/binary"
	"fmt"
)

// Op names a command type. The set of ops only grows: a value, once
// released, keeps its meaning forever, because old log entries and snapshots
// are replayed by newer binaries.
type Op uint8

// The command types. Append new ones at the end; never renumber.
const (
	OpSet          Op = 1 // write a key (value, optional absolute expiry)
	OpDelete       Op = 2 // remove a key
	OpSetMember    Op = 3 // record a member's HTTP address
	OpRemoveMember Op = 4 // forget a member's HTTP address
)

func (o Op) String() string {
	switch o {
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	case OpSetMember:
		return "set-member"
	case OpRemoveMember:
		return "remove-member"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// formatV1 is the first byte of every encoded command. A later format
// would get a new byte, and Decode keeps reading this one.
const formatV1 byte = 1

// Command is one replicated operation. Now is the proposing leader's wall
// clock (Unix nanoseconds): the state machine never reads a clock of its
// own, so every time-dependent decision is made from values in the log.
type Command struct {
	Op       Op
	Now      int64  // leader wall clock when proposed, Unix ns
	Key      []byte // OpSet, OpDelete
	Value    []byte // OpSet
	ExpireAt int64  // OpSet: absolute expiry, Unix ns; 0 = never

	MemberID string // OpSetMember, OpRemoveMember
	HTTPAddr string // OpSetMember
}

// Encode appends the binary form of c to dst:
//
//	format(1) op(1) now(varint) fields...
//
// where byte strings are a uvarint length followed by the bytes, and
// integers are varints. It is compact (a small set is a few bytes plus the
// key and value) and needs no reflection.
func (c *Command) Encode(dst []byte) []byte {
	dst = append(dst, formatV1, byte(c.Op))
	dst = binary.AppendVarint(dst, c.Now)
	switch c.Op {
	case OpSet:
		dst = appendBytes(dst, c.Key)
		dst = appendBytes(dst, c.Value)
		dst = binary.AppendVarint(dst, c.ExpireAt)
	case OpDelete:
		dst = appendBytes(dst, c.Key)
	case OpSetMember:
		dst = appendBytes(dst, []byte(c.MemberID))
		dst = appendBytes(dst, []byte(c.HTTPAddr))
	case OpRemoveMember:
		dst = appendBytes(dst, []byte(c.MemberID))
	}
	return dst
}

// Decode parses one command. The returned Key and Value alias b: the caller
// must not modify b afterwards (Raft log data is never modified).
func Decode(b []byte) (Command, error) {
	var c Command
	d := decoder{b: b}
	if f := d.byte(); f != formatV1 {
		if d.err != nil {
			return c, d.err
		}
		return c, fmt.Errorf("%w: format %d", ErrBadCommand, f)
	}
	c.Op = Op(d.byte())
	c.Now = d.varint()
	switch c.Op {
	case OpSet:
		c.Key = d.bytes()
		c.Value = d.bytes()
		c.ExpireAt = d.varint()
	case OpDelete:
		c.Key = d.bytes()
	case OpSetMember:
		c.MemberID = string(d.bytes())
		c.HTTPAddr = string(d.bytes())
	case OpRemoveMember:
		c.MemberID = string(d.bytes())
	default:
		if d.err == nil {
			return c, fmt.Errorf("%w: unknown op %d", ErrBadCommand, uint8(c.Op))
		}
	}
	if d.err != nil {
		return c, d.err
	}
	if len(d.b) != 0 {
		return c, fmt.Errorf("%w: %d trailing bytes after %v", ErrBadCommand, len(d.b), c.Op)
	}
	return c, nil
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

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", ErrBadCommand, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
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
		d.fail("byte string")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
