package resp

import (
	"bytes"
	"errors"
	"strconv"
)

// Reading the leader's replies. A relay connection's replies are framed
// as they arrive, so the reader knows where each caller's reply ends; a
// reply past Limits.MaxRelayReply is skipped (its bytes read and dropped)
// on a shared connection, so the other callers' replies on it still
// arrive, and ends a dedicated one.

var errBadReply = errors.New("malformed reply from the leader")

// framer finds the end of one reply, RESP2 or RESP3 (a relay connection
// speaks its clients' protocol), in a growing buffer without rescanning
// what it has already passed: aggregates (arrays, sets, pushes, maps) are
// tracked as a stack of elements still to come, so a long array arriving
// in many reads costs linear time; leaves (lines, and bulk strings, blob
// errors and verbatim strings by their length) are passed over whole. off
// is where parsing resumes, relative to the start of the reply.
//
// In skip mode the bytes before off may be dropped by the reader (base
// says how many were), and a bulk string is passed over by its header
// alone, so a skipped reply never has to be held whole: off may then run
// past the bytes read so far, and the reply is done once they are read.
type framer struct {
	off      int
	stack    []int
	skip     bool
	complete bool // the last element is framed (in skip mode its bytes may not all be read yet)
}

// advanceAt frames the reply whose bytes from base on are b (base is 0
// unless the reader dropped bytes in skip mode).
func (f *framer) advanceAt(b []byte, base int) (done bool, err error) {
	end := base + len(b)
	for !f.complete && f.off < end {
		p := b[f.off-base:]
		eol := bytes.Index(p, []byte("\r\n"))
		if eol < 0 {
			if len(p) > maxHeaderLine {
				return false, errBadReply
			}
			return false, nil // incomplete
		}
		switch t := p[0]; t {
		case '+', '-', ':', '_', ',', '#', '(': // one line
			f.off += eol + 2
		case '$', '!', '=': // a length, then as many bytes and CRLF
			n, err := strconv.Atoi(string(p[1:eol]))
			if err != nil || n < -1 {
				return false, errBadReply
			}
			f.off += eol + 2
			if n >= 0 {
				body := eol + 2 + n
				if !f.skip {
					if len(p) < body+2 {
						f.off -= eol + 2
						return false, nil // incomplete: framed again once it is whole
					}
					if p[body] != '\r' || p[body+1] != '\n' {
						return false, errBadReply
					}
				}
				f.off += n + 2 // in skip mode the body is passed over, not read
			}
		case '*', '~', '>', '%': // aggregates; a map has two elements per entry
			n, err := strconv.Atoi(string(p[1:eol]))
			if err != nil || n < -1 {
				return false, errBadReply
			}
			f.off += eol + 2
			if t == '%' {
				n *= 2
			}
			if n > 0 {
				f.stack = append(f.stack, n)
				continue
			}
		default: // attributes ('|') included: raftcache never sends them
			return false, errBadReply
		}
		// One element completed: close every aggregate it completes.
		for len(f.stack) > 0 {
			f.stack[len(f.stack)-1]--
			if f.stack[len(f.stack)-1] > 0 {
				break
			}
			f.stack = f.stack[:len(f.stack)-1]
		}
		f.complete = len(f.stack) == 0
	}
	return f.complete && f.off <= end, nil
}

// maxHeaderLine bounds a header or simple line without its CRLF: a
// leader that sends more is not speaking RESP.
const maxHeaderLine = 64 << 10

// readReply returns the next whole reply (valid until the next read), or
// errReplyTooLarge once it passes max bytes (the connection is then out
// of step: close it).
func (c *fconn) readReply(max int) ([]byte, error) {
	reply, skipped, err := c.next(max, false)
	if err == nil && skipped {
		err = errReplyTooLarge
	}
	return reply, err
}

// next reads the next reply. A reply past max bytes is skipped when skip
// is set (skipped is true, and the connection stays in step); without
// skip it fails with errReplyTooLarge. The reply is valid until the next
// read.
func (c *fconn) next(max int, skip bool) (reply []byte, skipped bool, err error) {
	var fr framer
	base := 0 // bytes of a skipped reply already dropped
	for {
		done, err := fr.advanceAt(c.buf[c.start:c.end], base)
		if err != nil {
			return nil, false, err
		}
		if done {
			n := fr.off - base
			reply := c.buf[c.start : c.start+n]
			c.start += n
			if fr.skip || n > max { // (it may have come whole in one read)
				if !skip {
					return nil, false, errReplyTooLarge
				}
				return nil, true, nil
			}
			return reply, false, nil
		}
		if fr.skip {
			// Drop what is framed; what is left is one unfinished line.
			n := min(fr.off-base, c.end-c.start)
			c.start += n
			base += n
			if c.end-c.start >= max {
				return nil, false, errReplyTooLarge
			}
		} else if c.end-c.start >= max {
			if !skip {
				return nil, false, errReplyTooLarge
			}
			// Frame it again from its start, passing over bulk bodies.
			fr = framer{skip: true}
			continue
		}
		if c.start > 0 { // make room at the end
			n := copy(c.buf, c.buf[c.start:c.end])
			c.start, c.end = 0, n
		}
		if c.end == len(c.buf) {
			c.buf = append(c.buf, make([]byte, len(c.buf))...)
		}
		n, err := c.nc.Read(c.buf[c.end:])
		c.end += n
		if err != nil && n == 0 {
			return nil, false, err
		}
	}
}
