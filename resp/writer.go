package resp

import (
	"net"
	"strconv"
	"time"

	"github.com/tidwall/redcon"

	"github.com/raftcache/raftcache/fsm"
)

// spillBytes bounds the replies a connection holds before writing them
// out: a pipeline of large GETs (or one MGET of many large values) is
// sent as it is produced instead of piling up in memory. A client that
// does not read makes the write block (until spillTimeout, then the
// connection is closed), which is the back-pressure.
const (
	spillBytes   = 1 << 20
	spillTimeout = 30 * time.Second
)

// writer collects the replies of one pipeline in the connection's
// protocol (RESP2, or RESP3 after HELLO 3). redcon writes RESP2; the few
// RESP3 types raftcache answers with (null, map) are written raw.
type writer struct {
	b      []byte
	proto  int
	out    net.Conn // where spilled replies go (the limitConn); nil: never spill
	broken bool     // a spill failed: the connection must be closed
}

// maybeSpill writes the collected replies to the connection once they
// pass spillBytes. It is called only between whole values, and only while
// redcon's own write buffer is empty (replies reach redcon at the end of
// a pipeline), so the byte order on the wire is kept.
func (w *writer) maybeSpill() {
	if w.out == nil || len(w.b) < spillBytes {
		return
	}
	if !w.broken {
		_, err := w.out.Write(w.b) // limitConn bounds every write by spillTimeout
		w.broken = err != nil
	}
	w.b = w.b[:0]
}

func (w *writer) ok()                 { w.b = redcon.AppendOK(w.b) }
func (w *writer) status(s string)     { w.b = redcon.AppendString(w.b, s) }
func (w *writer) error(msg string)    { w.b = redcon.AppendError(w.b, msg) }
func (w *writer) fail(err error)      { w.error(errorReply(err)) }
func (w *writer) int(n int64)         { w.b = redcon.AppendInt(w.b, n) }
func (w *writer) bulk(b []byte)       { w.b = redcon.AppendBulk(w.b, b); w.maybeSpill() }
func (w *writer) bulkString(s string) { w.b = redcon.AppendBulkString(w.b, s) }
func (w *writer) array(n int)         { w.b = redcon.AppendArray(w.b, n) }
func (w *writer) raw(b []byte)        { w.b = append(w.b, b...); w.maybeSpill() }

// setHeader starts a set of n: an array in RESP2.
func (w *writer) setHeader(n int) {
	if w.proto != 3 {
		w.array(n)
		return
	}
	w.b = append(w.b, '~')
	w.b = strconv.AppendInt(w.b, int64(n), 10)
	w.b = append(w.b, '\r', '\n')
}

// reset empties the buffer after it was handed to the connection,
// dropping a large one.
func (w *writer) reset() {
	if cap(w.b) > 1<<20 {
		w.b = nil
	} else {
		w.b = w.b[:0]
	}
}

func (w *writer) bool(v bool) {
	if v {
		w.int(1)
	} else {
		w.int(0)
	}
}

// null is a missing value: $-1 in RESP2, _ in RESP3.
func (w *writer) null() {
	if w.proto == 3 {
		w.b = append(w.b, '_', '\r', '\n')
		return
	}
	w.b = redcon.AppendNull(w.b)
}

// mapHeader starts a map of n pairs: a flat array of 2n in RESP2.
func (w *writer) mapHeader(n int) {
	if w.proto == 3 {
		w.b = append(w.b, '%')
		w.b = strconv.AppendInt(w.b, int64(n), 10)
		w.b = append(w.b, '\r', '\n')
		return
	}
	w.array(2 * n)
}

// value writes a bulk value, or null when found is false.
func (w *writer) value(v []byte, found bool) {
	if !found {
		w.null()
		return
	}
	w.bulk(v)
}

// reply encodes an engine reply in the connection's protocol: RESP3 as
// the model is, RESP2 as Redis downgrades it (a map is a flat array, a
// set an array, a double a bulk string).
func (w *writer) reply(r fsm.Reply) {
	switch r.Kind {
	case fsm.KindNull:
		w.null()
	case fsm.KindNullArray:
		if w.proto == 3 {
			w.b = append(w.b, '_', '\r', '\n')
		} else {
			w.b = append(w.b, "*-1\r\n"...)
		}
	case fsm.KindStatus:
		w.b = append(append(append(w.b, '+'), r.Bulk...), '\r', '\n')
	case fsm.KindError:
		w.error(fsm.ErrorText(r.Err))
	case fsm.KindInt:
		w.int(r.Int)
	case fsm.KindBulk:
		w.bulk(r.Bulk)
	case fsm.KindDouble:
		s := fsm.FormatDouble(r.Float)
		if w.proto == 3 {
			w.b = append(append(append(w.b, ','), s...), '\r', '\n')
		} else {
			w.bulkString(s)
		}
	case fsm.KindMap:
		w.mapHeader(len(r.Elems) / 2)
		for _, e := range r.Elems {
			w.reply(e)
		}
	case fsm.KindSet:
		if w.proto == 3 {
			w.b = append(strconv.AppendInt(append(w.b, '~'), int64(len(r.Elems)), 10), '\r', '\n')
		} else {
			w.array(len(r.Elems))
		}
		for _, e := range r.Elems {
			w.reply(e)
		}
	case fsm.KindPairs:
		if w.proto == 3 {
			w.array(len(r.Elems) / 2)
			for i := 0; i+1 < len(r.Elems); i += 2 {
				w.array(2)
				w.reply(r.Elems[i])
				w.reply(r.Elems[i+1])
			}
			return
		}
		w.array(len(r.Elems))
		for _, e := range r.Elems {
			w.reply(e)
		}
	default: // fsm.KindArray
		w.array(len(r.Elems))
		for _, e := range r.Elems {
			w.reply(e)
		}
	}
}
