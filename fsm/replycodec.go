package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Replies kept for deduplicated units (a retried request is answered with
// the first attempt's replies) are part of the replicated state, so they
// travel in snapshots: this is their encoding.

// replyCodes are the error sentinels a stored error reply can name, by
// position. Append only: positions are in snapshots.
var replyCodes = []error{nil, ErrNotInteger, ErrOverflow, ErrSyntax, ErrWrongType, ErrConditionFailed,
	ErrNotFound, ErrExecAbort, ErrReadOnly, ErrValueTooLarge, ErrArity, ErrUnknownCommand}

func replyCode(err error) uint64 {
	for i, c := range replyCodes[1:] {
		if errors.Is(err, c) {
			return uint64(i + 1)
		}
	}
	return 0
}

// appendReply encodes r: kind(1), then its fields.
func appendReply(dst []byte, r *Reply) []byte {
	dst = append(dst, byte(r.Kind))
	switch r.Kind {
	case KindInt:
		dst = binary.AppendVarint(dst, r.Int)
	case KindBulk, KindStatus:
		dst = appendBytes(dst, r.Bulk)
	case KindDouble:
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(r.Float))
	case KindError:
		var cur uint64
		var e *Error
		if errors.As(r.Err, &e) {
			cur = e.Current
		}
		dst = binary.AppendUvarint(dst, replyCode(r.Err))
		dst = appendBytes(dst, []byte(ErrorText(r.Err)))
		dst = binary.AppendUvarint(dst, cur)
	case KindArray, KindMap, KindSet, KindPairs:
		dst = binary.AppendUvarint(dst, uint64(len(r.Elems)))
		for i := range r.Elems {
			dst = appendReply(dst, &r.Elems[i])
		}
	}
	return dst
}

// appendReplies encodes a unit's replies: count, then each.
func appendReplies(dst []byte, rs []Reply) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(rs)))
	for i := range rs {
		dst = appendReply(dst, &rs[i])
	}
	return dst
}

func readReplies(r *bufio.Reader) ([]Reply, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > maxArgs {
		return nil, fmt.Errorf("%d replies", n)
	}
	var out []Reply
	for i := uint64(0); i < n; i++ {
		rep, err := readReply(r, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, rep)
	}
	return out, nil
}

func readReply(r *bufio.Reader, depth int) (Reply, error) {
	if depth > maxReplyDepth {
		return Reply{}, errors.New("reply nested too deep")
	}
	k, err := r.ReadByte()
	if err != nil {
		return Reply{}, err
	}
	rep := Reply{Kind: Kind(k)}
	switch rep.Kind {
	case KindNull, KindNullArray:
	case KindInt:
		rep.Int, err = binary.ReadVarint(r)
	case KindBulk, KindStatus:
		rep.Bulk, err = readBytes(r)
	case KindDouble:
		var b [8]byte
		if _, err = io.ReadFull(r, b[:]); err == nil {
			rep.Float = math.Float64frombits(binary.BigEndian.Uint64(b[:]))
		}
	case KindError:
		var code, cur uint64
		var msg []byte
		if code, err = binary.ReadUvarint(r); err != nil {
			return rep, err
		}
		if msg, err = readBytes(r); err != nil {
			return rep, err
		}
		if cur, err = binary.ReadUvarint(r); err != nil {
			return rep, err
		}
		e := &Error{Msg: string(msg), Current: cur}
		if code < uint64(len(replyCodes)) {
			e.Code = replyCodes[code]
		}
		rep.Err = e
	case KindArray, KindMap, KindSet, KindPairs:
		var n uint64
		if n, err = binary.ReadUvarint(r); err != nil {
			return rep, err
		}
		if n > maxArgs {
			return rep, fmt.Errorf("%d elements", n)
		}
		for i := uint64(0); i < n; i++ {
			e, err := readReply(r, depth+1)
			if err != nil {
				return rep, err
			}
			rep.Elems = append(rep.Elems, e)
		}
	default:
		return rep, fmt.Errorf("unknown reply kind %d", k)
	}
	return rep, err
}
